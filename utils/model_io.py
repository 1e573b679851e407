"""Modules from checkpoints: the one place a registered architecture is built and given its weights."""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn as nn

from models.registry import UnknownArchitectureError, build_model
from utils.checkpoint import ModelCheckpoint, load_state, read_model_checkpoint
from utils.errors import HarnessError, first_line
from utils.settings import flag


def load_model(checkpoint: ModelCheckpoint, source: str = "checkpoint") -> nn.Module:
    """The module of ``checkpoint`` with its weights (strict), or a one-line HarnessError naming ``source``.

    The one place a module is built from a checkpoint's config: an unknown architecture, or a config that no
    module can be built from (missing keys, negative or absurd widths, ...), is said here. Weights that are not
    finite were refused when the checkpoint was read (``read_model_checkpoint``).
    """
    try:
        model = build_model(checkpoint.arch, checkpoint.config)
    except UnknownArchitectureError as err:
        raise HarnessError(f"{source}: {err}") from None
    except (KeyError, TypeError, ValueError, AttributeError, RuntimeError, MemoryError, OverflowError) as err:
        reason = first_line(err) if isinstance(err, RuntimeError) else f"{type(err).__name__}: {err}"
        raise HarnessError(f"{source}: malformed {checkpoint.arch} config ({reason})") from None
    if not all(isinstance(value, torch.Tensor) for value in checkpoint.state_dict.values()):
        raise HarnessError(f"{source}: its state_dict holds values that are not tensors")
    return load_state(model, checkpoint.state_dict, f"{source}: weights do not fit its {checkpoint.arch} architecture")


def read_flag_checkpoint(path: str | Path, flag: str) -> ModelCheckpoint:
    """The checkpoint a flag or argument names (``SRC``, ``--teacher``, ``--rfdn``); its one-line error names it too."""
    if Path(path).is_dir():
        raise HarnessError(f"{flag} {path}: is a folder; expected a checkpoint file")
    try:
        return read_model_checkpoint(path)  # refuses weights that are not finite too
    except HarnessError as err:
        raise HarnessError(f"{flag} {err}") from None


def load_teacher(path: str, student: ModelCheckpoint, name: str = "teacher") -> nn.Module:
    """The teacher (the official RFDN, or any checkpoint of this project) of the student's scale and input range;
    ``name``: the setting that gives it (``select_against``: the reference of the worst-group selection)."""
    label = flag(name)
    checkpoint = read_flag_checkpoint(path, label)
    teacher = load_model(checkpoint, f"{label} {path}")
    if (checkpoint.scale, checkpoint.data_range) != (student.scale, student.data_range):
        raise HarnessError(
            f"{label} {path}: x{checkpoint.scale} on [0, {checkpoint.data_range:g}] does not match the student's "
            f"x{student.scale} on [0, {student.data_range:g}]"
        )
    return teacher.eval()
