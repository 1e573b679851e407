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


def _tile_spans(length: int, tile: int, overlap: int) -> list[tuple[int, int, int]]:
    """(tile start, first kept pixel, end of kept pixels) of each tile along one axis.

    Neighbouring tiles are cut at the middle of their overlap, so every kept pixel lies at least
    ``overlap // 2`` pixels from a tile edge that is not an image edge.
    """
    starts = [*range(0, length - tile, tile - overlap), length - tile]
    cuts = [0, *((cur + tile + nxt) // 2 for cur, nxt in itertools.pairwise(starts)), length]
    return [(start, cuts[i], cuts[i + 1]) for i, start in enumerate(starts)]


def forward(
    img_lq: torch.Tensor, model: nn.Module, tile: int | None = None, tile_overlap: int = 32, scale: int = 4
) -> torch.Tensor:
    """Super-resolve ``img_lq`` (1xCxHxW) whole, or in ``tile``-pixel LR tiles overlapping by ``tile_overlap``.

    Unlike the official harness, which averages overlapping tiles (and so mixes in the zero-padded pixels at
    tile edges), tiles are stitched at the middle of their overlap: for a network whose receptive field
    reaches at most ``tile_overlap // 2`` pixels this is exactly the whole-image result. A tile larger than
    the image along an axis is clipped to it, so tiling never changes a small image's result.
    """
    if tile is None:
        return model(img_lq)
    _, _, h, w = img_lq.shape
    tile_h, tile_w = min(tile, h), min(tile, w)
    for size, length in ((tile_h, h), (tile_w, w)):
        if size < length and not 0 <= tile_overlap < size:
            raise ValueError(f"tile overlap {tile_overlap} must be in [0, tile size {size})")
    output = None
    for top, y0, y1 in _tile_spans(h, tile_h, tile_overlap):
        for left, x0, x1 in _tile_spans(w, tile_w, tile_overlap):
            patch = model(img_lq[..., top : top + tile_h, left : left + tile_w])
            if output is None:
                output = patch.new_empty(*patch.shape[:2], h * scale, w * scale)
            kept = patch[..., (y0 - top) * scale : (y1 - top) * scale, (x0 - left) * scale : (x1 - left) * scale]
            output[..., y0 * scale : y1 * scale, x0 * scale : x1 * scale] = kept
    return output


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


def reset_peak_memory(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)


def peak_memory_mib(device: torch.device) -> tuple[float, str]:
    """(peak memory in MiB, what it is): CUDA max allocated, or the process's peak RSS on the CPU."""
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 1024**2, "cuda_max_allocated"
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux, bytes on macOS
    return (peak / 1024**2 if sys.platform == "darwin" else peak / 1024), "cpu_peak_rss"


def describe_device(device: torch.device) -> str:
    if device.type == "cuda":
        return f"cuda:{torch.cuda.get_device_name(device)}"
    return f"cpu:{torch.get_num_threads()} threads"
