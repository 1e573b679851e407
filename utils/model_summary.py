"""Complexity figures under the NTIRE Efficient-SR harness's counting rules.

Written by hand because the organizers' figures (params, FLOPs, activations, Conv2d count at input
3x256x256) are defined by their own forward-hook rules, which no maintained library reproduces as a whole:
ptflops/thop/fvcore differ in what they count (bias terms, functional ops, activations not counted at all).
The rules, as in the official ``utils/model_summary.py``:

- FLOPs = multiply-accumulates of Conv2d/ConvTranspose2d/Linear layers (no bias term) plus one per output
  element of element-wise modules (ReLU, LeakyReLU, PReLU, ELU, ReLU6, BatchNorm2d, Upsample, pooling
  modules). Functional calls (``F.interpolate``, ``torch.sigmoid``, ...) are not counted.
- activations = sum of the output elements of every Conv2d / ConvTranspose2d / Linear call;
- conv count = number of Conv2d / ConvTranspose2d calls in one forward pass.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn as nn

OFFICIAL_INPUT_DIM = (3, 256, 256)

_CONV_TYPES = (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.ConvTranspose1d, nn.ConvTranspose2d, nn.ConvTranspose3d)
_TRANSPOSED_TYPES = (nn.ConvTranspose1d, nn.ConvTranspose2d, nn.ConvTranspose3d)
_WEIGHTED_TYPES = (*_CONV_TYPES, nn.Linear)
_ELEMENTWISE_TYPES = (
    nn.ReLU,
    nn.PReLU,
    nn.ELU,
    nn.LeakyReLU,
    nn.ReLU6,
    nn.BatchNorm1d,
    nn.BatchNorm2d,
    nn.BatchNorm3d,
    nn.Upsample,
    nn.MaxPool1d,
    nn.MaxPool2d,
    nn.MaxPool3d,
    nn.AvgPool1d,
    nn.AvgPool2d,
    nn.AvgPool3d,
    nn.AdaptiveMaxPool2d,
    nn.AdaptiveAvgPool2d,
)


@dataclass(frozen=True)
class ModelSummary:
    """Complexity of one model at one input size (raw counts, not scaled)."""

    num_parameters: int
    flops: int
    activations: int
    num_conv: int


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def _macs(module: nn.Module, inputs: tuple, output: torch.Tensor) -> int:
    """Multiply-accumulates of one call (bias not counted, as in the official rules)."""
    if isinstance(module, nn.Linear):
        return module.in_features * output.numel()
    per_position = math.prod(module.kernel_size) * module.in_channels * module.out_channels // module.groups
    if isinstance(module, _TRANSPOSED_TYPES):  # a transposed conv does its work per *input* position
        return per_position * (inputs[0].numel() // module.in_channels)
    return per_position * (output.numel() // module.out_channels)


@torch.no_grad()
def summarize(model: nn.Module, input_dim: tuple[int, int, int] = OFFICIAL_INPUT_DIM) -> ModelSummary:
    """Run one forward pass on a zero tensor of shape ``(1, *input_dim)`` and count as the harness does."""
    counts = {"flops": 0, "activations": 0, "num_conv": 0}

    def hook(module: nn.Module, inputs: tuple, output: torch.Tensor) -> None:
        if isinstance(module, _WEIGHTED_TYPES):
            counts["flops"] += _macs(module, inputs, output)
            counts["activations"] += output.numel()
            counts["num_conv"] += isinstance(module, _CONV_TYPES)
        else:
            counts["flops"] += output.numel()

    counted = (*_WEIGHTED_TYPES, *_ELEMENTWISE_TYPES)
    handles = [m.register_forward_hook(hook) for m in model.modules() if isinstance(m, counted)]
    was_training = model.training
    try:
        model.eval()
        param = next(model.parameters(), None)
        device = param.device if param is not None else torch.device("cpu")
        dtype = param.dtype if param is not None and param.is_floating_point() else torch.float32
        model(torch.zeros(1, *input_dim, device=device, dtype=dtype))
    finally:
        for h in handles:
            h.remove()
        model.train(was_training)
    return ModelSummary(count_parameters(model), counts["flops"], counts["activations"], counts["num_conv"])
