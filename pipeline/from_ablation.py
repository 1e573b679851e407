"""Train an ablation run to its end, then finish a pipeline run from its weights: one resumable command.

    python scripts/run_from_ablation.py configs/ablations_branch.json lr_2e4_scale_aug configs/x4_cpu_structured.json

In order, each step skipped where it is done, so that the same command continues after a stop (Ctrl-C or
SIGTERM saves the training in progress; the exit code is then that of the step stopped, 130):

1. ``run_ablations.py ABLATIONS --only RUN``: RUN trained or resumed to its ``--iters``;
2. RUN's best weights (``WORK/RUN.pth`` of ABLATIONS) copied to the pipeline's ``WORK_DIR/branch_trained.pth``;
3. ``run_pipeline.py PIPELINE --from STAGE``, STAGE being the stage after ``branch_trained`` (``merged``);
4. ``run_frontier.py PIPELINE`` when PIPELINE lists ``frontier`` points.

``--until STAGE`` stops after that pipeline stage (no frontier), e.g. ``--until merged`` to measure pruning
settings on the merged network (``configs/ablations_prune.json``) before the pipeline prunes it; the same
command without it goes on from there.

Checked before anything trains (see ``check_pipeline``): both configs and every run's flags, RUN among the
runs, a branch model as ABLATIONS' ``src``, the pipeline's stages after the branch model as ``run_pipeline.py``
checks them, no pipeline output among the ablation's files, and that an existing ``branch_trained.pth`` is
RUN's finished weights or, without one, that no other branch model's files are in the work folder (anything
else is refused, never replaced). PIPELINE's own ``branch_training`` is never run.
"""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

from pipeline import ablations as run_ablations
from pipeline import frontier as run_frontier
from pipeline import run as run_pipeline
from pipeline.config import PipelineConfig, parse_config
from utils.cli import ArgumentParser, run_command
from utils.errors import HarnessError
from utils.fileio import atomic_write, check_distinct, sha256_of
from utils.model_io import read_flag_checkpoint

PROG = "run_from_ablation.py"
BRANCH_STAGE = "branch_trained"


def branch_step(steps: list[run_pipeline.Step]) -> int:
    """The index of the last step writing ``branch_trained.pth`` (a config always has one: its iters are > 0)."""
    return max(i for i, step in enumerate(steps) if step.stage == BRANCH_STAGE)


def check_branch_file(target: Path, weights: Path, finished: bool, run: str) -> bool:
    """True when ``target`` already holds RUN's finished weights; refuse any other file there."""
    if not target.exists():
        return False
    if finished and weights.is_file() and sha256_of(target) == sha256_of(weights):
        return True
    state = "its finished weights" if finished else "a finished run's weights (it has not reached its --iters)"
    raise HarnessError(f"{target} exists and is not {state} of run {run}; move it away to start from run {run}")


def check_no_other_branch(steps: list[run_pipeline.Step], index: int) -> None:
    """Without ``branch_trained.pth``, no file of the pipeline's own branch training and no later stage's file may
    be there: they belong to another branch model (a plain ``run_pipeline.py`` would go on with them)."""
    branch_files = [path for step in steps[: index + 1] if step.stage == BRANCH_STAGE for path in run_pipeline.written_by(step)]
    later = [path for step in steps[index + 1 :] for path in run_pipeline.written_by(step)]
    for path in [*branch_files, *later]:
        if path.exists():
            raise HarnessError(f"{path}: exists, from another branch model than the run's; use another work_dir or move it away")


def check_pipeline(
    ablations_path: str,
    ablations: run_ablations.AblationConfig,
    chosen: run_ablations.Run,
    pipeline: PipelineConfig,
    replace_output: bool = False,
    until: str | None = None,
) -> tuple[Path, str]:
    """Everything the pipeline part needs, before the ablation run trains: the run's start is a branch model, the
    stages after the branch model can run (inputs, outputs, devices), no pipeline file is one of the ablation's,
    the work folder holds no other branch model's files, and ``until`` (if given) is a stage after the branch
    model. Returns the branch file and the stage after it."""
    source = ablations.source(chosen)
    if read_flag_checkpoint(source, f"{ablations_path}: src").arch != "branch":
        raise HarnessError(f"{ablations_path}: src {source}: not a branch model, so no run of it can be the pipeline's")
    steps = run_pipeline.plan(pipeline)
    index = branch_step(steps)
    target, start = steps[index].dst, steps[index + 1].stage
    if until is not None:
        run_pipeline.select_steps(steps, start, until)  # a stage after the branch model
    stage_files = run_pipeline.stage_files(pipeline.work_dir)
    outputs = {"output": pipeline.output, **{f"the stage file {name}": path for name, path in stage_files.items()}}
    check_distinct(outputs, run_ablations.protected_files(ablations_path, ablations))
    if not target.exists():
        check_no_other_branch(steps, index)
    run_pipeline.check_pending(pipeline, steps[index + 1 :], replace_output=replace_output)
    return target, start


def copy_weights(weights: Path, target: Path, run: str) -> None:
    if not weights.is_file():
        raise HarnessError(f"{weights}: not found: run {run} has finished (its log says so) but its best weights are not here")
    atomic_write(target, lambda tmp: shutil.copyfile(weights, tmp))
    print(f"{PROG}: copied {weights} -> {target}", flush=True)


def run(ablations_path: str, run_name: str, pipeline_path: str, replace_output: bool = False, until: str | None = None) -> int:
    ablations = run_ablations.read_config(ablations_path)
    chosen = run_ablations.find_run(ablations, run_name, ablations_path, "RUN")
    run_ablations.check_runs(ablations, run_name)  # the runs this command trains: RUN only
    pipeline = parse_config(pipeline_path)
    target, start = check_pipeline(ablations_path, ablations, chosen, pipeline, replace_output, until)
    weights = ablations.out(chosen)
    check_branch_file(target, weights, run_ablations.finished_at(ablations, chosen) is not None, run_name)
    code = run_ablations.main([ablations_path, "--only", run_name])
    if code != 0:
        return code
    if not check_branch_file(target, weights, True, run_name):  # again: hours may have passed
        copy_weights(weights, target, run_name)
    flags = [*(["--replace_output"] if replace_output else []), *(["--until", until] if until is not None else [])]
    code = run_pipeline.main([pipeline_path, "--from", start, *flags])
    if code != 0 or not pipeline.frontier or until is not None:
        return code
    return run_frontier.main([pipeline_path])


def main(argv: list[str] | None = None) -> int:
    parser = ArgumentParser(PROG, description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("ablations", help="run_ablations.py config (JSON)")
    parser.add_argument("run", help="the name of the run whose best weights become the pipeline's branch_trained.pth")
    parser.add_argument("pipeline", help="run_pipeline.py config (JSON)")
    parser.add_argument(
        "--replace_output",
        action="store_true",
        help="the pipeline may replace an output it did not make (run_pipeline.py's flag)",
    )
    parser.add_argument(
        "--until", choices=run_pipeline.STAGES, default=None, help="stop after this pipeline stage (no frontier points)"
    )
    args = parser.parse_args(argv)
    return run_command(
        PROG,
        lambda: run(args.ablations, args.run, args.pipeline, args.replace_output, args.until),
        "run the same command again to continue",
    )


if __name__ == "__main__":
    sys.exit(main())
