"""The pipeline's JSON config as typed sections, every value checked before any stage runs.

``parse_config(path)`` reads a config (``configs/x4.json`` shows the keys) into a ``PipelineConfig``: one
dataclass per section, the training sections with their later learning-rate phases (``then``). Refused with one
line naming the file and the key: a file that is not one JSON object, a key given twice, an unknown key (the known
ones are listed), a value of the wrong type (``true`` and ``"100"`` are not numbers, ``null`` is no value: omit the
key for the stage's default), NaN or Infinity, and a value out of range. Each stage's job is then made from the
config's typed values over the stage's defaults (``StageCLI.job_for``, ``train_prfdn.TrainJob``: no round trip
through strings) and checked by the stage's own checks, without running it, so the stages and the config cannot
disagree on what is valid; ``scripts/run_pipeline.py`` runs each stage on its job. Paths are checked here for
their type only: whether the inputs are there and the outputs can be written depends on which stages run, and
``scripts/run_pipeline.py`` checks it before the first one.
"""

from __future__ import annotations

import re
import typing
from collections.abc import Callable
from dataclasses import MISSING, dataclass, fields, replace
from pathlib import Path
from typing import Any

from models.team13_PRFDN import MIN_INPUT_SIZE, PRFDN, PRFDNConfig
from training import run as train_prfdn
from training.data import DATA_FLAGS, DataSettings, check_sampling, check_scale_aug
from training.flags import SETTING_NAMES, settings_from_flags
from training.loop import TrainSettings, check_schedule_settings, check_teacher_cache, default_lr
from transform import branch, feature_fit, prune, reparam
from transform.prune import PruneSettings
from utils import config_file
from utils.config_file import describe, read_json_config
from utils.datasets import SCALE
from utils.errors import HarnessError
from utils.settings import Naming, field_types, named_as, optional_section, value_type, with_values

# --- the sections -----------------------------------------------------------------------------------------------
# A field left None was not given: the stage's own default applies (on --resume, the resumed run's value).


# The sections of the stages' settings are derived from the stages' own schemas: the same names and types, each
# None (not given) unless required.
DataSection = optional_section(DataSettings, "DataSection", required=("train_dir",))
FeatureFitSection = optional_section(TrainSettings, "FeatureFitSection", feature_fit.FIT_SETTINGS, required=("iters",))
TrainingPhase = optional_section(  # one learning-rate phase of a training stage
    TrainSettings,
    "TrainingPhase",
    SETTING_NAMES,
    extra=[("no_progress", bool), ("extra_train_dir", tuple[str, ...])],  # this phase's folders, in place of data's
)


@dataclass(frozen=True)
class TrainingSection:
    """A training stage: its first phase, and later phases of the same run (``then``), each to its own ``iters``."""

    first: TrainingPhase
    then: tuple[TrainingPhase, ...] = ()

    def phases(self) -> list[TrainingPhase]:
        """Every phase with the flags it runs with: its own over those of the phases before it."""
        merged = [self.first]
        for phase in self.then:
            merged.append(replace(merged[-1], **given(phase)))
        return merged

    def folder_keys(self, key: str) -> list[str]:
        """Per phase, the config key that gives the further training folders it trains on (its own
        ``extra_train_dir``, else the nearest earlier phase's; ``data`` where none does): for messages."""
        keys, given_at = [], "data"
        for index, phase in enumerate((self.first, *self.then)):
            if phase.extra_train_dir is not None:
                given_at = key if index == 0 else f"{key}.then[{index - 1}]"
            keys.append(given_at)
        return keys


@dataclass(frozen=True)
class ReparamSection:
    """``reparam``: flags of ``transform.reparam``."""

    form: str | None = None


@dataclass(frozen=True)
class BranchSection:
    """``branch``: flags of ``transform.branch`` (the cut)."""

    variant: str | None = None


PruneSection = optional_section(
    PruneSettings,
    "PruneSection",
    extra=[(name, value_type(field_types(TrainSettings)[name])) for name in prune.FINETUNE_FLAGS],  # its fine-tuning
)


BUDGET_KEYS = ("ratio", "target_params", "target_flops")
RFDN_WIDTH = 50  # the official RFDN's nf: the width of every stage's blocks (transform.branch takes no other)


@dataclass(frozen=True)
class FrontierPoint:
    """One point of ``frontier``: the merged network pruned to another budget, then trained on its own
    (``scripts/run_frontier.py``). ``prune`` and ``final_training`` are the run's sections with this point's keys
    over them; a point's ``target_params`` / ``target_flops`` replace the run's budget (both of them)."""

    name: str
    prune: PruneSection
    final_training: TrainingSection | None


@dataclass(frozen=True)
class PipelineConfig:
    """A whole config. An optional stage's section is None when the stage is skipped (absent, or ``iters`` 0)."""

    source: Path  # the config file
    rfdn: str
    work_dir: str
    output: str
    data: DataSection
    branch_training: TrainingSection
    reparam: ReparamSection
    prune: PruneSection
    branch: BranchSection = BranchSection()
    feature_fit: FeatureFitSection | None = None
    merged_training: TrainingSection | None = None
    final_training: TrainingSection | None = None
    final_tuning: TrainingSection | None = None
    frontier: tuple[FrontierPoint, ...] = ()

    def data_options(self, teacher: bool = True) -> dict[str, Any]:
        """The data section's values (without ``teacher`` for a stage whose teacher is another flag)."""
        options = given(self.data)
        if not teacher:
            options.pop("teacher", None)
        return options

    def feature_fit_job(self, src: str, dst: str) -> Any:
        """``transform.feature_fit``'s job; its teacher is ``rfdn``, so the data section's is left out."""
        assert self.feature_fit is not None
        options = {"rfdn": self.rfdn, **self.data_options(teacher=False), **given(self.feature_fit)}
        return feature_fit.CLI.job_for(src, dst, options)

    def training_jobs(self, section: str, src: str, dst: str) -> list[Any]:
        """``train_prfdn.py``'s job per phase of ``section``; the later phases continue the run (``resume``)."""
        return self.phase_jobs(getattr(self, section), src, dst)

    def phase_jobs(self, training: TrainingSection, src: str, dst: str) -> list[Any]:
        """``train_prfdn.py``'s job per phase of a training section (the run's, or a frontier point's)."""
        data = self.data_options()
        start = train_prfdn.TrainJob(src=src, out=dst)
        runs = [with_values(start, {**data, **given(phase)}, train_prfdn.PROG) for phase in training.phases()]
        for job in runs[1:]:
            job.resume = True
        return runs

    def branch_job(self, src: str, dst: str) -> Any:
        return branch.CLI.job_for(src, dst, given(self.branch))

    def reparam_job(self, src: str, dst: str) -> Any:
        return reparam.CLI.job_for(src, dst, given(self.reparam))

    def prune_job(self, src: str, dst: str, section: PruneSection | None = None) -> Any:
        """``transform.prune``'s job, of the run's ``prune`` section or of another (a frontier point's)."""
        return prune.CLI.job_for(src, dst, {**self.data_options(), **given(section or self.prune)})


def given(section: Any) -> dict[str, Any]:
    """The fields of a section that the config gives (not None), as the stage's flags read them (a number as a
    float where the flag takes one)."""
    kinds = typing.get_type_hints(type(section))
    values = {}
    for f in fields(section):
        value = getattr(section, f.name)
        if value is not None:
            values[f.name] = float(value) if value_type(kinds[f.name]) is float else value
    return values


# --- reading --------------------------------------------------------------------------------------------------

TOP_LEVEL = ("rfdn", "work_dir", "output")
SECTIONS = (
    "data",
    "branch",
    "feature_fit",
    "branch_training",
    "reparam",
    "merged_training",
    "prune",
    "final_training",
    "final_tuning",
)
KEYS = (*TOP_LEVEL, "data_root", *SECTIONS, "frontier")
TRAINING_SECTIONS = ("branch_training", "merged_training", "final_training", "final_tuning")
OPTIONAL_STAGES = ("feature_fit", "merged_training", "final_training", "final_tuning")  # skipped at iters 0
PATH_KEYS = ("rfdn", "work_dir", "output", "train_dir", "lr_dir", "extra_train_dir", "val_dir", "teacher")


def parse_config(path: str | Path) -> PipelineConfig:
    """The config at ``path``, typed and checked (see the module docstring); one line naming the key if not."""
    return config_from_json(read_json_config(path, "configs/x4.json"), Path(path))


def read_paths(path: str | Path) -> dict[str, str]:
    """Only the config's three paths, its keys checked (for reading a finished run's files: the sections matter only
    to running it)."""
    raw = read_json_config(path, "configs/x4.json")
    try:
        return read_top_level(raw)
    except HarnessError as err:
        raise HarnessError(f"{path}: {err}") from None


def config_from_json(raw: dict[str, Any], source: Path) -> PipelineConfig:
    try:
        config = _read_config(raw, source)
        check_stage_flags(config)
    except HarnessError as err:
        raise HarnessError(f"{source}: {err}") from None
    return config


def read_value(value: Any, kind: Any, where: str, optional: bool = False) -> Any:
    """``value`` as ``kind`` (``utils.config_file.read_value``); the keys of ``PATH_KEYS`` are paths."""
    path = re.sub(r"\[\d+\]$", "", where).rsplit(".", 1)[-1] in PATH_KEYS
    return config_file.read_value(value, kind, where, optional, path)


def read_section(cls: type, options: Any, where: str) -> Any:
    """A section dataclass from its JSON object: known keys only (``_`` keys are comments), each of its type."""
    if not isinstance(options, dict):
        raise HarnessError(f'{where} must be an object of flags, e.g. {{"iters": 1000}}, got {describe(options)}')
    kinds = typing.get_type_hints(cls)
    known = [f.name for f in fields(cls)]
    required = [f.name for f in fields(cls) if f.default is MISSING and f.default_factory is MISSING]
    values = {}
    for key, value in options.items():
        if key.startswith("_"):
            continue
        if key not in known:
            if key in DATA_FLAGS and cls is not DataSection:
                raise HarnessError(
                    f"{where}.{key}: a data flag; give it in the data section (it holds for every stage; a training "
                    "section may give only extra_train_dir of its own)"
                )
            raise HarnessError(f"{where}: unknown key {key}; expected one of {', '.join(known)}")
        values[key] = read_value(value, value_type(kinds[key]), f"{where}.{key}", optional=key not in required)
    missing = [name for name in required if name not in values]
    if missing:
        raise HarnessError(f"{where} lacks {', '.join(missing)}")
    return cls(**values)


def phase_location(section: str, index: int) -> str:
    """Where phase ``index`` of a training section is in the config: the section, then ``section.then[i]``."""
    return section if index == 0 else f"{section}.then[{index - 1}]"


def read_training(options: Any, section: str) -> TrainingSection:
    if not isinstance(options, dict):
        raise HarnessError(f'{section} must be an object of flags, e.g. {{"iters": 1000}}, got {describe(options)}')
    first = read_section(TrainingPhase, {k: v for k, v in options.items() if k != "then"}, section)
    if "then" not in options:
        return TrainingSection(first)
    phases = options["then"]
    if not isinstance(phases, list) or not all(isinstance(phase, dict) for phase in phases):
        raise HarnessError(f'{section}.then must be a list of objects of flags, e.g. [{{"iters": 2000, "lr": 1e-5}}]')
    if first.iters is None:
        raise HarnessError(f"{section} needs an integer iters for its first phase when it has 'then'")
    then = tuple(read_section(TrainingPhase, phase, phase_location(section, i + 1)) for i, phase in enumerate(phases))
    previous = first.iters
    for index, phase in enumerate(then):
        if phase.iters is None or phase.iters <= previous:
            raise HarnessError(f"{section}.then[{index}] needs an integer iters above the phase before it ({previous})")
        previous = phase.iters
    return TrainingSection(first, then)


def read_stage_section(raw: dict[str, Any], section: str) -> Any:
    """A stage's section; for an optional stage None when it is skipped (absent, empty or ``iters`` 0)."""
    options = raw.get(section, {})
    if not isinstance(options, dict):
        raise HarnessError(f'{section} must be an object of flags, e.g. {{"iters": 1000}}, got {describe(options)}')
    if section not in TRAINING_SECTIONS and "then" in options:
        raise HarnessError(f"{section} cannot have 'then' (only {', '.join(TRAINING_SECTIONS)} can)")
    optional = section in OPTIONAL_STAGES
    if optional and not any(not key.startswith("_") for key in options):
        return None
    if optional and "iters" not in options:
        raise HarnessError(f"{section} lacks iters: the stage runs only with iters above 0 (give 0 to skip it)")
    if section in TRAINING_SECTIONS:
        parsed = read_training(options, section)
        iters = parsed.first.iters
    else:
        cls = {"branch": BranchSection, "feature_fit": FeatureFitSection, "reparam": ReparamSection, "prune": PruneSection}[
            section
        ]
        parsed = read_section(cls, options, section)
        iters = getattr(parsed, "iters", None)
    if not optional:
        return parsed
    if iters < 0:
        raise HarnessError(f"{section}.iters {iters}: must be at least 0 (0 skips the stage)")
    if iters == 0:
        if isinstance(parsed, TrainingSection) and parsed.then:
            raise HarnessError(f"{section}.iters 0 skips the stage, so its 'then' phases would never run")
        return None
    return parsed


def read_top_level(raw: dict[str, Any]) -> dict[str, str]:
    """The config's keys known and present, and its three paths (``rfdn``, ``work_dir``, ``output``) typed."""
    unknown = [key for key in raw if key not in KEYS and not key.startswith("_")]
    if unknown:
        raise HarnessError(f"unknown key {', '.join(unknown)}; expected {', '.join(KEYS)} (keys starting with _ are comments)")
    missing = [key for key in (*TOP_LEVEL, "data") if key not in raw]
    if missing:
        raise HarnessError(f"config lacks {', '.join(missing)} (see configs/x4.json)")
    return {key: read_value(raw[key], str, key) for key in TOP_LEVEL}


def _read_config(raw: dict[str, Any], source: Path) -> PipelineConfig:
    paths = read_top_level(raw)
    data = read_section(DataSection, raw["data"], "data")
    check_data(data)
    sections = {section: read_stage_section(raw, section) for section in SECTIONS if section != "data"}
    frontier = read_frontier(raw.get("frontier", []), sections["prune"], sections["final_training"])
    config = PipelineConfig(source=source, **paths, data=data, **sections, frontier=frontier)
    check_ranges(config)
    return config


POINT_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")  # a folder name, and a row name of scripts/report.py
REPORT_ROW_NAMES = ("rfdn", "branch_fitted", "branch_trained", "merged", "pruned", "final")  # report.py's own rows


def read_frontier(points: Any, run_prune: PruneSection, run_training: TrainingSection | None) -> tuple[FrontierPoint, ...]:
    """``frontier``: a list of points, each ``{"name": ..., "prune": {...}, "final_training": {...}}``."""
    example = '[{"name": "flops_0_6x", "prune": {"target_flops": 16.3e9}}]'
    if not isinstance(points, list) or not all(isinstance(point, dict) for point in points):
        raise HarnessError(f"frontier must be a list of objects, e.g. {example}, got {describe(points)}")
    read: list[FrontierPoint] = []
    for index, point in enumerate(points):
        where = f"frontier[{index}]"
        unknown = [key for key in point if key not in ("name", "prune", "final_training") and not key.startswith("_")]
        if unknown:
            raise HarnessError(f"{where}: unknown key {', '.join(unknown)}; expected name, prune, final_training")
        name = read_point_name(point.get("name"), where, [p.name for p in read])
        prune_section = read_point_prune(point.get("prune", {}), run_prune, f"{where}.prune")
        training = run_training
        if "final_training" in point:
            training = read_point_training(point["final_training"], run_training, f"{where}.final_training")
        read.append(FrontierPoint(name, prune_section, training))
    return tuple(read)


def read_point_name(name: Any, where: str, taken: list[str]) -> str:
    name = read_value(name, str, f"{where}.name")
    if not POINT_NAME.fullmatch(name):
        raise HarnessError(
            f"{where}.name {name!r}: expected letters, digits and '_', not starting with a digit "
            "(it names a folder and a report row)"
        )
    if name in REPORT_ROW_NAMES or name in taken:
        raise HarnessError(f"{where}.name {name!r}: taken (by another point, or a row of scripts/report.py)")
    return name


def read_point_prune(options: Any, run_prune: PruneSection, where: str) -> PruneSection:
    """The run's prune flags with the point's over them. The point gives its own budget (``ratio``,
    ``target_params`` and/or ``target_flops``); the run's ``target_params`` / ``target_flops`` are never inherited
    (a point giving only ``ratio`` is pruned to that ratio), its ``ratio`` is, as the ceiling of a target."""
    own = given(read_section(PruneSection, options, where))
    if not any(key in own for key in BUDGET_KEYS):
        raise HarnessError(f"{where}: give the point's budget ({', '.join(BUDGET_KEYS)})")
    inherited = {key: value for key, value in given(run_prune).items() if key not in ("target_params", "target_flops")}
    return PruneSection(**{**inherited, **own})


def read_point_training(options: Any, run_training: TrainingSection | None, where: str) -> TrainingSection:
    """The run's final training's first phase with the point's keys over it, then the point's own ``then``
    phases (the run's are not inherited: their iterations belong to the run's schedule)."""
    if not isinstance(options, dict):
        raise HarnessError(f'{where} must be an object of flags, e.g. {{"iters": 20000}}, got {describe(options)}')
    first = given(run_training.first) if run_training is not None else {}
    training = read_training({**first, **options}, where)
    if training.first.iters is None or training.first.iters < 1:
        raise HarnessError(f"{where}.iters: give the point's training iterations (at least 1)")
    return training


# --- ranges ---------------------------------------------------------------------------------------------------


def check_data(data: DataSection) -> None:
    """The data flags' ranges (``training.data.load_training_data`` checks them only once it reads the images)."""
    if data.lr_dir is not None and len(data.lr_dir) != len(data.train_dir):
        raise HarnessError(
            f"data.lr_dir: give one LR folder per data.train_dir folder ({len(data.train_dir)}), got {len(data.lr_dir)}"
        )
    if data.scale_aug is not None:
        run_stage_check(lambda: check_scale_aug(data.scale_aug), "data")
    if data.val_fraction is not None and not 0 <= data.val_fraction < 1:
        raise HarnessError(f"data.val_fraction {data.val_fraction}: must be in [0, 1)")
    if data.val_crop is not None and data.val_crop < SCALE:
        raise HarnessError(f"data.val_crop {data.val_crop}: must be at least {SCALE} (HR pixels)")
    # the weights' count is checked by the stage that trains: a training phase may give other extra_train_dir
    run_stage_check(lambda: check_sampling(data.mix, data.flat_threshold, len(data.mix or ())), "data")
    if data.val_seed is not None and data.val_seed < 0:
        raise HarnessError(f"data.val_seed {data.val_seed}: must not be negative")


def check_ranges(config: PipelineConfig) -> None:
    """What the stages' own checks do not cover: patches the network can take, seeds the samplers can take."""
    located: list[tuple[str, Any]] = [("feature_fit", config.feature_fit), ("prune", config.prune)]
    trainings = [(section, getattr(config, section)) for section in TRAINING_SECTIONS]
    for index, point in enumerate(config.frontier):
        located.append((f"frontier[{index}].prune", point.prune))
        trainings.append((f"frontier[{index}].final_training", point.final_training))
    for section, training in trainings:
        if training is not None:
            located += [(phase_location(section, i), phase) for i, phase in enumerate([training.first, *training.then])]
    for where, values in located:
        patch_size, seed = getattr(values, "patch_size", None), getattr(values, "seed", None)
        if patch_size is not None and patch_size < MIN_INPUT_SIZE:
            raise HarnessError(
                f"{where}.patch_size {patch_size}: must be at least {MIN_INPUT_SIZE} (LR pixels; the network takes no less)"
            )
        if seed is not None and seed < 0:
            raise HarnessError(f"{where}.seed {seed}: must not be negative")


def config_keys(section: str) -> Naming:
    """The config's keys for the settings a stage's checks name (``utils.settings.flag``): ``lr`` ->
    ``final_tuning.lr``, ``val_fraction`` -> ``data.val_fraction``, ``rfdn`` -> ``rfdn``, another stage's ``form`` ->
    ``reparam.form``."""

    def key(name: str, command: str | None = None) -> str:
        if command is not None:
            return f"{command.removeprefix('transform.')}.{name}"
        if name == "rfdn":
            return name
        return f"{'data' if name in DATA_FLAGS else section}.{name}"

    return key


def run_stage_check(check: Callable[[], None], where: str) -> None:
    """A stage's check, its messages naming the config's keys of section ``where``."""
    with named_as(config_keys(where)):
        check()


def check_stage_flags(config: PipelineConfig) -> None:
    """Every stage's job through the stage's own checks, without running it (devices are checked for the
    stages about to run only, so a GPU config parses anywhere)."""
    src, dst = "SRC.pth", "DST.pth"
    if config.feature_fit is not None:
        job = config.feature_fit_job(src, dst)
        job.device = None
        run_stage_check(lambda: feature_fit._check_arguments(job), "feature_fit")
    for section in TRAINING_SECTIONS:
        if getattr(config, section) is None:
            continue
        for index, job in enumerate(config.training_jobs(section, src, dst)):
            check_training_flags(config, job, phase_location(section, index), section)
        check_phases(getattr(config, section), section)
    variant = config.branch_job(src, dst).variant
    if variant not in branch.VARIANTS:
        raise HarnessError(f"branch.variant {variant!r}: expected one of {', '.join(branch.VARIANTS)}")
    form = config.reparam_job(src, dst).form
    if form not in reparam.FORMS:
        raise HarnessError(f"argument reparam.form: invalid choice: {form!r} (choose from {', '.join(reparam.FORMS)})")
    check_prune_flags(config, config.prune, "prune")
    for index, point in enumerate(config.frontier):
        where = f"frontier[{index}]"
        check_prune_flags(config, point.prune, f"{where}.prune")
        if point.final_training is not None:
            for phase, job in enumerate(config.phase_jobs(point.final_training, src, dst)):
                check_training_flags(config, job, phase_location(f"{where}.final_training", phase), "final_training")
            check_phases(point.final_training, f"{where}.final_training")


def check_phases(training: TrainingSection, section: str) -> None:
    """Per phase: each setting it gives is read by its schedule (``warmup`` and ``min_lr`` by the cosine,
    ``lr_after_plateau`` and ``plateau_patience`` by the plateau rule; inherited ones are not its own), and a later
    phase keeps the run's ``select`` (its best weights so far were chosen by it)."""
    raw = (training.first, *training.then)
    for index, (own, phase) in enumerate(zip(raw, training.phases(), strict=True)):
        schedule = phase.schedule or TrainSettings.schedule
        names = list(given(own))
        run_stage_check(lambda s=schedule, n=names: check_schedule_settings(s, n), phase_location(section, index))
        select, first = phase.select or TrainSettings.select, training.first.select or TrainSettings.select
        if index > 0 and select != first:
            raise HarnessError(
                f"{phase_location(section, index)}.select {select}: a later phase continues the run, which chooses its best "
                f"weights by {first}; give it in {section} (a run keeps its select)"
            )


def check_training_flags(config: PipelineConfig, job: Any, where: str, section: str) -> None:
    """One training phase's flags through the training settings' checks, and what needs the data section."""
    settings = settings_from_flags(job)
    run_stage_check(settings.check, where)
    settings.distill_weight = train_prfdn.distill_weight_of(job)
    run_stage_check(lambda: check_teacher_cache(settings, job.teacher is not None), where)
    if settings.distill_weight > 0 and config.data.teacher is None:
        raise HarnessError(f"{where}.distill_weight {settings.distill_weight:g}: needs data.teacher (the official RFDN)")
    if settings.select == "worst_gap" and config.data.teacher is None:
        raise HarnessError(f"{where}.select worst_gap: needs data.teacher (the reference of each validation group)")
    if settings.select == "worst_gap" and config.data.val_dir is None and config.data.val_fraction == 0:
        raise HarnessError(f"{where}.select worst_gap: needs validation images (data.val_dir, or data.val_fraction above 0)")
    if settings.feature_distill > 0 and (section != "branch_training" or config.data.teacher is None):
        raise HarnessError(
            f"{where}.feature_distill {settings.feature_distill:g}: only in branch_training (the branch model's "
            "block outputs), with data.teacher the official RFDN"
        )


def check_prune_flags(config: PipelineConfig, section: PruneSection, where: str) -> None:
    """A prune section's flags through ``transform.prune``'s checks and its fine-tuning's."""
    job = config.prune_job("SRC.pth", "DST.pth", section)
    job.device = None
    run_stage_check(lambda: prune._check_arguments(job), where)
    lr = job.lr if job.lr is not None else default_lr("prfdn_helpers")
    finetuning = TrainSettings(
        iters=max(1, job.finetune_iters),
        batch_size=job.batch_size,
        patch_size=job.patch_size,
        lr=lr,
        distill_weight=job.distill_weight,
    )
    run_stage_check(finetuning.check, where)  # what the fine-tuning between pruning steps would refuse


def merged_structure(config: PipelineConfig) -> PRFDN:
    """The merged network the config's ``reparam`` stage makes (of the official RFDN cut by its ``branch.variant``, in
    its ``form``), with untrained weights: what a pruning schedule removes depends on the widths only."""
    grouped = config.reparam_job("SRC.pth", "DST.pth").form == "grouped"
    stages = branch.VARIANTS[config.branch_job("SRC.pth", "DST.pth").variant]
    return PRFDN(PRFDNConfig.merged(RFDN_WIDTH, grouped=grouped, srfdb_stages=stages)).eval()
