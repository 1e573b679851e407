"""The training flags, declared once from ``TrainSettings`` and reused by every command that trains.

``train_prfdn.py`` takes every setting; ``transform.prune`` (fine-tuning between pruning steps) and
``transform.feature_fit`` take the ones they use, with their own defaults. A flag is named as its field.
"""

from __future__ import annotations

import argparse
import dataclasses
from collections.abc import Iterable, Mapping
from typing import Any

from training.loop import MAX_BATCH_SIZE, MAX_NUM_WORKERS, PIXEL_LOSSES, PRECISIONS, TrainSettings, fast_path_default
from utils.inference import resolve_device

DEVICES = ("cpu", "cuda")
SETTING_HELP: dict[str, str] = {
    "iters": "total iterations",
    "batch_size": f"patches per iteration and process (at most {MAX_BATCH_SIZE})",
    "patch_size": "LR patch size in pixels",
    "lr": "learning rate",
    "lr_after_plateau": "learning rate once validation stalls",
    "plateau_patience": "validations without improvement tolerated",
    "distill_weight": "weight of the loss to the --teacher's SR",
    "feature_distill": "weight of the loss between the branch model's four block outputs and the official RFDN "
    "--teacher's B1..B4 outputs (branch model only)",
    "loss": "to HR and to the teacher: l1 or l2, the mean squared error (on --resume: new lr phase, fresh Adam)",
    "val_every": "validate every N iterations",
    "log_every": "log line every N iterations",
    "seed": "seed of the patch stream and RNGs",
    "device": "cpu or cuda",
    "amp": "float16 autocast on CUDA",
    "precision": "fp32, or bf16: the forward pass under bfloat16 autocast, fp32 weights (CPU or CUDA)",
    "channels_last": "model and batches in channels_last memory format (faster convolutions on many CPUs)",
    "num_workers": f"DataLoader worker processes (at most {MAX_NUM_WORKERS}: the larger of 64 and 4 per CPU core)",
    "grad_clip": "clip the gradient norm to this",
    "ema_decay": "validate and save an EMA of the weights with this decay per iteration, e.g. 0.999 (0: off)",
    "teacher_cache": "run the --teacher once on each whole training image before training and crop its SR with each "
    "patch, instead of on every batch (6 bytes per HR pixel of memory; see docs/training_speed.md)",
}
SETTING_NAMES = tuple(SETTING_HELP)
_FIELDS = {f.name: f for f in dataclasses.fields(TrainSettings)}
_VALUE_TYPES = {"int": int, "float": float, "str": str, "float | None": float}


FAST_PATH_TEXT = {
    "precision": "bf16 on a CPU with native bf16 (AVX512-BF16, AMX), else fp32",
    "channels_last": "on with that default bf16, else off",
}


def settings_from_flags(args: argparse.Namespace) -> TrainSettings:
    """The settings of a command line: its setting flags given (not None) over ``TrainSettings``' defaults."""
    return TrainSettings(**{name: getattr(args, name) for name in SETTING_NAMES if getattr(args, name, None) is not None})


def fill_fast_path(args: argparse.Namespace) -> None:
    """``--precision`` / ``--channels_last`` not given: the fast path where it helps (``fast_path_default``);
    never bf16 beside ``--amp`` (float16)."""
    precision, channels_last = fast_path_default(resolve_device(args.device).type)
    if args.precision is None:
        args.precision = "fp32" if getattr(args, "amp", False) else precision
    if args.channels_last is None:
        args.channels_last = channels_last and args.precision == "bf16"


def add_setting_arguments(
    group: argparse._ActionsContainer,
    names: Iterable[str] = SETTING_NAMES,
    defaults: Mapping[str, Any] | None = None,
    default_text: Mapping[str, str] | None = None,
) -> None:
    """Declare the ``TrainSettings`` fields ``names`` as ``--<name>`` flags.

    ``defaults`` gives a flag's parsed default (absent: None, "not given", so the caller fills it in);
    ``default_text`` says in the help what a flag left out means (absent: the parsed default, or the
    ``TrainSettings`` default).
    """
    defaults, default_text = defaults or {}, default_text or {}
    base = TrainSettings()
    for name in names:
        field = _FIELDS[name]
        shown = default_text.get(name, defaults.get(name, getattr(base, name)))
        help_text = f"{SETTING_HELP[name]} (default {shown})"
        kwargs: dict[str, Any] = {"default": defaults.get(name), "help": help_text}
        if name == "device":
            kwargs["choices"] = DEVICES
        elif name == "loss":
            kwargs["choices"] = list(PIXEL_LOSSES)
        elif name == "precision":
            kwargs["choices"] = list(PRECISIONS)
        elif field.type == "bool":
            kwargs["action"] = argparse.BooleanOptionalAction
        else:
            kwargs["type"] = _VALUE_TYPES[str(field.type)]
        group.add_argument(f"--{name}", **kwargs)
