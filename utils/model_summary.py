"""Complexity figures under the NTIRE Efficient-SR harness's counting rules.

Written by hand because the organizers' figures (params, FLOPs, activations, Conv2d count at input
3x256x256) are defined by their own forward-hook rules, which no maintained library reproduces:
ptflops/thop/fvcore differ in what they count (bias terms, functional ops, pooling, activations not
counted at all). The rules of the official ``utils/model_summary.py``, restated:

- FLOPs, per module call, summed:
  Conv2d, ConvTranspose2d: kernel_h * kernel_w * in_channels * (out_channels / groups) per *output* position;
  ReLU, PReLU, ELU, LeakyReLU, ReLU6: one per output element;
  BatchNorm2d: one per output element, two if affine;
  Linear: batch * input.shape[1] * output.shape[1] (input.shape[0] * output.shape[0] for 1-D input);
  everything else (bias terms, pooling, upsampling, functional calls such as ``F.interpolate`` or
  ``torch.sigmoid``, Conv1d/Conv3d) counts 0.
- activations: output elements of every Conv2d / ConvTranspose2d call;
- conv count: number of Conv2d / ConvTranspose2d calls in one forward pass.
"""

from __future__ import annotations

import copy
import dataclasses
import math
from collections import OrderedDict
from collections.abc import Hashable
from dataclasses import dataclass

import torch
import torch.nn as nn

OFFICIAL_INPUT_DIM = (3, 256, 256)

_CONV_TYPES = (nn.Conv2d, nn.ConvTranspose2d)
_CACHE_SIZE = 256  # summaries kept per process, by structure: a pruning schedule traced twice is counted once
_ELEMENTWISE_TYPES = (nn.ReLU, nn.PReLU, nn.ELU, nn.LeakyReLU, nn.ReLU6)


@dataclass(frozen=True)
class ModelSummary:
    """Complexity of one model at one input size (raw counts, not scaled)."""

    num_parameters: int
    flops: int
    activations: int
    num_conv: int


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def _flops(module: nn.Module, inputs: tuple, output: torch.Tensor) -> int:
    """FLOPs of one call of ``module`` under the official rules (see the module docstring)."""
    if isinstance(module, _CONV_TYPES):
        per_position = math.prod(module.kernel_size) * module.in_channels * (module.out_channels // module.groups)
        return per_position * output.shape[0] * math.prod(output.shape[2:])
    if isinstance(module, _ELEMENTWISE_TYPES):
        return output.numel()
    if isinstance(module, nn.BatchNorm2d):
        return output.numel() * (2 if module.affine else 1)
    if isinstance(module, nn.Linear):
        x = inputs[0]
        return x.shape[0] * output.shape[0] if x.dim() == 1 else x.shape[0] * x.shape[1] * output.shape[1]
    return 0


@torch.no_grad()
def summarize(model: nn.Module, input_dim: tuple[int, int, int] = OFFICIAL_INPUT_DIM) -> ModelSummary:
    """Run one forward pass on a zero tensor of shape ``(1, *input_dim)`` and count as the harness does.

    The counts depend on shapes only, so the pass runs on a copy of the model whose weights live on PyTorch's
    ``meta`` device (no memory, no arithmetic: a wide network is counted in a fraction of a second). A real pass
    counts instead when the model has hooks of its own (they would see the copy's tensors) or when its forward
    needs real values (``.item()``, lazy or scripted modules): any error of the ``meta`` pass. A forward that
    branches on its input's device sees the device ``meta`` (count such a model on a copy without that branch).
    Summaries are kept by the model's structure (``structure_key``), so a network counted again is not run again."""
    if _has_user_hooks(model):
        return _summarize(model, input_dim)
    key = (tuple(input_dim), structure_key(model))
    if key not in _summaries:
        _summaries[key] = _summarize(model, input_dim)
        if len(_summaries) > _CACHE_SIZE:
            _summaries.popitem(last=False)
    _summaries.move_to_end(key)
    return _summaries[key]


_summaries: OrderedDict[tuple, ModelSummary] = OrderedDict()


def structure_key(model: nn.Module) -> Hashable:
    """What the counts depend on, and nothing else: every submodule's name, class, ``extra_repr`` (a conv's stride,
    padding, dilation, groups) and plain attributes (widths, flags, config dataclasses), and the shape and dtype of
    its own parameters and buffers. Two modules with the same key run the same forward on the same shapes."""
    key = []
    for name, module in model.named_modules():
        attributes = tuple(
            (attr, repr(value))
            for attr, value in sorted(vars(module).items())
            if not attr.startswith("_")
            and (isinstance(value, (bool, int, float, str, tuple, type(None))) or dataclasses.is_dataclass(value))
        )
        tensors = tuple(
            (tensor_name, tuple(tensor.shape), str(tensor.dtype))
            for tensor_name, tensor in (*module.named_parameters(recurse=False), *module.named_buffers(recurse=False))
            if tensor is not None
        )
        key.append((name, type(module).__module__, type(module).__qualname__, module.extra_repr(), attributes, tensors))
    return tuple(key)


def _summarize(model: nn.Module, input_dim: tuple[int, int, int]) -> ModelSummary:
    counts = None
    if not _has_user_hooks(model):
        try:
            counts = _count(_meta_copy(model), input_dim, torch.device("meta"))
        except Exception:  # whatever the meta pass cannot do, the real pass below does (or reports)
            counts = None
    if counts is None:
        param = next(model.parameters(), None)
        counts = _count(model, input_dim, param.device if param is not None else torch.device("cpu"))
    return ModelSummary(count_parameters(model), counts["flops"], counts["activations"], counts["num_conv"])


def _has_user_hooks(model: nn.Module) -> bool:
    return any(m._forward_hooks or m._forward_pre_hooks for m in model.modules())


def _meta_copy(model: nn.Module) -> nn.Module:
    """A deep copy of ``model`` whose parameters and buffers are empty ``meta`` tensors (nothing is copied)."""
    memo: dict[int, object] = {}
    for param in model.parameters():
        memo[id(param)] = nn.Parameter(torch.empty_like(param, device="meta"), requires_grad=param.requires_grad)
    for buffer in model.buffers():
        memo[id(buffer)] = torch.empty_like(buffer, device="meta")
    return copy.deepcopy(model, memo)


def _count(model: nn.Module, input_dim: tuple[int, int, int], device: torch.device) -> dict[str, int]:
    counts = {"flops": 0, "activations": 0, "num_conv": 0}

    def hook(module: nn.Module, inputs: tuple, output: torch.Tensor) -> None:
        counts["flops"] += _flops(module, inputs, output)
        if isinstance(module, _CONV_TYPES):
            counts["activations"] += output.numel()
            counts["num_conv"] += 1

    counted = (*_CONV_TYPES, *_ELEMENTWISE_TYPES, nn.BatchNorm2d, nn.Linear)
    handles = [m.register_forward_hook(hook) for m in model.modules() if isinstance(m, counted)]
    was_training = model.training
    try:
        model.eval()
        param = next(model.parameters(), None)
        dtype = param.dtype if param is not None and param.is_floating_point() else torch.float32
        model(torch.zeros(1, *input_dim, device=device, dtype=dtype))
    finally:
        for h in handles:
            h.remove()
        model.train(was_training)
    return counts
