"""A speed/quality frontier: the pipeline's merged network pruned to other budgets, each trained on its own.

    python scripts/run_frontier.py configs/x4_cpu_structured.json [--only NAME ...] [--force]

The config's ``frontier`` lists the points, e.g.
``[{"name": "flops_0_6x", "prune": {"target_flops": 16.3e9}, "final_training": {"iters": 20000}}]``. Each point
is the run's ``prune`` and ``final_training`` sections with the point's keys over them (a point's
``target_params`` / ``target_flops`` replace the run's budget); its stages start from the run's merged network
(``merged_trained.pth`` when the config trains it, else ``merged.pth``), which must be there, and write
``WORK_DIR/frontier/NAME/pruned.pth``, ``final.pth`` and ``final_trained.pth`` (without a final training, the
point is ``final.pth``). As in ``scripts/run_pipeline.py``: everything is checked before the first stage, a
stage whose output exists is skipped (an interrupted training resumes; ``then`` phases continue it), and an
output made from another parent file is refused. At the end it prints the ``scripts/report.py`` command that
adds one row per point (PSNR on every visible set, CPU time ratio) to the results table and its plot.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

from pipeline_config import FrontierPoint, PipelineConfig, parse_config  # noqa: E402
from run_pipeline import (  # noqa: E402
    Step,
    check_data_folders,
    check_devices,
    read_checkpoint_input,
    run_step,
    step_done,
    written_by,
)

import train_prfdn  # noqa: E402
from transform import export, prune  # noqa: E402
from utils.cli import ArgumentParser  # noqa: E402
from utils.errors import HarnessError  # noqa: E402
from utils.fileio import check_distinct, check_output_file, exclusive_run  # noqa: E402


def merged_input(config: PipelineConfig) -> Path:
    """The run's network every point is pruned from."""
    work = Path(config.work_dir)
    return work / ("merged_trained.pth" if config.merged_training is not None else "merged.pth")


def point_folder(config: PipelineConfig, point: FrontierPoint) -> Path:
    return Path(config.work_dir) / "frontier" / point.name


def point_steps(config: PipelineConfig, point: FrontierPoint) -> list[Step]:
    """One point's stages: prune to its budget, export, and its final training (one step per lr phase)."""
    folder = point_folder(config, point)
    pruned, final = folder / "pruned.pth", folder / "final.pth"
    label = f"{point.name}/"
    steps = [
        Step(label + "pruned", prune.CLI.execute, config.prune_args(str(merged_input(config)), str(pruned), point.prune)),
        Step(label + "final", export.CLI.execute, export.parse_args([str(pruned), str(final)])),
    ]
    if point.final_training is not None:
        phases = config.phase_args(point.final_training, str(final), str(folder / "final_trained.pth"))
        steps += [Step(label + "final_trained", train_prfdn.main, args) for args in phases]
    return steps


def point_output(config: PipelineConfig, point: FrontierPoint) -> Path:
    return point_steps(config, point)[-1].dst


def select_points(config: PipelineConfig, only: list[str] | None) -> list[FrontierPoint]:
    if not config.frontier:
        raise HarnessError(f"{config.source}: has no frontier (a list of points, see scripts/run_frontier.py)")
    names = [point.name for point in config.frontier]
    for name in only or []:
        if name not in names:
            raise HarnessError(f"--only {name}: no such point in {config.source} (it has {', '.join(names)})")
    return [point for point in config.frontier if not only or point.name in only]


def check_run(config: PipelineConfig, steps: list[Step], force: bool) -> None:
    """Everything the steps to run read and write, before the first one."""
    pending = [step for step in steps if force or not step_done(step)]
    if not pending:
        return
    source = merged_input(config)
    if not source.is_file():
        raise HarnessError(f"{source}: the run's merged network is not there; run scripts/run_pipeline.py {config.source} first")
    read_checkpoint_input("the merged network", str(source))
    check_data_folders(config)
    if config.data.teacher is not None:
        read_checkpoint_input("data.teacher", config.data.teacher)
    inputs = {"rfdn": config.rfdn, "data.teacher": config.data.teacher, "the config": config.source, "merged": source}
    outputs = {str(path): path for step in pending for path in written_by(step)}
    check_distinct(outputs, inputs)
    for path in outputs.values():
        check_output_file(path, "work_dir")
    check_devices(pending)


def run(config_path: str, only: list[str] | None = None, force: bool = False) -> dict[str, Path]:
    """Run (or continue) the selected points; their final checkpoints by name."""
    config = parse_config(config_path)
    points = select_points(config, only)
    steps = [step for point in points for step in point_steps(config, point)]
    check_run(config, steps, force)
    folder = Path(config.work_dir) / "frontier"
    folder.mkdir(parents=True, exist_ok=True)
    with exclusive_run(folder / "frontier", "work_dir"):
        for step in steps:
            step.dst.parent.mkdir(parents=True, exist_ok=True)
            run_step(step, force)
    return {point.name: point_output(config, point) for point in points}


def report_command(config_path: str, outputs: dict[str, Path]) -> str:
    return f"python scripts/report.py {config_path}" + "".join(f" --extra {name}={path}" for name, path in outputs.items())


def main(argv: list[str] | None = None) -> int:
    parser = ArgumentParser(prog="run_frontier.py", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("config", help="the pipeline config with a frontier list (e.g. configs/x4_cpu_structured.json)")
    parser.add_argument("--only", nargs="+", metavar="NAME", default=None, help="run these points only")
    parser.add_argument("--force", action="store_true", help="redo stages whose output exists")
    args = parser.parse_args(argv)
    try:
        outputs = run(args.config, args.only, args.force)
    except (HarnessError, OSError) as err:
        print(f"run_frontier.py: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("run_frontier.py: interrupted; run the same command again to continue", file=sys.stderr)
        return 130
    print(f"== frontier done; its rows in the results table: {report_command(args.config, outputs)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
