"""The training flags, declared from ``TrainSettings``' fields (their help included) and reused by every command that trains.

``train_prfdn.py`` takes every setting; ``transform.prune`` (fine-tuning between pruning steps) and
``transform.feature_fit`` take the ones they use, with their own defaults. A flag is named as its field.
"""

from __future__ import annotations

import argparse
from collections.abc import Iterable, Mapping
from typing import Any

from training.data import FOLDER_FLAGS, DataSettings
from training.loop import TrainSettings, fast_path_default
from utils.config_file import read_json_config, read_settings
from utils.errors import HarnessError
from utils.inference import resolve_device
from utils.settings import add_flags, setting_names

SETTING_NAMES = setting_names(TrainSettings)  # every TrainSettings field a user sets
# Knobs few runs change: train_prfdn.py reads them from its --config file and leaves them out of --help (their flags
# still parse); the stages that take them list them as usual.
RARE_SETTINGS = (
    "val_seed",
    "val_crop",
    "plateau_patience",
    "feature_distill",
    "loss",
    "log_every",
    "seed",
    "amp",
    "num_workers",
    "grad_clip",
    "warmup",
    "min_lr",
    "select_against",
)


FAST_PATH_TEXT = {
    "precision": "bf16 on a CPU with native bf16 (AVX512-BF16, AMX), else fp32",
    "channels_last": "on with that default bf16, else off",
}


def settings_from_flags(job: Any) -> TrainSettings:
    """The settings of a job (``training.run.TrainJob``): those given (not None) over ``TrainSettings``' defaults."""
    return TrainSettings(**{name: getattr(job, name) for name in SETTING_NAMES if getattr(job, name, None) is not None})


def fill_fast_path(job: Any) -> None:
    """``precision`` / ``channels_last`` of a job not given: the fast path where it helps (``fast_path_default``);
    never bf16 beside ``amp`` (float16)."""
    precision, channels_last = fast_path_default(resolve_device(job.device).type)
    if job.precision is None:
        job.precision = "fp32" if getattr(job, "amp", False) else precision
    if job.channels_last is None:
        job.channels_last = channels_last and job.precision == "bf16"


def add_setting_arguments(
    group: argparse._ActionsContainer,
    names: Iterable[str] = SETTING_NAMES,
    defaults: Mapping[str, Any] | None = None,
    default_text: Mapping[str, str] | None = None,
    unlisted: Iterable[str] = (),
) -> None:
    """Declare the ``TrainSettings`` fields ``names`` as ``--<name>`` flags (see ``utils.settings.add_flags``)."""
    add_flags(group, TrainSettings, names, defaults, default_text, unlisted)


def apply_config_file(job: Any, path: str) -> None:
    """The settings of a ``--config`` file (a JSON object of ``TrainSettings`` and ``DataSettings`` values by name,
    ``{data_root}`` in its paths) where the command line gave none: flags given win. Values take the types the
    flags would give (lists, floats), so a run records and compares them alike however they were given."""
    try:
        raw = read_json_config(path, "configs/train_cycle.json")
    except HarnessError as err:
        raise HarnessError(f"--config {err}") from None
    values = read_settings(
        raw,
        (TrainSettings, DataSettings),
        f"--config {path}",
        paths=(*FOLDER_FLAGS, "teacher"),
        ignore=("data_root",),
    )
    for name, value in values.items():
        if getattr(job, name, None) is None:
            setattr(job, name, list(value) if isinstance(value, tuple) else value)
