"""Weight maths of the merged blocks: the dense (block-diagonal) form of a grouped block's convolutions.

Pure tensor functions, shared by re-parametrization (``transform.reparam``) and the pruning form
(``transform.helpers``).
"""

from __future__ import annotations

import torch

from models.team13_PRFDN import BlockWidths


def fused_column_order(part_widths: list[int], groups: int) -> torch.Tensor:
    """For c5 of a dense block: dense input column j (parts in order, each branch by branch) reads the
    grouped-order column ``order[j]`` (branch by branch, each holding its parts in order)."""
    per_group = sum(part_widths)
    order, offset = [], 0
    for width in part_widths:
        for g in range(groups):
            start = g * per_group + offset
            order.extend(range(start, start + width))
        offset += width
    return torch.tensor(order)


def dense_from_grouped(weight: torch.Tensor, groups: int) -> torch.Tensor:
    """The block-diagonal dense weight of a grouped conv weight (out, in / groups, k, k)."""
    out_channels, in_per_group = weight.shape[:2]
    out_per_group = out_channels // groups
    dense = weight.new_zeros(out_channels, in_per_group * groups, *weight.shape[2:])
    for g in range(groups):
        rows = slice(g * out_per_group, (g + 1) * out_per_group)
        dense[rows, g * in_per_group : (g + 1) * in_per_group] = weight[rows]
    return dense


def dense_block_weight(name: str, weight: torch.Tensor, widths: BlockWidths, groups: int) -> torch.Tensor:
    """The dense weight of conv ``name`` of a grouped block; c5's columns follow the dense concatenation order."""
    dense = dense_from_grouped(weight, groups)
    if name == "c5":
        parts = [*widths.distilled, widths.last]
        dense = dense[:, fused_column_order([p // groups for p in parts], groups)]
    return dense
