"""Structured channel pruning for the Jetson targets, and the shape record that pruned checkpoints need.

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

A pruned network no longer matches its constructor, so :func:`pruned_shapes` records every channel-dependent
module's widths (JSON-ready) and :func:`apply_pruned_shapes` resizes a freshly built network to them before
``load_state_dict``.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from skinedge.errors import SkinedgeError

MAX_RATIO = 0.9
NETS = {"seg": "segmentation_head", "sr": "tail"}

_SHAPE_FIELDS = {
    "conv": ("in_channels", "out_channels", "groups"),
    "bn": ("num_features",),
    "prelu": ("num_parameters",),
    "linear": ("in_features", "out_features"),
}


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


# --------------------------------------------------------------------------- shape record

def _kind(module: nn.Module) -> str | None:
    """Which shape record a module needs, or None when its parameters do not depend on channel counts."""
    if isinstance(module, nn.modules.conv._ConvNd):
        return "conv"
    if isinstance(module, nn.modules.batchnorm._BatchNorm):
        return "bn"
    if isinstance(module, nn.PReLU):
        return "prelu"
    if isinstance(module, nn.Linear):
        return "linear"
    return None


def _shape_of(module: nn.Module, kind: str) -> dict[str, Any]:
    """The widths of one module as a JSON-ready dict."""
    return {"kind": kind, **{field: int(getattr(module, field)) for field in _SHAPE_FIELDS[kind]}}


def pruned_shapes(model: nn.Module) -> dict[str, dict]:
    """Widths of every conv / BN / PReLU / Linear of ``model``, keyed by module name (JSON-serialisable)."""
    shapes = {}
    for name, module in model.named_modules():
        kind = _kind(module)
        if kind is not None:
            shapes[name] = _shape_of(module, kind)
    return shapes


def _new_param(old: torch.Tensor, shape: tuple[int, ...], fill: float = 0.0) -> nn.Parameter:
    """A parameter like ``old`` (dtype, device, requires_grad) with a new shape; values come from a state dict."""
    return nn.Parameter(old.new_full(shape, fill), requires_grad=old.requires_grad)


def _resize_conv(conv: nn.modules.conv._ConvNd, cin: int, cout: int, groups: int) -> None:
    """Resize a conv in place; its class (e.g. smp's same-padding convs), kernel, stride, padding stay."""
    if cin % groups or cout % groups:
        raise SkinedgeError(f"conv widths {cin}->{cout} are not divisible by groups={groups}")
    conv.in_channels, conv.out_channels, conv.groups = cin, cout, groups
    shape = (cin, cout // groups) if conv.transposed else (cout, cin // groups)
    conv.weight = _new_param(conv.weight, (*shape, *conv.kernel_size))
    if conv.bias is not None:
        conv.bias = _new_param(conv.bias, (cout,))


def _resize_bn(bn: nn.modules.batchnorm._BatchNorm, num_features: int) -> None:
    """Resize a batch norm in place; eps, momentum, affine and running-stat tracking stay."""
    bn.num_features = num_features
    if bn.affine:
        bn.weight = _new_param(bn.weight, (num_features,), 1.0)
        bn.bias = _new_param(bn.bias, (num_features,))
    if bn.track_running_stats:
        bn.running_mean = bn.running_mean.new_zeros(num_features)
        bn.running_var = bn.running_var.new_ones(num_features)


def _resize_prelu(prelu: nn.PReLU, num_parameters: int) -> None:
    prelu.num_parameters = num_parameters
    prelu.weight = _new_param(prelu.weight, (num_parameters,), 0.25)


def _resize_linear(linear: nn.Linear, in_features: int, out_features: int) -> None:
    linear.in_features, linear.out_features = in_features, out_features
    linear.weight = _new_param(linear.weight, (out_features, in_features))
    if linear.bias is not None:
        linear.bias = _new_param(linear.bias, (out_features,))


_RESIZERS = {"conv": _resize_conv, "bn": _resize_bn, "prelu": _resize_prelu, "linear": _resize_linear}


def _recorded_widths(name: str, entry: Any, kind: str) -> list[int]:
    """The integer widths of one record entry, checked."""
    try:
        widths = [entry[field] for field in _SHAPE_FIELDS[kind]]
    except (KeyError, TypeError):
        raise SkinedgeError(f"pruned shape record for {name!r} is incomplete: {entry!r}") from None
    if not all(isinstance(w, int) and not isinstance(w, bool) and w > 0 for w in widths):
        raise SkinedgeError(f"pruned shape record for {name!r} has a bad width: {entry!r}")
    return widths


def apply_pruned_shapes(model: nn.Module, shapes: dict[str, dict]) -> nn.Module:
    """Resize a freshly built network to the widths in ``shapes`` (from :func:`pruned_shapes`), in place.

    Modules whose widths already match are left as they are; the others keep their class and settings and get
    placeholder parameters of the recorded shapes, so that a strict ``load_state_dict(pruned_state_dict)`` fits.
    Returns ``model``.
    """
    modules = dict(model.named_modules())
    for name, entry in shapes.items():
        module = modules.get(name)
        kind = _kind(module) if module is not None else None
        if kind is None or not isinstance(entry, dict) or entry.get("kind") != kind:
            raise SkinedgeError(f"pruned shape record does not fit this network at {name!r}: "
                                f"record {entry!r}, network has {type(module).__name__}")
        widths = _recorded_widths(name, entry, kind)
        if [getattr(module, field) for field in _SHAPE_FIELDS[kind]] != widths:
            _RESIZERS[kind](module, *widths)
    return model
