"""PRFDN x4 (team 13, NTIRE Efficient SR): the final network, and the block family every PRFDN stage uses.

PRFDN turns a pre-trained RFDN into four parallel branches, trains them, merges ("re-parametrizes") the
branches into one wide network and channel-prunes it. This file defines that merged network at any
per-layer widths (``RFDNChain``, further down, is the same family without branching: RFDN's four blocks in
sequence at any widths, the official network pruned directly):

    x -> head_skip ----------------------------------------------+--------------------------------+
    x -> head_rest -> srfdb (3 SRFDBs side by side) -> join(skip, .) -> rfdb (4 RFDBs side by side)
      -> c (1x1 + LeakyReLU) -> LR_conv (+ skip) -> upsampler (3x3 conv, PixelShuffle x4)

``groups > 1`` gives the grouped form of the merged blocks; the final pruned network is dense. The widths
come from the checkpoint's ``config`` (see ``PRFDNConfig``); ``model_zoo/team13_prfdn.pth`` is one.

Self-contained on purpose (the challenge wants one file per team, importing only PyTorch): the transform
stages in ``transform/`` import these classes instead of repeating them. Layer names follow RFDN's
(``c1_d``, ``c1_r``, ..., ``c4``, ``c5``, ``esa.conv1``, ...), so RFDN weights map onto them by name.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import torch
import torch.nn as nn
import torch.nn.functional as F

LEAKY_SLOPE = 0.05
# The smallest LR height and width the network takes: ESA's stride-2 3x3 conv, then its 7x7 max-pool of stride 3,
# need (size - 3) // 2 + 1 >= 7. RFDN has the same ESA, so the same minimum.
MIN_INPUT_SIZE = 15


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


class ESA(nn.Module):
    """Enhanced Spatial Attention with free widths; a sigmoid gate multiplied onto its input.

    ``inner`` = output widths of (conv1, conv2, conv_max, conv3, conv_f); conv3_ has conv_f's width since their
    outputs are added. RFDN uses channels // 4 for all five; pruning makes them differ.
    """

    def __init__(self, channels: int, inner: tuple[int, int, int, int, int], groups: int = 1) -> None:
        super().__init__()
        w1, w2, w_max, w3, w_f = inner
        self.conv1 = conv(channels, w1, 1, groups)
        self.conv_f = conv(w1, w_f, 1, groups)
        self.conv_max = conv(w2, w_max, 3, groups)
        self.conv2 = conv(w1, w2, 3, groups, stride=2, padding=0)
        self.conv3 = conv(w_max, w3, 3, groups)
        self.conv3_ = conv(w3, w_f, 3, groups)
        self.conv4 = conv(w_f, channels, 1, groups)
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
    esa: tuple[int, int, int, int, int]  # ESA inner widths (see ESA)
    fused: int | None = None  # input width of c5; None: the concatenated parts, sum(distilled) + last

    @classmethod
    def rfdn(cls, nf: int = 50, stages: int = 3) -> BlockWidths:
        """RFDN's widths: RFDB (``stages=3``) or SRFDB (``stages=1``) of ``nf`` channels."""
        return cls(nf, (nf // 2,) * stages, nf // 2, nf, (nf // 4,) * 5)

    @property
    def fused_in(self) -> int:
        return sum(self.distilled) + self.last if self.fused is None else self.fused

    def scaled(self, factor: int) -> BlockWidths:
        """The widths of ``factor`` such blocks side by side (a re-parametrized block)."""
        return BlockWidths(
            self.channels * factor,
            tuple(d * factor for d in self.distilled),
            self.last * factor,
            self.out * factor,
            tuple(e * factor for e in self.esa),
        )

    def to_config(self) -> dict[str, Any]:
        return {**asdict(self), "distilled": list(self.distilled), "esa": list(self.esa)}

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> BlockWidths:
        fused = config.get("fused")
        return cls(
            int(config["channels"]),
            tuple(int(d) for d in config["distilled"]),
            int(config["last"]),
            int(config["out"]),
            tuple(int(e) for e in config["esa"]),
            None if fused is None else int(fused),
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
        self.c5 = conv(widths.fused_in, widths.out, 1, groups)
        self.esa = ESA(widths.out, widths.esa, groups)
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


def make_tail(in_channels: int, tail: int, skip: int, out_nc: int, scale: int) -> tuple[nn.Module, nn.Module, nn.Module]:
    """RFDN's tail: ``c`` (1x1 + LeakyReLU), ``LR_conv`` (3x3, added to the skip), ``upsampler``."""
    c = nn.Sequential(conv(in_channels, tail, 1), nn.LeakyReLU(LEAKY_SLOPE))
    lr_conv = conv(tail, skip, 3)
    upsampler = nn.Sequential(conv(skip, out_nc * scale**2, 3), nn.PixelShuffle(scale))
    return c, lr_conv, upsampler


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

    @classmethod
    def merged(cls, nf: int = 50, grouped: bool = True, scale: int = 4, srfdb_stages: int = 1) -> PRFDNConfig:
        return cls(
            skip=nf,
            rest=3 * nf,
            srfdb=BlockWidths.rfdn(nf, srfdb_stages).scaled(3),
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

    ARCH = "prfdn"

    def __init__(self, config: PRFDNConfig | dict[str, Any]) -> None:
        super().__init__()
        config = config if isinstance(config, PRFDNConfig) else PRFDNConfig.from_config(config)
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


BLOCKS = 4  # RFDN's chain of distillation blocks


class RFDNChain(nn.Module):
    """RFDN's chain at any per-layer widths: the official network pruned directly, without branching.

    fea_conv -> B1 -> B2 -> B3 -> B4 (each a distillation block of its own widths; block k's input width is block
    k-1's output width) -> c over the four block outputs -> LR_conv (+ fea_conv's output) -> upsampler. Tensor names
    are RFDN's, so the official checkpoint and RFDN pruned in place (Torch-Pruning) load as they are.
    """

    ARCH = "rfdn_chain"

    def __init__(self, config: dict[str, Any]) -> None:
        super().__init__()
        self.config = config
        blocks = [BlockWidths.from_config(widths) for widths in config["blocks"]]
        if len(blocks) != BLOCKS:
            raise ValueError(f"blocks: expected {BLOCKS} block widths, got {len(blocks)}")
        self.fea_conv = conv(int(config.get("in_nc", 3)), int(config["head"]), 3)
        for k, widths in enumerate(blocks, start=1):
            self.add_module(f"B{k}", DistillBlock(widths))
        tail, out_nc, scale = int(config["tail"]), int(config.get("out_nc", 3)), int(config.get("scale", 4))
        self.c, self.LR_conv, self.upsampler = make_tail(sum(w.out for w in blocks), tail, int(config["head"]), out_nc, scale)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        fea = self.fea_conv(x)
        outs, h = [], fea
        for k in range(1, BLOCKS + 1):
            h = getattr(self, f"B{k}")(h)
            outs.append(h)
        return self.upsampler(self.LR_conv(self.c(torch.cat(outs, 1))) + fea)


NETWORKS = {PRFDN.ARCH: PRFDN, RFDNChain.ARCH: RFDNChain}  # what a submission checkpoint may hold


def load_prfdn(path: str, device: str | torch.device = "cpu") -> PRFDN | RFDNChain:
    """The network of a checkpoint file such as ``model_zoo/team13_prfdn.pth``, in eval mode on ``device``: a
    ``PRFDN`` (branched, merged and pruned) or an ``RFDNChain`` (RFDN pruned directly), as its ``arch`` says.

    The file is a dict (``arch``, ``config``, ``state_dict``, ...) of plain types and tensors, so it loads with
    ``torch.load(weights_only=True)``, the default of torch >= 2.6.
    """
    checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    network = NETWORKS.get(checkpoint.get("arch")) if isinstance(checkpoint, dict) else None
    if network is None:
        found = checkpoint.get("arch") if isinstance(checkpoint, dict) else type(checkpoint).__name__
        raise ValueError(f"{path}: not a PRFDN network checkpoint (arch {found!r}, expected {' or '.join(map(repr, NETWORKS))})")
    model = network(checkpoint["config"])
    model.load_state_dict(checkpoint["state_dict"], strict=True)
    return model.eval().to(device)
