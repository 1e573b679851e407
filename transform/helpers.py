"""The pruning form of PRFDN: every concatenation replaced by an equivalent sum of 1x1 convolutions, and back.

Before pruning, ``cat(a, b, ...) -> conv`` becomes ``conv(P_a a + P_b b + ...)`` where each placement conv ``P``
(1x1, no bias, weights 0/1) puts its part at its offset (the original method's step). Two places have
concatenations: the parts fused by ``c5`` inside each block, and the ``join`` of the skip features with the
SRFDB output in front of the RFDB. (The merged model has no split: its two head convs read the input directly.)

Why: not because Torch-Pruning cannot follow a concatenation. Version 1.6 tracks ``torch.cat`` and maps channel
indices through it; the plain dense PRFDN prunes correctly. What the placements change is which widths are
chosen together. Through a concatenation, the consumer's input channels are the producers' output channels:
the RFDB's input (and residual) channels form one coupled group with the skip path (``head_skip``, ``LR_conv``,
the upsampler's input) and the SRFDB's output, so the RFDB's width is the skip width plus the SRFDB's, and c5's
inputs are the parts' outputs. With placements, a consumer's input and each producer's output are separate
groups (24 instead of 21 in the merged network), each pruned on its own ranking. Measured on the official
RFDN's dense merge pruned to 317,000 params (docs/pruning.md): both forms reach the same widths (RFDB 79
against 78 channels, all else equal) and the same quality right after pruning (Taylor: 26.70 against
26.71 dB on the built-in images), and only the placement form leaves channels that the exported network
computes for nothing or reads as zeros (15 of the RFDB's 79 inputs read a pruned-away source; 10 of the
SRFDB's 59 outputs and 15 of the 156 parts the RFDB's c5 fuses are never read). The form is kept as the
method's step; its freedom (a consumer's width not tied to its producers') bought nothing measurable here.

Placement weights are frozen (never trained), so after pruning they are still 0/1 matrices with at most one 1
per row, which is what makes the fold back exact:

- placements before ``c5`` fold into ``c5`` (a product of linear maps): c5 reads the concatenated parts;
- the join becomes a concatenation followed, where pruning dropped or reordered channels, by a gather
  (``join`` index of ``PRFDNConfig``); a channel whose source was pruned away reads a zero.
"""

from __future__ import annotations

import torch
import torch.nn as nn

from models.chain import block_widths
from models.helpers import HelperPRFDN, is_helper
from models.team13_PRFDN import PRFDN, BlockWidths, PRFDNConfig
from transform.weights import dense_block_weight
from utils.errors import HarnessError

# --- to and from the pruning form ---------------------------------------------------------------------


def _dense(model: PRFDN) -> PRFDN:
    if model.cfg.srfdb_groups == 1 and model.cfg.rfdb_groups == 1:
        return model
    config = PRFDNConfig(**{**model.cfg.__dict__, "srfdb_groups": 1, "rfdb_groups": 1})
    dense = PRFDN(config)
    state = model.state_dict()
    for block_name, groups in (("srfdb", model.cfg.srfdb_groups), ("rfdb", model.cfg.rfdb_groups)):
        block = getattr(model, block_name)
        for name, conv in block.named_modules():
            if isinstance(conv, nn.Conv2d):
                state[f"{block_name}.{name}.weight"] = dense_block_weight(name, conv.weight.detach(), block.widths, groups)
    dense.load_state_dict(state)
    return dense


def with_helpers(model: PRFDN) -> HelperPRFDN:
    """The pruning form of a merged (grouped or dense) or exported PRFDN, computing exactly the same."""
    dense = _dense(model)
    helper = HelperPRFDN(dense.cfg)
    missing, unexpected = helper.load_state_dict({k: v for k, v in dense.state_dict().items() if k != "join_index"}, strict=False)
    assert not unexpected and all(is_helper(k) for k in missing), (missing, unexpected)
    if dense.cfg.join is not None:  # an exported join gather becomes placement weights again
        with torch.no_grad():
            source = dense.cfg.skip + dense.cfg.srfdb.out
            matrix = torch.zeros(len(dense.cfg.join), source + 1)
            matrix[torch.arange(len(dense.cfg.join)), torch.tensor(dense.cfg.join)] = 1.0
            helper.join_skip.weight.copy_(matrix[:, : dense.cfg.skip, None, None])
            helper.join_rest.weight.copy_(matrix[:, dense.cfg.skip : source, None, None])
    return helper


def current_config(model: HelperPRFDN) -> PRFDNConfig:
    """The config of a pruning-form model as its layers are now (after Torch-Pruning changed them in place)."""
    return PRFDNConfig(
        skip=model.head_skip.out_channels,
        rest=model.head_rest.out_channels,
        srfdb=block_widths(model.srfdb),
        rfdb=block_widths(model.rfdb),
        tail=model.c[0].out_channels,
        in_nc=model.cfg.in_nc,
        out_nc=model.cfg.out_nc,
        scale=model.cfg.scale,
    )


def rebuild(model: HelperPRFDN) -> HelperPRFDN:
    """A fresh module with consistent configs, holding ``model``'s (pruned) weights."""
    fresh = HelperPRFDN(current_config(model))
    fresh.load_state_dict(model.state_dict())
    return fresh


def _selection_sources(weight: torch.Tensor) -> list[int | None]:
    """For a 0/1 matrix with at most one 1 per row: the column of each row's 1 (None: an all-zero row)."""
    matrix = weight[:, :, 0, 0]
    if not bool(((matrix == 0) | (matrix == 1)).all()) or bool((matrix.sum(1) > 1).any()):
        raise HarnessError("a join placement conv is no longer a 0/1 selection (was it trained?); cannot fold it exactly")
    return [int(row.nonzero()[0]) if row.any() else None for row in matrix]


@torch.no_grad()
def fold_helpers(model: HelperPRFDN) -> PRFDN:
    """The final network: placement convs folded into c5 and into a join gather. Exact (linear algebra)."""
    config = current_config(model)
    joined = torch.cat([model.join_skip.weight, model.join_rest.weight], 1)
    sources = _selection_sources(joined)
    zero_channel = joined.shape[1]
    join = [zero_channel if s is None else s for s in sources]
    if join == list(range(zero_channel)):
        join = None  # the plain concatenation
    final_config = PRFDNConfig(
        **{
            **config.__dict__,
            "srfdb": BlockWidths(**{**config.srfdb.__dict__, "fused": None}),
            "rfdb": BlockWidths(**{**config.rfdb.__dict__, "fused": None}),
            "join": join,
        }
    )
    final = PRFDN(final_config)
    state = {k: v for k, v in model.state_dict().items() if not is_helper(k)}
    for block_name in ("srfdb", "rfdb"):
        block = getattr(model, block_name)
        c5 = block.c5.weight[:, :, 0, 0]
        n_parts = len(block.widths.distilled) + 1
        state[f"{block_name}.c5.weight"] = torch.cat(
            [c5 @ getattr(block, f"place{k}").weight[:, :, 0, 0] for k in range(1, n_parts + 1)], 1
        )[:, :, None, None]
    if join is not None:
        state["join_index"] = torch.tensor(join, dtype=torch.long)
    final.load_state_dict(state)
    return final


def freeze_helpers(model: nn.Module) -> None:
    """Keep placement weights out of training. Torch-Pruning replaces pruned weights by new Parameters, which
    are trainable by default, so this runs again after every pruning step."""
    for name, param in model.named_parameters():
        if is_helper(name):
            param.requires_grad_(False)
