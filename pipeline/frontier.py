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
output made from another parent file is refused. Before any work it also works out where each point's pruning
will end (``transform.prune.planned_result``: the widths do not depend on which channels rank lowest) and
refuses a point that cannot reach its budget, or that would end at the size of the run's own pruning or of
another point; a finished point's pruning done with other budget flags than the config's is refused too (redo
it with ``--force --only NAME``). It takes the work folder's lock, so it never runs beside the pipeline on the
same run. At the end it prints the ``scripts/report.py`` command that adds one row per finished point (PSNR
on every visible set, CPU time ratio) to the results table and its plot.
"""

from __future__ import annotations

import argparse
import shlex
from pathlib import Path

from models.helpers import HelperPRFDN
from pipeline.config import FrontierPoint, PipelineConfig, config_keys, parse_config
from pipeline.run import (
    Step,
    check_devices,
    check_inputs,
    check_made_from,
    plan,
    pruning_change,
    read_checkpoint_input,
    run_step,
    step_done,
    written_by,
)
from training import run as train_prfdn
from transform import export, prune
from transform.helpers import with_helpers
from utils.checkpoint import read_model_checkpoint
from utils.cli import ArgumentParser, run_command
from utils.errors import HarnessError
from utils.fileio import check_distinct, check_output_file, exclusive_run
from utils.model_io import load_model
from utils.settings import named_as


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
        Step(label + "pruned", prune.CLI.execute, config.prune_job(str(merged_input(config)), str(pruned), point.prune)),
        Step(label + "final", export.CLI.execute, export.CLI.job_for(str(pruned), str(final))),
    ]
    if point.final_training is not None:
        phases = config.phase_jobs(point.final_training, str(final), str(folder / "final_trained.pth"))
        keys = point.final_training.folder_keys(f"frontier[{config.frontier.index(point)}].final_training")
        steps += [Step(label + "final_trained", train_prfdn.main, job, key) for job, key in zip(phases, keys, strict=True)]
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


def check_merged_done(config: PipelineConfig) -> Path:
    """The run's merged network, finished (every phase of its training, if any): the points' common parent."""
    source = merged_input(config)
    unfinished = [step for step in plan(config) if step.stage in ("merged", "merged_trained") and not step_done(step)]
    if unfinished or not source.is_file():
        raise HarnessError(
            f"{source}: the run's merged network is not there or not finished; run scripts/run_pipeline.py "
            f"{config.source} first (at least --until {unfinished[-1].stage if unfinished else 'merged'})"
        )
    read_checkpoint_input("the merged network", str(source))
    return source


def check_kept_pruning(step: Step, point: FrontierPoint) -> None:
    """A point's existing pruning was made with the point's settings (else the config changed since)."""
    change = pruning_change(step)
    if change is not None:
        raise HarnessError(f"{step.dst}: pruned with {change}; redo the point with --force --only {point.name}")


def planned_size(model: HelperPRFDN, bound: dict[str, float], job: prune.PruneJob, where: str) -> dict[str, float]:
    """Where a pruning of ``job`` ends, its refusal naming the config's keys of section ``where``."""
    with named_as(config_keys(where)):
        return prune.planned_with(model, bound, job)


def check_plans(config: PipelineConfig, points: list[FrontierPoint], steps: dict[str, list[Step]], source: Path) -> None:
    """Where each point's pruning will end; refused when a budget cannot be reached or two sizes coincide."""
    merged = load_model(read_model_checkpoint(source), str(source)).eval()
    model, bound = with_helpers(merged), prune.figures(merged)  # as transform.prune sees its input
    run_size = planned_size(model, bound, config.prune_job("SRC.pth", "DST.pth"), "prune")
    sizes: dict[str, dict[str, float]] = {"the run's own pruning": run_size}
    for point in points:
        index = config.frontier.index(point)
        size = planned_size(model, bound, steps[point.name][0].job, f"frontier[{index}].prune")
        for other, other_size in sizes.items():
            if (size["params_M"], size["flops_G"]) == (other_size["params_M"], other_size["flops_G"]):
                raise HarnessError(
                    f"frontier[{index}] ({point.name}): its pruning ends at step {size['step']} with "
                    f"{prune.describe(size)}, the size of {other}; give it another ratio / steps"
                )
        sizes[f"point {point.name}"] = size
        print(f"== {point.name}: pruning will end at step {size['step']} with {prune.describe(size)}")


def check_run(config: PipelineConfig, points: list[FrontierPoint], steps: dict[str, list[Step]], force: bool) -> None:
    """Everything the steps to run (``steps``: each point's, by name) read and write, before the first one."""
    pending = [step for name in steps for step in steps[name] if force or not step_done(step)]
    for point in points:
        for step in steps[point.name]:
            if step not in pending and step.dst.exists():  # kept: made from this run, with these budget flags
                check_made_from(step.dst, step.src, step.stage)
                if step.stage.endswith("/pruned"):
                    check_kept_pruning(step, point)
    if not pending:
        return
    to_prune = [point for point in points if steps[point.name][0] in pending]
    source = merged_input(config)
    if to_prune:
        source = check_merged_done(config)
        check_plans(config, to_prune, steps, source)
    check_inputs(config, pending, force)
    inputs = {
        "rfdn": config.rfdn,
        "data.teacher": config.data.teacher,
        "the config": config.source,
        "the config's output": config.output,
        "merged": source,
    }
    outputs = {str(path): path for step in pending for path in written_by(step)}
    check_distinct(outputs, inputs)
    for path in outputs.values():
        check_output_file(path, "work_dir")
    check_devices(pending)


def run(config_path: str, only: list[str] | None = None, force: bool = False) -> PipelineConfig:
    """Run (or continue) the selected points."""
    config = parse_config(config_path)
    points = select_points(config, only)
    if not Path(config.work_dir).is_dir():
        raise HarnessError(f"work_dir {config.work_dir}: not there; run scripts/run_pipeline.py {config_path} first")
    steps = {point.name: point_steps(config, point) for point in points}
    with exclusive_run(Path(config.work_dir) / "pipeline", "work_dir"):  # the pipeline's lock: one run at a time
        check_run(config, points, steps, force)
        for point in points:
            for step in steps[point.name]:
                step.dst.parent.mkdir(parents=True, exist_ok=True)
                run_step(step, force)
    return config


def report_command(config: PipelineConfig, config_path: str) -> str:
    """The report.py line with a row for every finished point."""
    words = ["python", "scripts/report.py", config_path, "--overwrite"]  # regenerates the report files in docs/
    for point in config.frontier:
        output = point_output(config, point)
        if output.is_file():
            words += ["--extra", f"{point.name}={output}"]
    return shlex.join(words)


def main(argv: list[str] | None = None) -> int:
    parser = ArgumentParser(prog="run_frontier.py", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("config", help="the pipeline config with a frontier list (e.g. configs/x4_cpu_structured.json)")
    parser.add_argument("--only", nargs="+", metavar="NAME", default=None, help="run these points only")
    parser.add_argument("--force", action="store_true", help="redo stages whose output exists")
    args = parser.parse_args(argv)

    def body() -> None:
        config = run(args.config, args.only, args.force)
        print(f"== frontier done; its rows in the results table: {report_command(config, args.config)}")

    return run_command("run_frontier.py", body, "run the same command again to continue")


if __name__ == "__main__":
    raise SystemExit(main())
