"""Time several SR models side by side in one process (interleaved rounds, after warm-up; median and spread).

    python benchmark.py                                   # RFDN vs PRFDN from model_zoo/, fp32, GPU if any
    python benchmark.py rfdn=model_zoo/team00_rfdn.pth final=runs/x4/final.pth --device cpu --repeats 10
    python benchmark.py --device cuda --variants fp32 fp16 fp32+channels_last fp16+channels_last fp16+compile
    python benchmark.py --device cpu --variants fp32 onnxruntime     # PyTorch beside onnxruntime (ONNX export)
    python benchmark.py --size 256x256 --json results/bench_256.json

The official figure is fp32 (the first variant, by default the only one); other variants are reported beside
it, each compared with the reference model (``--reference``, default the first model) in the same variant.
GPU times come from CUDA events around one forward pass with synchronisation; CPU times from perf_counter.
Results go to ``--json`` (written atomically; an existing file is replaced only with ``--overwrite``);
``scripts/plot_pareto.py`` draws them.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from models.team13_PRFDN import MIN_INPUT_SIZE
from transform.onnx import export_onnx, missing_onnx_packages
from utils.benchmark import DEFAULT_LR_SIZE, Entry, Variant, device_name, report, time_interleaved
from utils.checkpoint import read_model_checkpoint, where_to_get
from utils.cli import ArgumentParser, run_command
from utils.errors import HarnessError, first_line
from utils.fileio import atomic_write_json, check_distinct, check_new_output, sha256_of
from utils.inference import resolve_device
from utils.model_io import load_model
from utils.model_summary import summarize
from utils.settings import add_flags, job_class, job_defaults, setting

PROG = "benchmark.py"
REPO_ROOT = Path(__file__).resolve().parents[1]
# relative to the repository (not to the working directory), as test_demo.py's default checkpoints
DEFAULT_MODELS = ("rfdn=model_zoo/team00_rfdn.pth", "prfdn=model_zoo/team13_prfdn.pth")


def parse_model(spec: str, root: Path | None = None) -> tuple[str, Path]:
    """``NAME=PATH`` or ``PATH`` (named by its file stem); a relative PATH is taken from ``root`` when given (the
    default models, from the repository), else from the working directory."""
    if root is None and Path(spec).is_file():  # a path, even one holding '='
        return Path(spec).stem, Path(spec)
    name, _, path = spec.partition("=") if "=" in spec else ("", "", spec)
    path_obj = root / path if root is not None and path else Path(path)
    if not path:
        raise HarnessError(f"model {spec!r}: expected NAME=PATH or PATH of a checkpoint")
    if path_obj.is_dir():
        raise HarnessError(f"model {spec!r}: {path_obj} is a folder; expected a checkpoint file")
    if not path_obj.is_file():
        raise HarnessError(f"model {spec!r}: checkpoint file {path_obj} not found{where_to_get(path_obj)}")
    return name or path_obj.stem, path_obj


def parse_size(text: str) -> tuple[int, int]:
    """``HxW`` (LR pixels) -> (H, W)."""
    try:
        height, width = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise HarnessError(f"--size {text!r}: expected HxW in LR pixels, e.g. 339x510") from None
    if height < MIN_INPUT_SIZE or width < MIN_INPUT_SIZE:
        raise HarnessError(
            f"--size {text}: expected at least {MIN_INPUT_SIZE}x{MIN_INPUT_SIZE} (the smallest input the networks take)"
        )
    return height, width


def describe_model(path: Path) -> dict[str, Any]:
    checkpoint = read_model_checkpoint(path)
    model = load_model(checkpoint, str(path))
    summary = summarize(model)
    record = {
        "path": str(path),
        "sha256": sha256_of(path),
        "arch": checkpoint.arch,
        "params": summary.num_parameters,
        "flops_256": summary.flops,
        "activations_256": summary.activations,
        "conv2d": summary.num_conv,
        "data_range": checkpoint.data_range,
    }
    return {"record": record, "model": model, "data_range": checkpoint.data_range}


@dataclass(frozen=True)
class BenchmarkSettings:
    """How the models are timed."""

    reference: str | None = setting(None, "model the ratios are taken to (default: the first)")
    device: str | None = setting(None, "default: cuda if available", choices=("cpu", "cuda"))
    size: str = setting(f"{DEFAULT_LR_SIZE[0]}x{DEFAULT_LR_SIZE[1]}", "LR input HxW (the default is DIV2K-sized)")
    variants: tuple[str, ...] = setting(("fp32",), "fp32|fp16|bf16 [+channels_last] [+compile], or onnxruntime (CPU)")
    repeats: int = setting(20, "timed rounds")
    warmup: int = setting(3, "untimed rounds first")
    threads: int | None = setting(None, "CPU threads for torch (default: torch's)")


# One run of benchmark.py: the models, the results file, and the settings (``scripts/report.py`` builds one too).
BenchmarkJob = job_class(
    "BenchmarkJob",
    (
        ("models", tuple[str, ...], ()),
        ("json", str, "results/benchmark.json"),
        ("overwrite", bool, False),
        ("command", str, None),
    ),
    ((BenchmarkSettings, None),),
    defaults={f: getattr(BenchmarkSettings, f) for f in ("size", "variants", "repeats", "warmup")},
)


def run(job: BenchmarkJob) -> dict[str, Any]:
    device = resolve_device(job.device)
    if job.threads is not None:
        if job.threads < 1:
            raise HarnessError(f"--threads {job.threads}: must be at least 1")
        torch.set_num_threads(job.threads)
    if job.repeats < 1:
        raise HarnessError(f"--repeats {job.repeats}: expected at least 1 timed round")
    if job.warmup < 0:
        raise HarnessError(f"--warmup {job.warmup}: expected 0 or more untimed rounds")
    variants = [Variant.parse(v) for v in job.variants]
    if any(v.compile for v in variants) and job.warmup < 1:
        raise HarnessError("--warmup 0 with a +compile variant would time the compilation: give --warmup 1 or more")
    for variant in variants:
        variant.check_device(device)
    if any(v.onnxruntime for v in variants) and missing_onnx_packages():
        raise HarnessError(
            f"--variants onnxruntime needs {', '.join(missing_onnx_packages())}: pip install -r requirements-onnx.txt"
        )
    height, width = parse_size(job.size)
    specs = [parse_model(spec) for spec in job.models] or [parse_model(spec, REPO_ROOT) for spec in DEFAULT_MODELS]
    names = [name for name, _ in specs]
    if len(set(names)) != len(names):
        raise HarnessError(f"model names must differ: {', '.join(names)} (use NAME=PATH)")
    reference = job.reference or names[0]
    if reference not in names:
        raise HarnessError(f"--reference {reference}: not one of {', '.join(names)}")
    check_distinct({"--json": job.json}, {f"model {name}": path for name, path in specs})
    check_new_output(job.json, "--json", job.overwrite)

    generator = torch.Generator().manual_seed(0)
    lr = torch.rand(1, 3, height, width, generator=generator)
    models: dict[str, Any] = {}
    entries: list[Entry] = []
    for name, path in specs:
        described = describe_model(path)
        models[name] = described["record"]
        for variant in variants:
            x = variant.make_input(lr * described["data_range"], device)
            entries.append(Entry(name, variant, variant.prepare(described["model"], device, export_onnx), x))
    print(
        f"{PROG}: {len(entries)} entries on {device_name(device)}, LR {width}x{height} (WxH), "
        f"{job.warmup} warm-up + {job.repeats} rounds"
    )
    time_interleaved(entries, device, job.repeats, job.warmup)
    rows = report(entries, reference)
    return {
        "device": device.type,
        "device_name": device_name(device),
        "torch": torch.__version__,
        "lr_size": [height, width],
        "repeats": job.repeats,
        "warmup": job.warmup,
        "reference": reference,
        "command": " ".join([PROG, *sys.argv[1:]]) if job.command is None else job.command,
        "models": models,
        "results": rows,
    }


def format_rows(result: dict[str, Any]) -> str:
    lines = [f"{'model':16s} {'variant':24s} {'median ms':>10s} {'IQR ms':>15s} {'x ref':>6s} {'params':>9s} {'GFLOPs':>7s}"]
    for row in result["results"]:
        model = result["models"][row["model"]]
        ratio = "-" if row["ratio_to_reference"] is None else f"{row['ratio_to_reference']:.3f}"
        lines.append(
            f"{row['model']:16s} {row['variant']:24s} {row['median_ms']:10.2f} "
            f"{row['p25_ms']:7.2f}-{row['p75_ms']:<7.2f} {ratio:>6s} {model['params']:9,d} {model['flops_256'] / 1e9:7.2f}"
        )
    return "\n".join(lines)


def parse_args(argv: list[str] | None = None) -> BenchmarkJob:
    parser = ArgumentParser(prog=PROG, description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "models", nargs="*", default=(), help=f"NAME=PATH or PATH (default: {' '.join(DEFAULT_MODELS)}, in the repository)"
    )
    add_flags(parser, BenchmarkSettings, defaults=job_defaults(BenchmarkJob), default_text={"variants": "fp32"})
    parser.add_argument("--json", default="results/benchmark.json", help="results file (default results/benchmark.json)")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing --json file")
    parser.add_argument("--command", default=None, help=argparse.SUPPRESS)  # recorded command line, for report.py
    return BenchmarkJob(**vars(parser.parse_args(argv)))


def main(argv: list[str] | None = None) -> int:
    job = parse_args(argv)

    def body() -> None:
        result = run(job)
        atomic_write_json(job.json, result)  # atomic: there, whole, or as it was
        print(format_rows(result))
        print(f"{PROG}: wrote {job.json}")

    # RuntimeError: a model failing on this input / device (e.g. out of memory, unsupported dtype)
    failures = {RuntimeError: lambda err: f"a model failed to run: {first_line(err)}"}
    return run_command(PROG, body, f"{job.json} left as it was", failures)


if __name__ == "__main__":
    raise SystemExit(main())
