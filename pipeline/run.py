"""The whole PRFDN transform from the official RFDN, one command, one config file.

    python scripts/run_pipeline.py configs/x4.json [--force] [--from STAGE] [--until STAGE]

Stages, each writing WORK_DIR/<stage>.pth, called as functions with the config's typed values as their arguments:
branch (transform.branch) -> branch_fitted (transform.feature_fit; skipped without a ``feature_fit``
section or when its ``iters`` is 0) -> branch_trained (train_prfdn.py) -> merged (transform.reparam)
-> merged_trained (train_prfdn.py, skipped when its ``iters`` is 0) -> pruned (transform.prune)
-> final (transform.export) -> final_trained (train_prfdn.py, skipped when ``final_training.iters`` is 0)
-> final_tuned (train_prfdn.py from final_trained with its own recipe, e.g. a higher lr with a plateau drop;
skipped without a ``final_tuning`` section or when its ``iters`` is 0). The last stage that ran is copied to
``output``.
A stage whose output exists is skipped (so an interrupted run continues), unless ``--force``; an output made
from another parent file than the one there now is refused instead (it belongs to another run), and so is a
kept pruned network made with other settings than the ``prune`` section gives (``device`` aside). Training
stages resume their own runs (``--resume``) when a training state is there. A training section may list later
learning-rate phases of the same run under ``then`` (e.g. ``"then": [{"iters": 29000, "lr": 2e-5}]``): each
continues it with ``--resume`` to its own ``iters``, its flags overriding the ones before. Paths in the config are
relative to the folder you run from. See configs/x4.json for every key. ``--from STAGE`` starts there: the
earlier stages are neither run nor looked for, only STAGE's input must be there (for a machine that holds
only that file, e.g. a fresh GPU machine). ``--save_next DIR`` runs nothing: it copies into DIR what a fresh
machine needs to go on (the input of the stage after the last finished one, and the training state and log of
an interrupted run of it; once every stage is done, the output and the training logs) and prints the
``--from`` to use there.

Nothing runs before everything is checked (one line naming the key or file, exit code 2): the config's keys,
types and ranges and every stage's flags (``pipeline/config.py``); then, for the stages to run, their inputs (the
RFDN, the data folders, the teacher), that ``work_dir`` and ``output`` can be written, that ``output`` is not an
input, the config or one of the run's own stage files, and that a stage set to ``cuda`` has it.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import io
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from models.helpers import HelperPRFDN
from pipeline.config import PipelineConfig, config_keys, merged_structure, parse_config, read_paths
from training import run as train_prfdn
from training.data import TrainData, data_folders, fill_data_defaults, image_folder, load_data_from_args
from training.loop import TrainSettings
from transform import branch, export, feature_fit, prune, reparam
from transform.helpers import with_helpers
from utils.checkpoint import read_model_checkpoint
from utils.cli import ArgumentParser, run_command
from utils.config_file import read_json_config
from utils.datasets import SCALE
from utils.errors import HarnessError, TrainingInterruptedError
from utils.fileio import atomic_write, check_distinct, check_output_file, exclusive_run, same_file, sha256_of
from utils.inference import resolve_device
from utils.model_io import load_model
from utils.provenance import is_recorded_parent
from utils.settings import named_as

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
# The config section of each stage's flags (for messages in the config's words).
STAGE_SECTIONS = {
    "branch_fitted": "feature_fit",
    "branch_trained": "branch_training",
    "merged_trained": "merged_training",
    "pruned": "prune",
    "final_trained": "final_training",
    "final_tuned": "final_tuning",
}
TRAINED_STAGES = ("branch_trained", "merged_trained", "final_trained", "final_tuned")  # train_prfdn.py's outputs


@dataclass(frozen=True)
class Step:
    """One stage to run: the function that runs it (raising HarnessError on bad input, KeyboardInterrupt or
    TrainingInterruptedError when stopped) and its job (``transform.common.StageCLI.job_for``, ``train_prfdn.TrainJob``)."""

    stage: str
    run: Callable[[Any], Any]
    job: Any
    folders_key: str = "data"  # the config key giving the step's extra_train_dir (TrainingSection.folder_keys)

    @property
    def trains(self) -> bool:
        return self.run is train_prfdn.main

    @property
    def src(self) -> Path:
        return Path(self.job.src)

    @property
    def dst(self) -> Path:
        return Path(self.job.out if self.trains else self.job.dst)


def load_config(path: str) -> dict[str, Any]:
    """The config's JSON object, its keys and its paths checked (``scripts/report.py`` reads a run's files by them;
    ``parse_config`` checks the whole config, as running it needs)."""
    read_paths(path)
    return read_json_config(path, "configs/x4.json")


def plan(config: PipelineConfig) -> list[Step]:
    """Every stage to run, in order, with its job."""
    work = Path(config.work_dir)
    out = {stage: str(work / f"{stage}.pth") for stage in STAGES}
    steps = [Step("branch", branch.CLI.execute, config.branch_job(config.rfdn, out["branch"]))]
    branched = out["branch"]
    if config.feature_fit is not None:
        steps.append(Step("branch_fitted", feature_fit.CLI.execute, config.feature_fit_job(branched, out["branch_fitted"])))
        branched = out["branch_fitted"]
    steps += training_steps(config, "branch_training", "branch_trained", branched, out["branch_trained"])
    steps.append(Step("merged", reparam.CLI.execute, config.reparam_job(out["branch_trained"], out["merged"])))
    merged = out["merged"]
    if config.merged_training is not None:
        steps += training_steps(config, "merged_training", "merged_trained", merged, out["merged_trained"])
        merged = out["merged_trained"]
    steps.append(Step("pruned", prune.CLI.execute, config.prune_job(merged, out["pruned"])))
    steps.append(Step("final", export.CLI.execute, export.CLI.job_for(out["pruned"], out["final"])))
    final = out["final"]
    for stage, section in (("final_trained", "final_training"), ("final_tuned", "final_tuning")):
        if getattr(config, section) is not None:
            steps += training_steps(config, section, stage, final, out[stage])
            final = out[stage]
    return steps


def training_steps(config: PipelineConfig, section: str, stage: str, src: str, dst: str) -> list[Step]:
    """One train_prfdn.py step, and one ``--resume`` step per later lr phase in ``then`` (each phase's flags
    override those before it; a changed lr makes train_prfdn.py start a new lr phase of the same run)."""
    keys = getattr(config, section).folder_keys(section)
    return [
        Step(stage, train_prfdn.main, job, key) for job, key in zip(config.training_jobs(section, src, dst), keys, strict=True)
    ]


def step_done(step: Step) -> bool:
    """A step is done when its output exists and, for training, its kept state (if any) has reached the step's
    iterations (a later lr phase, or iters raised in the config, goes on with the same run) and the output was
    written at them (or its ``minutes`` of training time are spent, and the output was written at that end); a
    training step whose state is already past it (a later phase ran) is done even where its output is not there."""
    target = step.dst
    if not step.trains:
        return target.exists()
    state_path = train_prfdn.output_paths(target)["state"]
    if not state_path.is_file():
        return target.exists()
    try:
        state = train_prfdn.read_state(state_path)
    except HarnessError as err:
        raise HarnessError(str(err).removeprefix("--resume: ")) from None
    wanted = step.job.iters or state["settings"]["iters"]
    minutes = step.job.minutes if step.job.minutes is not None else state["settings"].get("minutes")
    if minutes is not None and float(state.get("elapsed", 0.0)) >= 60.0 * minutes and state["iteration"] <= wanted:
        # ended by its training time (--minutes) short of its iters: done once its output was written at that end
        return target.exists() and read_model_checkpoint(target).provenance.get("iterations") == state["iteration"]
    if state["iteration"] != wanted or not target.exists():
        return state["iteration"] > wanted
    # a state stopped exactly at this phase's end beside an earlier phase's output: resuming writes the output
    # from the state (no training); taken as done, the older weights would pass for this phase's
    return read_model_checkpoint(target).provenance.get("iterations") == wanted


def check_made_from(target: Path, parent: Path, stage: str) -> None:
    """Refuse to skip a stage whose existing output was made from another parent file (e.g. an earlier
    stage was redone): skipping it would chain checkpoints of two different runs. The same weights written
    again (a finished training's output rebuilt from its state) are the same parent."""
    provenance = read_model_checkpoint(target).provenance
    recorded = provenance.get("parent_sha256")
    if recorded is not None and parent.is_file() and not is_recorded_parent(provenance, parent):
        raise HarnessError(
            f"stage {stage}: {target} exists but was made from another {parent} (sha256 {recorded[:12]}...); "
            "use another work_dir, or --force to redo the stages"
        )


def pruning_change(step: Step) -> str | None:
    """How the kept pruned file of ``step`` was made otherwise than ``step`` would make it (its first changed
    setting, for a message), or None when it matches."""
    changed = prune.changed_settings(read_model_checkpoint(step.dst).provenance, step.job)
    return prune.describe_change(changed[0]) if changed else None


def check_kept_pruning(step: Step) -> None:
    """Refuse to skip a pruning whose file was made with other settings than the config's ``prune`` section
    now gives: the rest of the run would carry settings its config no longer says."""
    change = pruning_change(step)
    if change is not None:
        raise HarnessError(
            f"stage pruned: {step.dst} was pruned with {change}; redo it with --force --from pruned, or use another work_dir"
        )


def next_stage(steps: list[Step]) -> tuple[str | None, list[Path]]:
    """The stage after the last one whose output exists (None when that is the last stage), and the files a
    machine needs to run it with ``--from``: its input, and the state and log of an interrupted training."""
    done = [i for i, step in enumerate(steps) if step_done(step)]
    following = done[-1] + 1 if done else 0
    if following == len(steps):
        return None, []
    step = steps[following]
    files = [step.src]
    if step.trains:
        paths = train_prfdn.output_paths(step.dst)
        files += [path for path in (paths["best"], paths["state"], paths["log"]) if path.exists()]
    return step.stage, files


def stage_files(work_dir: str | Path) -> dict[str, Path]:
    """Every file the stages write in ``work_dir`` (by file name): their outputs, and the training stages'
    last weights, states and logs; whichever stages a config skips."""
    work = Path(work_dir)
    files: dict[str, Path] = {}
    for stage in STAGES:
        out = work / f"{stage}.pth"
        written = train_prfdn.output_paths(out).values() if stage in TRAINED_STAGES else [out]
        files.update({path.name: path for path in written})
    return files


def written_by(step: Step) -> list[Path]:
    """The files one step writes."""
    return list(train_prfdn.output_paths(step.dst).values()) if step.trains else [step.dst]


def select_steps(steps: list[Step], start: str | None, until: str | None) -> list[Step]:
    """The steps from ``--from`` to ``--until`` (each included, with all of its lr phases)."""
    names = [step.stage for step in steps]
    for flag, stage in (("--until", until), ("--from", start)):
        if stage is not None and stage not in names:
            raise HarnessError(f"{flag} {stage}: this config skips that stage (its section's iters is 0 or missing)")
    if start is not None and until is not None and names.index(until) < names.index(start):
        raise HarnessError(f"--until {until} comes before --from {start}")
    first = names.index(start) if start is not None else 0
    last = len(names) - 1 - names[::-1].index(until) if until is not None else len(names) - 1
    return steps[first : last + 1]


def read_checkpoint_input(label: str, path: str) -> None:
    """Refuse an input checkpoint that is missing, corrupt or fits no architecture here."""
    try:
        load_model(read_model_checkpoint(path), f"{label} {path}")
    except HarnessError as err:
        message = str(err)
        raise HarnessError(message if message.startswith(label) else f"{label} {message}") from None


def check_image_folder(label: str, folder: str) -> None:
    """Refuse a data folder that is missing or holds no images (the stage reading it would run first)."""
    image_folder(folder, label, "validation" if label.endswith("val_dir") else "LR" if ".lr_dir" in label else "training")


def check_inputs(config: PipelineConfig, pending: list[Step], force: bool = False, accept_data_change: bool = False) -> None:
    """What the stages to run read, before the first one: the RFDN, the data folders, the teacher (a frontier
    point's stages, ``NAME/pruned`` and so on, read what the run's stages of that name read); ``force`` and
    ``accept_data_change`` as the run takes them (see ``check_training_data``)."""
    stages = {step.stage.rsplit("/", 1)[-1] for step in pending}
    if stages & {"branch", "branch_fitted"}:
        read_checkpoint_input("rfdn", config.rfdn)
    if stages - {"branch", "merged", "final"}:  # stages that read training images
        check_data_folders(config)
    check_phase_folders(config, pending)
    if config.data.teacher is not None and stages & {*TRAINED_STAGES, "pruned"}:
        read_checkpoint_input("data.teacher", config.data.teacher)
    check_training_data(pending, force, accept_data_change)


def reads_training_images(step: Step) -> bool:
    """Whether the stage decodes the training images: training, feature fitting, and pruning by Taylor
    importance or with fine-tuning."""
    if step.run == prune.CLI.execute:  # bound methods: equal, never the same object
        return prune.needs_data(step.job)
    return step.trains or step.run == feature_fit.CLI.execute


def resumed_state(step: Step, force: bool) -> dict[str, Any] | None:
    """The training state a training step to run goes on from (``run_step`` resumes it), else None."""
    if not step.trains or force:
        return None
    path = train_prfdn.output_paths(step.dst)["state"]
    if not path.is_file():
        return None
    try:
        return train_prfdn.read_state(path)
    except HarnessError as err:
        raise HarnessError(f"stage {step.stage}: {str(err).removeprefix('--resume: ')}") from None


def check_training_data(pending: list[Step], force: bool = False, accept_data_change: bool = False) -> None:
    """Load the training data as each stage to run will (once per distinct setting), so that what the loader
    refuses (an image smaller than a stage's patch, two images of one name, a validation image that is also a
    training image, a scale-augmentation factor that adds no copy) stops the run before its first stage, not hours
    into it. The copies themselves are not made (``make_copies``). The loader's flags are named by their config keys.
    A training stage that resumes its run is refused, as ``train_prfdn.py --resume`` would refuse it, where its
    data folders changed since its state was written (unless ``accept_data_change``)."""
    loaded: dict[tuple, TrainData] = {}
    for step in pending:
        if not reads_training_images(step) or not step.job.train_dir:
            continue
        job = dataclasses.replace(step.job)
        if job.patch_size is None:  # a training section that leaves it out: train_prfdn.py's default
            job.patch_size = TrainSettings.patch_size
        state = resumed_state(step, force)
        if state is not None:
            train_prfdn.resolve_data_args(job, state["run"]["data_args"])  # the flags the resumed run reads
        section = STAGE_SECTIONS.get(step.stage, step.stage)
        with named_as(config_keys(section)):
            fill_data_defaults(job)
        key = (
            *data_folders(job),
            job.val_fraction,
            job.val_seed,
            job.val_crop,
            job.skip_small,
            job.patch_size,
            tuple(job.scale_aug or ()),
        )
        if key not in loaded:
            try:  # what the loader says as it loads, the stage says
                with contextlib.redirect_stderr(io.StringIO()), named_as(config_keys(section)):
                    loaded[key] = load_data_from_args(
                        job, patch_size=job.patch_size, seed=0, data_range=255.0, scale=SCALE, make_copies=False
                    )
            except HarnessError as err:
                raise HarnessError(f"stage {step.stage}: {err}") from None
        if state is not None:
            job.accept_data_change = accept_data_change
            try:
                with contextlib.redirect_stderr(io.StringIO()):
                    train_prfdn.check_same_images(state, train_prfdn.output_paths(step.dst)["state"], loaded[key], job)
            except HarnessError as err:
                raise HarnessError(f"stage {step.stage}: {err} (of run_pipeline.py)") from None


def check_phase_folders(config: PipelineConfig, pending: list[Step]) -> None:
    """The further training folders a training section or phase gives in place of the data section's, each once
    (the data section's are ``check_data_folders``')."""
    checked = set(config.data.extra_train_dir or ())
    for step in pending:
        for index, folder in enumerate(getattr(step.job, "extra_train_dir", None) or ()):
            if folder not in checked:
                check_image_folder(f"{step.folders_key}.extra_train_dir[{index}]", folder)
                checked.add(folder)


def check_data_folders(config: PipelineConfig) -> None:
    """The data section's folders are there and hold images."""
    data = config.data
    for index, folder in enumerate(data.train_dir):
        check_image_folder(f"data.train_dir[{index}]", folder)
    for key in ("lr_dir", "extra_train_dir"):
        for index, folder in enumerate(getattr(data, key) or ()):
            check_image_folder(f"data.{key}[{index}]", folder)
    if data.val_dir is not None:
        check_image_folder("data.val_dir", data.val_dir)


def check_prune_plan(config: PipelineConfig, step: Step) -> None:
    """Refuse, before the first stage, a pruning that ``transform.prune`` would refuse before its first step (a
    ``ratio`` whose last step is not smaller than the input, a budget it does not reach), not once the stages before
    it have run: worked out on the input's widths (its file where it is there, else the merged network the config
    makes), which are all a schedule depends on."""
    merged = load_model(read_model_checkpoint(step.src), str(step.src)) if step.src.is_file() else merged_structure(config)
    model = merged if isinstance(merged, HelperPRFDN) else with_helpers(merged.eval())
    try:
        with named_as(config_keys("prune")):
            prune.planned_with(model, prune.figures(merged), step.job)
    except HarnessError as err:
        raise HarnessError(f"{config.source}: {err}") from None


def check_outputs(config: PipelineConfig, pending: list[Step]) -> None:
    """Where the run writes, before the first stage: the work folder and ``output`` can be written, and neither the
    output nor a stage file is an input or another of the run's files."""
    work = Path(config.work_dir)
    if work.exists() and not work.is_dir():
        raise HarnessError(f"work_dir {work}: is a file; expected a folder (the stage files go there)")
    outputs = {"output": config.output, **{f"the stage file {name}": path for name, path in stage_files(work).items()}}
    inputs = {"rfdn": config.rfdn, "data.teacher": config.data.teacher, "the config": config.source}
    check_distinct(outputs, inputs)
    for step in pending:
        for path in written_by(step):
            check_output_file(path, "work_dir")
    output = check_output_file(config.output, "output")
    if output.exists():
        try:
            read_model_checkpoint(output)
        except HarnessError:
            raise HarnessError(
                f"output {config.output}: exists and is not a model checkpoint; give another path (it would be replaced)"
            ) from None


def check_output_owner(config: PipelineConfig) -> None:
    """An existing ``output`` is replaced only when this run made it: it is one of the work folder's stage files,
    or its parent is (by path, or by content: a work folder copied elsewhere). Any other checkpoint there (the
    submitted one, another run's) needs ``--replace_output``."""
    output = Path(config.output)
    if not output.is_file():
        return
    provenance = read_model_checkpoint(output).provenance
    parent, parent_sha256 = provenance.get("parent"), provenance.get("parent_sha256")
    parent_sha256 = parent_sha256 if isinstance(parent_sha256, str) else None  # a hand-edited provenance
    stage_paths = [path for path in stage_files(Path(config.work_dir)).values() if path.is_file()]
    if isinstance(parent, str) and any(same_file(parent, path) for path in stage_paths):
        return
    contents = {sha256_of(path) for path in stage_paths if path.suffix == ".pth"}
    if sha256_of(output) in contents or parent_sha256 in contents:
        return
    made_from = f"made from {parent}" if isinstance(parent, str) else "not made by a pipeline stage"
    raise HarnessError(
        f"output {config.output}: exists, {made_from}, not from this run's work_dir {config.work_dir}; "
        "give --replace_output to replace it, or another output"
    )


def check_devices(pending: list[Step]) -> None:
    """A stage set to run on CUDA on a machine without it is refused now, not once the stages before it ran."""
    for step in pending:
        try:
            resolve_device(getattr(step.job, "device", None))
        except HarnessError as err:
            raise HarnessError(f"stage {step.stage}: {err}") from None


def save_next(config_path: str, folder: str) -> str | None:
    """Copy into ``folder`` what a fresh machine needs to go on (see ``next_stage``), or, when every stage is
    done, the output and the training logs; the stage to go on ``--from`` (None: done)."""
    config = parse_config(config_path)
    steps = plan(config)
    stage, files = next_stage(steps)
    if stage is None:
        logs = [train_prfdn.output_paths(step.dst)["log"] for step in steps if step.trains]
        files = [Path(config.output), *(log for log in logs if log.exists())]
    for file in files:
        if not file.is_file():
            raise HarnessError(f"--save_next: {file} is missing (run the pipeline first)")
    if same_file(folder, config.work_dir):
        raise HarnessError(f"--save_next {folder}: is the work_dir; give a folder of its own to take to the other machine")
    targets = [Path(folder) / file.name for file in files]
    for file, target in zip(files, targets, strict=True):
        check_output_file(target, "--save_next")
        if same_file(target, file):
            raise HarnessError(f"--save_next {folder}: holds {file} itself; give a folder of its own")
        if target.exists() and sha256_of(target) != sha256_of(file):
            raise HarnessError(
                f"--save_next {folder}: {target} exists and is not a copy of {file}; give an empty folder or move it away"
            )
    check_distinct({f"the copy of {file}": target for file, target in zip(files, targets, strict=True)}, {})
    for file, target in zip(files, targets, strict=True):
        atomic_write(target, lambda tmp, file=file: shutil.copyfile(file, tmp))
    names = " ".join(file.name for file in files)
    where = "every stage is done" if stage is None else f"go on with --from {stage}, these files in {config.work_dir}"
    print(f"== save_next: {names} -> {folder} ({where})")
    return stage


def run(
    config_path: str,
    force: bool = False,
    until: str | None = None,
    start: str | None = None,
    replace_output: bool = False,
    accept_data_change: bool = False,
) -> Path:
    """Run the stages from ``start`` to ``until`` (default: all, then copy the last output to ``output``).

    Every check comes first: the config's types and ranges, the stages' flags, the inputs of the stages to run,
    the outputs' folders and that no output is an input; nothing is written before they pass. The run holds the
    work folder and, when it writes one, ``output`` (``exclusive_run``): a second run on either is refused while
    this one goes on, and the output's owner is checked again once it is held (a run that wrote it meanwhile made
    it another run's)."""
    config = parse_config(config_path)
    steps = select_steps(plan(config), start, until)
    if start is not None and not steps[0].src.is_file():
        raise HarnessError(f"--from {start}: its input {steps[0].src} is missing")
    writes_output = until is None
    check_pending(
        config, steps, force, writes_output=writes_output, replace_output=replace_output, accept_data_change=accept_data_change
    )
    Path(config.work_dir).mkdir(parents=True, exist_ok=True)
    with contextlib.ExitStack() as held:
        held.enter_context(exclusive_run(Path(config.work_dir) / "pipeline", "work_dir"))
        if writes_output:
            held.enter_context(exclusive_run(config.output, "output"))
            if not replace_output:
                check_output_owner(config)  # again: another run may have written it since the checks
        return _run_steps(config, steps, force, until, accept_data_change)


def check_pending(
    config: PipelineConfig,
    steps: list[Step],
    force: bool = False,
    *,
    writes_output: bool = True,
    replace_output: bool = False,
    accept_data_change: bool = False,
) -> list[Step]:
    """The steps of ``steps`` still to run, their inputs, outputs and devices checked (nothing written);
    ``writes_output``: the run ends by copying its result to ``output`` (see ``check_output_owner``)."""
    pending = [step for step in steps if force or not step_done(step)]
    for step in steps:
        if step.stage == "pruned" and step not in pending and step.dst.is_file():
            check_kept_pruning(step)
    check_inputs(config, pending, force, accept_data_change)
    check_outputs(config, pending)
    if writes_output and not replace_output:
        check_output_owner(config)
    check_devices(pending)
    for step in pending:
        if step.stage == "pruned":
            check_prune_plan(config, step)
    return pending


def _run_steps(
    config: PipelineConfig, steps: list[Step], force: bool, until: str | None, accept_data_change: bool = False
) -> Path:
    target = steps[-1].dst
    for step in steps:
        target = step.dst
        run_step(step, force, accept_data_change)
    if until is not None:
        return target
    atomic_write(config.output, lambda tmp: shutil.copyfile(target, tmp))
    print(f"== done: {config.output}")
    return Path(config.output)


def run_step(step: Step, force: bool, accept_data_change: bool = False) -> None:
    """Run one step, or skip it when done (unless ``force``); its output made from another parent is refused. A
    training step that resumes its run goes on with changed data folders only with ``accept_data_change``."""
    target = step.dst
    if not force and step_done(step):
        if target.exists():
            check_made_from(target, step.src, step.stage)
            print(f"== {step.stage}: {target} exists, skipped")
        else:
            print(f"== {step.stage}: its training state is past this phase, skipped")
        return
    job = dataclasses.replace(step.job)
    if not step.trains:
        job.overwrite = True  # the run's own stage file: absent, or redone with --force
    if step.trains:
        paths = train_prfdn.output_paths(target)
        job.resume = job.resume or (paths["state"].exists() and not force)
        job.accept_data_change = accept_data_change and job.resume
        # a new run over files of this stage: --force, or what a run that saved no state left
        job.overwrite = not job.resume and any(path.exists() for path in paths.values())
    print(f"== {step.stage}: {describe_step(step, job)}")
    try:
        step.run(job)
    except TrainingInterruptedError:
        raise KeyboardInterrupt from None
    except HarnessError as err:
        raise HarnessError(f"stage {step.stage}: {err}") from None


def describe_step(step: Step, job: Any) -> str:
    """``SRC -> DST`` and the job's settings that are set, written as flags, its switches (``--resume``,
    ``--overwrite``) last (for the run's log)."""
    words = [f"{step.src} -> {step.dst}"]
    given = [(key, value) for key, value in vars(job).items() if key not in ("src", "dst", "out")]
    for key, value in sorted(given, key=lambda item: item[0] in ("resume", "overwrite", "accept_data_change")):
        if value is None or value is False:
            continue
        words.append(f"--{key}")
        if value is not True:
            words.extend(str(v) for v in value) if isinstance(value, list) else words.append(str(value))
    return " ".join(words)


def main(argv: list[str] | None = None) -> int:
    parser = ArgumentParser(prog="run_pipeline.py", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("config", help="JSON config (see configs/x4.json)")
    parser.add_argument("--force", action="store_true", help="redo stages whose output exists")
    parser.add_argument("--until", choices=STAGES, default=None, help="stop after this stage")
    parser.add_argument(
        "--from", dest="start", choices=STAGES, default=None, help="start at this stage (only its input must exist)"
    )
    parser.add_argument(
        "--replace_output",
        action="store_true",
        help="replace an existing output that this run did not make (e.g. the submitted checkpoint)",
    )
    parser.add_argument(
        "--save_next", metavar="DIR", default=None, help="run nothing: copy what a fresh machine needs to go on into DIR"
    )
    parser.add_argument(
        "--accept_data_change",
        action="store_true",
        help="a training stage resumes its run although images were added to, removed from or changed in the data "
        "folders since (refused otherwise)",
    )
    args = parser.parse_args(argv)

    def body() -> None:
        if args.save_next is not None:
            save_next(args.config, args.save_next)
        else:
            run(args.config, args.force, args.until, args.start, args.replace_output, args.accept_data_change)

    return run_command("run_pipeline.py", body, "run the same command again to continue")


if __name__ == "__main__":
    raise SystemExit(main())
