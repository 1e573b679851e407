"""Side-by-side runtime of several models in one process: interleaved, after warm-up, median and spread.

Why interleaved: on a shared machine (CPU frequency, other processes, GPU clocks) conditions drift during a
run; timing model A for a minute and then model B for a minute puts that drift into the A/B ratio. Here every
round runs every (model, variant) once, in an order rotated per round, so drift hits all entries alike and
the ratio of medians is what one would see on a quiet machine.
"""

from __future__ import annotations

import copy
import platform
import statistics
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn as nn

from utils.errors import HarnessError
from utils.inference import Stopwatch

PRECISIONS = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}
OPTIONS = ("channels_last", "compile")
ONNXRUNTIME = "onnxruntime"  # the model exported to ONNX and run by onnxruntime (fp32, CPU)
OnnxExporter = Callable[[nn.Module, str], None]
DEFAULT_LR_SIZE = (339, 510)  # (H, W): a DIV2K validation LR image at x4 is about 510x339


@dataclass(frozen=True)
class Variant:
    """How a model is run: precision, memory format, torch.compile. Written ``fp16+channels_last+compile``."""

    precision: str = "fp32"
    channels_last: bool = False
    compile: bool = False
    onnxruntime: bool = False

    @property
    def name(self) -> str:
        if self.onnxruntime:
            return ONNXRUNTIME
        return "+".join(
            [self.precision, *(["channels_last"] if self.channels_last else []), *(["compile"] if self.compile else [])]
        )

    @classmethod
    def parse(cls, text: str) -> Variant:
        """``fp16+channels_last`` or ``onnxruntime`` -> Variant; a one-line HarnessError for anything else."""
        if text == ONNXRUNTIME:
            return cls(onnxruntime=True)
        parts = [p for p in text.split("+") if p]
        precisions = [p for p in parts if p in PRECISIONS]
        unknown = [p for p in parts if p not in PRECISIONS and p not in OPTIONS]
        if unknown or len(precisions) > 1 or len(parts) != len(set(parts)) or not parts:
            raise HarnessError(
                f"--variants {text!r}: expected '+'-joined parts, at most one of {', '.join(PRECISIONS)}, "
                f"and any of {', '.join(OPTIONS)} (e.g. fp16+channels_last); or {ONNXRUNTIME} alone"
            )
        return cls(precisions[0] if precisions else "fp32", "channels_last" in parts, "compile" in parts)

    def check_device(self, device: torch.device) -> None:
        if self.onnxruntime and device.type != "cpu":
            raise HarnessError(f"--variants {ONNXRUNTIME}: runs on the CPU only here (use --device cpu)")
        if self.precision == "fp16" and device.type != "cuda":
            raise HarnessError(f"--variants {self.name}: fp16 convolutions need --device cuda (on the CPU use bf16 or fp32)")

    def prepare(
        self, model: nn.Module, device: torch.device, export_onnx: OnnxExporter | None = None
    ) -> Callable[[torch.Tensor], torch.Tensor]:
        """A copy of the model moved, cast and (optionally) compiled, as a callable on a ready input. (A copy:
        ``Module.to`` works in place, and the same model is prepared for every variant.) The onnxruntime variant
        needs ``export_onnx(model, path)``, which writes the model as ONNX."""
        if self.onnxruntime:
            if export_onnx is None:
                raise HarnessError(f"--variants {ONNXRUNTIME}: no ONNX exporter given")
            return onnxruntime_runner(model, export_onnx)
        model = copy.deepcopy(model).to(device=device, dtype=PRECISIONS[self.precision]).eval()
        if self.channels_last:
            model = model.to(memory_format=torch.channels_last)
        return torch.compile(model) if self.compile else model

    def make_input(self, lr: torch.Tensor, device: torch.device) -> torch.Tensor:
        x = lr.to(device=device, dtype=PRECISIONS[self.precision])
        return x.contiguous(memory_format=torch.channels_last) if self.channels_last else x.contiguous()


@dataclass
class Entry:
    """One timed (model, variant) and its per-round times in milliseconds."""

    model: str
    variant: Variant
    run: Callable[[torch.Tensor], torch.Tensor]
    x: torch.Tensor
    times_ms: list[float] = field(default_factory=list)


def _quantile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    position = q * (len(ordered) - 1)
    low = int(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def stats(times_ms: list[float]) -> dict[str, float]:
    """Median, quartiles, min/max, mean and standard deviation (ms) of one entry's times."""
    return {
        "median_ms": statistics.median(times_ms),
        "p25_ms": _quantile(times_ms, 0.25),
        "p75_ms": _quantile(times_ms, 0.75),
        "min_ms": min(times_ms),
        "max_ms": max(times_ms),
        "mean_ms": statistics.fmean(times_ms),
        "std_ms": statistics.stdev(times_ms) if len(times_ms) > 1 else 0.0,
    }


@torch.inference_mode()
def time_interleaved(entries: list[Entry], device: torch.device, repeats: int, warmup: int) -> None:
    """Fill every entry's ``times_ms``: ``warmup`` untimed rounds, then ``repeats`` rounds, each running every
    entry once, starting at a different entry each round (rotation), so no entry always runs first."""
    for _ in range(warmup):
        for entry in entries:
            entry.run(entry.x)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    stopwatch = Stopwatch(device)
    for round_index in range(repeats):
        shift = round_index % len(entries)
        for entry in entries[shift:] + entries[:shift]:
            entry.times_ms.append(stopwatch.time(entry.run, entry.x)[1])


def device_name(device: torch.device) -> str:
    """The GPU's name, or the CPU's model name and the number of threads torch uses."""
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    model = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as info:
            names = [line.split(":", 1)[1].strip() for line in info if line.startswith("model name")]
        model = names[0] if names else model
    except OSError:
        pass
    return f"{model} ({torch.get_num_threads()} threads)"


def report(entries: list[Entry], reference: str) -> list[dict[str, Any]]:
    """Per-entry statistics, with the ratio of medians to ``reference``'s entry of the same variant."""
    medians = {(e.model, e.variant.name): statistics.median(e.times_ms) for e in entries}
    rows = []
    for entry in entries:
        row: dict[str, Any] = {"model": entry.model, "variant": entry.variant.name, **stats(entry.times_ms)}
        base = medians.get((reference, entry.variant.name))
        row["ratio_to_reference"] = None if base is None else row["median_ms"] / base
        row["times_ms"] = entry.times_ms
        rows.append(row)
    return rows


def onnxruntime_runner(model: nn.Module, export_onnx: OnnxExporter) -> Callable[[torch.Tensor], torch.Tensor]:
    """``model`` exported to ONNX and loaded into an onnxruntime CPU session with torch's thread count, as a
    callable on a float32 tensor (the conversions to and from NumPy share memory, so they cost no copy)."""
    import onnxruntime

    with tempfile.TemporaryDirectory(prefix="prfdn_bench_") as folder:
        path = f"{folder}/model.onnx"
        export_onnx(copy.deepcopy(model).float().eval(), path)
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = torch.get_num_threads()
        session = onnxruntime.InferenceSession(path, options, providers=["CPUExecutionProvider"])
    names = session.get_inputs()[0].name, session.get_outputs()[0].name

    def run(x: torch.Tensor) -> torch.Tensor:
        return torch.from_numpy(session.run([names[1]], {names[0]: x.numpy()})[0])

    return run
