"""PRFDN's pruning form: every concatenation replaced by an equivalent sum of frozen 1x1 placement convolutions.

Why the form exists and how it folds back exactly: ``transform/helpers.py`` (which turns a merged network into
this form and back).
"""

from __future__ import annotations

import torch
import torch.nn as nn

from models.team13_PRFDN import PRFDN, BlockWidths, DistillBlock, PRFDNConfig


def placement(in_channels: int, out_channels: int, offset: int) -> nn.Conv2d:
    """A frozen 1x1 conv that copies its input to output channels ``offset .. offset + in_channels``."""
    layer = nn.Conv2d(in_channels, out_channels, 1, bias=False)
    with torch.no_grad():
        layer.weight.zero_()
        layer.weight[offset + torch.arange(in_channels), torch.arange(in_channels)] = 1.0
    layer.weight.requires_grad_(False)
    return layer


def is_helper(name: str) -> bool:
    """Whether a parameter / module name belongs to a placement conv."""
    return any(part.startswith(("place", "join_")) for part in name.split("."))


class HelperDistillBlock(DistillBlock):
    """A dense distillation block whose c5 reads the sum of placed parts instead of their concatenation."""

    def __init__(self, widths: BlockWidths) -> None:
        super().__init__(widths, groups=1)
        offset = 0
        for k, width in enumerate([*widths.distilled, widths.last], start=1):
            self.add_module(f"place{k}", placement(width, widths.fused_in, min(offset, widths.fused_in - width)))
            offset += width

    def fuse(self, parts: list[torch.Tensor]) -> torch.Tensor:
        placed = sum(getattr(self, f"place{k}")(part) for k, part in enumerate(parts, start=1))
        return self.c5(placed)


class HelperPRFDN(PRFDN):
    """PRFDN (dense) in pruning form: no concatenation anywhere."""

    ARCH = "prfdn_helpers"

    def __init__(self, config: PRFDNConfig) -> None:
        if config.srfdb_groups != 1 or config.rfdb_groups != 1:
            raise ValueError("the pruning form needs the dense merged model (reparam --form dense)")
        super().__init__(PRFDNConfig(**{**config.__dict__, "join": None}))
        self.cfg = config
        self.srfdb = HelperDistillBlock(config.srfdb)
        self.rfdb = HelperDistillBlock(config.rfdb)
        width = config.rfdb.channels
        self.join_skip = placement(config.skip, width, 0)
        self.join_rest = placement(config.srfdb.out, width, min(config.skip, width - config.srfdb.out))

    def join(self, skip: torch.Tensor, rest: torch.Tensor) -> torch.Tensor:
        return self.join_skip(skip) + self.join_rest(rest)
