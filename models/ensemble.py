"""The x8 self-ensemble of any SR module: the mean of its SR of the eight flips / rotations of the input, each
turned back. Used as a teacher (``--teacher_x8``): slower, and often a little better than the module alone."""

from __future__ import annotations

import torch
import torch.nn as nn


def _turn(x: torch.Tensor, transform: int) -> torch.Tensor:
    """Rotate NCHW ``x`` by ``90 * (transform % 4)`` degrees, then mirror it left-right if ``transform >= 4``."""
    x = torch.rot90(x, transform % 4, dims=(2, 3))
    return torch.flip(x, dims=(3,)) if transform >= 4 else x


def _turn_back(x: torch.Tensor, transform: int) -> torch.Tensor:
    if transform >= 4:
        x = torch.flip(x, dims=(3,))
    return torch.rot90(x, -(transform % 4), dims=(2, 3))


class SelfEnsemble(nn.Module):
    """``model``'s x8 self-ensemble (the same scale and input range)."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.stack([_turn_back(self.model(_turn(x, t)), t) for t in range(8)]).mean(0)
