"""The per-mode evaluation loop of ``test_demo.py``: super-resolve, time, score and save every image."""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn as nn
from tqdm import tqdm

from utils.datasets import ImagePair, load_pair
from utils.errors import HarnessError, first_line
from utils.image import check_finite_output, imsave, tensor2uint, uint2tensor4
from utils.inference import Stopwatch, forward, peak_memory_mib
from utils.metrics import calculate_psnr, calculate_ssim, rgb2y


def _mean(values: list[float]) -> float:
    return sum(values) / len(values)


# torch.OutOfMemoryError exists from torch 2.5 on; torch.cuda.OutOfMemoryError before
_OUT_OF_MEMORY = getattr(torch, "OutOfMemoryError", torch.cuda.OutOfMemoryError)


def is_out_of_memory(err: BaseException) -> bool:
    """Whether ``err`` says memory ran out: NumPy's MemoryError, PyTorch's CUDA out-of-memory error, or its CPU
    allocator's RuntimeError ("DefaultCPUAllocator: can't allocate memory", "not enough memory")."""
    if isinstance(err, MemoryError | _OUT_OF_MEMORY):
        return True
    return isinstance(err, RuntimeError) and ("can't allocate memory" in str(err) or "not enough memory" in str(err))


def _tiling_hint(tile: int | None) -> str:
    if tile:
        return f"; try a smaller --tile than {tile} (LR pixels)"
    return "; try tiled inference: --tile 256 (LR tiles of 256 pixels; smaller takes less memory)"


def _model_failure(pair: ImagePair, size: tuple[int, int], tile: int | None, err: BaseException) -> HarnessError:
    """One line for a forward pass that failed on one image (input too small for the network, out of memory)."""
    h, w = size
    where = f"this {w}x{h} LR input" + (f" in tiles of {tile} px (--tile)" if tile else "")
    if is_out_of_memory(err):
        reason = "out of memory" + (f" ({first_line(err)})" if str(err).strip() else "")
        return HarnessError(f"{pair.lr_path or pair.hr_path}: the model ran {reason} on {where}{_tiling_hint(tile)}")
    return HarnessError(f"{pair.lr_path or pair.hr_path}: the model failed on {where}: {first_line(err)}")


def _memory_failure(pair: ImagePair, size: tuple[int, int] | None, tile: int | None, step: str) -> HarnessError:
    """One line for memory running out around the forward pass (reading, scoring, saving one image)."""
    where = f" of this {size[1]}x{size[0]} LR input" if size else ""
    hint = _tiling_hint(tile) if size else "; expected an image that fits in memory"
    return HarnessError(f"{pair.lr_path or pair.hr_path}: out of memory {step}{where}{hint}")


def _score_and_save(
    pair: ImagePair,
    img_lr: np.ndarray,
    img_hr: np.ndarray,
    img_sr: np.ndarray,
    mode: str,
    save_dir: Path,
    scale: int,
    ssim: bool,
) -> dict[str, Any]:
    """One image's figures (``psnr``, ``images``, with ``ssim``: ``ssim``, ``psnr_y``, ``ssim_y``) and its log
    ``line``; its SR image is saved as ``save_dir/mode/<name>.png``."""
    border = scale
    if img_sr.shape != img_hr.shape:
        raise HarnessError(
            f"{pair.lr_path or pair.hr_path}: the model made a {img_sr.shape[1]}x{img_sr.shape[0]} image of this "
            f"{img_lr.shape[1]}x{img_lr.shape[0]} LR input; expected the HR's {img_hr.shape[1]}x{img_hr.shape[0]} (x{scale})"
        )
    psnr = calculate_psnr(img_sr, img_hr, border=border)
    values: dict[str, Any] = {"psnr": psnr, "images": pair.name}
    line = f"{pair.hr_path.name} - PSNR: {psnr:.2f} dB"
    if ssim:
        sr_y, hr_y = rgb2y(img_sr), rgb2y(img_hr)
        values["ssim"] = calculate_ssim(img_sr, img_hr, border=border)
        values["psnr_y"] = calculate_psnr(sr_y, hr_y, border=border)
        values["ssim_y"] = calculate_ssim(sr_y, hr_y, border=border)
        line += f"; SSIM: {values['ssim']:.4f}; PSNR_Y: {values['psnr_y']:.2f} dB; SSIM_Y: {values['ssim_y']:.4f}"
    imsave(img_sr, save_dir / mode / f"{pair.name}.png")
    return {**values, "line": line}


@torch.inference_mode()
def evaluate_mode(
    model: nn.Module,
    pairs: list[ImagePair],
    mode: str,
    *,
    data_range: float,
    device: torch.device,
    save_dir: str | os.PathLike,
    logger: logging.Logger,
    scale: int = 4,
    tile: int | None = None,
    tile_overlap: int = 32,
    tile_mode: str = "average",
    ssim: bool = False,
    warmup: int = 2,
) -> dict[str, Any]:
    """Results of one mode under the official keys: ``<mode>_psnr`` (per image), ``<mode>_ave_psnr``, ...;
    with ``tile``, also how the images were tiled (``<mode>_tile``, ``<mode>_tile_overlap``, ``<mode>_tile_mode``)."""
    save_dir = Path(save_dir)
    stopwatch = Stopwatch(device)
    results: dict[str, Any] = {f"{mode}_runtime": [], f"{mode}_psnr": [], f"{mode}_images": []}
    if ssim:
        results.update({f"{mode}_ssim": [], f"{mode}_psnr_y": [], f"{mode}_ssim_y": []})

    for index, pair in enumerate(tqdm(pairs, desc=mode, unit="img", leave=False)):
        size = None
        try:
            img_lr, img_hr = load_pair(pair, scale)
            size = img_lr.shape[:2]
            lr_tensor = uint2tensor4(img_lr, data_range).to(device)
        except MemoryError:
            raise _memory_failure(pair, size, tile, "reading it") from None
        try:
            if index == 0:  # warm-up: kernels, allocator and caches, before anything is timed
                for _ in range(warmup):
                    forward(lr_tensor, model, tile, tile_overlap, scale, tile_mode)
            sr_tensor, runtime_ms = stopwatch.time(forward, lr_tensor, model, tile, tile_overlap, scale, tile_mode)
        except (RuntimeError, MemoryError) as err:
            raise _model_failure(pair, size, tile, err) from None
        check_finite_output(sr_tensor, pair.lr_path or pair.hr_path)
        try:
            results_of_image = _score_and_save(
                pair, img_lr, img_hr, tensor2uint(sr_tensor, data_range), mode, save_dir, scale, ssim
            )
        except MemoryError:
            raise _memory_failure(pair, size, tile, "scoring or saving the SR image") from None
        del sr_tensor, lr_tensor
        results[f"{mode}_runtime"].append(runtime_ms)
        line = results_of_image.pop("line")
        for key, value in results_of_image.items():
            results[f"{mode}_{key}"].append(value)
        logger.info(f"{line}; {runtime_ms:.2f} ms")

    memory, memory_kind = peak_memory_mib(device)
    results[f"{mode}_memory"] = memory
    results[f"{mode}_memory_kind"] = memory_kind
    results[f"{mode}_runtime_method"] = stopwatch.method
    if tile is not None:
        results.update({f"{mode}_tile": tile, f"{mode}_tile_overlap": tile_overlap, f"{mode}_tile_mode": tile_mode})
    for key in ("runtime", "psnr", "ssim", "psnr_y", "ssim_y"):
        if f"{mode}_{key}" in results:
            results[f"{mode}_ave_{key}"] = _mean(results[f"{mode}_{key}"])
    logger.info(f"{'Max Memory':>16s} : {memory:<.3f} [M] ({memory_kind})")
    logger.info(f"------> Average runtime of ({mode}) is : {results[f'{mode}_ave_runtime']:.6f} ms")
    logger.info(f"------> Average PSNR of ({mode}) is : {results[f'{mode}_ave_psnr']:.4f} dB")
    return results
