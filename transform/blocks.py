"""One width-parametrized family of blocks for every PRFDN stage: ESA, and the distillation block that is an
RFDB with three distillation stages or an SRFDB with one.

Every layer width is a parameter, so pruned networks (uneven widths) use the same classes; ``groups > 1``
gives the grouped form of a re-parametrized block (G independent branches side by side, channels ordered
branch by branch). Layer names match RFDN's (``c1_d``, ``c1_r``, ..., ``c4``, ``c5``, ``esa.conv1``, ...), so
RFDN weights load by name.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F

LEAKY_SLOPE = 0.05


def conv(
    in_channels: int, out_channels: int, kernel_size: int, groups: int = 1, stride: int = 1, padding: int | None = None
) -> nn.Conv2d:
    pad = (kernel_size - 1) // 2 if padding is None else padding
    return nn.Conv2d(in_channels, out_channels, kernel_size, stride, pad, groups=groups)


def cat_by_group(parts: list[torch.Tensor], groups: int) -> torch.Tensor:
    """Concatenate along channels so the result stays ordered branch by branch (for a grouped conv after it).

    With ``groups == 1`` this is ``torch.cat(parts, 1)``.
    """
    if groups == 1:
        return torch.cat(parts, 1)
    n, _, h, w = parts[0].shape
    return torch.cat([p.reshape(n, groups, -1, h, w) for p in parts], 2).reshape(n, -1, h, w)


@dataclass(frozen=True)
class ESAWidths:
    channels: int  # input = output width (the gated features)
    inner: int  # width of the attention branch (RFDN: channels // 4)


class ESA(nn.Module):
    """Enhanced Spatial Attention with free widths; a sigmoid gate multiplied onto its input."""

    def __init__(self, widths: ESAWidths, groups: int = 1) -> None:
        super().__init__()
        c, f = widths.channels, widths.inner
        self.conv1 = conv(c, f, 1, groups)
        self.conv_f = conv(f, f, 1, groups)
        self.conv_max = conv(f, f, 3, groups)
        self.conv2 = conv(f, f, 3, groups, stride=2, padding=0)
        self.conv3 = conv(f, f, 3, groups)
        self.conv3_ = conv(f, f, 3, groups)
        self.conv4 = conv(f, c, 1, groups)
        self.relu = nn.ReLU()  # modules, not functional calls: the official FLOPs rules count only modules

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        c1_ = self.conv1(x)
        c1 = self.conv2(c1_)
        v_max = F.max_pool2d(c1, kernel_size=7, stride=3)
        v_range = self.relu(self.conv_max(v_max))
        c3 = self.relu(self.conv3(v_range))
        c3 = self.conv3_(c3)
        c3 = F.interpolate(c3, (x.size(2), x.size(3)), mode="bilinear", align_corners=False)
        cf = self.conv_f(c1_)
        return x * torch.sigmoid(self.conv4(c3 + cf))


@dataclass(frozen=True)
class BlockWidths:
    """Widths of one distillation block. ``channels`` is the input and residual ("remaining") width."""

    channels: int
    distilled: tuple[int, ...]  # output width of each stage's 1x1 distillation conv (3 for RFDB, 1 for SRFDB)
    last: int  # output width of c4
    out: int  # output width of c5 (and of the block)
    esa: int  # ESA inner width

    @classmethod
    def rfdn(cls, nf: int = 50, stages: int = 3) -> BlockWidths:
        """RFDN's widths: RFDB (``stages=3``) or SRFDB (``stages=1``) of ``nf`` channels."""
        return cls(nf, (nf // 2,) * stages, nf // 2, nf, nf // 4)

    def scaled(self, factor: int) -> BlockWidths:
        """The widths of ``factor`` such blocks side by side (a re-parametrized block)."""
        return BlockWidths(
            self.channels * factor,
            tuple(d * factor for d in self.distilled),
            self.last * factor,
            self.out * factor,
            self.esa * factor,
        )

    def to_config(self) -> dict:
        return {**asdict(self), "distilled": list(self.distilled)}

    @classmethod
    def from_config(cls, config: dict) -> BlockWidths:
        return cls(
            int(config["channels"]),
            tuple(int(d) for d in config["distilled"]),
            int(config["last"]),
            int(config["out"]),
            int(config["esa"]),
        )


class DistillBlock(nn.Module):
    """RFDB (3 distillation stages) or SRFDB (1 stage): distill, refine with residual 3x3 convs, fuse, ESA."""

    def __init__(self, widths: BlockWidths, groups: int = 1) -> None:
        super().__init__()
        self.widths, self.groups = widths, groups
        c = widths.channels
        for k, distilled in enumerate(widths.distilled, start=1):
            self.add_module(f"c{k}_d", conv(c, distilled, 1, groups))
            self.add_module(f"c{k}_r", conv(c, c, 3, groups))
        self.c4 = conv(c, widths.last, 3, groups)
        self.c5 = conv(sum(widths.distilled) + widths.last, widths.out, 1, groups)
        self.esa = ESA(ESAWidths(widths.out, widths.esa), groups)
        self.act = nn.LeakyReLU(LEAKY_SLOPE)

    def distill(self, x: torch.Tensor) -> list[torch.Tensor]:
        """The parts that c5 fuses: each stage's distilled features, then c4's."""
        parts = []
        for k in range(1, len(self.widths.distilled) + 1):
            parts.append(self.act(getattr(self, f"c{k}_d")(x)))
            x = self.act(getattr(self, f"c{k}_r")(x) + x)
        return [*parts, self.act(self.c4(x))]

    def fuse(self, parts: list[torch.Tensor]) -> torch.Tensor:
        return self.c5(cat_by_group(parts, self.groups))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.esa(self.fuse(self.distill(x)))
