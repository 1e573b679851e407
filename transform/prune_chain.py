"""The control stage: RFDN pruned directly, without branching, to a budget (``docs/depth.md``).

    python -m transform.prune_chain RFDN.pth DST.pth --target_flops 19.14e9 --ratio 0.9 --steps 40

Torch-Pruning takes every channel group of RFDN's chain (the widths its residual adds, concatenations and skip tie
together) linearly towards ``--ratio`` of its channels over ``--steps`` steps, ranked by L2 magnitude, the
upsampler's conv kept whole (PixelShuffle needs its channels); with a budget (``--target_params``,
``--target_flops``) it stops at the first step within it. The result is an ``rfdn_chain`` checkpoint
(``models/chain.py``), rebuilt from the pruned widths and checked to compute what the pruned module computes; it
trains with ``train_prfdn.py`` as any stage does.
"""

from __future__ import annotations

import argparse

import torch
import torch_pruning as tp

from models.chain import RFDNChain, chain_config
from transform.common import StageCLI, check_equivalent, read_stage_input, write_stage_output
from transform.prune import EXAMPLE_SIZE, PruneSettings, describe, figures, within_budget
from utils.errors import HarnessError
from utils.model_io import load_model
from utils.provenance import stage_record
from utils.settings import add_flags

FLAGS = ("ratio", "steps", "target_params", "target_flops")


def prune_chain(
    chain: RFDNChain, ratio: float, steps: int, target_params: float | None = None, target_flops: float | None = None
) -> list[dict[str, float]]:
    """Prune ``chain`` in place, step by step, until within the budget (or ``ratio`` is reached); each step's figures."""
    example = torch.rand(1, chain.fea_conv.in_channels, EXAMPLE_SIZE, EXAMPLE_SIZE) * 255.0
    pruner = tp.pruner.BasePruner(
        chain,
        example,
        importance=tp.importance.GroupMagnitudeImportance(p=2),
        pruning_ratio=ratio,
        iterative_steps=steps,
        ignored_layers=[chain.upsampler[0]],
    )
    history = []
    for step in range(1, steps + 1):
        pruner.step()
        history.append({"step": step, **figures(chain)})
        if (target_params is not None or target_flops is not None) and within_budget(history[-1], target_params, target_flops):
            break
    return history


def _run(args: argparse.Namespace) -> None:
    if not 0 < args.ratio < 1:
        raise HarnessError(f"--ratio {args.ratio}: must be between 0 and 1 (exclusive)")
    if args.steps < 1:
        raise HarnessError(f"--steps {args.steps}: must be at least 1")
    parent = read_stage_input(args.src, ("rfdn", "rfdn_chain"), "chain pruning")
    source = load_model(parent, args.src).eval()
    chain = RFDNChain(chain_config(source))
    chain.load_state_dict(source.state_dict())
    before = figures(chain)
    history = prune_chain(chain, args.ratio, args.steps, args.target_params, args.target_flops)
    after = history[-1]
    budget = args.target_params is not None or args.target_flops is not None
    if budget and not within_budget(after, args.target_params, args.target_flops):
        raise HarnessError(f"--ratio {args.ratio}: pruned to it, the network is still {describe(after)}; raise --ratio")
    rebuilt = RFDNChain(chain_config(chain))
    rebuilt.load_state_dict(chain.state_dict())
    difference = check_equivalent(chain.eval(), rebuilt.eval(), f"the chain rebuilt from its pruned widths ({args.src})")
    print(f"before: {describe(before)}\nafter:  {describe(after)} (step {after['step']} of {args.steps})")
    record = stage_record(
        "prune_chain", args.src, parent, before=before, after=after, history=history, ratio=args.ratio,
        steps=args.steps, target_params=args.target_params, target_flops=args.target_flops, rebuilt_max_abs_difference=difference,
    )  # fmt: skip
    write_stage_output(args.dst, rebuilt, parent, record)


def _arguments(parser: argparse.ArgumentParser) -> None:
    add_flags(parser, PruneSettings, FLAGS, {name: getattr(PruneSettings, name) for name in FLAGS})


CLI = StageCLI("transform.prune_chain", "Prune RFDN directly, without branching (the control).", _run, _arguments)
parse_args, main = CLI.parse_args, CLI.main


if __name__ == "__main__":
    raise SystemExit(main())
