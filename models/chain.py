"""Reading the widths of an RFDN-shaped module (RFDN itself, pruned in place, or an ``RFDNChain``): what
``RFDNChain``'s config (``models/team13_PRFDN.py``) is made from.
"""

from __future__ import annotations

from typing import Any

import torch.nn as nn

from models.team13_PRFDN import BLOCKS, BlockWidths


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
