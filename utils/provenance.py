"""Provenance records: where a checkpoint comes from (stage, parent file and its own record, the code that ran).

Every stage and training run writes its record with :func:`provenance`, so all records carry the same fields:
``stage``, ``parent``, ``parent_sha256`` (the file), ``parent_weights_sha256`` (its weights, the same when a
stage's output is written again from the same weights), ``parent_provenance`` (the chain back to the official RFDN),
``git_commit``, ``git_dirty``, ``torch`` and ``created``, then the stage's own figures.
"""

from __future__ import annotations

import datetime
import os
import subprocess
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from utils.checkpoint import ModelCheckpoint, read_model_checkpoint, weights_sha256
from utils.fileio import sha256_of

REPO_ROOT = Path(__file__).resolve().parents[1]
# What decides what a run computes: the code, its configs and its pinned requirements. Run outputs (runs/,
# model_zoo/, results, docs) change as the code runs, so they must not mark the code as modified.
CODE_PATHSPECS = (":(glob)**/*.py", "configs", ":(glob)requirements*.txt", "pyproject.toml", "scripts")


def _git(*args: str) -> str | None:
    try:
        done = subprocess.run(["git", *args], cwd=REPO_ROOT, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout if done.returncode == 0 else None


def git_commit() -> str | None:
    """HEAD of the repository holding this code; None outside a git checkout or without git."""
    out = _git("rev-parse", "HEAD")
    return out.strip() or None if out is not None else None


def git_dirty() -> bool | None:
    """Whether the code differs from ``git_commit`` (modified or new code, configs or requirements; run outputs
    do not count); None outside a git checkout."""
    out = _git("status", "--porcelain", "--", *CODE_PATHSPECS)
    return None if out is None else bool(out.strip())


def provenance(
    stage: str,
    parent: str | os.PathLike | None,
    parent_provenance: dict[str, Any] | None = None,
    *,
    parent_sha256: str | None = None,
    parent_weights_sha256: str | None = None,
    **extra: Any,
) -> dict[str, Any]:
    """The record of a checkpoint made by ``stage`` from the file ``parent`` (whose own record is
    ``parent_provenance``); ``parent_sha256`` is computed unless given (e.g. taken when a long run started)."""
    if parent is not None and parent_sha256 is None:
        parent_sha256 = sha256_of(parent)
    return {
        "stage": stage,
        "parent": None if parent is None else str(parent),
        "parent_sha256": parent_sha256,
        "parent_weights_sha256": parent_weights_sha256,
        "parent_provenance": parent_provenance or None,
        "git_commit": git_commit(),
        "git_dirty": git_dirty(),
        "torch": str(torch.__version__),
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        **extra,
    }


def stage_record(stage: str, parent_path: str | os.PathLike, parent: ModelCheckpoint, **extra: Any) -> dict[str, Any]:
    """The record of a transform stage's output made from the checkpoint ``parent`` read from ``parent_path``."""
    return provenance(stage, parent_path, parent.provenance, parent_weights_sha256=weights_sha256(parent), **extra)


# What a checkpoint's provenance says about when and by which commit it was written, not what it holds: a
# training output written again from its finished state (where the output is not kept, only the state and
# log) differs only in these.
WRITE_TIME_PROVENANCE = ("created", "git_commit", "git_dirty")


def _content_record(provenance: Mapping[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in provenance.items() if key not in WRITE_TIME_PROVENANCE}


def is_recorded_parent(
    record: Mapping[str, Any], path: str | os.PathLike, checkpoint: ModelCheckpoint | None = None, sha256: str | None = None
) -> bool:
    """Whether the file ``path`` is the parent that ``record`` (a provenance or a training run's record, with
    ``parent_sha256`` and, where written, ``parent_weights_sha256`` and ``parent_provenance``) was made from:
    the same bytes, or the same weights written again. Records written before ``parent_weights_sha256`` existed
    fall back to the parent's own provenance when it is a training's output (the one kind written again from a
    state), the same apart from when and by which commit it was written: its best PSNR and iteration pin it.
    ``checkpoint`` and ``sha256``: the file read and hashed already, where the caller has them."""
    if record.get("parent_sha256") == (sha256 or sha256_of(path)):
        return True
    checkpoint = checkpoint if checkpoint is not None else read_model_checkpoint(path)
    if isinstance(record.get("parent_weights_sha256"), str):
        return record["parent_weights_sha256"] == weights_sha256(checkpoint)
    recorded = record.get("parent_provenance")
    if not isinstance(recorded, Mapping) or recorded.get("stage") != "train":
        return False
    return _content_record(recorded) == _content_record(checkpoint.provenance)
