"""Structured pruning: widths, output layers, skip concatenations, pixel-shuffle groups, shape records."""

from __future__ import annotations

import json

import pytest
import torch
from torch import nn

pytest.importorskip("torch_pruning")  # the "train" extra

from skinedge.errors import SkinedgeError  # noqa: E402
from skinedge.export.prune import prune_network  # noqa: E402
from skinedge.models.shapes import apply_pruned_shapes, pruned_shapes  # noqa: E402
from skinedge.models.srgan import Generator  # noqa: E402
from skinedge.models.unet import build_segmenter  # noqa: E402

RATIO = 0.5
SEG_INPUT = (1, 3, 64, 64)
SR_INPUT = (1, 3, 12, 12)


def _generator(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return Generator(blocks=2, features=64).eval()


def _segmenter(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return build_segmenter("efficientnet-b3", dropout=0.2).eval()


def _convs(model: nn.Module) -> dict[str, nn.Conv2d]:
    return {name: m for name, m in model.named_modules() if isinstance(m, nn.Conv2d)}


def _kept(count: int) -> int:
    """Channels a group of ``count`` keeps at RATIO with round_to=8 (0: the group is too small to prune)."""
    return int(count * (1 - RATIO)) // 8 * 8


def _dead_set(count: int) -> list[int]:
    """The channels the tests make dead in every layer of width ``count``: exactly as many as pruning removes,
    scattered (not a prefix) and the same for every layer of that width, so groups joined by adds agree."""
    keep = _kept(count)
    if keep == 0:
        return []
    return torch.randperm(count, generator=torch.Generator().manual_seed(count))[: count - keep].tolist()


@torch.no_grad()
def _kill_outputs(conv: nn.Conv2d, idxs, bn: nn.BatchNorm2d | None = None) -> None:
    """Make output channels ``idxs`` of conv (and its BN) identically zero, with zero weight magnitude."""
    if not len(idxs):
        return
    conv.weight[list(idxs)] = 0
    if conv.bias is not None:
        conv.bias[list(idxs)] = 0
    if bn is not None:
        _kill_batchnorm(bn, idxs)


@torch.no_grad()
def _kill_batchnorm(bn: nn.BatchNorm2d, idxs) -> None:
    """BN output = bias for weight 0, so zero both: the channel is identically zero after it."""
    bn.weight[list(idxs)] = 0
    bn.bias[list(idxs)] = 0


@torch.no_grad()
def _zero_weights_of_dead_inputs(model: nn.Module, x: torch.Tensor) -> int:
    """Zero every (ungrouped) conv's input weights for input channels that are identically zero on ``x``.

    This does not change the output (those inputs are zero) but gives the dead channels zero importance in
    every layer that reads them, found from activations rather than from the pruning graph. Returns how many
    conv inputs were zeroed.
    """
    seen: dict[nn.Conv2d, torch.Tensor] = {}
    hooks = [m.register_forward_pre_hook(lambda mod, inp: seen.setdefault(mod, inp[0]))
             for m in model.modules() if isinstance(m, nn.Conv2d) and m.groups == 1]
    model(x)
    for hook in hooks:
        hook.remove()
    zeroed = 0
    for conv, inp in seen.items():
        dead = (inp.abs().amax(dim=(0, 2, 3)) == 0).nonzero().flatten()
        conv.weight[:, dead] = 0
        zeroed += len(dead)
    return zeroed


def _assert_close(before: torch.Tensor, after: torch.Tensor) -> None:
    scale = before.abs().max().item()
    assert scale > 0
    assert torch.allclose(before, after, rtol=1e-4, atol=1e-5 * scale), (before - after).abs().max()


# --------------------------------------------------------------------------- widths and output layers

def test_prune_generator_widths_and_output_layers():
    g = _generator().train()
    x = torch.rand(*SR_INPUT)
    original = {name: (c.in_channels, c.out_channels) for name, c in _convs(g).items()}
    stats = prune_network(g, "sr", RATIO, x)

    assert g.training, "train/eval mode must be restored"
    g.eval()
    with torch.no_grad():
        assert g(x).shape == (1, 3, 48, 48)
    assert stats["params_after"] < stats["params_before"]
    assert stats["macs_after"] < stats["macs_before"]
    assert stats["params_after"] == sum(p.numel() for p in g.parameters())
    assert g.head[0].in_channels == 3 and g.tail.out_channels == 3
    for name, conv in _convs(g).items():
        if conv.out_channels != original[name][1]:
            assert conv.out_channels % 8 == 0, name
    for block in g.upsample:  # whole pixel-shuffle groups: conv = 4 × shuffled channels
        assert block.conv.out_channels == 4 * block.act.num_parameters == 4 * 32
    assert g.trunk[0].body[0].out_channels == 32 and g.head[0].out_channels == 32
    assert g.tail.in_channels == 32


def test_a_camera_plane_generator_keeps_its_four_input_channels_through_pruning():
    torch.manual_seed(0)
    arch = {"blocks": 2, "features": 64, "bicubic_skip": True, "norm": False, "camera_plane": True}
    g = Generator(**arch).eval()
    x = torch.cat([torch.rand(1, 3, 12, 12), torch.ones(1, 1, 12, 12)], dim=1)
    stats = prune_network(g, "sr", RATIO, x)
    assert stats["params_after"] < stats["params_before"]
    assert g.head[0].in_channels == 4 and g.head[0].out_channels == 32 and g.in_channels == 4
    fresh = apply_pruned_shapes(Generator(**arch), json.loads(json.dumps(pruned_shapes(g))))
    fresh.load_state_dict(g.state_dict())  # strict: the record rebuilds the 4-channel head
    with torch.no_grad():
        assert g(x).shape == (1, 3, 48, 48) and torch.equal(g(x), fresh.eval()(x))


def test_prune_segmenter_widths_and_output_layers():
    m = _segmenter()
    x = torch.randn(*SEG_INPUT)
    original = {name: (c.in_channels, c.out_channels) for name, c in _convs(m).items()}
    stats = prune_network(m, "seg", RATIO, x)

    with torch.no_grad():
        assert m(x).shape == SEG_INPUT[:1] + (1,) + SEG_INPUT[2:]
    assert stats["params_after"] < stats["params_before"]
    assert stats["macs_after"] < stats["macs_before"]
    head = m.segmentation_head[0]
    assert head.out_channels == 1 and head.in_channels == 8
    assert m.encoder.encoder._conv_stem.in_channels == 3
    depthwise = 0
    for name, conv in _convs(m).items():
        if conv.groups > 1:  # EfficientNet's depthwise convs stay depthwise
            depthwise += 1
            assert conv.groups == conv.in_channels == conv.out_channels, name
        if conv.out_channels != original[name][1]:
            assert conv.out_channels % 8 == 0, (name, conv.out_channels)
    assert depthwise > 20
    pruned = [n for n, c in _convs(m).items() if c.out_channels != original[n][1]]
    assert len(pruned) > 100


# --------------------------------------------------------------------------- removing dead channels keeps the function

def test_generator_removes_dead_pixel_shuffle_groups_and_residual_channels_exactly():
    """Every prunable group gets exactly the to-be-removed count of dead channels; output must not change.

    Treating PixelShuffle as element-wise (Torch-Pruning's default) would drop conv rows c instead of 4c..4c+3
    and change the output; so would mixing up a residual block's internal channels with the trunk's.
    """
    g = _generator(seed=1)
    x = torch.rand(*SR_INPUT)
    trunk = list(range(1, 64, 2))
    _kill_outputs(g.head[0], trunk)
    for i, block in enumerate(g.trunk):
        inner = torch.randperm(64, generator=torch.Generator().manual_seed(10 + i))[:32].tolist()
        _kill_outputs(block.body[0], inner, block.body[1])
        _kill_outputs(block.body[3], trunk, block.body[4])
    _kill_outputs(g.trunk_tail[0], trunk, g.trunk_tail[1])
    for i, block in enumerate(g.upsample):
        groups = torch.randperm(64, generator=torch.Generator().manual_seed(20 + i))[:32].tolist()
        _kill_outputs(block.conv, [4 * c + k for c in groups for k in range(4)])
    # readers: conv1 and conv2 of both residual blocks, trunk_tail, both upsample convs, tail
    assert _zero_weights_of_dead_inputs(g, x) == 32 * 8
    with torch.no_grad():
        before = g(x)

    prune_network(g, "sr", RATIO, x)
    assert all(b.conv.out_channels == 128 and b.act.num_parameters == 32 for b in g.upsample)
    assert all(b.body[0].out_channels == 32 for b in g.trunk)
    with torch.no_grad():
        _assert_close(before, g(x))


def test_segmenter_keeps_function_through_skip_concatenations():
    """Dead channels chosen by width alone (the same set in every layer of a width, so residual adds, depthwise
    convs and squeeze-excitation agree). Each decoder concatenation [a, b] then holds dead channels at
    ``dead(len(a))`` and ``len(a) + dead(len(b))``; pruning must remove exactly those inputs of the next conv
    (a wrong offset or order removes live ones) and keep the output."""
    m = _segmenter(seed=2)
    x = torch.randn(2, 3, 64, 64)
    for module in m.modules():
        if isinstance(module, nn.Conv2d) and module is not m.segmentation_head[0]:
            _kill_outputs(module, _dead_set(module.out_channels))
        elif isinstance(module, nn.BatchNorm2d):
            _kill_batchnorm(module, _dead_set(module.num_features))
    assert _zero_weights_of_dead_inputs(m, x) > 1000
    decoder_conv = m.decoder.blocks[0].block.conv1[0]
    concat_width = decoder_conv.in_channels
    with torch.no_grad():
        before = m(x)

    prune_network(m, "seg", RATIO, x[:1])
    assert decoder_conv.in_channels < concat_width
    with torch.no_grad():
        _assert_close(before, m(x))


# --------------------------------------------------------------------------- arguments

@pytest.mark.parametrize("ratio", [0, 0.0, -0.1, 0.95, 1.0])
def test_prune_rejects_ratio_outside_range(ratio):
    g = Generator(blocks=1, features=16).eval()
    with pytest.raises(SkinedgeError, match="ratio"):
        prune_network(g, "sr", ratio, torch.rand(1, 3, 8, 8))
    assert g.head[0].out_channels == 16


def test_prune_rejects_unknown_network_and_mismatched_model():
    g = Generator(blocks=1, features=16).eval()
    with pytest.raises(SkinedgeError, match="network"):
        prune_network(g, "gan", 0.5, torch.rand(1, 3, 8, 8))
    with pytest.raises(SkinedgeError, match="segmentation_head"):
        prune_network(g, "seg", 0.5, torch.rand(1, 3, 8, 8))


# --------------------------------------------------------------------------- shape records

@pytest.mark.parametrize("net", ["sr", "seg"])
def test_pruned_checkpoint_round_trips_through_shape_record(net):
    build, shape = (_generator, SR_INPUT) if net == "sr" else (_segmenter, SEG_INPUT)
    model = build(seed=3)
    x = torch.rand(*shape)
    prune_network(model, net, RATIO, x)
    state = model.state_dict()
    record = json.loads(json.dumps(pruned_shapes(model)))

    fresh = build(seed=4)
    with pytest.raises(RuntimeError):
        fresh.load_state_dict(state)
    restored = apply_pruned_shapes(fresh, record)
    assert restored is fresh
    fresh.load_state_dict(state)  # strict
    for (name, a), (_, b) in zip(model.named_modules(), fresh.named_modules()):
        assert type(a) is type(b), name
    with torch.no_grad():
        assert torch.equal(model(x), fresh(x))


def test_shape_record_that_does_not_fit_is_a_user_error():
    g = _generator()
    record = pruned_shapes(g)
    record["head.0"]["kind"] = "bn"
    with pytest.raises(SkinedgeError, match="head.0"):
        apply_pruned_shapes(_generator(), record)
    with pytest.raises(SkinedgeError, match="nowhere"):
        apply_pruned_shapes(_generator(), {"nowhere": {"kind": "conv", "in_channels": 3, "out_channels": 8,
                                                       "groups": 1}})
    with pytest.raises(SkinedgeError, match="bad width"):
        apply_pruned_shapes(_generator(), {"tail": {"kind": "conv", "in_channels": 0, "out_channels": 3,
                                                    "groups": 1}})


def test_output_layer_keeps_width_even_without_rounding():
    g = Generator(blocks=1, features=16).eval()
    prune_network(g, "sr", RATIO, torch.rand(1, 3, 8, 8), round_to=1)
    assert g.tail.out_channels == 3 and g.tail.in_channels == 8
    assert g.head[0].out_channels == 8
