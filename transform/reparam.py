"""Stage 3, re-parametrization: the four branches become one wide network computing exactly the same.

    python -m transform.reparam BRANCH.pth OUT.pth [--form grouped|dense]

The three SRFDBs become one SRFDB three times as wide, the four RFDBs one RFDB four times as wide:
``grouped`` form with grouped convolutions (each group one branch's weights), ``dense`` form with
block-diagonal convolutions whose off-diagonal blocks are exactly zero (fine-tuning may then use them).
``head_skip`` is branch 1's head and ``head_rest`` stacks heads 2-4: both read the input once. The result
is checked on a real image and refused above 1e-3 max |difference| (0-255 units).
"""

from __future__ import annotations

import argparse

import torch
import torch.nn as nn

from models.branch import BranchPRFDN
from models.team13_PRFDN import PRFDN, DistillBlock, PRFDNConfig
from transform.common import StageCLI, check_equivalent, read_stage_input, stage_job, write_stage_output
from transform.weights import dense_block_weight
from utils.model_io import load_model
from utils.provenance import stage_record
from utils.settings import job_defaults

FORMS = ("grouped", "dense")


def _convs(module: nn.Module) -> dict[str, nn.Conv2d]:
    return {name: m for name, m in module.named_modules() if isinstance(m, nn.Conv2d)}


@torch.no_grad()
def merge_blocks(target: DistillBlock, sources: list[DistillBlock]) -> None:
    """Fill ``target`` (``len(sources)`` blocks side by side, grouped or dense) with the sources' weights."""
    groups = len(sources)
    source_convs = [_convs(s) for s in sources]
    for name, conv in _convs(target).items():
        weight = torch.cat([convs[name].weight for convs in source_convs], 0)  # the grouped form's weight
        if target.groups == 1:
            weight = dense_block_weight(name, weight, target.widths, groups)
        conv.weight.copy_(weight)
        conv.bias.copy_(torch.cat([convs[name].bias for convs in source_convs], 0))


@torch.no_grad()
def merge_branches(branch: BranchPRFDN, form: str = "grouped") -> PRFDN:
    """The re-parametrized network computing what ``branch`` computes."""
    if form not in FORMS:
        raise ValueError(f"form must be one of {FORMS}, got {form!r}")
    nf, scale = branch.config["nf"], branch.config["scale"]
    stages = branch.config.get("srfdb_stages", 1)
    merged = PRFDN(PRFDNConfig.merged(nf, grouped=form == "grouped", scale=scale, srfdb_stages=stages))
    merged.head_skip.load_state_dict(branch.head1.state_dict())
    for key in ("weight", "bias"):
        getattr(merged.head_rest, key).copy_(torch.cat([getattr(getattr(branch, f"head{k}"), key) for k in (2, 3, 4)], 0))
    merge_blocks(merged.srfdb, [getattr(branch, f"srfdb{k}") for k in (2, 3, 4)])
    merge_blocks(merged.rfdb, [getattr(branch, f"B{k}") for k in (1, 2, 3, 4)])
    for name in ("c", "LR_conv", "upsampler"):
        getattr(merged, name).load_state_dict(getattr(branch, name).state_dict())
    return merged


def _run(job: ReparamJob) -> None:
    parent = read_stage_input(job.src, ("branch",), "re-parametrization")
    branch = load_model(parent, job.src)
    merged = merge_branches(branch, job.form)
    difference = check_equivalent(branch, merged, f"{job.form} merge of {job.src}")
    write_stage_output(
        job.dst, merged, parent, stage_record("merged", job.src, parent, form=job.form, max_abs_difference=difference)
    )


ReparamJob = stage_job("ReparamJob", own=(("form", str, "grouped"),))


def _arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--form",
        choices=FORMS,
        default=job_defaults(ReparamJob)["form"],
        help="grouped convolutions or block-diagonal dense ones",
    )


CLI = StageCLI(
    "transform.reparam", "Merge the four branches into one wide network (PRFDN stage 3).", ReparamJob, _run, _arguments
)
parse_args, main = CLI.parse_args, CLI.main


if __name__ == "__main__":
    raise SystemExit(main())
