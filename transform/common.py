"""What every transform stage shares: the numerical equivalence check, the stage CLI, reading and writing."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import torch
import torch.nn as nn

from models.registry import model_config
from training.data import check_apart_from_data
from utils.checkpoint import ModelCheckpoint, save_model_checkpoint
from utils.cli import ArgumentParser, run_command
from utils.errors import HarnessError
from utils.fileio import check_distinct, check_output_file
from utils.image import uint2tensor4
from utils.imresize import bicubic_downsample
from utils.model_io import read_flag_checkpoint
from utils.settings import job_class, with_values

REPO_ROOT = Path(__file__).resolve().parents[1]
EQUIVALENCE_TOLERANCE = 1e-3  # max |difference| in [0, 255] units for stages meant to be exact


@lru_cache(maxsize=1)
def equivalence_image() -> torch.Tensor:
    """A real photograph as LR input in [0, 255]: the head and shoulders of scikit-image's astronaut (HR 264x272),
    bicubic x4 down (1x3x66x68). Not square, so a height/width mix-up shows; and sized so that ESA's max-pool
    (kernel 7, stride 3, after a stride-2 convolution) leaves a remainder on both sides, so a pooling that
    rounds or pads differently shows too. Larger images would only make each exactness check slower."""
    from skimage import data as skimage_data

    return uint2tensor4(bicubic_downsample(skimage_data.astronaut()[16:280, 96:368]), 255.0)


@torch.no_grad()
def max_abs_difference(model_a: nn.Module, model_b: nn.Module, x: torch.Tensor | None = None) -> float:
    """Largest |output difference| of two models (eval mode, float32) on ``x`` (default: the real image)."""
    x = equivalence_image() if x is None else x
    was = model_a.training, model_b.training
    model_a.eval(), model_b.eval()
    try:
        return float((model_a(x) - model_b(x)).abs().max())
    finally:
        model_a.train(was[0]), model_b.train(was[1])


def check_equivalent(reference: nn.Module, candidate: nn.Module, what: str, tolerance: float = EQUIVALENCE_TOLERANCE) -> float:
    """Refuse (HarnessError) when ``candidate`` does not compute what ``reference`` computes on a real image."""
    difference = max_abs_difference(reference, candidate)
    if not difference <= tolerance:  # also catches NaN
        raise HarnessError(
            f"{what}: not equivalent, max |difference| {difference:.3g} > {tolerance:g} (0-255 units); nothing written"
        )
    print(f"{what}: max |difference| on a real image {difference:.3g} (0-255 units, tolerance {tolerance:g})")
    return difference


INPUT_FLAGS = ("rfdn", "teacher", "toward")  # checkpoint flags some stages read besides SRC


# The fields every stage's job has besides its settings: ``python -m transform.<stage> SRC DST [--overwrite]``.
STAGE_FIELDS = (("src", str, None), ("dst", str, None), ("overwrite", bool, False))


def stage_job(
    name: str,
    parts: Iterable[tuple[type, Iterable[str] | None]] = (),
    own: Iterable[tuple[str, Any, Any]] = (),
    defaults: Mapping[str, Any] | None = None,
    doc: str = "",
) -> type:
    """The job class of a stage: SRC, DST and ``overwrite``, its ``own`` fields, then the settings of ``parts``
    (``utils.settings.job_class``)."""
    return job_class(name, (*STAGE_FIELDS, *own), parts, defaults, doc, module=sys._getframe(1).f_globals["__name__"])


def check_stage_output(job: Any) -> None:
    """Refuse, before any work, a DST that cannot be written, exists (without ``--overwrite``) or is an input: SRC,
    --rfdn, --teacher or an image of the data folders (also through symlinks and hard links)."""
    target = check_output_file(job.dst, "DST")
    inputs = {"SRC": job.src, **{f"--{name}": getattr(job, name, None) for name in INPUT_FLAGS}}
    check_distinct({"DST": job.dst}, inputs)
    check_apart_from_data({"DST": job.dst}, job)
    if target.exists() and not job.overwrite:
        raise HarnessError(f"DST {job.dst}: exists; give another path, or --overwrite to replace it")


@dataclass(frozen=True)
class StageCLI:
    """The command line of one stage, ``python -m transform.<stage> SRC DST [options]``: one-line errors and exit
    code 2; DST checked before any work (see ``check_stage_output``); Ctrl-C (also inside fine-tuning) exits 130
    with nothing written, as outputs are written at the end.

    ``job`` is the stage's job class (``stage_job``): the command line parses into one, the pipeline builds one from
    its config (``job_for``), and ``run`` takes it. ``add_arguments`` declares the job's settings as flags, with the
    job's defaults."""

    prog: str
    description: str
    job: type
    run: Callable[[Any], None]
    add_arguments: Callable[[argparse.ArgumentParser], None] = lambda parser: None

    def parser(self) -> argparse.ArgumentParser:
        parser = ArgumentParser(prog=self.prog, description=self.description)
        parser.add_argument("src", help="input checkpoint")
        parser.add_argument("dst", help="output checkpoint (written atomically; never SRC or another input)")
        parser.add_argument("--overwrite", action="store_true", help="replace DST if it exists (default: refuse)")
        self.add_arguments(parser)
        return parser

    def parse_args(self, argv: list[str] | None = None) -> Any:
        """The job of a command line."""
        return self.job(**vars(self.parser().parse_args(argv)))

    def job_for(self, src: str, dst: str, settings: Mapping[str, Any] | None = None) -> Any:
        """The job of a run on SRC and DST with ``settings`` by name over the stage's defaults (the pipeline's);
        a name that is not one of the stage's settings is refused in one line."""
        return with_values(self.job(src=src, dst=dst), settings or {}, self.prog)

    def execute(self, job: Any) -> None:
        """Run the stage on a job (as the pipeline does): its output checked first; bad input raises HarnessError."""
        check_stage_output(job)
        self.run(job)

    def main(self, argv: list[str] | None = None) -> int:
        job = self.parse_args(argv)
        return run_command(self.prog, lambda: self.execute(job), f"{job.dst} not written (run the stage again)")


def read_stage_input(path: str, expected_archs: tuple[str, ...], stage: str) -> ModelCheckpoint:
    """The input checkpoint of a stage, refused with one line if it is of another stage."""
    checkpoint = read_flag_checkpoint(path, "SRC")
    if checkpoint.arch not in expected_archs:
        raise HarnessError(f"{path}: is a {checkpoint.arch!r} checkpoint; {stage} takes {' or '.join(expected_archs)}")
    return checkpoint


def write_stage_output(path: str, model: nn.Module, checkpoint_like: ModelCheckpoint, record: dict[str, Any]) -> None:
    arch, config = model_config(model)
    save_model_checkpoint(
        path, ModelCheckpoint(arch, config, model.state_dict(), checkpoint_like.scale, checkpoint_like.data_range, record)
    )
    print(f"wrote {path} ({arch}, {sum(p.numel() for p in model.parameters()):,} parameters)")
