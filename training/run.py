"""Fine-tune a checkpoint of any stage (RFDN, branch, prfdn, prfdn_helpers, rfdn_chain) on folders of HR images.

    python train_prfdn.py SRC.pth OUT.pth --train_dir D [D ...] [--val_dir V | --val_fraction F]
    python train_prfdn.py SRC.pth OUT.pth --train_dir D --teacher team00_rfdn.pth --distill_weight 1
    python train_prfdn.py SRC.pth OUT.pth --config configs/train_cycle.json --minutes 240  # settings from a file
    python train_prfdn.py SRC.pth OUT.pth --resume                 # continue OUT.state.pth exactly
    python train_prfdn.py SRC.pth OUT.pth --resume --iters N --lr X  # go on to N iterations with a new lr phase
    python train_prfdn.py SRC.pth OUT.pth --resume --iters N --config l2.json  # {"loss": "l2"}: the MSE (new phase)
    python train_prfdn.py SRC.pth OUT.pth --overwrite ...            # start afresh over OUT's earlier run
    torchrun --nproc_per_node 2 train_prfdn.py SRC.pth OUT.pth ...  # DistributedDataParallel

Writes OUT.pth (best weights by validation PSNR), OUT_last.pth (last weights), both self-describing
checkpoints of SRC's architecture with provenance, OUT.state.pth (resumable training state) and
OUT.log.jsonl (one JSON line per log interval / validation). Ctrl-C saves the state and exits 130.
Where any of these four files exists, the run is refused unless --resume (continue it) or --overwrite (a new
run over it) is given; none of them may be SRC, --teacher or a data image. Every check is made before training.
"""

from __future__ import annotations

import argparse
import contextlib
import sys
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist

from training.data import (
    DATA_FLAGS,
    DataSettings,
    TrainData,
    add_data_arguments,
    check_apart_from_data,
    describe_data_change,
    fill_data_defaults,
    load_data_from_args,
)
from training.flags import (
    FAST_PATH_TEXT,
    RARE_SETTINGS,
    SETTING_NAMES,
    add_setting_arguments,
    apply_config_file,
    fill_fast_path,
)
from training.loop import (
    MAX_ITERS,
    FitResult,
    JsonlLog,
    TrainingInterruptedError,
    TrainSettings,
    check_feature_distill,
    check_schedule_settings,
    check_teacher_cache,
    default_lr,
    distributed_active,
    fit,
    init_distributed,
    loss_changed,
    read_log_lines,
    starts_new_lr_phase,
    truncate_log,
    world,
)
from utils.checkpoint import (
    ModelCheckpoint,
    check_training_state,
    safe_load,
    save_model_checkpoint,
    save_torch_file,
    weights_sha256,
)
from utils.cli import ArgumentParser
from utils.errors import HarnessError
from utils.fileio import (
    atomic_write_text,
    check_distinct,
    check_output_file,
    exclusive_run,
    sha256_of,
    write_target,
)
from utils.inference import resolve_device
from utils.model_io import load_model, load_teacher, read_flag_checkpoint
from utils.provenance import is_recorded_parent, provenance
from utils.settings import job_class

REPO_ROOT = Path(__file__).resolve().parents[1]
PROG = "train_prfdn.py"

SETTING_FLAGS = SETTING_NAMES  # every TrainSettings field a user sets

# One run of train_prfdn.py: its paths and switches, then every data and training setting, each None where not
# given (the stage's default applies, or on --resume the resumed run's value).
TrainJob = job_class(
    "TrainJob",
    (
        ("src", str, None),
        ("out", str, None),
        ("resume", bool, False),
        ("overwrite", bool, False),
        ("accept_data_change", bool, False),
        ("no_progress", bool, False),
        ("config", str, None),
    ),
    ((DataSettings, None), (TrainSettings, SETTING_FLAGS)),
)


def output_paths(out: str | Path) -> dict[str, Path]:
    """OUT.pth -> best OUT.pth, last OUT_last.pth, state OUT.state.pth, log OUT.log.jsonl."""
    out = Path(out)
    if out.name in ("", ".", ".."):
        raise HarnessError(f"OUT {str(out)!r}: expected a file name (e.g. runs/model.pth)")
    return {
        "best": out,
        "last": out.with_name(f"{out.stem}_last{out.suffix}"),
        "state": out.with_name(f"{out.stem}.state{out.suffix}"),
        "log": out.with_name(f"{out.stem}.log.jsonl"),
    }


OUTPUT_LABELS = {"best": "OUT", "last": "OUT_last", "state": "OUT.state", "log": "OUT.log"}


def labelled_outputs(paths: dict[str, Path]) -> dict[str, Path]:
    return {OUTPUT_LABELS[key]: path for key, path in paths.items()}


def every_output(job: TrainJob, paths: dict[str, Path]) -> dict[str, Path]:
    """Each file a run may write, by label: OUT, its siblings and OUT_snapshot."""
    return {**labelled_outputs(paths), "OUT_snapshot": snapshot_path(job.out)}


def check_apart_from_inputs(job: TrainJob, paths: dict[str, Path]) -> None:
    """Refuse an output that is SRC, --teacher, an image of the data folders, or another output."""
    outputs = every_output(job, paths)
    check_distinct(outputs, {"SRC": job.src, "--teacher": job.teacher, "--select_against": job.select_against})
    check_apart_from_data(outputs, job)


def check_outputs(job: TrainJob, paths: dict[str, Path]) -> None:
    """Refuse, before any work, outputs that cannot be written or are inputs, and an earlier run's files
    without --resume or --overwrite."""
    if job.resume and job.overwrite:
        raise HarnessError("--resume and --overwrite: give one of them (continue OUT's run, or start a new one over it)")
    if job.accept_data_change and not job.resume:
        raise HarnessError("--accept_data_change: only with --resume (a new run reads its data folders as they are)")
    for label, path in labelled_outputs(paths).items():
        check_output_file(path, label)
    check_apart_from_inputs(job, paths)
    if not (job.resume or job.overwrite):
        for label, path in labelled_outputs(paths).items():
            if path.exists():
                raise HarnessError(
                    f"{label} {path}: exists from an earlier run; give --resume to continue that run, or --overwrite "
                    "to start a new one over it"
                )


def start_fresh(paths: dict[str, Path]) -> None:
    """A new run (also over an earlier one, --overwrite): a fresh log and no earlier state to resume by mistake;
    the earlier best and last weights stay until this run replaces them."""
    write_target(paths["state"]).unlink(missing_ok=True)
    atomic_write_text(paths["log"], "")


def read_state(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise HarnessError(f"--resume: {path} not found (no interrupted run of this OUT to continue)")
    try:
        state = safe_load(path)
    except HarnessError as err:
        raise HarnessError(f"--resume: {err}") from None
    check_training_state(state, f"--resume: {path}")
    if not isinstance(state.get("run"), dict):
        raise HarnessError(f"--resume: {path}: a training state without its run record (expected one written by {PROG})")
    return state


def check_resume(state: dict[str, Any], path: Path, src: Path, src_sha: str, checkpoint: ModelCheckpoint) -> None:
    """The state continues training of ``src``: the same file, or the same weights written again (a finished
    stage's output rebuilt from its state, e.g. in a fresh clone, carries a new time and commit)."""
    run = state["run"]
    if run.get("arch") != checkpoint.arch or run.get("config") != checkpoint.config:
        raise HarnessError(f"--resume: {path} is from another model ({run.get('arch')}, not {src}'s {checkpoint.arch})")
    if not is_recorded_parent(run, src, checkpoint, src_sha):
        raise HarnessError(
            f"--resume: {path} continues training of another SRC ({run.get('parent')}, sha256 "
            f"{str(run.get('parent_sha256'))[:12]}...), not {src} ({src_sha[:12]}...)"
        )


def check_resumed_settings(state: dict[str, Any], path: Path, settings: TrainSettings) -> None:
    """What a resumed run keeps: its seed (its patch stream) and how it chooses its best weights (``--select``: the
    best so far was chosen by it, so another rule would compare figures of two kinds)."""
    saved = state["settings"]
    if settings.seed != saved.get("seed", settings.seed):
        raise HarnessError(
            f"--seed {settings.seed}: {path} was trained with --seed {saved['seed']} (its patch stream); a resumed run keeps it"
        )
    if settings.select != saved.get("select", TrainSettings.select):
        raise HarnessError(
            f"--select {settings.select}: {path} chose its best weights by --select {saved.get('select', TrainSettings.select)}; "
            "a resumed run keeps it (start a new run from its OUT_last.pth to choose by another rule)"
        )
    if settings.select_against != saved.get("select_against"):
        raise HarnessError(
            f"--select_against {settings.select_against}: {path} measured its validation groups against "
            f"{saved.get('select_against') or 'the --teacher'}; a resumed run keeps it"
        )


def check_same_reference(state: dict[str, Any], path: Path, job: TrainJob, paths: dict[str, Path], against: str) -> None:
    """A resumed run's ``select_against``: not one of its outputs, and the same weights its best so far was measured
    against (a file replaced since, e.g. the submission a cycle measures against, would mix figures of two kinds)."""
    check_distinct(every_output(job, paths), {"--select_against": against})
    saved = state["run"].get("select_against_sha256")
    if saved is not None and Path(against).is_file() and sha256_of(against) != saved:
        raise HarnessError(
            f"--select_against {against}: changed since {path} was written (another sha256); a resumed run measures "
            "against the same weights: restore the file, or start a new run"
        )


def check_snapshot_output(job: TrainJob, settings: TrainSettings) -> None:
    """With ``--snapshot_minutes``: OUT_snapshot.pth can be written, and one already there is replaced only by the run
    it belongs to (``--resume``) or on request (``--overwrite``)."""
    if settings.snapshot_minutes is None:
        return
    path = snapshot_path(job.out)
    check_output_file(path, "OUT_snapshot")
    if path.exists() and not (job.resume or job.overwrite):
        raise HarnessError(
            f"OUT_snapshot {path}: exists from an earlier run; give --resume to continue that run, or --overwrite to start "
            "a new one over it"
        )


def distill_weight_of(job: TrainJob) -> float:
    """``--distill_weight`` as given, else a new run's default: 1 with a ``--teacher``, 0 without."""
    if job.distill_weight is not None:
        return job.distill_weight
    return 1.0 if job.teacher else 0.0


def resolve_settings(job: TrainJob, arch: str, saved: dict[str, Any] | None) -> TrainSettings:
    """Flags given > the resumed state's settings > the stage's defaults."""
    if saved is None:  # a new run: the fast path where it helps (a resumed run keeps its own)
        fill_fast_path(job)
    if saved is not None:
        settings = TrainSettings.from_dict(saved)
    else:
        settings = TrainSettings(
            lr=default_lr(arch),
            device=resolve_device(None).type,
            distill_weight=distill_weight_of(job),
        )
    for name in SETTING_FLAGS:
        value = getattr(job, name)
        if value is not None:
            setattr(settings, name, value)
    if saved is None and settings.minutes is not None and job.iters is None:
        settings.iters = MAX_ITERS  # a run bounded by its training time
    resolve_device(settings.device)  # refuses cuda on a machine without it
    if job.no_progress:
        settings.progress = False
    settings.check()
    return settings


def resolve_data_args(job: TrainJob, saved: dict[str, Any] | None) -> None:
    """On --resume, data flags not given again are taken from the state."""
    if saved is not None:
        for name in DATA_FLAGS:
            if getattr(job, name) is None:
                setattr(job, name, saved.get(name))
    if not job.train_dir:
        raise HarnessError("--train_dir: give at least one folder of training images")
    fill_data_defaults(job)


def announce_resume(state: dict[str, Any], settings: TrainSettings) -> None:
    """Tell on stderr what a resume with other settings changes (once every check has passed), and that a run whose
    training time is spent (``--minutes``) trains no further (its outputs are written from the state)."""
    elapsed = float(state.get("elapsed", 0.0))
    if settings.minutes is not None and elapsed >= 60.0 * settings.minutes:
        print(
            f"{PROG}: --resume: the run has trained {elapsed / 60:.2f} minutes, --minutes {settings.minutes:g}: no time left, "
            "so nothing is trained; its outputs are written from the state (give more --minutes to go on)",
            file=sys.stderr,
        )
    if loss_changed(state["settings"], settings):
        print(f"{PROG}: --resume with --loss {settings.loss}: Adam's moments start afresh", file=sys.stderr)
    if starts_new_lr_phase(state["settings"], settings):
        print(
            f"{PROG}: --resume starts a new learning-rate phase: from iteration {state['iteration']} the lr is "
            f"{settings.lr:g} (plateau: {settings.lr_after_plateau:g} after {settings.plateau_patience})",
            file=sys.stderr,
        )


def changed_data_flags(saved: dict[str, Any], job: TrainJob) -> list[str]:
    """The data flags a resume gives otherwise than the resumed run (``saved``: its ``data_args``)."""
    return [name for name in DATA_FLAGS if saved.get(name) != getattr(job, name)]


def announce_data_change(saved: dict[str, Any], job: TrainJob) -> None:
    """Tell on stderr which data flags a resume changes: from its iteration on, patches come from the new data."""
    changed = changed_data_flags(saved, job)
    if changed:
        flags = ", ".join(f"--{name} {getattr(job, name)}" for name in changed)
        print(f"{PROG}: --resume with other data ({flags}): the patches from here on come from it", file=sys.stderr)


def check_same_images(state: dict[str, Any], path: Path, data: TrainData, job: TrainJob) -> None:
    """A resume reads the images its run was trained and validated on: an image added to, gone from or changed in the
    same folders (the held-out split may change with them) is refused, naming the change, unless
    ``--accept_data_change``; with other data flags, or accepted, the change is said on stderr. A state written
    before the images were recorded is not compared."""
    saved = state["run"].get("data_images")
    if not isinstance(saved, dict):
        return
    change = describe_data_change(saved, data.images)
    if change is None:
        return
    if not (job.accept_data_change or changed_data_flags(state["run"]["data_args"], job)):
        raise HarnessError(
            f"--resume: the data folders changed since {path} was written: {change}; the run would go on with other "
            "patches and validation images. Restore the folders, or give --accept_data_change to go on with them as they are"
        )
    print(f"{PROG}: --resume with changed data folders: {change}", file=sys.stderr)


def training_record(
    run: dict[str, Any], data: TrainData, settings: TrainSettings, weights: str, iterations: int, **extra: Any
) -> dict[str, Any]:
    """The provenance of weights a training wrote (``weights``: best, last or snapshot) after ``iterations``."""
    return provenance(
        "train",
        run["parent"],
        run["parent_provenance"],
        parent_sha256=run["parent_sha256"],
        parent_weights_sha256=run.get("parent_weights_sha256"),
        weights=weights,
        parent_arch=run["arch"],
        iterations=iterations,
        data=data.description,
        settings=asdict(settings),
        teacher=run["teacher"],
        teacher_sha256=run["teacher_sha256"],
        select_against_sha256=run.get("select_against_sha256"),
        **extra,
    )


def build_provenance(
    job: TrainJob, run: dict[str, Any], data: TrainData, settings: TrainSettings, result: FitResult, weights: str
) -> dict[str, Any]:
    return training_record(
        run,
        data,
        settings,
        weights,
        result.iterations,
        best_iteration=result.best_iteration,
        best_val_psnr=result.best_psnr,
        initial_val_psnr=result.initial_psnr,
        world_size=world()[1],
        resumed=bool(job.resume),
    )


def snapshot_writer(
    path: Path, checkpoint: ModelCheckpoint, run: dict[str, Any], data: TrainData, settings: TrainSettings
) -> Callable[[dict[str, torch.Tensor], int], None]:
    """What ``fit`` calls every ``--snapshot_minutes``: the weights so far as ``OUT_snapshot.pth`` (replaced each time),
    a self-describing checkpoint like OUT's, so a run cut short on a borrowed machine still leaves weights."""

    def save(weights: dict[str, torch.Tensor], iteration: int) -> None:
        record = training_record(run, data, settings, "snapshot", iteration)
        out = ModelCheckpoint(checkpoint.arch, checkpoint.config, weights, checkpoint.scale, checkpoint.data_range, record)
        save_model_checkpoint(path, out)

    return save


def snapshot_path(out: str | Path) -> Path:
    out = Path(out)
    return out.with_name(f"{out.stem}_snapshot{out.suffix}")


def write_state(path: Path, state: dict[str, Any], run: dict[str, Any]) -> None:
    save_torch_file(path, {**state, "run": run})


def check_unchanged_since_checked(job: TrainJob, paths: dict[str, Path], state: dict[str, Any] | None) -> None:
    """Once OUT is claimed: no other run wrote it since the checks (one that ended in between is not replaced)."""
    if state is None:
        check_outputs(job, paths)
    elif read_state(paths["state"])["iteration"] != state["iteration"]:
        raise HarnessError(f"--resume: {paths['state']} was continued by another run meanwhile; run --resume again")


def main(job: TrainJob) -> FitResult:
    paths = output_paths(job.out)
    check_outputs(job, paths)
    src = Path(job.src)
    state = read_state(paths["state"]) if job.resume else None
    if state:
        read_log_lines(paths["log"])  # a log that --resume could not trim is refused now, before any work
    resolve_data_args(job, state["run"]["data_args"] if state else None)
    if state:
        check_apart_from_inputs(job, paths)  # the teacher and data folders the state names
    checkpoint = read_flag_checkpoint(src, "SRC")
    model = load_model(checkpoint, f"SRC {src}")
    src_sha = sha256_of(src)
    if state:
        check_resume(state, paths["state"], src, src_sha, checkpoint)
        if job.iters is not None and job.iters < state["iteration"]:
            raise HarnessError(f"--resume: {paths['state']} is at iteration {state['iteration']}, past --iters {job.iters}")
    given = [name for name in SETTING_FLAGS if getattr(job, name) is not None]
    settings = resolve_settings(job, checkpoint.arch, state["settings"] if state else None)
    check_schedule_settings(settings.schedule, given)
    if state:
        check_resumed_settings(state, paths["state"], settings)
        if settings.select_against:
            check_same_reference(state, paths["state"], job, paths, settings.select_against)
    check_snapshot_output(job, settings)
    if settings.distill_weight > 0 and not job.teacher:
        raise HarnessError("--distill_weight > 0 needs a --teacher (a checkpoint of the official RFDN)")
    if settings.select == "worst_gap" and not (job.teacher or settings.select_against):
        raise HarnessError(
            "--select worst_gap needs a --teacher or --select_against (the reference each validation group is measured against)"
        )
    if settings.select == "worst_gap" and not (job.val_fraction or job.val_dir):
        raise HarnessError(
            "--select worst_gap: needs validation images (--val_dir, or --val_fraction above 0) to measure the groups on"
        )
    teacher = load_teacher(job.teacher, checkpoint) if job.teacher else None
    against = settings.select_against
    reference = load_teacher(against, checkpoint, "select_against") if against else None
    if settings.feature_distill > 0:
        check_feature_distill(model, teacher)
    check_teacher_cache(settings, teacher is not None)
    device = init_distributed(settings.device)
    if world()[1] > 1:
        settings.device = str(device)
    data = load_data_from_args(
        job, patch_size=settings.patch_size, seed=settings.seed, data_range=checkpoint.data_range, scale=checkpoint.scale
    )
    if state:
        check_same_images(state, paths["state"], data, job)
        announce_resume(state, settings)
        announce_data_change(state["run"]["data_args"], job)
    run = {
        "parent": str(src),
        "parent_sha256": src_sha,
        "parent_weights_sha256": weights_sha256(checkpoint),
        "parent_provenance": checkpoint.provenance,
        "arch": checkpoint.arch,
        "config": checkpoint.config,
        "teacher": job.teacher,
        "teacher_sha256": sha256_of(job.teacher) if job.teacher else None,
        "select_against_sha256": sha256_of(against) if against else None,
        "data_args": {name: getattr(job, name) for name in DATA_FLAGS},
        "data_images": data.images,
    }
    rank = world()[0]
    with exclusive_run(paths["state"], "OUT") if rank == 0 else contextlib.nullcontext():
        if rank == 0:
            check_unchanged_since_checked(job, paths, state)
            check_snapshot_output(job, settings)
            paths["best"].parent.mkdir(parents=True, exist_ok=True)
            if state is None:
                start_fresh(paths)
            else:
                truncate_log(paths["log"], int(state["iteration"]))  # records a killed run wrote after its state
        result = fit(
            model,
            data.train,
            data.val,
            settings,
            teacher=teacher,
            state=state,
            log=JsonlLog(paths["log"]) if rank == 0 else None,
            save_state=lambda st: write_state(paths["state"], st, run),
            save_snapshot=snapshot_writer(snapshot_path(job.out), checkpoint, run, data, settings),
            reference=reference,
        )
        if rank == 0:
            for key, weights in (("best", result.best_state_dict), ("last", result.last_state_dict)):
                provenance = build_provenance(job, run, data, settings, result, key)
                out = ModelCheckpoint(
                    checkpoint.arch, checkpoint.config, weights, checkpoint.scale, checkpoint.data_range, provenance
                )
                save_model_checkpoint(paths[key], out)
            write_state(paths["state"], result.state, run)
            best = "n/a (no validation images)" if result.best_psnr is None else f"{result.best_psnr:.4f} dB"
            print(f"{PROG}: {result.iterations} iterations; best validation PSNR {best} at iteration {result.best_iteration}")
            print(f"{PROG}: wrote {paths['best']}, {paths['last']}, {paths['state']}, {paths['log']}")
        return result


def parse_args(argv: list[str] | None = None) -> TrainJob:
    parser = ArgumentParser(PROG, description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("src", help="checkpoint to start from (any stage; a plain state dict is the official RFDN)")
    parser.add_argument("out", help="best weights go here; OUT_last.pth, OUT.state.pth and OUT.log.jsonl beside it")
    add_data_arguments(parser, unlisted=RARE_SETTINGS)
    opt = parser.add_argument_group("training (default: the stage's recipe, or the resumed run's)")
    add_setting_arguments(
        opt,
        SETTING_FLAGS,
        unlisted=RARE_SETTINGS,
        default_text={
            "lr": "1e-5 branch, 1e-6 prfdn*, 1e-5 other",
            "iters": "10000; with --minutes, no bound but the time",
            "distill_weight": "1 with --teacher, else 0",
            "device": "cuda when available",
            "grad_clip": "off",
            "amp": "off",
            "ema_decay": "0",
            **FAST_PATH_TEXT,
        },
    )
    parser.add_argument(
        "--resume",
        action="store_true",
        help="continue OUT.state.pth exactly (another --lr, --lr_after_plateau or --plateau_patience: a new lr phase)",
    )
    parser.add_argument(
        "--overwrite",
        action="store_true",
        help="start a new run where OUT, OUT_last, OUT.state.pth or OUT.log.jsonl exist (their earlier run is replaced)",
    )
    parser.add_argument(
        "--accept_data_change",
        action="store_true",
        help="with --resume: go on although images were added to, removed from or changed in the data folders since",
    )
    parser.add_argument("--no_progress", action="store_true", help="no progress bar")
    parser.add_argument(
        "--config",
        metavar="FILE",
        help='JSON object of training and data settings by name, e.g. {"warmup": 200, "ema_decay": 0.999} (configs/'
        "train_cycle.json); a flag given on the command line wins. Besides the settings listed here it takes the "
        f"rarely changed ones: {', '.join(RARE_SETTINGS)} (docs/cli.md)",
    )
    job = TrainJob(**vars(parser.parse_args(argv)))
    if job.config is not None:
        try:
            apply_config_file(job, job.config)
        except HarnessError as err:
            parser.error(str(err))
    return job


def cli(argv: list[str] | None = None) -> int:
    job = parse_args(argv)
    state_path = None
    try:
        state_path = output_paths(job.out)["state"]
        main(job)
        if distributed_active():
            # Rank 0 still writes the outputs when the others finish; a rank that tears gloo down while its
            # peer is connected can abort ("terminate called without an active exception"), so wait for all.
            dist.barrier()
    except (HarnessError, OSError) as err:
        print(f"{PROG}: error: {err}", file=sys.stderr)
        return 2
    except TrainingInterruptedError as stop:
        print(
            f"{PROG}: interrupted after iteration {stop.iteration}; state saved to {state_path} (continue with --resume)",
            file=sys.stderr,
        )
        return 130
    except KeyboardInterrupt:
        saved = "the last saved state is in" if state_path is not None and state_path.is_file() else "no state saved yet at"
        print(f"{PROG}: interrupted; {saved} {state_path}", file=sys.stderr)
        return 130
    finally:
        if distributed_active():
            dist.destroy_process_group()
    return 0


if __name__ == "__main__":
    sys.exit(cli())
