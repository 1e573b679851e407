"""PSNR per validation group of checkpoints, plain and as x8 self-ensembles: how the validation that chooses
weights sees each network, and each network's gap to a reference (e.g. the official RFDN) on its worst group.

    python scripts/score_groups.py model_zoo/team00_rfdn.pth model_zoo/team13_prfdn.pth --x8 --reference 0 \\
        --train_dir ../shared/train/BSD200 ../shared/train/T91 --val_fraction 0.05 --skip_small \\
        --val_dir data/free/structured_val --json runs/groups.json

The validation images are those a training with the same data flags holds out (``--val_fraction``) and reads
(``--val_dir``), grouped as its log groups them (``held_out``, and each ``--val_dir`` kind); never the benchmark
sets. PSNR as the training's validation scores it: SR rounded to uint8, RGB, 4-pixel border.
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path
from typing import Any

import torch

from models.ensemble import SelfEnsemble
from models.team13_PRFDN import MIN_INPUT_SIZE
from training.data import DataSettings, add_data_arguments, check_apart_from_data, fill_data_defaults, load_data_from_args
from training.loop import group_means, psnr_scores
from utils.cli import ArgumentParser, run_command
from utils.config_file import first_duplicate
from utils.errors import HarnessError, first_line
from utils.evaluation import is_out_of_memory
from utils.fileio import atomic_write_json, check_distinct, check_new_output
from utils.inference import resolve_device
from utils.model_io import load_model, read_flag_checkpoint
from utils.settings import job_class

PROG = "score_groups.py"


def score(model: torch.nn.Module, images: list, data_range: float, device: torch.device, source: str) -> dict[str, float]:
    """Mean PSNR per validation group, then ``mean`` over every image; a model that fails (out of memory, ...) or
    makes an image with NaN or infinite values is one line naming ``source`` (the checkpoint)."""
    try:
        scores = psnr_scores(model.to(device).eval(), images, data_range, device)
    except (RuntimeError, MemoryError) as err:
        if is_out_of_memory(err):
            elsewhere = ", or --device cpu" if device.type == "cuda" else ""
            raise HarnessError(
                f"{source}: out of memory scoring the validation images on {device.type} ({first_line(err)}); "
                f"try a smaller --val_crop{elsewhere}"
            ) from None
        raise HarnessError(f"{source}: the model failed on a validation image: {first_line(err)}") from None
    not_finite = [image.name for image, value in zip(images, scores, strict=True) if math.isnan(value)]
    if not_finite:
        raise HarnessError(
            f"{source}: its output on {len(not_finite)} validation image(s) (e.g. {not_finite[0]}) holds NaN or infinite "
            "values; expected finite images"
        )
    return {**group_means(images, scores), "mean": sum(scores) / len(scores)}


# One run of score_groups.py: the checkpoints, the data settings (its ``teacher`` refused: every checkpoint is scored)
# and the command's own switches.
GroupsJob = job_class(
    "GroupsJob",
    (
        ("checkpoints", tuple[str, ...], ()),
        ("x8", bool, False),
        ("reference", int, None),
        ("device", str, None),
        ("json", str, None),
        ("overwrite", bool, False),
    ),
    ((DataSettings, None),),
)


def run(job: GroupsJob) -> dict[str, Any]:
    stems = [Path(path).stem for path in job.checkpoints]
    names = stems if len(set(stems)) == len(stems) else [str(path) for path in job.checkpoints]  # rows never clash
    twice = first_duplicate(names)
    if twice is not None:
        raise HarnessError(f"CHECKPOINT {twice}: given twice; expected each checkpoint once")
    checkpoints = [(name, read_flag_checkpoint(path, "CHECKPOINT")) for name, path in zip(names, job.checkpoints, strict=True)]
    first = checkpoints[0][1]
    for (_, checkpoint), path in zip(checkpoints, job.checkpoints, strict=True):
        if (checkpoint.scale, checkpoint.data_range) != (first.scale, first.data_range):
            raise HarnessError(
                f"CHECKPOINT {path}: x{checkpoint.scale} on [0, {checkpoint.data_range:g}], but the first, "
                f"{job.checkpoints[0]}, is x{first.scale} on [0, {first.data_range:g}]; expected checkpoints that take "
                "the same images"
            )
    if job.reference is not None and not 0 <= job.reference < len(checkpoints):
        raise HarnessError(f"--reference {job.reference}: give the index of one of the {len(checkpoints)} checkpoints")
    if job.json:
        check_distinct({"--json": job.json}, {f"CHECKPOINT {i}": p for i, p in enumerate(job.checkpoints)})
        check_apart_from_data({"--json": job.json}, job)
        check_new_output(job.json, "--json", job.overwrite)
    fill_data_defaults(job)
    device = resolve_device(job.device)
    # every model built (its weights fit) before any image is read: a bad last checkpoint stops the run up front
    models = [
        load_model(checkpoint, f"CHECKPOINT {path}") for (_, checkpoint), path in zip(checkpoints, job.checkpoints, strict=True)
    ]
    data = load_data_from_args(job, patch_size=MIN_INPUT_SIZE, seed=0, data_range=first.data_range, scale=first.scale)
    if not data.val:
        raise HarnessError("no validation images: give --val_fraction above 0 and/or --val_dir")
    rows: dict[str, dict[str, float]] = {}
    for (name, _), path, model in zip(checkpoints, job.checkpoints, models, strict=True):
        with torch.no_grad():
            rows[name] = score(model, data.val, first.data_range, device, f"CHECKPOINT {path}")
            if job.x8:
                rows[f"{name} x8"] = score(SelfEnsemble(model), data.val, first.data_range, device, f"CHECKPOINT {path} (x8)")
    result: dict[str, Any] = {"command": " ".join([PROG, *sys.argv[1:]]), "data": data.description, "rows": rows}
    if job.reference is not None:
        reference = rows[checkpoints[job.reference][0]]
        groups = [g for g in reference if g != "mean"]
        result["worst_gap"] = {name: min(row[g] - reference[g] for g in groups) for name, row in rows.items()}
    return result


def table(result: dict[str, Any]) -> str:
    rows = result["rows"]
    groups = list(next(iter(rows.values())))
    lines = ["| checkpoint | " + " | ".join(groups) + (" | worst gap |" if "worst_gap" in result else " |")]
    lines.append("|---" * (len(groups) + 1 + ("worst_gap" in result)) + "|")
    for name, row in rows.items():
        cells = [f"{row[g]:.3f}" for g in groups]
        if "worst_gap" in result:
            cells.append(f"{result['worst_gap'][name]:+.3f}")
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def parse_args(argv: list[str] | None = None) -> GroupsJob:
    parser = ArgumentParser(PROG, description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("checkpoints", nargs="+", help="checkpoints of any stage (a plain state dict: the official RFDN)")
    add_data_arguments(parser, teacher=False)
    parser.add_argument("--x8", action="store_true", help="also score each checkpoint's x8 self-ensemble")
    parser.add_argument("--reference", type=int, default=None, help="index of the checkpoint every row's worst gap is to")
    parser.add_argument("--device", choices=("cpu", "cuda"), default=None, help="default: cuda when available")
    parser.add_argument("--json", default=None, help="also write the figures here")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing --json file")
    return GroupsJob(**vars(parser.parse_args(argv)))


def main(argv: list[str] | None = None) -> int:
    job = parse_args(argv)

    def body() -> None:
        if job.teacher:
            raise HarnessError("--teacher: not used here (every checkpoint is scored; --reference names the one to compare to)")
        result = run(job)
        if job.json:
            atomic_write_json(job.json, result)
        print(table(result))

    # MemoryError: reading the images (the models' own out-of-memory lines name the checkpoint)
    failures = {MemoryError: lambda _: "out of memory reading the images; try a smaller --val_crop or fewer images"}
    return run_command(PROG, body, "nothing written", failures)
