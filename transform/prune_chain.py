"""The control stage: RFDN pruned directly, without branching, to a budget (``docs/depth.md``).

    python -m transform.prune_chain RFDN.pth DST.pth --target_flops 19.14e9 --ratio 0.9 --steps 40
    python -m transform.prune_chain RFDN.pth DST.pth --target_params 317000 --ratio 0.8 --steps 8 \
        --finetune_iters 100 --lr 2e-5 --train_dir D [D ...] --teacher RFDN.pth      # as the pipeline prunes

Torch-Pruning takes every channel group of RFDN's chain (the widths its residual adds, concatenations and skip tie
together) linearly towards ``--ratio`` of its channels over ``--steps`` steps, the upsampler's conv kept whole
(PixelShuffle needs its channels); with a budget (``--target_params``, ``--target_flops``) it stops at the first
step within it. The flags are ``transform.prune``'s, with the same meaning: channels ranked by ``--importance``
(Taylor with ``--train_dir``, else L2 magnitude), ``--finetune_iters`` of the training loop after each step, so
the control can be pruned exactly as the pipeline prunes the merged PRFDN. The result is an ``rfdn_chain``
checkpoint (``models/chain.py``), rebuilt from the pruned widths and checked to compute what the pruned module
computes; it trains with ``train_prfdn.py`` as any stage does.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from models.chain import chain_config
from models.team13_PRFDN import RFDNChain
from transform import prune
from transform.common import StageCLI, check_equivalent, read_stage_input, write_stage_output
from transform.prune import describe, figures, within_budget
from utils.errors import HarnessError
from utils.model_io import load_model
from utils.provenance import stage_record


def prune_chain(
    chain: RFDNChain,
    ratio: float,
    steps: int,
    target_params: float | None = None,
    target_flops: float | None = None,
    importance: str = "magnitude",
    calibration: tuple[torch.Tensor, torch.Tensor] | None = None,
    batch_size: int | None = None,
    finetune: Callable[[nn.Module, int], None] | None = None,
    round_to: int | None = None,
) -> list[dict[str, float]]:
    """Prune ``chain`` in place, step by step (``finetune(chain, step)`` after each), until within the budget (or
    ``ratio`` is reached); each step's figures (``transform.prune.prune_steps``)."""
    pruner = prune.make_pruner(chain, ratio, steps, importance, round_to)
    bound = figures(chain)
    return prune.prune_steps(
        chain, pruner, steps, importance, calibration, batch_size, finetune, bound, target_params, target_flops
    )


def _run(job: prune.PruneJob) -> None:
    prune._check_arguments(job)
    parent = read_stage_input(job.src, ("rfdn", "rfdn_chain"), "chain pruning")
    source = load_model(parent, job.src).eval()
    chain = RFDNChain(chain_config(source))
    chain.load_state_dict(source.state_dict())
    teacher = prune._check_inputs(job, parent)
    data = prune._training_data(job, parent)
    calibration = prune._calibration(data, job.calibration_patches) if data is not None and job.importance == "taylor" else None
    before = figures(chain)
    history = prune_chain(
        chain,
        job.ratio,
        job.steps,
        job.target_params,
        job.target_flops,
        job.importance,
        calibration,
        job.batch_size,
        prune._finetuner(job, data, teacher),
        job.round_to,
    )
    after = history[-1]
    budget = job.target_params is not None or job.target_flops is not None
    if budget and not within_budget(after, job.target_params, job.target_flops):
        raise HarnessError(f"--ratio {job.ratio}: pruned to it, the network is still {describe(after)}; raise --ratio")
    chain.eval()
    rebuilt = RFDNChain(chain_config(chain))
    rebuilt.load_state_dict(chain.state_dict())
    difference = check_equivalent(chain, rebuilt.eval(), f"the chain rebuilt from its pruned widths ({job.src})")
    print(f"before: {describe(before)}\nafter:  {describe(after)} (step {after['step']} of {job.steps})")
    record = stage_record(
        "prune_chain", job.src, parent, before=before, after=after, history=history, ratio=job.ratio,
        steps=job.steps, target_params=job.target_params, target_flops=job.target_flops,
        rebuilt_max_abs_difference=difference, arguments=prune.recorded_arguments(job),
    )  # fmt: skip
    write_stage_output(job.dst, rebuilt, parent, record)


CLI = StageCLI(
    "transform.prune_chain", "Prune RFDN directly, without branching (the control).", prune.PruneJob, _run, prune.add_arguments
)
parse_args, main = CLI.parse_args, CLI.main


if __name__ == "__main__":
    raise SystemExit(main())
