"""The architectures of the PRFDN stages, and how to rebuild any of them from a self-describing checkpoint.

- ``rfdn``: the official RFDN (``models/team00_RFDN.py``).
- ``branch``: four independent branches. Branch 1: head -> B1. Branch k = 2..4: own head -> SRFDB -> Bk.
  Outputs concatenated into RFDN's tail (``c``, ``LR_conv`` + skip from branch 1's head, upsampler).
- ``prfdn``: the branches merged into one wide network (and, with other widths, its pruned forms):
  ``head_skip`` (branch 1's head) and ``head_rest`` (heads 2-4 stacked) read the same input once each;
  ``srfdb`` is the three SRFDBs side by side, ``rfdb`` the four RFDBs side by side, in grouped form
  (grouped convolutions) or dense form (block-diagonal convolutions). ``join`` optionally gathers the
  RFDB's input channels from ``cat(skip, srfdb output)`` (what pruning leaves of that concatenation).
- ``prfdn_helpers``: ``prfdn`` with every concatenation replaced by summed 1x1 convolutions (pruning form).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn as nn

from models.team00_RFDN import RFDN
from transform.blocks import LEAKY_SLOPE, BlockWidths, DistillBlock, conv
from utils.checkpoint import ModelCheckpoint
from utils.errors import HarnessError


def make_tail(in_channels: int, tail: int, skip: int, out_nc: int, scale: int) -> tuple[nn.Module, nn.Module, nn.Module]:
    """RFDN's tail: ``c`` (1x1 + LeakyReLU), ``LR_conv`` (3x3, added to the skip), ``upsampler``."""
    c = nn.Sequential(conv(in_channels, tail, 1), nn.LeakyReLU(LEAKY_SLOPE))
    lr_conv = conv(tail, skip, 3)
    upsampler = nn.Sequential(conv(skip, out_nc * scale**2, 3), nn.PixelShuffle(scale))
    return c, lr_conv, upsampler


class BranchPRFDN(nn.Module):
    """PRFDN stage 1: RFDN's block chain cut into four independent branches."""

    def __init__(self, nf: int = 50, in_nc: int = 3, out_nc: int = 3, scale: int = 4) -> None:
        super().__init__()
        self.config = {"nf": nf, "in_nc": in_nc, "out_nc": out_nc, "scale": scale}
        for k in range(1, 5):
            self.add_module(f"head{k}", conv(in_nc, nf, 3))
        for k in range(2, 5):
            self.add_module(f"srfdb{k}", DistillBlock(BlockWidths.rfdn(nf, stages=1)))
        for k in range(1, 5):
            self.add_module(f"B{k}", DistillBlock(BlockWidths.rfdn(nf, stages=3)))
        self.c, self.LR_conv, self.upsampler = make_tail(4 * nf, nf, nf, out_nc, scale)

    def branch_outputs(self, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        skip = self.head1(x)
        outs = [self.B1(skip)]
        outs += [getattr(self, f"B{k}")(getattr(self, f"srfdb{k}")(getattr(self, f"head{k}")(x))) for k in range(2, 5)]
        return skip, outs

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        skip, outs = self.branch_outputs(x)
        return self.upsampler(self.LR_conv(self.c(torch.cat(outs, 1))) + skip)


@dataclass
class PRFDNConfig:
    """Every width of a ``prfdn`` network; the merged model has ``PRFDNConfig.merged(nf)``."""

    skip: int  # head_skip output = LR_conv output = upsampler input
    rest: int  # head_rest output = srfdb input
    srfdb: BlockWidths
    rfdb: BlockWidths
    tail: int  # output of c = input of LR_conv
    srfdb_groups: int = 1
    rfdb_groups: int = 1
    join: list[int] | None = None  # rfdb input channel j = cat(skip, srfdb out, zero)[join[j]]; None: plain cat
    in_nc: int = 3
    out_nc: int = 3
    scale: int = 4
    extra: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def merged(cls, nf: int = 50, grouped: bool = True, scale: int = 4) -> PRFDNConfig:
        return cls(
            skip=nf,
            rest=3 * nf,
            srfdb=BlockWidths.rfdn(nf, 1).scaled(3),
            rfdb=BlockWidths.rfdn(nf, 3).scaled(4),
            tail=nf,
            srfdb_groups=3 if grouped else 1,
            rfdb_groups=4 if grouped else 1,
            scale=scale,
        )

    def to_config(self) -> dict[str, Any]:
        return {
            "skip": self.skip,
            "rest": self.rest,
            "srfdb": self.srfdb.to_config(),
            "rfdb": self.rfdb.to_config(),
            "tail": self.tail,
            "srfdb_groups": self.srfdb_groups,
            "rfdb_groups": self.rfdb_groups,
            "join": self.join,
            "in_nc": self.in_nc,
            "out_nc": self.out_nc,
            "scale": self.scale,
        }

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> PRFDNConfig:
        return cls(
            skip=int(config["skip"]),
            rest=int(config["rest"]),
            srfdb=BlockWidths.from_config(config["srfdb"]),
            rfdb=BlockWidths.from_config(config["rfdb"]),
            tail=int(config["tail"]),
            srfdb_groups=int(config.get("srfdb_groups", 1)),
            rfdb_groups=int(config.get("rfdb_groups", 1)),
            join=None if config.get("join") is None else [int(j) for j in config["join"]],
            in_nc=int(config.get("in_nc", 3)),
            out_nc=int(config.get("out_nc", 3)),
            scale=int(config.get("scale", 4)),
        )


class PRFDN(nn.Module):
    """The merged network, at any widths: the re-parametrized model and every pruned or exported form."""

    def __init__(self, config: PRFDNConfig) -> None:
        super().__init__()
        self.cfg = config
        self.head_skip = conv(config.in_nc, config.skip, 3)
        self.head_rest = conv(config.in_nc, config.rest, 3)
        self.srfdb = DistillBlock(config.srfdb, config.srfdb_groups)
        self.rfdb = DistillBlock(config.rfdb, config.rfdb_groups)
        self.c, self.LR_conv, self.upsampler = make_tail(config.rfdb.out, config.tail, config.skip, config.out_nc, config.scale)
        if config.join is not None:
            self.register_buffer("join_index", torch.tensor(config.join, dtype=torch.long))

    def join(self, skip: torch.Tensor, rest: torch.Tensor) -> torch.Tensor:
        joined = torch.cat([skip, rest], 1)
        if self.cfg.join is None:
            return joined
        return torch.cat([joined, joined.new_zeros(joined.shape[0], 1, *joined.shape[2:])], 1).index_select(1, self.join_index)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        skip = self.head_skip(x)
        features = self.rfdb(self.join(skip, self.srfdb(self.head_rest(x))))
        return self.upsampler(self.LR_conv(self.c(features)) + skip)


# --- rebuilding from checkpoints ---------------------------------------------------------------------------


def build_model(arch: str, config: dict[str, Any]) -> nn.Module:
    """An untrained module of architecture ``arch`` with the widths of ``config``."""
    if arch == "rfdn":
        return RFDN()
    if arch == "branch":
        return BranchPRFDN(**config)
    if arch == "prfdn":
        return PRFDN(PRFDNConfig.from_config(config))
    if arch == "prfdn_helpers":
        from transform.helpers import HelperPRFDN

        return HelperPRFDN(PRFDNConfig.from_config(config))
    raise HarnessError(f"unknown architecture {arch!r}: expected rfdn, branch, prfdn or prfdn_helpers")


def model_config(model: nn.Module) -> tuple[str, dict[str, Any]]:
    """(architecture name, config) that ``build_model`` turns back into ``model``'s structure."""
    if isinstance(model, RFDN):
        return "rfdn", {}
    if isinstance(model, BranchPRFDN):
        return "branch", dict(model.config)
    if isinstance(model, PRFDN):
        return getattr(model, "ARCH", "prfdn"), model.cfg.to_config()
    raise TypeError(f"no architecture name for {type(model).__name__}")


def load_model(checkpoint: ModelCheckpoint, source: str = "checkpoint") -> nn.Module:
    """The module of ``checkpoint`` with its weights (strict), or a one-line HarnessError."""
    from utils.checkpoint import describe_mismatch

    model = build_model(checkpoint.arch, checkpoint.config)
    mismatch = describe_mismatch(model, checkpoint.state_dict)
    if mismatch:
        raise HarnessError(f"{source}: weights do not fit its {checkpoint.arch} architecture: {mismatch}")
    model.load_state_dict(checkpoint.state_dict, strict=True)
    return model
