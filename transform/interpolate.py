"""Weight interpolation: a network between two trainings of the same network, ``(1 - alpha) * SRC + alpha * --toward``.

    python -m transform.interpolate model_zoo/team13_prfdn.pth runs/cycle4/mid.pth --toward runs/cycle4/cycle4.pth \
        --alpha 0.5

For a training cycle that gained on most validation groups and lost a little on one: the points between its start
(or the weights in use) and its end are candidates that keep part of each. Both checkpoints must hold the same
architecture at the same widths, scale and input range; ``alpha`` 0 gives SRC's weights exactly, 1 those of
``--toward`` (checked on a real image). Buffers that are not floating point are SRC's.
"""

from __future__ import annotations

import argparse
import copy
import math

import torch

from transform.common import StageCLI, check_equivalent, stage_job, write_stage_output
from utils.checkpoint import ModelCheckpoint
from utils.errors import HarnessError
from utils.fileio import sha256_of
from utils.model_io import load_model, read_flag_checkpoint
from utils.provenance import stage_record


def check_alpha(alpha: float) -> None:
    if not (math.isfinite(alpha) and 0.0 <= alpha <= 1.0):
        raise HarnessError(f"--alpha {alpha}: must be between 0 (SRC) and 1 (--toward)")


def check_same_network(src: ModelCheckpoint, toward: ModelCheckpoint, toward_path: str) -> None:
    """Refuse, in one line, a --toward that is not the same network as SRC (another architecture, widths, scale)."""
    if toward.arch != src.arch:
        raise HarnessError(f"--toward {toward_path}: a {toward.arch!r} network, SRC a {src.arch!r} one")
    if toward.config != src.config:
        raise HarnessError(f"--toward {toward_path}: a {toward.arch!r} network of other widths than SRC's")
    if (toward.scale, toward.data_range) != (src.scale, src.data_range):
        raise HarnessError(
            f"--toward {toward_path}: x{toward.scale} on [0, {toward.data_range:g}], SRC is x{src.scale} on "
            f"[0, {src.data_range:g}]"
        )


def interpolated_state(src: dict[str, torch.Tensor], toward: dict[str, torch.Tensor], alpha: float) -> dict[str, torch.Tensor]:
    """``(1 - alpha) * src + alpha * toward`` for every floating-point tensor; other tensors from ``src``. At alpha 0
    and 1 the result is exactly one of the two."""
    out = {}
    for name, a in src.items():
        b = toward[name]
        if not a.is_floating_point() or alpha == 0.0:
            out[name] = a.clone()
        elif alpha == 1.0:
            out[name] = b.clone()
        else:
            out[name] = torch.lerp(a.double(), b.double(), alpha).to(a.dtype)
    return out


def _run(job: InterpolateJob) -> None:
    check_alpha(job.alpha)
    if not job.toward:
        raise HarnessError("--toward: give the checkpoint to interpolate toward")
    parent = read_flag_checkpoint(job.src, "SRC")
    toward = read_flag_checkpoint(job.toward, "--toward")
    check_same_network(parent, toward, job.toward)
    start = load_model(parent, f"SRC {job.src}").eval()
    other = load_model(toward, f"--toward {job.toward}").eval()  # its tensors checked against the network's
    model = copy.deepcopy(start)
    model.load_state_dict(interpolated_state(start.state_dict(), other.state_dict(), job.alpha))
    difference = None
    if job.alpha in (0.0, 1.0):  # an end point must be that checkpoint's network exactly
        end, name = (start, job.src) if job.alpha == 0.0 else (other, job.toward)
        difference = check_equivalent(end, model, f"alpha {job.alpha:g} against {name}")
    record = stage_record(
        "interpolated",
        job.src,
        parent,
        toward=job.toward,
        toward_sha256=sha256_of(job.toward),
        toward_provenance=toward.provenance,
        alpha=job.alpha,
        max_abs_difference=difference,
    )
    write_stage_output(job.dst, model, parent, record)


InterpolateJob = stage_job("InterpolateJob", own=(("toward", str, None), ("alpha", float, 0.5)))


def _arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--toward", required=True, help="the other checkpoint: the same network, trained further")
    parser.add_argument(
        "--alpha", type=float, default=0.5, help="share of --toward's weights, 0 (SRC) to 1 (--toward); default 0.5"
    )


CLI = StageCLI(
    "transform.interpolate",
    "A network between two trainings of one network: (1 - alpha) * SRC + alpha * --toward.",
    InterpolateJob,
    _run,
    _arguments,
)
parse_args, main = CLI.parse_args, CLI.main


if __name__ == "__main__":
    raise SystemExit(main())
