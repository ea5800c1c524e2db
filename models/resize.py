"""Per-layer channel counts: record them, and rebuild a model at recorded (for example pruned) widths.

A pruned model differs from its yaml only in the channel counts of its convolutions and batch norms. Recording
those counts next to the yaml describes it completely, so it reloads at its pruned size instead of re-inflating.
The record maps module names to sizes: ``{"model.0.conv": [in, out], "model.0.bn": [features], ...}``.
"""

from __future__ import annotations

from torch import nn


def conv_channels(model: nn.Module) -> dict[str, list[int]]:
    """``{name: [in_channels, out_channels]}`` for every Conv2d and ``{name: [num_features]}`` for every BN."""
    record: dict[str, list[int]] = {}
    for name, m in model.named_modules():
        if isinstance(m, nn.Conv2d):
            record[name] = [m.in_channels, m.out_channels]
        elif isinstance(m, nn.BatchNorm2d):
            record[name] = [m.num_features]
    return record


def channels_from_state_dict(state_dict: dict) -> dict[str, list[int]]:
    """Channel record read off tensor shapes: conv weights ``[out, in/groups, k, k]``, BN weights ``[C]``.

    Only 4-d ``*.weight`` tensors and BN ``*.running_mean`` buffers are used; grouped convolutions are not
    supported (the YOLOv5 v6.0 blocks have none).
    """
    record: dict[str, list[int]] = {}
    for key, t in state_dict.items():
        if key.endswith(".weight") and t.ndim == 4:
            record[key[: -len(".weight")]] = [int(t.shape[1]), int(t.shape[0])]
        elif key.endswith(".running_mean"):
            record[key[: -len(".running_mean")]] = [int(t.shape[0])]
    return record


def apply_channels(model: nn.Module, record: dict[str, list[int]]) -> int:
    """Replace every Conv2d / BatchNorm2d whose size differs from ``record`` by a fresh one of the recorded size.

    Returns the number of modules replaced. Raises ``ValueError`` naming the module if the record names a module
    that is missing or is neither a Conv2d nor a BatchNorm2d.
    """
    modules = dict(model.named_modules())
    replaced = 0
    for name, sizes in record.items():
        m = modules.get(name)
        if m is None:
            raise ValueError(f"channel record names '{name}', which this model does not have")
        if isinstance(m, nn.Conv2d):
            c_in, c_out = sizes
            if (m.in_channels, m.out_channels) == (c_in, c_out):
                continue
            if m.groups != 1:
                raise ValueError(f"'{name}': cannot resize a grouped convolution (groups={m.groups})")
            new = nn.Conv2d(c_in, c_out, m.kernel_size, m.stride, m.padding, m.dilation, bias=m.bias is not None).to(
                m.weight.device
            )
        elif isinstance(m, nn.BatchNorm2d):
            (features,) = sizes
            if m.num_features == features:
                continue
            new = nn.BatchNorm2d(features, eps=m.eps, momentum=m.momentum).to(m.weight.device)
        else:
            raise ValueError(f"channel record names '{name}', a {type(m).__name__}, not a Conv2d or BatchNorm2d")
        parent_name, _, attr = name.rpartition(".")
        setattr(modules[parent_name] if parent_name else model, attr, new)
        replaced += 1
    return replaced
