"""PRFDN stage 1, the branch model: RFDN's block chain cut into four independent branches.

Branch 1: head -> B1. Branch k = 2..4: own head -> SRFDB -> Bk, the SRFDB of one distillation stage (the seed
cut) or of two or three (an RFDB's size: more reach, more FLOPs). The four outputs are concatenated into RFDN's
tail (``c``, ``LR_conv`` + skip from branch 1's head, upsampler). ``transform.branch`` makes one from RFDN's
weights, ``transform.reparam`` merges its branches into one ``PRFDN``.
"""

from __future__ import annotations

import torch
import torch.nn as nn

from models.team13_PRFDN import BlockWidths, DistillBlock, conv, make_tail


class BranchPRFDN(nn.Module):
    """PRFDN stage 1: RFDN's block chain cut into four independent branches."""

    HAS_BLOCK_FEATURES = True  # forward(x, with_features=True): training's feature distillation pairs them with RFDN's

    def __init__(self, nf: int = 50, in_nc: int = 3, out_nc: int = 3, scale: int = 4, srfdb_stages: int = 1) -> None:
        super().__init__()
        if not 1 <= srfdb_stages <= 3:
            raise ValueError(f"srfdb_stages must be 1, 2 or 3 (an RFDB has 3), got {srfdb_stages}")
        self.config = {"nf": nf, "in_nc": in_nc, "out_nc": out_nc, "scale": scale, "srfdb_stages": srfdb_stages}
        for k in range(1, 5):
            self.add_module(f"head{k}", conv(in_nc, nf, 3))
        for k in range(2, 5):  # the stand-in for B1..B(k-1): one distillation stage (the seed cut), or up to an RFDB's 3
            self.add_module(f"srfdb{k}", DistillBlock(BlockWidths.rfdn(nf, stages=srfdb_stages)))
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
