"""Inference (whole-image or tiled), runtime measurement and peak memory, on CPU or CUDA."""

from __future__ import annotations

import resource
import sys
import time
from collections.abc import Callable
from typing import Any

import torch
import torch.nn as nn


def _tile_starts(length: int, tile: int, stride: int) -> list[int]:
    return [*list(range(0, length - tile, stride)), length - tile]


def forward(
    img_lq: torch.Tensor, model: nn.Module, tile: int | None = None, tile_overlap: int = 32, scale: int = 4
) -> torch.Tensor:
    """Super-resolve ``img_lq`` (1xCxHxW) whole, or in ``tile``-pixel LR tiles overlapping by ``tile_overlap``.

    Tiles are averaged where they overlap, as in the official harness; a tile larger than the image is
    clipped to it, so tiling never changes a small image's result.
    """
    if tile is None:
        return model(img_lq)
    b, _, h, w = img_lq.shape
    tile = min(tile, h, w)
    if tile_overlap >= tile:
        raise ValueError(f"tile overlap {tile_overlap} must be smaller than the tile {tile}")
    stride = tile - tile_overlap
    out_sum = out_weight = None
    for top in _tile_starts(h, tile, stride):
        for left in _tile_starts(w, tile, stride):
            patch = model(img_lq[..., top : top + tile, left : left + tile])
            if out_sum is None:
                out_sum = patch.new_zeros(b, patch.shape[1], h * scale, w * scale)
                out_weight = torch.zeros_like(out_sum)
            region = (..., slice(top * scale, (top + tile) * scale), slice(left * scale, (left + tile) * scale))
            out_sum[region] += patch
            out_weight[region] += 1
    return out_sum / out_weight


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
