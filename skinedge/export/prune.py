"""Structured channel pruning for the Jetson targets.

Why: on a Jetson the U-Net and the SRGAN generator are bound by convolution width, not depth. Removing whole
channels (not single weights) makes every convolution narrower, so the ONNX/TensorRT graph gets faster with no
sparse kernels. Kept widths are rounded to multiples of 8 so that FP16/INT8 tensor-core tiles stay full.

How: Torch-Pruning's DependencyGraph traces the network and groups every tensor dimension that must shrink
together (a conv's outputs with the next BN, the consumers' inputs, both sides of residual adds, the U-Net's skip
concatenations with their offsets, EfficientNet's depthwise convs and squeeze-excitation products). Each group
keeps the channels of largest L1 weight magnitude: ``(channels * (1 - ratio))`` rounded *down* to a multiple of
``round_to``; a group where that would leave nothing is not pruned at all.

Torch-Pruning 1.6 does not understand ``PixelShuffle``: it treats it as element-wise, so it would pair channel
``c`` after the shuffle with conv output ``c`` instead of conv outputs ``4c..4c+3``. The generator's
``UpsampleBlock`` (conv -> PixelShuffle(r) -> PReLU) is therefore registered as one custom layer: its outputs
are the shuffled channels, and removing output ``c`` removes conv outputs ``r²c..r²c+r²-1`` together with PReLU
slope ``c`` (whole pixel-shuffle groups, consistent with the shuffle). Its importance adds those conv rows' L1.

Output layers keep their widths: ``segmentation_head`` (1 logit channel) and ``tail`` (3 RGB channels) are
ignored as roots; only their input channels follow the layer before them. The network input (3 channels) is
never pruned.

A pruned network no longer matches its constructor, so :func:`skinedge.models.shapes.pruned_shapes` records
every channel-dependent module's widths (JSON-ready) and :func:`skinedge.models.shapes.apply_pruned_shapes`
resizes a freshly built network to them before ``load_state_dict`` (with the models, so that loading a pruned
checkpoint needs neither Torch-Pruning nor this module).
"""

from __future__ import annotations


import torch
from torch import nn

from skinedge.errors import SkinedgeError

MAX_RATIO = 0.9
NETS = {"seg": "segmentation_head", "sr": "tail"}

# --------------------------------------------------------------------------- pixel-shuffle blocks

def _pixel_shuffle_block_type() -> type:
    """The generator's conv -> PixelShuffle -> PReLU block class."""
    from skinedge.models.srgan import UpsampleBlock

    return UpsampleBlock


def _shuffle_factor(block: nn.Module) -> int:
    """Conv channels per shuffled channel (r² for PixelShuffle(r))."""
    return block.shuffle.upscale_factor ** 2


def _conv_rows(block: nn.Module, idxs) -> list[int]:
    """Conv output channels that make up shuffled channels ``idxs``."""
    r2 = _shuffle_factor(block)
    return [r2 * c + k for c in idxs for k in range(r2)]


def _make_block_pruner():
    """A Torch-Pruning layer pruner that removes whole pixel-shuffle groups of an UpsampleBlock."""
    import torch_pruning as tp

    class PixelShuffleBlockPruner(tp.pruner.BasePruningFunc):
        """Outputs are the shuffled channels; inputs are the conv's inputs (no intra-layer coupling)."""

        def prune_out_channels(self, layer, idxs):
            tp.prune_conv_out_channels(layer.conv, _conv_rows(layer, idxs))
            if layer.act.num_parameters > 1:
                tp.prune_prelu_out_channels(layer.act, list(idxs))
            return layer

        def prune_in_channels(self, layer, idxs):
            tp.prune_conv_in_channels(layer.conv, list(idxs))
            return layer

        def get_out_channels(self, layer):
            return layer.conv.out_channels // _shuffle_factor(layer)

        def get_in_channels(self, layer):
            return layer.conv.in_channels

    return PixelShuffleBlockPruner()


def _make_importance(block_pruner):
    """L1 magnitude importance that also scores pixel-shuffle blocks (Torch-Pruning skips custom layers).

    Sum reduction and no normaliser: with local (per-group) pruning only the ranking inside a group matters,
    and that is the same as Torch-Pruning's default mean/mean for every group without a custom block.
    """
    import torch_pruning as tp

    class ShuffleAwareImportance(tp.importance.MagnitudeImportance):
        def __call__(self, group):
            imp = super().__call__(group)
            for item in group:
                local = _block_score(item.dep.layer, item.dep.pruning_fn, item.idxs, block_pruner)
                if local is None or any(r is None for r in item.root_idxs):
                    continue
                if imp is None:
                    imp = torch.zeros(len(group[0].root_idxs))
                imp.scatter_add_(0, torch.tensor(item.root_idxs), local.to(imp.dtype))
            return imp

    return ShuffleAwareImportance(p=1, group_reduction="sum", normalizer=None)


def _block_score(layer, pruning_fn, idxs, block_pruner) -> torch.Tensor | None:
    """L1 of the conv weights behind ``idxs`` of a pixel-shuffle block, or None for any other layer."""
    if not isinstance(layer, _pixel_shuffle_block_type()):
        return None
    w = layer.conv.weight.detach().abs()
    if pruning_fn == block_pruner.prune_out_channels:
        return w.reshape(w.shape[0] // _shuffle_factor(layer), -1).sum(1)[list(idxs)]
    return w.transpose(0, 1).flatten(1).sum(1)[list(idxs)]


# --------------------------------------------------------------------------- pruning

def _check_args(model: nn.Module, net: str, ratio: float, round_to: int) -> nn.Module:
    """Validate the arguments; return the output layer that must keep its width."""
    if net not in NETS:
        raise SkinedgeError(f"unknown network {net!r} for pruning; use one of {', '.join(NETS)}")
    if not isinstance(ratio, (int, float)) or not 0 < ratio <= MAX_RATIO:
        raise SkinedgeError(f"pruning ratio must be in (0, {MAX_RATIO}], got {ratio!r}")
    if not isinstance(round_to, int) or round_to < 1:
        raise SkinedgeError(f"round_to must be a positive integer, got {round_to!r}")
    output_layer = getattr(model, NETS[net], None)
    if not isinstance(output_layer, nn.Module):
        raise SkinedgeError(f"this model has no {NETS[net]!r} output layer; is it a {net!r} network?")
    return output_layer


def _count(model: nn.Module, example_input: torch.Tensor) -> tuple[int, int]:
    """(MACs, parameters) for one forward pass of ``example_input``."""
    import torch_pruning as tp

    with torch.no_grad():
        macs, params = tp.utils.count_ops_and_params(model, example_input)
    return int(macs), int(params)


def _run_pruner(model: nn.Module, output_layer: nn.Module, ratio: float, example_input: torch.Tensor,
                round_to: int) -> None:
    """Trace ``model`` and remove the least important channels of every prunable group, in place."""
    import torch_pruning as tp

    block_pruner = _make_block_pruner()
    block_type = _pixel_shuffle_block_type()
    pruner = tp.pruner.MetaPruner(
        model, example_input,
        importance=_make_importance(block_pruner),
        pruning_ratio=ratio,
        round_to=round_to,
        global_pruning=False,
        ignored_layers=[output_layer],
        customized_pruners={block_type: block_pruner},
        root_module_types=[nn.modules.conv._ConvNd, nn.Linear, block_type],
    )
    pruner.step()


def prune_network(model: nn.Module, net: str, ratio: float, example_input: torch.Tensor,
                  round_to: int = 8) -> dict[str, int]:
    """Remove ``ratio`` of the channels of every prunable layer group of ``model``, in place.

    Args:
        model: a segmenter (``net="seg"``) or SRGAN generator (``net="sr"``).
        net: ``seg`` or ``sr``; selects the output layer that keeps its width.
        ratio: fraction of channels to remove per group, in (0, 0.9].
        example_input: an input the network accepts (used for tracing and counting MACs).
        round_to: kept channel counts are multiples of this.
    Returns:
        ``params_before``, ``params_after``, ``macs_before``, ``macs_after``.
    The model's train/eval mode and ``requires_grad`` flags are kept.
    """
    output_layer = _check_args(model, net, ratio, round_to)
    was_training = model.training
    frozen = {name for name, p in model.named_parameters() if not p.requires_grad}
    model.eval()
    try:
        macs_before, params_before = _count(model, example_input)
        with torch.enable_grad():
            model.requires_grad_(True)  # tracing follows autograd, so frozen weights would hide layers
            _run_pruner(model, output_layer, ratio, example_input, round_to)
        macs_after, params_after = _count(model, example_input)
    finally:
        for name, p in model.named_parameters():
            p.requires_grad_(name not in frozen)
        model.train(was_training)
    return {"params_before": params_before, "params_after": params_after,
            "macs_before": macs_before, "macs_after": macs_after}
