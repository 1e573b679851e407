"""Image quality metrics as the SR literature and the official harness compute them (uint8, border shaved).

SSIM comes from scikit-image, set to Wang et al.'s definition used in SR papers: 11x11 Gaussian window with
sigma 1.5, population covariance, K1 = 0.01, K2 = 0.03, data range 255, mean over channels. scikit-image
crops the 5-pixel window margin before averaging, which matches the MATLAB 'valid' filtering of SR code.
"""

from __future__ import annotations

import math

import numpy as np
from skimage.metrics import structural_similarity

BT601_Y = np.array([65.481, 128.553, 24.966]) / 255.0


def shave(img: np.ndarray, border: int) -> np.ndarray:
    return img[border : img.shape[0] - border, border : img.shape[1] - border, ...] if border else img


def _check_pair(img1: np.ndarray, img2: np.ndarray) -> None:
    if img1.shape != img2.shape:
        raise ValueError(f"images differ in shape: {img1.shape} vs {img2.shape}")


def calculate_psnr(img1: np.ndarray, img2: np.ndarray, border: int = 0) -> float:
    """PSNR in dB between two [0, 255] images (all channels pooled); inf for identical images."""
    _check_pair(img1, img2)
    a = shave(img1, border).astype(np.float64)
    b = shave(img2, border).astype(np.float64)
    mse = np.mean((a - b) ** 2)
    return math.inf if mse == 0 else 20.0 * math.log10(255.0 / math.sqrt(mse))


def calculate_ssim(img1: np.ndarray, img2: np.ndarray, border: int = 0) -> float:
    """SSIM between two [0, 255] images (HxW or HxWxC; channels averaged)."""
    _check_pair(img1, img2)
    a = np.squeeze(shave(img1, border).astype(np.float64))
    b = np.squeeze(shave(img2, border).astype(np.float64))
    return float(
        structural_similarity(
            a,
            b,
            data_range=255.0,
            gaussian_weights=True,
            sigma=1.5,
            use_sample_covariance=False,
            channel_axis=-1 if a.ndim == 3 else None,
        )
    )


def rgb2y(img: np.ndarray) -> np.ndarray:
    """BT.601 luma (range 16-235) of an RGB [0, 255] image, as float64 and not rounded.

    Not rounding is what the reference Y-PSNR figures of the benchmark sets use (BasicSR convention).
    """
    return img[..., :3].astype(np.float64) @ BT601_Y + 16.0
