"""Run a set of short training runs from one start, one lever changed each, and tabulate their validation.

    python scripts/run_ablations.py configs/ablations_branch.json            # run (or resume) every run, then the table
    python scripts/run_ablations.py configs/ablations_branch.json --table    # only the table, from the logs so far
    python scripts/run_ablations.py configs/ablations_branch.json --table --kinds   # and each run's best weights per kind

The config names a start checkpoint (``src``), a work folder, the settings every run shares (``common``) and the
runs, each a name and its own settings (``flags``): objects of training and data settings by name, as
``train_prfdn.py --config`` reads them, with ``"no_progress": true`` for no progress bar (a list of ``train_prfdn.py``
flags is read too). Run ``NAME`` trains ``src`` into ``WORK/NAME.pth`` with
``common + flags``; a run with its own ``src`` starts from that instead (runs that compare starts, such as networks
of different cuts, under one recipe; the top-level ``src`` may then be left out); a run whose training state exists
is resumed (``--resume``), one that has reached its ``--iters`` is skipped, so the command continues where it
stopped (Ctrl-C or SIGTERM saves the state of the run in progress and stops, exit 130). The table gives, per run and
validation, the mean PSNR of each validation group as the training logs it (``held_out``: the images held out of
``--train_dir``; each kind of ``--val_dir`` image, ``training.data.validation_group``; logs written before the kinds
say ``val_dir``), read from ``WORK/NAME.log.jsonl``, with a first row for the config's ``reference`` checkpoint
(e.g. the official RFDN) scored on the same images, and is written to ``WORK/ablations.json`` and, with ``--json``,
to a results file. ``--kinds`` also scores the start (``NAME.start`` for a run with its own ``src``), the reference
and each run's best weights (``WORK/NAME.pth``) per kind of validation image: the held-out images, and the
``--val_dir`` images by the file-name prefix before the first ``_``, else their folder (for
``data/free/structured_val``: ``opencv`` photographs, ``clipart`` line art, ``skimage``), so a lever's effect on one
kind of content is not hidden in the mean (``WORK/kinds.json``; the rows of runs whose best weights are not there
now are kept from it).

A run with a ``prune`` list (``transform.prune`` flags after the config's ``prune_common``) trains ``src`` pruned:
``WORK/NAME.pruned.pth`` (``transform.prune``), exported to ``WORK/NAME.start.pth`` (``transform.export``) as the
pipeline makes its final network; files already there are used only when made from this ``src`` with these
settings (the pruning records them), any other is refused. ``--kinds`` adds a ``NAME.start`` row.

Before the first run trains, every run's flags (and pruning flags), ``src``, the ``--teacher`` and data folders
of each run to train, and its pruned files are checked. A ``--json`` file already there is replaced only with
``--overwrite``; a ``WORK/kinds.json`` or a log record that is not what this tool and ``train_prfdn.py`` write is
refused (one line naming the file and the log line), never replaced.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import sys
from collections.abc import Callable
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import numpy as np
import torch

from training import run as train_prfdn
from training.data import (
    DATA_FLAGS,
    FOLDER_FLAGS,
    DataSettings,
    ValidationImage,
    check_apart_from_data,
    check_data_folders,
    data_folders,
    fill_data_defaults,
    load_data_from_args,
)
from training.flags import SETTING_NAMES, settings_from_flags
from training.loop import TrainSettings, check_schedule_settings, check_teacher_cache, group_means, psnr_scores
from transform import export, prune
from utils.checkpoint import read_model_checkpoint, where_to_get
from utils.cli import ArgumentParser, run_command
from utils.config_file import describe, first_duplicate, read_json_config, read_settings
from utils.errors import HarnessError
from utils.fileio import atomic_write_text, check_distinct, check_new_output, sha256_of
from utils.model_io import load_model, load_teacher, read_flag_checkpoint
from utils.results import is_number

PROG = "run_ablations.py"


@dataclass(frozen=True)
class Run:
    name: str
    flags: tuple[str, ...]
    prune: tuple[str, ...] | None = None  # transform.prune flags: the run trains its source pruned with them
    src: Path | None = None  # the run's own start (default: the config's src)


@dataclass(frozen=True)
class AblationConfig:
    src: Path | None  # the start of every run that names none
    work_dir: Path
    common: tuple[str, ...]
    runs: tuple[Run, ...]
    reference: Path | None = None  # e.g. the official RFDN, scored on the same validation images
    prune_common: tuple[str, ...] = ()  # transform.prune flags every pruning run shares

    def argv(self, run: Run) -> list[str]:
        return [str(self.start(run)), str(self.out(run)), *self.common, *run.flags]

    def out(self, run: Run) -> Path:
        return self.work_dir / f"{run.name}.pth"

    def source(self, run: Run) -> Path:
        """The checkpoint a run starts from: its own ``src``, else the config's (``read_config`` makes sure one is)."""
        source = run.src or self.src
        assert source is not None
        return source

    def sources(self) -> list[Path]:
        """Every run's source, each once, in the runs' order."""
        return list(dict.fromkeys(self.source(run) for run in self.runs))

    def start(self, run: Run) -> Path:
        """What a run trains: its source, or for a pruning run its source pruned and exported
        (``WORK/NAME.start.pth``)."""
        return self.source(run) if run.prune is None else self.work_dir / f"{run.name}.start.pth"

    def pruned(self, run: Run) -> Path:
        return self.work_dir / f"{run.name}.pruned.pth"

    def prune_argv(self, run: Run) -> list[str]:
        return [str(self.source(run)), str(self.pruned(run)), *self.prune_common, *(run.prune or ())]


def _strings(value: Any, where: str) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise HarnessError(f"{where}: expected a list of strings (command-line flags)")
    return tuple(value)


def _flag_value(item: Any) -> str:
    """A setting's value as a flag's word: a float in full (``repr``), a whole one without ``.0`` (``--mix 1 3``)."""
    if isinstance(item, float):
        return str(int(item)) if item.is_integer() and abs(item) < 1e15 else repr(item)
    return str(item)


def _training_flags(value: Any, where: str) -> tuple[str, ...]:
    """A run's (or ``common``'s) training settings: an object of settings by name, as ``train_prfdn.py --config``
    reads them (each checked as its field's type), made into ``train_prfdn.py`` flags; or a list of those flags."""
    if not isinstance(value, dict):
        return _strings(value, where)
    quiet = value.get("no_progress", True)  # train_prfdn.py's switch, not a setting: no progress bar
    if quiet is not True:
        raise HarnessError(
            f"{where}.no_progress: expected true (a progress bar is the default: leave the key out), got {describe(quiet)}"
        )
    settings = {key: item for key, item in value.items() if key != "no_progress"}
    values = read_settings(settings, (TrainSettings, DataSettings), where, paths=(*FOLDER_FLAGS, "teacher"))
    switches = {f.name: f.metadata.get("flag", {}).get("action") for cls in (TrainSettings, DataSettings) for f in fields(cls)}
    flags: list[str] = []
    for name, setting in values.items():
        if isinstance(setting, bool) and switches.get(name) == "store_true":
            if not setting:  # no --no- form, so a run could not switch off common's true: refused rather than ignored
                raise HarnessError(f"{where}.{name}: expected true (false is its default: leave the key out)")
            flags.append(f"--{name}")
        elif isinstance(setting, bool):
            flags.append(f"--{name}" if setting else f"--no-{name}")
        elif setting is not None:
            items = setting if isinstance(setting, tuple) else (setting,)
            flags += [f"--{name}", *(_flag_value(item) for item in items)]
    return (*flags, "--no_progress") if "no_progress" in value else tuple(flags)


def read_config(path: str | Path) -> AblationConfig:
    """The config, its keys and types checked (one line naming the key if not)."""
    raw = read_json_config(path, "configs/ablations_branch.json")
    keys = {"src", "work_dir", "common", "runs", "reference", "prune_common", "data_root"}
    unknown = sorted(set(raw) - keys - {k for k in raw if k.startswith("_")})
    if unknown:
        raise HarnessError(
            f"{path}: unknown key {unknown[0]}; expected src, work_dir, common, runs, reference, prune_common, data_root"
        )
    if "reference" in raw and (not isinstance(raw["reference"], str) or not raw["reference"]):
        raise HarnessError(f"{path}: reference: expected a path (a checkpoint scored on the same validation images)")
    for key in ("src", "work_dir"):
        if (key in raw or key == "work_dir") and (not isinstance(raw.get(key), str) or not raw[key]):
            raise HarnessError(f"{path}: {key}: expected a path")
    runs_raw = raw.get("runs")
    if not isinstance(runs_raw, list) or not runs_raw:
        raise HarnessError(f"{path}: runs: expected a list of {{'name': ..., 'flags': {{...}}}} objects")
    runs = []
    for i, item in enumerate(runs_raw):
        if not isinstance(item, dict) or not isinstance(item.get("name"), str) or not item["name"].isidentifier():
            raise HarnessError(f"{path}: runs[{i}].name: expected a name of letters, digits and _")
        extra = sorted(key for key in item if key not in ("name", "flags", "prune", "src") and not key.startswith("_"))
        if extra:
            raise HarnessError(
                f"{path}: runs[{i}]: unknown key {extra[0]}; expected name, flags, prune, src (_ keys are comments)"
            )
        pruning = _strings(item["prune"], f"{path}: runs[{i}].prune") if "prune" in item else None
        if "src" in item and (not isinstance(item["src"], str) or not item["src"]):
            raise HarnessError(f"{path}: runs[{i}].src: expected a path (the checkpoint this run starts from)")
        if "src" not in item and "src" not in raw:
            raise HarnessError(f"{path}: runs[{i}]: no src; give the run one, or give the config a src for every run")
        own = Path(item["src"]) if "src" in item else None
        runs.append(Run(item["name"], _training_flags(item.get("flags", []), f"{path}: runs[{i}].flags"), pruning, own))
    twice = first_duplicate([run.name for run in runs])
    if twice:
        raise HarnessError(f"{path}: runs: the name {twice} is given twice")
    common = _training_flags(raw.get("common", []), f"{path}: common")
    prune_common = _strings(raw.get("prune_common", []), f"{path}: prune_common")
    reference = Path(raw["reference"]) if "reference" in raw else None
    src = Path(raw["src"]) if "src" in raw else None
    return AblationConfig(src, Path(raw["work_dir"]), common, tuple(runs), reference, prune_common)


def find_run(config: AblationConfig, name: str, where: str, label: str) -> Run:
    """The run called ``name``, or a HarnessError naming ``label`` and the config's runs."""
    for run in config.runs:
        if run.name == name:
            return run
    raise HarnessError(f"{label} {name}: not a run of {where} (its runs: {', '.join(run.name for run in config.runs)})")


def saved_iteration(out: Path) -> int | None:
    """The iteration a run's training state is at (None: no state yet)."""
    state = train_prfdn.output_paths(out)["state"]
    return int(train_prfdn.read_state(state)["iteration"]) if state.is_file() else None


def target_iters(argv: list[str]) -> int:
    return settings_from_flags(train_prfdn.parse_args(argv)).iters


def check_runs(config: AblationConfig, only: str | None = None) -> None:
    """Every run's command line parses and its settings are in range, and what the runs to train (all, or run
    ``only``) read is there, before the first run trains: ``src``, each run's ``--teacher`` and data folders."""
    training = [run for run in config.runs if only is None or run.name == only]
    sources = list(dict.fromkeys(config.source(run) for run in training))
    for source in sources:
        if not source.is_file():
            raise HarnessError(f"src {source}: checkpoint file not found{where_to_get(source)}")
    parsed, pruning = {}, {}
    for run in config.runs:
        job = parse_run(config, run)
        if run.prune is not None:
            pruning[run] = parse_prune(config, run)
        try:
            settings = settings_from_flags(job)
            settings.check()
            check_schedule_settings(settings.schedule, [name for name in SETTING_NAMES if getattr(job, name) is not None])
            settings.distill_weight = train_prfdn.distill_weight_of(job)
            check_teacher_cache(settings, job.teacher is not None)
            fill_data_defaults(job)
        except HarnessError as err:
            raise HarnessError(f"runs {run.name}: {err}") from None
        parsed[run] = job
    starts = {source: read_flag_checkpoint(source, "src") for source in sources}
    for source, checkpoint in starts.items():
        load_model(checkpoint, f"src {source}")  # loads into an architecture here
    teachers = set()
    for run, job in pruning.items():  # finished runs too: the table names these settings beside their figures
        check_pruned_files(config, run, job)
    for run, job in parsed.items():
        if (only is not None and run.name != only) or finished_at(config, run) is not None:
            continue  # not trained by this command
        try:
            for given in (job, pruning.get(run)):
                if given is None:
                    continue
                check_data_folders(given)
                if given.teacher is not None and (given.teacher, config.source(run)) not in teachers:
                    load_teacher(given.teacher, starts[config.source(run)])
                    teachers.add((given.teacher, config.source(run)))
            if run in pruning:
                check_pruning_to_make(config, run, pruning[run])
        except HarnessError as err:
            raise HarnessError(f"runs {run.name}: {err}") from None


def check_pruning_to_make(config: AblationConfig, run: Run, job: Any) -> None:
    """A pruning run still to train: a training state needs the start it was made from (pruning again makes
    another file, which the state would refuse after the pruning's hours); a pruning still to run must be able
    to reach its budget from ``src`` (as ``transform.prune`` would refuse it after the earlier runs' training)."""
    if config.start(run).is_file():
        return
    if saved_iteration(config.out(run)) is not None:
        raise HarnessError(
            f"{config.start(run)}: not found, but the training state {train_prfdn.output_paths(config.out(run))['state']} "
            "continues from it; put it back, or move the run's state, log and weights away to start the run over"
        )
    if not config.pruned(run).is_file():
        prune.planned_from_file(job)


def check_kept_pruning(config: AblationConfig) -> None:
    """For the table: every pruning run's files there match its settings (where its source is here to compare)."""
    for run in config.runs:
        if run.prune is not None and config.source(run).is_file():
            check_pruned_files(config, run, parse_prune(config, run))


def parse_prune(config: AblationConfig, run: Run) -> Any:
    """A pruning run's ``transform.prune`` job, checked as the stage checks it (a one-line HarnessError
    naming the run if not)."""
    job = _parsed(prune.CLI.parse_args, config.prune_argv(run), f"runs {run.name}: prune", prune.CLI.prog)
    try:
        prune._check_arguments(job)
    except HarnessError as err:
        raise HarnessError(f"runs {run.name}: prune: {err}") from None
    return job


def pruning_record_of(path: Path) -> dict[str, Any]:
    """The ``transform.prune`` record of a pruned file, or of the exported start made from one."""
    record = read_model_checkpoint(path).provenance
    if record.get("stage") == "final":
        record = record.get("parent_provenance") or {}
    return record if record.get("stage") == "pruned" else {}


def check_pruned_files(config: AblationConfig, run: Run, job: Any) -> None:
    """A pruning run's files already there (``WORK/NAME.pruned.pth``, ``WORK/NAME.start.pth``) were made from its
    source with these settings; any other is refused (one line naming it), never replaced."""
    src_sha = None
    for path in (config.pruned(run), config.start(run)):
        if not path.exists() and not path.is_symlink():
            continue
        record = pruning_record_of(path) if path.is_file() else {}
        src_sha = src_sha or sha256_of(config.source(run))
        if record.get("parent_sha256") != src_sha or "arguments" not in record or prune.changed_settings(record, job):
            raise HarnessError(
                f"{path}: not src {config.source(run)} pruned with this run's settings (prune_common + prune); move it away, "
                "or give the run another name (it is left as it is)"
            )


def prepare_start(config: AblationConfig, run: Run) -> None:
    """A pruning run's start, made where it is not there: ``src`` pruned (``transform.prune`` into
    ``WORK/NAME.pruned.pth``), then exported (``transform.export`` into ``WORK/NAME.start.pth``), as the pipeline
    makes its final network."""
    if run.prune is None or config.start(run).is_file():
        return
    if not config.pruned(run).is_file():
        print(f"{PROG}: {run.name}: pruning {config.source(run)}", flush=True)
        prune.CLI.execute(prune.CLI.parse_args(config.prune_argv(run)))
    export.CLI.execute(export.CLI.parse_args([str(config.pruned(run)), str(config.start(run))]))


def weights_iteration(out: Path) -> int | None:
    """The iteration a run's best weights (an existing file) were written at; None when not recorded."""
    iterations = read_model_checkpoint(out).provenance.get("iterations")
    return iterations if isinstance(iterations, int) else None


def finished_at(config: AblationConfig, run: Run) -> str | None:
    """How far a run that has reached its ``--iters`` went ("N iterations"); None while it has not. A state at
    its end beside best weights written at another iteration (stopped just there, or ``--iters`` lowered to where
    it stopped) is not finished: resuming writes the weights from the state. (A state kept without its weights,
    as committed, is finished.)"""
    iters = target_iters(config.argv(run))
    done = saved_iteration(config.out(run))
    if done is not None:
        written = weights_iteration(config.out(run)) if config.out(run).is_file() else done
        return f"{done} iterations" if done >= iters and written == done else None
    logged = max((r["iter"] for r in read_log(train_prfdn.output_paths(config.out(run))["log"])), default=0)
    return f"{logged} iterations, from its log" if logged >= iters else None  # its state was not kept


def run_all(config: AblationConfig, only: str | None = None) -> int:
    """Each run in turn (or run ``only``), resumed where its state is; the first exit code other than 0 stops
    the queue."""
    for run in config.runs:
        if only is not None and run.name != only:
            continue
        finished = finished_at(config, run)
        if finished is not None:
            print(f"{PROG}: {run.name}: done ({finished})")
            continue
        prepare_start(config, run)
        argv, done = config.argv(run), saved_iteration(config.out(run))
        print(f"{PROG}: {run.name}: {'resuming at ' + str(done) if done is not None else 'starting'}", flush=True)
        code = train_prfdn.cli(argv + (["--resume"] if done is not None else []))
        if code != 0:
            return code
    return 0


def read_log(path: Path) -> list[dict[str, Any]]:
    """A run's log records; a line that is no JSON object (cut off by a killed run) is no record, and a record
    whose figures are not what ``train_prfdn.py`` logs is refused (one line naming the log and the line)."""
    if not path.is_file():
        return []
    records = []
    for number, line in enumerate(path.read_text(encoding="utf-8", errors="replace").splitlines(), 1):
        try:
            record = json.loads(line)
        except (ValueError, RecursionError):  # not a record (as train_prfdn.py's resume reads its log)
            continue
        if isinstance(record, dict) and isinstance(record.get("iter"), int):
            check_log_record(record, f"{path} line {number}")
            records.append(record)
    return records


def check_log_record(record: dict[str, Any], where: str) -> None:
    """The figures the table reads from a log record: ``val_psnr`` and ``time`` numbers, ``val_groups`` an
    object of numbers."""
    for key in ("val_psnr", "time"):
        if key in record and not is_number(record[key]):
            raise HarnessError(f"{where}: {key} is {json.dumps(record[key])[:60]}; expected a number (as train_prfdn.py logs it)")
    groups = record.get("val_groups", {})
    if not isinstance(groups, dict) or not all(is_number(value) for value in groups.values()):
        raise HarnessError(
            f"{where}: val_groups is {json.dumps(groups)[:60]}; expected an object of PSNRs by validation group "
            "(as train_prfdn.py logs it)"
        )


def run_summary(config: AblationConfig, run: Run) -> dict[str, Any]:
    """A run's validations (iteration, overall and per-group PSNR) and its seconds per iteration."""
    records = read_log(train_prfdn.output_paths(config.out(run))["log"])
    validations = [
        {"iter": r["iter"], "val_psnr": r["val_psnr"], **{f"val_{k}": v for k, v in r.get("val_groups", {}).items()}}
        for r in records
        if "val_psnr" in r
    ]
    timed = [r for r in records if "time" in r and r["iter"] > 0]
    per_iter = None
    if len(timed) >= 2 and timed[-1]["iter"] > timed[0]["iter"]:
        per_iter = (timed[-1]["time"] - timed[0]["time"]) / (timed[-1]["iter"] - timed[0]["iter"])
    summary = {"name": run.name, "flags": list(run.flags), "validations": validations, "seconds_per_iteration": per_iter}
    if run.src is not None:
        summary["src"] = str(run.src)
    return summary if run.prune is None else {**summary, "prune": list(run.prune)}


def reference_scores(config: AblationConfig) -> dict[str, Any] | None:
    """The reference checkpoint's validation PSNR, overall and per group, on the runs' validation images
    (the data flags of ``common``); cached in WORK/reference_val.json while the checkpoint and flags are the same."""
    if config.reference is None:
        return None
    if not config.reference.is_file():
        raise HarnessError(f"reference {config.reference}: checkpoint file not found{where_to_get(config.reference)}")
    cache = config.work_dir / "reference_val.json"
    key = {"reference": str(config.reference), "sha256": sha256_of(config.reference), "common": list(config.common)}
    if cache.is_file():
        try:
            saved = json.loads(cache.read_text(encoding="utf-8"))
        except (OSError, ValueError, RecursionError):
            saved = None  # unreadable: scored again and rewritten
        same_reference = isinstance(saved, dict) and all(saved.get(k) == key[k] for k in ("reference", "sha256"))
        if same_reference and validation_settings(saved.get("common"), config) == validation_settings(key["common"], config):
            return saved
    checkpoint = read_flag_checkpoint(config.reference, "reference")
    model = load_model(checkpoint, f"reference {config.reference}")
    images = validation_images(config, checkpoint.data_range, checkpoint.scale)
    scores = psnr_scores(model, images, checkpoint.data_range, torch.device("cpu"))
    result = {**key, "val_psnr": float(np.mean(scores)), **{f"val_{k}": v for k, v in group_means(images, scores).items()}}
    config.work_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_text(cache, json.dumps(result, indent=1) + "\n")
    return result


def validation_settings(common: Any, config: AblationConfig) -> dict[str, Any] | None:
    """The data settings a ``common`` flag list gives (what the validation images depend on, however the flags
    were written: ``2e-4`` and ``0.0002`` alike); None where it is not one that parses."""
    if not isinstance(common, list) or not all(isinstance(flag, str) for flag in common):
        return None
    try:
        with contextlib.redirect_stderr(io.StringIO()):
            job = train_prfdn.parse_args([str(config.work_dir / "src.pth"), str(config.work_dir / "out.pth"), *common])
    except SystemExit:
        return None
    return {name: getattr(job, name) for name in DATA_FLAGS}


def validation_images(config: AblationConfig, data_range: float, scale: int) -> list[ValidationImage]:
    """The runs' validation images (the data flags of ``common``)."""
    job = train_prfdn.parse_args([str(config.sources()[0]), str(config.work_dir / "reference.pth"), *config.common])
    fill_data_defaults(job)
    return load_data_from_args(job, patch_size=job.patch_size or 48, seed=0, data_range=data_range, scale=scale).val


def kind_scores(config: AblationConfig) -> dict[str, dict[str, float]]:
    """Mean PSNR per kind of validation image of the start, the reference and each run's best weights."""
    checkpoints = {"start": config.src} if config.src is not None and any(run.src is None for run in config.runs) else {}
    checkpoints.update({"reference": config.reference} if config.reference else {})
    for run in config.runs:
        if (run.prune is not None or run.src is not None) and config.start(run).is_file():
            checkpoints[f"{run.name}.start"] = config.start(run)  # its own source, or pruned: before its training
        if config.out(run).is_file():
            checkpoints[run.name] = config.out(run)
    first = read_flag_checkpoint(config.sources()[0], "src")
    images = validation_images(config, first.data_range, first.scale)
    result = {}
    for name, path in checkpoints.items():
        checkpoint = read_flag_checkpoint(path, name)
        scores = psnr_scores(load_model(checkpoint, str(path)), images, checkpoint.data_range, torch.device("cpu"))
        result[name] = group_means(images, scores)  # the kinds are the validation groups the training logs
    return result


def read_kinds(path: Path) -> dict[str, dict[str, float]]:
    """The rows of an earlier ``--kinds`` (kept for runs whose best weights are not there now); none when there is
    no such file. A file that is not such rows is refused, never replaced (its rows would be lost)."""
    if not path.exists() and not path.is_symlink():
        return {}
    expected = (
        'expected the rows an earlier --kinds wrote ({"NAME": {"KIND": PSNR, ...}, ...}); fix it or move it away '
        "(it is left as it is)"
    )
    try:
        saved = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError, RecursionError) as err:
        reason = err.strerror if isinstance(err, OSError) and err.strerror else err
        raise HarnessError(f"WORK/kinds.json {path}: not readable as JSON ({reason}); {expected}") from None
    rows_ok = isinstance(saved, dict) and all(isinstance(row, dict) for row in saved.values())
    if not rows_ok or not all(is_number(value) for row in saved.values() for value in row.values()):
        raise HarnessError(f"WORK/kinds.json {path}: {expected}")
    return saved


def kinds_markdown(scores: dict[str, dict[str, float]]) -> str:
    kinds = list(next(iter(scores.values())))
    lines = ["| weights | " + " | ".join(kinds) + " |", "|---" * (len(kinds) + 1) + "|"]
    for name, values in scores.items():  # a row kept from an earlier --kinds may lack a kind: "-"
        lines.append(f"| {name} | " + " | ".join(f"{values[k]:.4f}" if k in values else "-" for k in kinds) + " |")
    return "\n".join(lines)


def table(config: AblationConfig, with_reference: bool = True) -> dict[str, Any]:
    runs = [run_summary(config, run) for run in config.runs]  # every log read (and checked) before any scoring
    return {
        "src": str(config.src) if config.src is not None else None,
        "common": list(config.common),
        "reference": reference_scores(config) if with_reference else None,
        "runs": runs,
    }


def group_keys(summary: dict[str, Any]) -> list[str]:
    """The ``val_<group>`` keys of the reference and of the runs' last validations, in the order they first appear
    (``held_out`` and ``val_dir`` in logs of a single --val_dir group, else each validation kind)."""
    rows = [summary.get("reference") or {}] + [run["validations"][-1] for run in summary["runs"] if run["validations"]]
    keys = dict.fromkeys(k for row in rows for k in row if k.startswith("val_") and k != "val_psnr")
    return list(keys)


def markdown(summary: dict[str, Any]) -> str:
    """One row per run: its flags, and the last validation's figures (each validation group, then all images)."""
    groups = group_keys(summary)
    names = ["held out" if key == "val_held_out" else key.removeprefix("val_") for key in groups]
    lines = [
        "| run | flags | iteration | " + " | ".join([*names, "all"]) + " | s/iter |",
        "| --- | --- | --- | " + " | ".join(["---"] * (len(groups) + 1)) + " | --- |",
    ]
    reference = summary.get("reference")
    if reference:
        cells = " | ".join(f"{reference[k]:.4f}" if k in reference else "-" for k in (*groups, "val_psnr"))
        lines.append(f"| reference | `{reference['reference']}` | - | {cells} | - |")
    for run in summary["runs"]:
        last = run["validations"][-1] if run["validations"] else {}
        cells = " | ".join(f"{last[key]:.4f}" if key in last else "-" for key in (*groups, "val_psnr"))
        speed = f"{run['seconds_per_iteration']:.3f}" if run["seconds_per_iteration"] else "-"
        flags = " ".join(run["flags"]) or "(common only)"
        if "prune" in run:
            flags = f"prune {' '.join(run['prune'])}".strip() + f"; train {flags}"
        if "src" in run:
            flags = f"src {run['src']}; {flags}"
        lines.append(f"| {run['name']} | `{flags}` | {last.get('iter', '-')} | {cells} | {speed} |")
    return "\n".join(lines)


def protected_files(config_path: str, config: AblationConfig) -> dict[str, Path]:
    """Files ``--json`` must not replace: the config, the start, the reference, what the runs write and each
    run's ``--teacher`` (its data images: ``check_apart_from_runs_data``)."""
    files = {"config": Path(config_path), "WORK/ablations.json": config.work_dir / "ablations.json"}
    files.update({f"src {source}": source for source in config.sources()})
    files["WORK/kinds.json"] = config.work_dir / "kinds.json"
    if config.reference is not None:
        files["reference"] = config.reference
    for run in config.runs:
        files.update({f"run {run.name} ({kind})": path for kind, path in train_prfdn.output_paths(config.out(run)).items()})
        if run.prune is not None:
            files.update({f"run {run.name} (pruned)": config.pruned(run), f"run {run.name} (start)": config.start(run)})
        job = parsed_run(config, run)
        if job is not None and job.teacher is not None:
            files[f"run {run.name}'s --teacher"] = Path(job.teacher)
    return files


def check_apart_from_runs_data(outputs: dict[str, str | Path], config: AblationConfig) -> None:
    """Refuse an output that is one of the images a run reads (through a link too), each folder set once."""
    seen = set()
    for run in config.runs:
        job = parsed_run(config, run)
        if job is None:
            continue
        folders = tuple(data_folders(job))
        if folders not in seen:
            seen.add(folders)
            check_apart_from_data(outputs, job)


def _parsed(parse: Callable[[list[str]], Any], argv: list[str], label: str, prog: str) -> Any:
    """``parse(argv)``, or a one-line HarnessError starting with ``label`` saying why the flags do not parse."""
    said = io.StringIO()
    try:
        with contextlib.redirect_stderr(said):
            return parse(argv)
    except SystemExit:
        reason = said.getvalue().strip().splitlines()[-1:] or ["its flags do not parse"]
        raise HarnessError(f"{label}: {reason[0].removeprefix(f'{prog}: error: ')}") from None


def parse_run(config: AblationConfig, run: Run) -> Any:
    """A run's ``train_prfdn.py`` job, or a one-line HarnessError saying why its settings do not parse."""
    return _parsed(train_prfdn.parse_args, config.argv(run), f"runs {run.name}", train_prfdn.PROG)


def parsed_run(config: AblationConfig, run: Run) -> Any:
    """A run's ``train_prfdn.py`` job; None where its settings do not parse (``check_runs`` says why)."""
    try:
        return parse_run(config, run)
    except HarnessError:
        return None


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = ArgumentParser(PROG, description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "config", help="JSON: src, work_dir, common (flags), runs ([{name, flags, prune}]), reference, prune_common (flags)"
    )
    parser.add_argument("--table", action="store_true", help="only tabulate the logs so far; train nothing")
    parser.add_argument("--json", default=None, help="also write the table to this JSON file")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing --json file")
    parser.add_argument("--kinds", action="store_true", help="also score the best weights per kind of validation image")
    parser.add_argument("--only", metavar="NAME", default=None, help="train only this run (the table still lists all)")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    return run_command(PROG, lambda: ablate(args), "run the same command again to continue (a pruning in progress starts over)")


def ablate(args: argparse.Namespace) -> int:
    """The command: check, train the runs still to train, tabulate (a run's training handles its own Ctrl-C)."""
    config = read_config(args.config)
    if args.json:
        check_distinct({"--json": args.json}, protected_files(args.config, config))
        check_apart_from_runs_data({"--json": args.json}, config)
        check_new_output(args.json, "--json", args.overwrite)
    if args.only is not None:
        find_run(config, args.only, args.config, "--only")
    earlier_kinds = read_kinds(config.work_dir / "kinds.json") if args.kinds else {}
    if not args.table:
        check_runs(config, args.only)
    else:
        check_kept_pruning(config)
    code = 0 if args.table else run_all(config, args.only)
    summary = table(config, with_reference=code == 0)  # an interrupted queue stops soon: no scoring
    config.work_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_text(config.work_dir / "ablations.json", json.dumps(summary, indent=1) + "\n")
    if args.json:
        atomic_write_text(args.json, json.dumps(summary, indent=1) + "\n")
    print(markdown(summary))
    if args.kinds and code == 0:
        scores = {**earlier_kinds, **kind_scores(config)}
        atomic_write_text(config.work_dir / "kinds.json", json.dumps(scores, indent=1) + "\n")
        print(kinds_markdown(scores))
    return code


if __name__ == "__main__":
    sys.exit(main())
