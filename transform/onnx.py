"""ONNX export of any stage's checkpoint, checked with onnxruntime against PyTorch before it is written.

    python -m transform.onnx model_zoo/team13_prfdn.pth prfdn_x4.onnx [--opset 18]

The graph takes ``lr`` (N x 3 x H x W, float32, RGB in [0, data_range], 255 for every network here) and
gives ``sr`` (N x 3 x sH x sW, same range, not clipped). Height and width are dynamic (at least
``MIN_INPUT_SIZE`` pixels). The exported file is run by onnxruntime on a real photograph and compared with the
PyTorch model; a max |difference| above 1e-3 (0-255 units) exits 2 with nothing written. Needs the optional
packages ``onnx``, ``onnxscript`` and ``onnxruntime`` (``pip install -r requirements-onnx.txt``).
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import io
import logging
import shutil
import tempfile
import warnings
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn

from models.team13_PRFDN import MIN_INPUT_SIZE
from transform.common import EQUIVALENCE_TOLERANCE, StageCLI, equivalence_image, stage_job
from utils.checkpoint import read_model_checkpoint
from utils.errors import HarnessError, first_line
from utils.fileio import atomic_write, sha256_of
from utils.model_io import load_model
from utils.settings import job_defaults

OPSET = 18  # the first opset of torch.onnx's current (torch.export-based) exporter
MAX_SIDE = 8192  # upper bound of the dynamic height and width
ONNX_PACKAGES = ("onnx", "onnxscript", "onnxruntime")


def missing_onnx_packages() -> list[str]:
    return [name for name in ONNX_PACKAGES if importlib.util.find_spec(name) is None]


@contextlib.contextmanager
def _quiet_exporter() -> Iterator[None]:
    """Silence the exporter's progress lines, its notes on absent torchvision ops and its FutureWarnings."""
    logger = logging.getLogger("torch.onnx")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        with contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)
            warnings.simplefilter("ignore", DeprecationWarning)
            yield
    finally:
        logger.setLevel(level)


def export_onnx(model: nn.Module, path: str | Path, opset: int = OPSET) -> None:
    """Write ``model`` (eval mode, float32) as ONNX with a dynamic batch, height and width."""
    example = torch.rand(1, 3, 2 * MIN_INPUT_SIZE, 2 * MIN_INPUT_SIZE) * 255.0
    side = {"min": MIN_INPUT_SIZE, "max": MAX_SIDE}
    dims = {
        0: torch.export.Dim("batch", min=1, max=64),
        2: torch.export.Dim("height", **side),
        3: torch.export.Dim("width", **side),
    }
    with _quiet_exporter():
        torch.onnx.export(
            model.eval(),
            (example,),
            str(path),
            dynamo=True,
            opset_version=opset,
            input_names=["lr"],
            output_names=["sr"],
            dynamic_shapes=({k: v for k, v in dims.items()},),
            verbose=False,
        )


def newest_opset() -> int:
    """The newest opset of the default domain that the installed ``onnx`` package knows."""
    import onnx

    return int(onnx.defs.onnx_opset_version())


def written_opset(path: str | Path) -> int | None:
    """The opset of the default ONNX domain that the file at ``path`` imports (None: it imports none)."""
    import onnx

    graph = onnx.load(str(path), load_external_data=False)
    return next((int(entry.version) for entry in graph.opset_import if entry.domain in ("", "ai.onnx")), None)


def onnxruntime_output(path: str | Path, lr: np.ndarray) -> np.ndarray:
    """``sr`` of the ONNX file at ``path`` for ``lr`` (N x 3 x H x W float32), on onnxruntime's CPU provider."""
    import onnxruntime

    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return session.run(["sr"], {"lr": lr.astype(np.float32)})[0]


@torch.no_grad()
def onnx_max_difference(model: nn.Module, path: str | Path, lr: torch.Tensor | None = None) -> float:
    """Largest |PyTorch - onnxruntime| output difference on ``lr`` (default: the real photograph)."""
    lr = equivalence_image() if lr is None else lr
    reference = model.eval()(lr).numpy()
    return float(np.abs(onnxruntime_output(path, lr.numpy()) - reference).max())


def _describe(path: Path, src: Path, arch: str, scale: int, data_range: float, opset: int) -> None:
    """Record what the graph is and where it comes from in the ONNX file's metadata."""
    import onnx

    graph = onnx.load(str(path))
    props = {
        "arch": arch,
        "scale": str(scale),
        "data_range": f"{data_range:g}",
        "source": src.name,
        "source_sha256": sha256_of(src),
        "opset": str(opset),
    }
    onnx.helper.set_model_props(graph, props)
    onnx.save(graph, str(path))


def _run(job: OnnxJob) -> None:
    missing = missing_onnx_packages()
    if missing:
        raise HarnessError(f"ONNX export needs {', '.join(missing)}: pip install -r requirements-onnx.txt")
    newest = newest_opset()
    if not OPSET <= job.opset <= newest:
        raise HarnessError(
            f"--opset {job.opset}: expected {OPSET} (the exporter's first) to {newest} (the newest the installed onnx "
            "package knows)"
        )
    src = Path(job.src)
    checkpoint = read_model_checkpoint(src)
    model = load_model(checkpoint, f"SRC {src}").eval()
    with tempfile.TemporaryDirectory(prefix="prfdn_onnx_") as folder:
        exported = Path(folder) / "model.onnx"
        try:
            export_onnx(model, exported, job.opset)
        except Exception as err:  # the exporter raises many types; one line is enough to act on
            raise HarnessError(f"SRC {src}: ONNX export failed ({first_line(err)}); nothing written") from None
        written = written_opset(exported)
        if written != job.opset:
            raise HarnessError(f"SRC {src}: the exporter wrote opset {written}, not --opset {job.opset}; nothing written")
        _describe(exported, src, checkpoint.arch, checkpoint.scale, checkpoint.data_range, job.opset)
        try:
            difference = onnx_max_difference(model, exported)
        except Exception as err:  # onnxruntime raises its own types (e.g. an opset it does not implement)
            raise HarnessError(f"{job.dst}: onnxruntime cannot run the export ({first_line(err)}); nothing written") from None
        if not difference <= EQUIVALENCE_TOLERANCE:  # also catches NaN
            raise HarnessError(
                f"{job.dst}: onnxruntime differs from PyTorch by {difference:.3g} > {EQUIVALENCE_TOLERANCE:g} "
                "(0-255 units) on a real image; nothing written"
            )
        atomic_write(job.dst, lambda tmp: shutil.copyfile(exported, tmp))
    print(
        f"wrote {job.dst} ({checkpoint.arch}, opset {job.opset}, dynamic batch/height/width >= {MIN_INPUT_SIZE}); "
        f"onnxruntime vs PyTorch on a real image: max |difference| {difference:.3g} (0-255 units)"
    )


OnnxJob = stage_job("OnnxJob", own=(("opset", int, OPSET),))


def _add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--opset", type=int, default=job_defaults(OnnxJob)["opset"], help=f"ONNX opset (default {OPSET})")


CLI = StageCLI(
    "transform.onnx", "Export any stage's checkpoint to ONNX, checked with onnxruntime.", OnnxJob, _run, _add_arguments
)
parse_args, main = CLI.parse_args, CLI.main


if __name__ == "__main__":
    raise SystemExit(main())
