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


def run(args: argparse.Namespace) -> dict[str, Any]:
    device = resolve_device(args.device)
    if args.threads is not None:
        if args.threads < 1:
            raise HarnessError(f"--threads {args.threads}: must be at least 1")
        torch.set_num_threads(args.threads)
    if args.repeats < 1:
        raise HarnessError(f"--repeats {args.repeats}: expected at least 1 timed round")
    if args.warmup < 0:
        raise HarnessError(f"--warmup {args.warmup}: expected 0 or more untimed rounds")
    variants = [Variant.parse(v) for v in args.variants]
    if any(v.compile for v in variants) and args.warmup < 1:
        raise HarnessError("--warmup 0 with a +compile variant would time the compilation: give --warmup 1 or more")
    for variant in variants:
        variant.check_device(device)
    if any(v.onnxruntime for v in variants) and missing_onnx_packages():
        raise HarnessError(
            f"--variants onnxruntime needs {', '.join(missing_onnx_packages())}: pip install -r requirements-onnx.txt"
        )
    height, width = parse_size(args.size)
    specs = [parse_model(spec) for spec in args.models] or [parse_model(spec, REPO_ROOT) for spec in DEFAULT_MODELS]
    names = [name for name, _ in specs]
    if len(set(names)) != len(names):
        raise HarnessError(f"model names must differ: {', '.join(names)} (use NAME=PATH)")
    reference = args.reference or names[0]
    if reference not in names:
        raise HarnessError(f"--reference {reference}: not one of {', '.join(names)}")
    check_distinct({"--json": args.json}, {f"model {name}": path for name, path in specs})
    check_new_output(args.json, "--json", args.overwrite)

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
        f"{args.warmup} warm-up + {args.repeats} rounds"
    )
    time_interleaved(entries, device, args.repeats, args.warmup)
    rows = report(entries, reference)
    return {
        "device": device.type,
        "device_name": device_name(device),
        "torch": torch.__version__,
        "lr_size": [height, width],
        "repeats": args.repeats,
        "warmup": args.warmup,
        "reference": reference,
        "command": " ".join([PROG, *sys.argv[1:]]) if args.command is None else args.command,
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


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = ArgumentParser(prog=PROG, description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("models", nargs="*", help=f"NAME=PATH or PATH (default: {' '.join(DEFAULT_MODELS)}, in the repository)")
    parser.add_argument("--reference", default=None, help="model the ratios are taken to (default: the first)")
    parser.add_argument("--device", choices=("cpu", "cuda"), default=None, help="default: cuda if available")
    parser.add_argument(
        "--size", default=f"{DEFAULT_LR_SIZE[0]}x{DEFAULT_LR_SIZE[1]}", help="LR input HxW (default 339x510, DIV2K-sized)"
    )
    parser.add_argument(
        "--variants",
        nargs="+",
        default=["fp32"],
        help="fp32|fp16|bf16 [+channels_last] [+compile], or onnxruntime (CPU) (default fp32)",
    )
    parser.add_argument("--repeats", type=int, default=20, help="timed rounds (default 20)")
    parser.add_argument("--warmup", type=int, default=3, help="untimed rounds first (default 3)")
    parser.add_argument("--threads", type=int, default=None, help="CPU threads for torch (default: torch's)")
    parser.add_argument("--json", default="results/benchmark.json", help="results file (default results/benchmark.json)")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing --json file")
    parser.add_argument("--command", default=None, help=argparse.SUPPRESS)  # recorded command line, for report.py
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)

    def body() -> None:
        result = run(args)
        atomic_write_json(args.json, result)  # atomic: there, whole, or as it was
        print(format_rows(result))
        print(f"{PROG}: wrote {args.json}")

    # RuntimeError: a model failing on this input / device (e.g. out of memory, unsupported dtype)
    failures = {RuntimeError: lambda err: f"a model failed to run: {first_line(err)}"}
    return run_command(PROG, body, f"{args.json} left as it was", failures)


if __name__ == "__main__":
    raise SystemExit(main())
