"""Train an ablation run to its end, then finish a pipeline run from its weights: one resumable command.

    python scripts/run_from_ablation.py configs/ablations_branch.json lr_2e4_scale_aug configs/x4_cpu_structured.json

In order, each step skipped where it is done, so that the same command continues after a stop (Ctrl-C or
SIGTERM saves the training in progress; the exit code is then that of the step stopped, 130):

1. ``run_ablations.py ABLATIONS``: every run of that config trained or resumed to its ``--iters``;
2. RUN's best weights (``WORK/RUN.pth`` of ABLATIONS) copied to the pipeline's ``WORK_DIR/branch_trained.pth``;
3. ``run_pipeline.py PIPELINE --from STAGE``, STAGE being the stage after ``branch_trained`` (``merged``);
4. ``run_frontier.py PIPELINE`` when PIPELINE lists ``frontier`` points.

Checked before anything trains: both configs, RUN among the runs, a ``branch_training`` section in PIPELINE
(its output is where RUN's weights go; its own training is not run), and that an existing
``branch_trained.pth`` is RUN's finished weights (anything else is refused, never replaced).
"""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
SCRIPTS = Path(__file__).resolve().parent
for folder in (REPO_ROOT, SCRIPTS):
    if str(folder) not in sys.path:
        sys.path.insert(0, str(folder))

import run_ablations  # noqa: E402
import run_frontier  # noqa: E402
import run_pipeline  # noqa: E402
from pipeline_config import PipelineConfig, parse_config  # noqa: E402

from utils.cli import ArgumentParser  # noqa: E402
from utils.errors import HarnessError  # noqa: E402
from utils.fileio import atomic_write, sha256_of  # noqa: E402

PROG = "run_from_ablation.py"
BRANCH_STAGE = "branch_trained"


def find_run(config: run_ablations.AblationConfig, name: str, where: str) -> run_ablations.Run:
    for run in config.runs:
        if run.name == name:
            return run
    raise HarnessError(f"RUN {name}: not a run of {where} (its runs: {', '.join(r.name for r in config.runs)})")


def branch_step(pipeline: PipelineConfig, where: str) -> tuple[Path, str]:
    """Where the pipeline keeps its trained branch model, and the first stage that reads it."""
    steps = run_pipeline.plan(pipeline)
    stages = [step.stage for step in steps]
    if BRANCH_STAGE not in stages:
        raise HarnessError(f"{where}: no branch_training section (iters > 0): RUN's weights would have no stage to go to")
    last = len(stages) - 1 - stages[::-1].index(BRANCH_STAGE)
    return Path(steps[last].dst), stages[last + 1]


def check_branch_file(target: Path, weights: Path, finished: bool, run: str) -> bool:
    """True when ``target`` already holds RUN's finished weights; refuse any other file there."""
    if not target.exists():
        return False
    if finished and weights.is_file() and sha256_of(target) == sha256_of(weights):
        return True
    state = "its finished weights" if finished else "a finished run's weights (it has not reached its --iters)"
    raise HarnessError(f"{target} exists and is not {state} of run {run}; move it away to start from run {run}")


def copy_weights(weights: Path, target: Path, run: str) -> None:
    if not weights.is_file():
        raise HarnessError(f"{weights}: not found: run {run} has finished (its log says so) but its best weights are not here")
    atomic_write(target, lambda tmp: shutil.copyfile(weights, tmp))
    print(f"{PROG}: copied {weights} -> {target}", flush=True)


def run(ablations_path: str, run_name: str, pipeline_path: str) -> int:
    ablations = run_ablations.read_config(ablations_path)
    chosen = find_run(ablations, run_name, ablations_path)
    pipeline = parse_config(pipeline_path)
    target, start = branch_step(pipeline, pipeline_path)
    weights = ablations.out(chosen)
    copied = check_branch_file(target, weights, run_ablations.finished_at(ablations, chosen) is not None, run_name)
    code = run_ablations.main([ablations_path])
    if code != 0:
        return code
    if not copied:
        copy_weights(weights, target, run_name)
    code = run_pipeline.main([pipeline_path, "--from", start])
    if code != 0 or not pipeline.frontier:
        return code
    return run_frontier.main([pipeline_path])


def main(argv: list[str] | None = None) -> int:
    parser = ArgumentParser(PROG, description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("ablations", help="run_ablations.py config (JSON)")
    parser.add_argument("run", help="the name of the run whose best weights become the pipeline's branch_trained.pth")
    parser.add_argument("pipeline", help="run_pipeline.py config (JSON)")
    args = parser.parse_args(argv)
    try:
        return run(args.ablations, args.run, args.pipeline)
    except (HarnessError, OSError) as err:
        print(f"{PROG}: error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
