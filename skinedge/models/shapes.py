"""The shape record of a pruned network: its widths, and rebuilding a fresh network to them.

A pruned network no longer matches its constructor, so :func:`pruned_shapes` records every channel-dependent
module's widths (JSON-ready, stored in the checkpoint) and :func:`apply_pruned_shapes` resizes a freshly built
network to them before ``load_state_dict``. Plain torch: pruning itself is :mod:`skinedge.export.prune`.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from skinedge.errors import SkinedgeError

_SHAPE_FIELDS = {
    "conv": ("in_channels", "out_channels", "groups"),
    "bn": ("num_features",),
    "prelu": ("num_parameters",),
    "linear": ("in_features", "out_features"),
}


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
