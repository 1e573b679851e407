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

from pathlib import Path
from typing import Any

import torch
import torch.nn as nn

from models.team00_RFDN import RFDN
from models.team13_PRFDN import PRFDN, BlockWidths, DistillBlock, PRFDNConfig, conv, make_tail
from transform.helpers import HelperPRFDN
from utils.checkpoint import ModelCheckpoint, load_state, read_model_checkpoint
from utils.errors import HarnessError, first_line


class BranchPRFDN(nn.Module):
    """PRFDN stage 1: RFDN's block chain cut into four independent branches."""

    HAS_BLOCK_FEATURES = True  # forward(x, with_features=True): training's feature distillation pairs them with RFDN's

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

    def forward(self, x: torch.Tensor, with_features: bool = False) -> torch.Tensor | tuple[torch.Tensor, list[torch.Tensor]]:
        """SR; with ``with_features``, (SR, the four branch outputs: what RFDN's B1..B4 output there)."""
        skip, outs = self.branch_outputs(x)
        sr = self.upsampler(self.LR_conv(self.c(torch.cat(outs, 1))) + skip)
        return (sr, outs) if with_features else sr


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
    """The module of ``checkpoint`` with its weights (strict), or a one-line HarnessError naming ``source``.

    The one place a module is built from a checkpoint's config: an unknown architecture, or a config that no
    module can be built from (missing keys, negative or absurd widths, ...), is said here.
    """
    try:
        model = build_model(checkpoint.arch, checkpoint.config)
    except HarnessError as err:
        raise HarnessError(f"{source}: {err}") from None
    except (KeyError, TypeError, ValueError, AttributeError, RuntimeError, MemoryError, OverflowError) as err:
        reason = first_line(err) if isinstance(err, RuntimeError) else f"{type(err).__name__}: {err}"
        raise HarnessError(f"{source}: malformed {checkpoint.arch} config ({reason})") from None
    if not all(isinstance(value, torch.Tensor) for value in checkpoint.state_dict.values()):
        raise HarnessError(f"{source}: its state_dict holds values that are not tensors")
    return load_state(model, checkpoint.state_dict, f"{source}: weights do not fit its {checkpoint.arch} architecture")


def read_flag_checkpoint(path: str | Path, flag: str) -> ModelCheckpoint:
    """The checkpoint a flag or argument names (``SRC``, ``--teacher``, ``--rfdn``); its one-line error names it too."""
    if Path(path).is_dir():
        raise HarnessError(f"{flag} {path}: is a folder; expected a checkpoint file")
    try:
        return read_model_checkpoint(path)
    except HarnessError as err:
        raise HarnessError(f"{flag} {err}") from None


def load_teacher(path: str, student: ModelCheckpoint) -> nn.Module:
    """The teacher (the official RFDN, or any checkpoint of this project) of the student's scale and input range."""
    checkpoint = read_flag_checkpoint(path, "--teacher")
    teacher = load_model(checkpoint, f"--teacher {path}")
    if (checkpoint.scale, checkpoint.data_range) != (student.scale, student.data_range):
        raise HarnessError(
            f"--teacher {path}: x{checkpoint.scale} on [0, {checkpoint.data_range:g}] does not match the student's "
            f"x{student.scale} on [0, {student.data_range:g}]"
        )
    return teacher.eval()
