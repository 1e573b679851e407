"""The per-mode evaluation loop of ``test_demo.py``: super-resolve, time, score and save every image."""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

import torch
import torch.nn as nn
from tqdm import tqdm

from utils.datasets import ImagePair, load_pair
from utils.errors import HarnessError, first_line
from utils.image import imsave, tensor2uint, uint2tensor4
from utils.inference import Stopwatch, forward, peak_memory_mib
from utils.metrics import calculate_psnr, calculate_ssim, rgb2y


def _mean(values: list[float]) -> float:
    return sum(values) / len(values)


# torch.OutOfMemoryError exists from torch 2.5 on; torch.cuda.OutOfMemoryError before
_OUT_OF_MEMORY = getattr(torch, "OutOfMemoryError", torch.cuda.OutOfMemoryError)


def _model_failure(pair: ImagePair, lr_tensor: torch.Tensor, tile: int | None, err: RuntimeError) -> HarnessError:
    """One line for a forward pass that failed on one image (input too small for the network, out of memory)."""
    h, w = lr_tensor.shape[-2:]
    where = f"this {w}x{h} LR input" + (f" in tiles of {tile} px (--tile)" if tile else "")
    hint = "; try --tile N" if isinstance(err, _OUT_OF_MEMORY) and not tile else ""
    return HarnessError(f"{pair.lr_path or pair.hr_path}: the model failed on {where}: {first_line(err)}{hint}")


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
    border = scale
    save_dir = Path(save_dir)
    stopwatch = Stopwatch(device)
    results: dict[str, Any] = {f"{mode}_runtime": [], f"{mode}_psnr": [], f"{mode}_images": []}
    if ssim:
        results.update({f"{mode}_ssim": [], f"{mode}_psnr_y": [], f"{mode}_ssim_y": []})

    for index, pair in enumerate(tqdm(pairs, desc=mode, unit="img", leave=False)):
        img_lr, img_hr = load_pair(pair, scale)
        lr_tensor = uint2tensor4(img_lr, data_range).to(device)
        try:
            if index == 0:  # warm-up: kernels, allocator and caches, before anything is timed
                for _ in range(warmup):
                    forward(lr_tensor, model, tile, tile_overlap, scale, tile_mode)
            sr_tensor, runtime_ms = stopwatch.time(forward, lr_tensor, model, tile, tile_overlap, scale, tile_mode)
        except RuntimeError as err:
            raise _model_failure(pair, lr_tensor, tile, err) from None
        img_sr = tensor2uint(sr_tensor, data_range)
        if img_sr.shape != img_hr.shape:
            raise HarnessError(
                f"{pair.lr_path or pair.hr_path}: the model made a {img_sr.shape[1]}x{img_sr.shape[0]} image of this "
                f"{img_lr.shape[1]}x{img_lr.shape[0]} LR input; expected the HR's {img_hr.shape[1]}x{img_hr.shape[0]} (x{scale})"
            )

        psnr = calculate_psnr(img_sr, img_hr, border=border)
        results[f"{mode}_runtime"].append(runtime_ms)
        results[f"{mode}_psnr"].append(psnr)
        results[f"{mode}_images"].append(pair.name)
        line = f"{pair.hr_path.name} - PSNR: {psnr:.2f} dB"
        if ssim:
            sr_y, hr_y = rgb2y(img_sr), rgb2y(img_hr)
            values = {
                "ssim": calculate_ssim(img_sr, img_hr, border=border),
                "psnr_y": calculate_psnr(sr_y, hr_y, border=border),
                "ssim_y": calculate_ssim(sr_y, hr_y, border=border),
            }
            for key, value in values.items():
                results[f"{mode}_{key}"].append(value)
            line += f"; SSIM: {values['ssim']:.4f}; PSNR_Y: {values['psnr_y']:.2f} dB; SSIM_Y: {values['ssim_y']:.4f}"
        logger.info(f"{line}; {runtime_ms:.2f} ms")
        imsave(img_sr, save_dir / mode / f"{pair.name}.png")

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
