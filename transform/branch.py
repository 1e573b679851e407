"""Stage 1, branching: RFDN's sequential blocks B1..B4 become four independent branches.

    python -m transform.branch RFDN.pth OUT.pth [--variant seed|deep2|deep3] [--verbose]

Every RFDN tensor has a place: ``fea_conv`` -> ``head1``, ``B1..B4`` -> ``B1..B4``, and the tail (``c``,
``LR_conv``, ``upsampler``) unchanged. New layers, and how they start (so the branch model starts close to
RFDN's features rather than from noise):

- ``head2..head4`` start as copies of ``fea_conv``: each branch sees the same first-layer features as RFDN.
- ``srfdbK`` (K = 2..4) stands in for the chain B1..B(K-1) before ``BK``. It reads head features, which in
  RFDN only B1 reads, so each starts from B1's first distillation stage: ``c1_d``, ``c1_r``, ``c4`` and ESA
  are copies, and ``c5`` takes the columns of ``B1.c5`` that read the distilled-1 and c4 parts. (Starting
  from B(K-1) instead feeds it inputs it never saw: the untrained branch model then scores 11.8 dB on the
  built-in images against 27.4 dB from B1, RFDN 29.0; measured with ``python test_demo.py --model_id 13
  --model_path BRANCH.pth``.)

``--variant`` chooses the cut (``VARIANTS``): ``seed``, the factsheet's, whose SRFDB has one distillation stage;
``deep2`` and ``deep3``, whose SRFDB has two or three (an RFDB's size), starting from B1's first two stages or all
of B1: more reach for the branches' second block, at the cost of the SRFDBs' FLOPs (the merged network's
``srfdb``; pruning to a budget then takes them from elsewhere). In ``deep3`` branch 2 starts as RFDN's B1 -> B2.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass, field

import torch

from models.branch import BranchPRFDN
from models.team00_RFDN import RFDN
from transform.common import StageCLI, read_stage_input, stage_job, write_stage_output
from utils.checkpoint import describe_mismatch
from utils.errors import HarnessError
from utils.provenance import stage_record
from utils.settings import job_defaults


@dataclass
class BranchInit:
    """Which branch-model tensors were loaded from RFDN (target -> source) and how the others started."""

    loaded: dict[str, str] = field(default_factory=dict)
    initialized: dict[str, str] = field(default_factory=dict)


def _loaded_source(target: str) -> str:
    """The RFDN tensor that a branch-model tensor *is*, or '' for a new layer."""
    if target.startswith("head1."):
        return "fea_conv." + target[len("head1.") :]
    if target.split(".")[0] in {"B1", "B2", "B3", "B4", "c", "LR_conv", "upsampler"}:
        return target
    return ""


VARIANTS = {"seed": 1, "deep2": 2, "deep3": 3}  # the cut's name -> distillation stages of each SRFDB


def _init_source(target: str, rfdn: dict[str, torch.Tensor], stages: int = 1) -> tuple[torch.Tensor, str]:
    """Starting value and description of a new tensor (``head2..4``, ``srfdb2..4`` of ``stages`` stages)."""
    module, _, rest = target.partition(".")
    if module.startswith("head"):
        source = "fea_conv." + rest
        return rfdn[source].clone(), f"copy of {source}"
    previous = "B1"  # the block that reads head features in RFDN (see the module docstring)
    if rest.startswith("c5.weight") and stages < 3:
        weight = rfdn[f"{previous}.c5.weight"]
        quarter = weight.shape[1] // 4  # RFDB's c5 reads [distilled 1, 2, 3, c4]; an SRFDB's [distilled 1..stages, c4]
        columns = torch.cat([weight[:, : stages * quarter], weight[:, 3 * quarter :]], 1)
        return columns.clone(), f"{previous}.c5.weight columns of d1..d{stages} and c4"
    source = f"{previous}.{rest}"
    return rfdn[source].clone(), f"copy of {source}"


def branch_from_rfdn(rfdn: dict[str, torch.Tensor], nf: int = 50, variant: str = "seed") -> tuple[BranchPRFDN, BranchInit]:
    """The branch model of the cut ``variant`` and the record of where each of its tensors came from."""
    mismatch = describe_mismatch(RFDN(nf=nf), rfdn)
    if mismatch:
        raise HarnessError(f"not an RFDN state dict (nf={nf}): {mismatch}")
    stages = VARIANTS[variant]
    model = BranchPRFDN(nf=nf, srfdb_stages=stages)
    state, report = model.state_dict(), BranchInit()
    for target, value in state.items():
        source = _loaded_source(target)
        if source:
            tensor, report.loaded[target] = rfdn[source], source
        else:
            tensor, report.initialized[target] = _init_source(target, rfdn, stages)
        if tensor.shape != value.shape:
            raise HarnessError(f"RFDN tensor for {target} has shape {tuple(tensor.shape)}, expected {tuple(value.shape)}")
        state[target] = tensor.clone()
    unused = sorted(set(rfdn) - set(report.loaded.values()))
    if unused:
        raise HarnessError(f"RFDN tensors with no place in the branch model: {', '.join(unused)}")
    model.load_state_dict(state)
    return model, report


def _run(job: BranchJob) -> None:
    parent = read_stage_input(job.src, ("rfdn",), "branching")
    model, report = branch_from_rfdn(parent.state_dict, variant=job.variant)
    more = "" if job.verbose else " (--verbose lists each tensor and where it comes from)"
    print(
        f"loaded {len(report.loaded)} tensors from RFDN (every one it has); {len(report.initialized)} new ones for "
        f"head2..4 and srfdb2..4, copies of fea_conv and of B1's first {VARIANTS[job.variant]} stage(s){more}"
    )
    if job.verbose:
        for target, source in report.loaded.items():
            print(f"  {target:28s} <- {source}")
        print(f"new, {len(report.initialized)} tensors:")
        for target, how in report.initialized.items():
            print(f"  {target:28s} <- {how}")
    write_stage_output(
        job.dst,
        model,
        parent,
        stage_record("branch", job.src, parent, variant=job.variant, loaded=len(report.loaded), new=len(report.initialized)),
    )


BranchJob = stage_job("BranchJob", own=(("variant", str, "seed"), ("verbose", bool, False)))


def _arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--variant",
        choices=list(VARIANTS),
        default=job_defaults(BranchJob)["variant"],
        help="the cut: seed (each SRFDB one distillation stage, the factsheet's), deep2 or deep3 (two or three stages: "
        "more reach, more FLOPs); default seed",
    )
    parser.add_argument("--verbose", action="store_true", help="list every tensor of the branch model and where it comes from")


CLI = StageCLI("transform.branch", "Branch RFDN into four parallel branches (PRFDN stage 1).", BranchJob, _run, _arguments)
parse_args, main = CLI.parse_args, CLI.main


if __name__ == "__main__":
    raise SystemExit(main())
