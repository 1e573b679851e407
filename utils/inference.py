"""Inference (whole-image or tiled), runtime measurement and peak memory, on CPU or CUDA."""

from __future__ import annotations

import itertools
import resource
import sys
import time
from collections.abc import Callable
from typing import Any

import torch
import torch.nn as nn

from utils.errors import HarnessError

TILE_MODES = ("average", "stitch")


def check_tiling(tile: int | None, tile_overlap: int, tile_mode: str = "average") -> None:
    """Raise ValueError unless ``0 <= tile_overlap < tile`` and ``tile_mode`` is known."""
    if tile_mode not in TILE_MODES:
        raise ValueError(f"tile mode {tile_mode!r}: expected one of {', '.join(TILE_MODES)}")
    if tile is not None and not 0 <= tile_overlap < tile:
        raise ValueError(f"tile {tile} / overlap {tile_overlap}: expected 0 <= overlap < tile")


def _effective_overlap(size: int, overlap: int) -> int:
    """The overlap used along an axis whose tile was clipped to ``size``: halved where it would not fit
    (the official code then divides by zero-weight pixels)."""
    return overlap if overlap < size else size // 2


def _tile_starts(length: int, size: int, overlap: int) -> list[int]:
    return [*range(0, length - size, size - overlap), length - size]


def _tile_spans(length: int, size: int, overlap: int) -> list[tuple[int, int, int]]:
    """(tile start, first kept pixel, end of kept pixels) of each tile along one axis.

    Neighbouring tiles are cut at the middle of their overlap, so every kept pixel lies at least
    ``overlap // 2`` pixels from a tile edge that is not an image edge.
    """
    starts = _tile_starts(length, size, overlap)
    cuts = [0, *((cur + size + nxt) // 2 for cur, nxt in itertools.pairwise(starts)), length]
    return [(start, cuts[i], cuts[i + 1]) for i, start in enumerate(starts)]


def _forward_averaged(img_lq: torch.Tensor, model: nn.Module, tile: int, tile_overlap: int, scale: int) -> torch.Tensor:
    """The official harness's tiling: square tiles of min(tile, h, w), overlapping outputs averaged."""
    _, _, h, w = img_lq.shape
    size = min(tile, h, w)
    overlap = _effective_overlap(size, tile_overlap)
    out_sum = weight = None
    for top in _tile_starts(h, size, overlap):
        for left in _tile_starts(w, size, overlap):
            patch = model(img_lq[..., top : top + size, left : left + size])
            if out_sum is None:
                out_sum = patch.new_zeros(*patch.shape[:2], h * scale, w * scale)
                weight = torch.zeros_like(out_sum)
            region = (..., slice(top * scale, (top + size) * scale), slice(left * scale, (left + size) * scale))
            out_sum[region] += patch
            weight[region] += 1
    return out_sum.div_(weight)


def _forward_stitched(img_lq: torch.Tensor, model: nn.Module, tile: int, tile_overlap: int, scale: int) -> torch.Tensor:
    """Tiles clipped to the image per axis and stitched at the middle of their overlap (no averaging)."""
    _, _, h, w = img_lq.shape
    tile_h, tile_w = min(tile, h), min(tile, w)
    spans_h = _tile_spans(h, tile_h, _effective_overlap(tile_h, tile_overlap))
    spans_w = _tile_spans(w, tile_w, _effective_overlap(tile_w, tile_overlap))
    output = None
    for top, y0, y1 in spans_h:
        for left, x0, x1 in spans_w:
            patch = model(img_lq[..., top : top + tile_h, left : left + tile_w])
            if output is None:
                output = patch.new_empty(*patch.shape[:2], h * scale, w * scale)
            kept = patch[..., (y0 - top) * scale : (y1 - top) * scale, (x0 - left) * scale : (x1 - left) * scale]
            output[..., y0 * scale : y1 * scale, x0 * scale : x1 * scale] = kept
    return output


def forward(
    img_lq: torch.Tensor,
    model: nn.Module,
    tile: int | None = None,
    tile_overlap: int = 32,
    scale: int = 4,
    tile_mode: str = "average",
) -> torch.Tensor:
    """Super-resolve ``img_lq`` (1xCxHxW) whole, or in ``tile``-pixel LR tiles overlapping by ``tile_overlap``.

    ``tile_mode="average"`` is the official harness's tiling (square tiles, overlaps averaged), so scores
    match the organizers'. ``"stitch"`` cuts neighbouring tiles at the middle of their overlap instead of
    averaging in the zero-padded pixels at tile edges: for a network whose receptive field reaches at most
    ``tile_overlap // 2`` pixels it is exactly the whole-image result.
    """
    if tile is None:
        return model(img_lq)
    check_tiling(tile, tile_overlap, tile_mode)
    tiled = _forward_averaged if tile_mode == "average" else _forward_stitched
    return tiled(img_lq, model, tile, tile_overlap, scale)


class Stopwatch:
    """Milliseconds of one call: CUDA events + synchronize on a GPU, ``time.perf_counter`` on the CPU."""

    def __init__(self, device: torch.device) -> None:
        self.device = device
        self.method = "cuda_events" if device.type == "cuda" else "perf_counter"

    def time(self, fn: Callable[..., torch.Tensor], *args: Any) -> tuple[torch.Tensor, float]:
        """(``fn(*args)``, its wall time in milliseconds)."""
        if self.device.type == "cuda":
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            torch.cuda.synchronize(self.device)
            start.record()
            out = fn(*args)
            end.record()
            torch.cuda.synchronize(self.device)
            return out, start.elapsed_time(end)
        start_s = time.perf_counter()
        out = fn(*args)
        return out, (time.perf_counter() - start_s) * 1000.0


def peak_memory_mib(device: torch.device) -> tuple[float, str]:
    """(peak memory in MiB, what it is): CUDA max allocated, or the process's peak RSS on the CPU.

    Both are peaks since the process started (the official harness never resets them), so a later mode's
    figure is the maximum over the modes run so far.
    """
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 1024**2, "cuda_max_allocated"
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux, bytes on macOS
    return (peak / 1024**2 if sys.platform == "darwin" else peak / 1024), "cpu_peak_rss"


def resolve_device(requested: str | None) -> torch.device:
    """``--device``: the one asked for (refused with one line when CUDA is asked for and absent), else CUDA
    when there is one, else the CPU."""
    if requested not in (None, "cpu", "cuda"):
        raise HarnessError(f"--device {requested}: expected cpu or cuda")
    if requested == "cuda" and not torch.cuda.is_available():
        raise HarnessError("--device cuda: CUDA is not available on this machine (use --device cpu)")
    if requested is None:
        requested = "cuda" if torch.cuda.is_available() else "cpu"
    return torch.device(requested)


def cpu_has_native_bf16(cpuinfo: str | None = None) -> bool:
    """True where the CPU computes bfloat16 dot products in hardware (AVX512-BF16 or AMX-BF16, from the Linux
    ``/proc/cpuinfo`` flags); elsewhere bf16 autocast may be emulated and slower than fp32, so False."""
    if cpuinfo is None:
        try:
            with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
                cpuinfo = f.read()
        except OSError:
            return False
    flags = {flag for line in cpuinfo.splitlines() if line.startswith("flags") for flag in line.split(":", 1)[-1].split()}
    return bool(flags & {"avx512_bf16", "amx_bf16"})


def describe_device(device: torch.device) -> str:
    if device.type == "cuda":
        return f"cuda:{torch.cuda.get_device_name(device)}"
    return f"cpu:{torch.get_num_threads()} threads"
