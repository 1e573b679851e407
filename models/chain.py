"""RFDN's chain at any per-layer widths: the official network pruned directly, without branching (the control that
shows what branching itself buys, ``docs/depth.md``).

fea_conv -> B1 -> B2 -> B3 -> B4 (each a distillation block of its own widths; block k's input width is block
k-1's output width, B1's is fea_conv's) -> c over the four block outputs -> LR_conv (+ fea_conv's output) ->
upsampler. Tensor names are RFDN's, so the official checkpoint and RFDN pruned in place (Torch-Pruning) load as
they are; ``chain_config`` reads the widths off such a module.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn as nn

from models.team13_PRFDN import BlockWidths, DistillBlock, conv, make_tail

BLOCKS = 4


def block_widths(block: nn.Module) -> BlockWidths:
    """The widths a distillation block (an RFDB or a ``DistillBlock``, possibly pruned) has now, read off its layers."""
    esa = block.esa
    stages = sum(1 for name, _ in block.named_children() if name.endswith("_d"))
    return BlockWidths(
        channels=block.c1_r.out_channels,
        distilled=tuple(getattr(block, f"c{k}_d").out_channels for k in range(1, stages + 1)),
        last=block.c4.out_channels,
        out=block.c5.out_channels,
        esa=(
            esa.conv1.out_channels,
            esa.conv2.out_channels,
            esa.conv_max.out_channels,
            esa.conv3.out_channels,
            esa.conv_f.out_channels,
        ),
        fused=block.c5.in_channels,
    )


def chain_config(model: nn.Module) -> dict[str, Any]:
    """The config of an RFDN-shaped module (RFDN itself, pruned or not, or an ``RFDNChain``) as its layers are now."""
    return {
        "head": model.fea_conv.out_channels,
        "blocks": [block_widths(getattr(model, f"B{k}")).to_config() for k in range(1, BLOCKS + 1)],
        "tail": model.c[0].out_channels,
        "in_nc": model.fea_conv.in_channels,
        "out_nc": model.upsampler[0].out_channels // model.upsampler[1].upscale_factor ** 2,
        "scale": model.upsampler[1].upscale_factor,
    }


class RFDNChain(nn.Module):
    """RFDN's four-block chain with the widths of ``config`` (``chain_config``)."""

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
