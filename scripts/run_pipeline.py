"""The whole PRFDN transform from the official RFDN, one command, one config file.

    python scripts/run_pipeline.py configs/x4.json [--force] [--from STAGE] [--until STAGE]

Stages, each writing WORK_DIR/<stage>.pth through the stage's own CLI:
branch (transform.branch) -> branch_fitted (transform.feature_fit; skipped without a ``feature_fit``
section or when its ``iters`` is 0) -> branch_trained (train_prfdn.py) -> merged (transform.reparam)
-> merged_trained (train_prfdn.py, skipped when its ``iters`` is 0) -> pruned (transform.prune)
-> final (transform.export) -> final_trained (train_prfdn.py, skipped when ``final_training.iters`` is 0)
-> final_tuned (train_prfdn.py from final_trained with its own recipe, e.g. a higher lr with a plateau drop;
skipped without a ``final_tuning`` section or when its ``iters`` is 0). The last stage that ran is copied to
``output``.
A stage whose output exists is skipped (so an interrupted run continues), unless ``--force``; an output made
from another parent file than the one there now is refused instead (it belongs to another run). Training
stages resume their own runs (``--resume``) when a training state is there. A training section may list later
learning-rate phases of the same run under ``then`` (e.g. ``"then": [{"iters": 29000, "lr": 2e-5}]``): each
continues it with ``--resume`` to its own ``iters``, its flags overriding the ones before. Paths in the config are
relative to the folder you run from. See configs/x4.json for every key. ``--from STAGE`` starts there: the
earlier stages are neither run nor looked for, only STAGE's input must be there (for a machine that holds
only that file, e.g. a fresh GPU machine). ``--save_next DIR`` runs nothing: it copies into DIR what a fresh
machine needs to go on (the input of the stage after the last finished one, and the training state and log of
an interrupted run of it; once every stage is done, the output and the training logs) and prints the
``--from`` to use there.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import shutil
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

import train_prfdn  # noqa: E402
from transform import branch, export, feature_fit, prune, reparam  # noqa: E402
from utils.checkpoint import read_model_checkpoint  # noqa: E402
from utils.cli import ArgumentParser  # noqa: E402
from utils.errors import HarnessError  # noqa: E402
from utils.fileio import atomic_write, sha256_of  # noqa: E402

STAGES = (
    "branch",
    "branch_fitted",
    "branch_trained",
    "merged",
    "merged_trained",
    "pruned",
    "final",
    "final_trained",
    "final_tuned",
)


def flags(options: dict[str, Any]) -> list[str]:
    """``{"iters": 10, "train_dir": ["a", "b"], "amp": true}`` -> ``--iters 10 --train_dir a b --amp``."""
    argv: list[str] = []
    for key, value in options.items():
        if value is None or value is False:
            continue
        argv.append(f"--{key}")
        if value is True:
            continue
        argv.extend(str(v) for v in value) if isinstance(value, list) else argv.append(str(value))
    return argv


SECTIONS = (
    "data",
    "feature_fit",
    "branch_training",
    "reparam",
    "merged_training",
    "prune",
    "final_training",
    "final_tuning",
)
KEYS = ("rfdn", "work_dir", "output", *SECTIONS)
Step = tuple[str, Callable[[list[str]], int], list[str]]  # (stage, entry point, argv: SRC DST flags...)


def load_config(path: str) -> dict[str, Any]:
    """The config, with its keys and section types checked (a typo must not cost hours of a run)."""
    try:
        config = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError) as err:
        raise HarnessError(f"{path}: not a readable JSON config ({err})") from None
    if not isinstance(config, dict):
        raise HarnessError(f"{path}: expected a JSON object (see configs/x4.json)")
    missing = [key for key in ("rfdn", "work_dir", "output", "data") if key not in config]
    if missing:
        raise HarnessError(f"{path}: config lacks {', '.join(missing)} (see configs/x4.json)")
    unknown = [key for key in config if key not in KEYS and not key.startswith("_")]
    if unknown:
        raise HarnessError(
            f"{path}: unknown key {', '.join(unknown)}; expected {', '.join(KEYS)} (keys starting with _ are comments)"
        )
    for section in SECTIONS:
        if not isinstance(config.get(section, {}), dict):
            raise HarnessError(f'{path}: {section} must be an object of flags, e.g. {{"iters": 1000}}')
        check_phases(path, section, config.get(section, {}))
    return config


TRAINING_SECTIONS = ("branch_training", "merged_training", "final_training", "final_tuning")


def is_count(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def check_phases(path: str, section: str, options: dict[str, Any]) -> None:
    """``then``: a list of later lr phases of a training section, each with more ``iters`` than the one before."""
    if "then" not in options:
        return
    phases = options["then"]
    if section not in TRAINING_SECTIONS:
        raise HarnessError(f"{path}: {section} cannot have 'then' (only {', '.join(TRAINING_SECTIONS)} can)")
    if not isinstance(phases, list) or not all(isinstance(phase, dict) for phase in phases):
        raise HarnessError(f'{path}: {section}.then must be a list of objects of flags, e.g. [{{"iters": 2000, "lr": 1e-5}}]')
    previous = options.get("iters")
    if not is_count(previous):
        raise HarnessError(f"{path}: {section} needs an integer iters for its first phase when it has 'then'")
    for index, phase in enumerate(phases):
        if not is_count(phase.get("iters")) or phase["iters"] <= previous:
            raise HarnessError(f"{path}: {section}.then[{index}] needs an integer iters above the phase before it ({previous})")
        previous = phase["iters"]


def check_flags(steps: list[Step]) -> None:
    """Parse every stage's argv now: an unknown or malformed flag fails before the first stage runs."""
    modules = (branch, feature_fit, reparam, prune, export)
    parsers = {train_prfdn.cli: train_prfdn.parse_args, **{m.main: m.parse_args for m in modules}}
    for stage, entry, argv in steps:
        try:
            with contextlib.redirect_stderr(io.StringIO()) as err:
                parsers[entry](argv)
        except SystemExit:
            message = err.getvalue().strip().splitlines()[-1] if err.getvalue().strip() else "bad flags"
            raise HarnessError(f"stage {stage}: {message.split(': error: ')[-1]} (check the config's section for it)") from None


def plan(config: dict[str, Any]) -> list[Step]:
    """(stage, entry point, argv) for every stage to run, in order."""
    work = Path(config["work_dir"])
    out = {stage: str(work / f"{stage}.pth") for stage in STAGES}
    data = flags(config["data"])
    steps: list[Step] = [("branch", branch.main, [config["rfdn"], out["branch"]])]
    branched = out["branch"]
    if config.get("feature_fit", {}).get("iters", 0):
        fit_data = flags({k: v for k, v in config["data"].items() if k != "teacher"})  # the teacher is --rfdn here
        fit_argv = [branched, out["branch_fitted"], "--rfdn", config["rfdn"], *fit_data, *flags(config["feature_fit"])]
        steps.append(("branch_fitted", feature_fit.main, fit_argv))
        branched = out["branch_fitted"]
    steps += training_steps("branch_trained", branched, out["branch_trained"], data, config.get("branch_training", {}))
    steps.append(("merged", reparam.main, [out["branch_trained"], out["merged"], *flags(config.get("reparam", {}))]))
    merged = out["merged"]
    if config.get("merged_training", {}).get("iters", 0):
        steps += training_steps("merged_trained", merged, out["merged_trained"], data, config["merged_training"])
        merged = out["merged_trained"]
    steps.append(("pruned", prune.main, [merged, out["pruned"], *data, *flags(config.get("prune", {}))]))
    steps.append(("final", export.main, [out["pruned"], out["final"]]))
    final = out["final"]
    for stage, section in (("final_trained", "final_training"), ("final_tuned", "final_tuning")):
        if config.get(section, {}).get("iters", 0):
            steps += training_steps(stage, final, out[stage], data, config[section])
            final = out[stage]
    return steps


def training_steps(stage: str, src: str, dst: str, data: list[str], section: dict[str, Any]) -> list[Step]:
    """One train_prfdn.py step, and one ``--resume`` step per later lr phase in ``then`` (each phase's flags
    override those before it; a changed lr makes train_prfdn.py start a new lr phase of the same run)."""
    options = {key: value for key, value in section.items() if key != "then"}
    steps: list[Step] = [(stage, train_prfdn.cli, [src, dst, *data, *flags(options)])]
    for phase in section.get("then", []):
        options = {**options, **phase}
        steps.append((stage, train_prfdn.cli, [src, dst, *data, *flags(options), "--resume"]))
    return steps


def step_done(entry: Callable[[list[str]], int], argv: list[str]) -> bool:
    """A step is done when its output exists and, for training, its kept state (if any) has reached the step's
    iterations (a later lr phase, or iters raised in the config, goes on with the same run) and the output was
    written at them; a training step whose state is already past it (a later phase ran) is done even where its
    output is not there."""
    target = Path(argv[1])
    if entry is not train_prfdn.cli:
        return target.exists()
    state_path = train_prfdn.output_paths(target)["state"]
    if not state_path.is_file():
        return target.exists()
    try:
        state = train_prfdn.read_state(state_path)
    except HarnessError as err:
        raise HarnessError(str(err).removeprefix("--resume: ")) from None
    wanted = train_prfdn.parse_args(argv).iters or state["settings"]["iters"]
    if state["iteration"] != wanted or not target.exists():
        return state["iteration"] > wanted
    # a state stopped exactly at this phase's end beside an earlier phase's output: resuming writes the output
    # from the state (no training); taken as done, the older weights would pass for this phase's
    return read_model_checkpoint(target).provenance.get("iterations") == wanted


def check_made_from(target: Path, parent: Path, stage: str) -> None:
    """Refuse to skip a stage whose existing output was made from another parent file (e.g. an earlier
    stage was redone): skipping it would chain checkpoints of two different runs."""
    recorded = read_model_checkpoint(target).provenance.get("parent_sha256")
    if recorded is not None and parent.is_file() and recorded != sha256_of(parent):
        raise HarnessError(
            f"stage {stage}: {target} exists but was made from another {parent} (sha256 {recorded[:12]}...); "
            "use another work_dir, or --force to redo the stages"
        )


def next_stage(steps: list[Step]) -> tuple[str | None, list[Path]]:
    """The stage after the last one whose output exists (None when that is the last stage), and the files a
    machine needs to run it with ``--from``: its input, and the state and log of an interrupted training."""
    done = [i for i, (_, entry, argv) in enumerate(steps) if step_done(entry, argv)]
    following = done[-1] + 1 if done else 0
    if following == len(steps):
        return None, []
    stage, entry, argv = steps[following]
    files = [Path(argv[0])]
    if entry is train_prfdn.cli:
        paths = train_prfdn.output_paths(argv[1])
        files += [path for path in (paths["best"], paths["state"], paths["log"]) if path.exists()]
    return stage, files


def save_next(config_path: str, folder: str) -> str | None:
    """Copy into ``folder`` what a fresh machine needs to go on (see ``next_stage``), or, when every stage is
    done, the output and the training logs; the stage to go on ``--from`` (None: done)."""
    config = load_config(config_path)
    steps = plan(config)
    check_flags(steps)
    stage, files = next_stage(steps)
    if stage is None:
        logs = [train_prfdn.output_paths(argv[1])["log"] for _, entry, argv in steps if entry is train_prfdn.cli]
        files = [Path(config["output"]), *(log for log in logs if log.exists())]
    for file in files:
        if not file.is_file():
            raise HarnessError(f"--save_next: {file} is missing (run the pipeline first)")
        atomic_write(Path(folder) / file.name, lambda tmp, file=file: shutil.copyfile(file, tmp))
    names = " ".join(file.name for file in files)
    where = "every stage is done" if stage is None else f"go on with --from {stage}, these files in {config['work_dir']}"
    print(f"== save_next: {names} -> {folder} ({where})")
    return stage


def run(config_path: str, force: bool = False, until: str | None = None, start: str | None = None) -> Path:
    config = load_config(config_path)
    steps = plan(config)
    check_flags(steps)
    names = [stage for stage, _, _ in steps]
    for flag, stage in (("--until", until), ("--from", start)):
        if stage is not None and stage not in names:
            raise HarnessError(f"{flag} {stage}: this config skips that stage (its section's iters is 0 or missing)")
    if start is not None and until is not None and names.index(until) < names.index(start):
        raise HarnessError(f"--until {until} comes before --from {start}")
    if start is not None:
        steps = steps[names.index(start) :]
        if not Path(steps[0][2][0]).is_file():
            raise HarnessError(f"--from {start}: its input {steps[0][2][0]} is missing")
    Path(config["work_dir"]).mkdir(parents=True, exist_ok=True)
    for index, (stage, entry, argv) in enumerate(steps):
        target = Path(argv[1])
        if not force and step_done(entry, argv):
            if target.exists():
                check_made_from(target, Path(argv[0]), stage)
                print(f"== {stage}: {target} exists, skipped")
            else:
                print(f"== {stage}: its training state is past this phase, skipped")
        else:
            resumable = entry is train_prfdn.cli and train_prfdn.output_paths(target)["state"].exists()
            if resumable and not force and "--resume" not in argv:
                argv = [*argv, "--resume"]
            earlier = entry is train_prfdn.cli and any(p.exists() for p in train_prfdn.output_paths(target).values())
            if earlier and "--resume" not in argv:
                argv = [*argv, "--overwrite"]  # a new run of this stage: --force, or what a run that saved no state left
            print(f"== {stage}: {' '.join(argv)}")
            if entry(argv) != 0:
                raise HarnessError(f"stage {stage} failed (see its message above); fix it and run again to continue")
        last_of_stage = index + 1 == len(steps) or steps[index + 1][0] != stage
        if stage == until and last_of_stage:
            return target
    final = Path(steps[-1][2][1])  # the last stage's output
    atomic_write(config["output"], lambda tmp: shutil.copyfile(final, tmp))
    print(f"== done: {config['output']}")
    return Path(config["output"])


def main(argv: list[str] | None = None) -> int:
    parser = ArgumentParser(prog="run_pipeline.py", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("config", help="JSON config (see configs/x4.json)")
    parser.add_argument("--force", action="store_true", help="redo stages whose output exists")
    parser.add_argument("--until", choices=STAGES, default=None, help="stop after this stage")
    parser.add_argument(
        "--from", dest="start", choices=STAGES, default=None, help="start at this stage (only its input must exist)"
    )
    parser.add_argument(
        "--save_next", metavar="DIR", default=None, help="run nothing: copy what a fresh machine needs to go on into DIR"
    )
    args = parser.parse_args(argv)
    try:
        if args.save_next is not None:
            save_next(args.config, args.save_next)
        else:
            run(args.config, args.force, args.until, args.start)
    except (HarnessError, OSError) as err:
        print(f"run_pipeline.py: error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
