"""Image I/O and tensor conversion, with the conventions of the official harness (RGB uint8, HxWxC).

Reading normalizes what real data folders contain: grayscale becomes 3 identical channels, an alpha channel
is dropped (as OpenCV's default colour read does), 16-bit images are mapped to 8 bits (x / 257, rounded).
"""

from __future__ import annotations

import errno
import os
from pathlib import Path

import cv2
import numpy as np
import torch

from utils.errors import HarnessError
from utils.fileio import atomic_write

IMAGE_EXTENSIONS = (".png", ".bmp", ".jpg", ".jpeg", ".tif", ".tiff", ".webp", ".ppm", ".pgm")


def is_image_file(path: str | os.PathLike) -> bool:
    return Path(path).suffix.lower() in IMAGE_EXTENSIONS


def list_images(folder: str | os.PathLike) -> list[Path]:
    """Image files directly inside ``folder``, sorted by name; hidden files (``._a.png``, ...) are skipped.

    A symlink with an image name that leads nowhere (dangling, or a loop) is an error, not skipped: the average
    would otherwise cover fewer images than the folder shows.
    """
    images = []
    for path in sorted(Path(folder).iterdir()):
        if not is_image_file(path) or path.name.startswith("."):
            continue
        if path.is_symlink() and not path.exists():
            why = _why_unreachable(path)
            raise HarnessError(f"{path}: broken symbolic link (to {os.readlink(path)}, {why}); expected an image")
        if path.is_file():
            images.append(path)
    return images


def _why_unreachable(link: Path) -> str:
    try:
        link.stat()
    except OSError as err:
        return "a loop of links" if err.errno == errno.ELOOP else "which does not exist"
    return "unreachable"


def to_uint8(img: np.ndarray) -> np.ndarray:
    """Map any integer or float [0, 1] image to uint8 (16-bit: round(x / 257), so 65535 -> 255)."""
    if img.dtype == np.uint8:
        return img
    if img.dtype == np.uint16:
        return np.round(img.astype(np.float64) / 257.0).astype(np.uint8)
    if np.issubdtype(img.dtype, np.floating):
        return np.round(np.clip(img, 0.0, 1.0) * 255.0).astype(np.uint8)
    raise ValueError(f"unsupported image dtype {img.dtype}")


def imread_uint(path: str | os.PathLike, n_channels: int = 3) -> np.ndarray:
    """Read an image as uint8: HxWx3 RGB (``n_channels=3``) or HxWx1 gray (``n_channels=1``)."""
    path = str(path)
    if not os.path.isfile(path):
        raise HarnessError(f"{path}: image file not found")
    img = cv2.imread(path, cv2.IMREAD_UNCHANGED)
    if img is None or img.size == 0:
        raise HarnessError(f"{path}: unreadable or corrupt image (OpenCV could not decode it)")
    try:
        img = to_uint8(img)
    except ValueError as err:
        raise HarnessError(f"{path}: {err}") from None
    if img.ndim == 3 and img.shape[2] == 1:
        img = img[:, :, 0]
    if img.ndim == 3 and img.shape[2] == 2:  # gray + alpha
        img = img[:, :, 0]
    if img.ndim == 3 and img.shape[2] == 4:  # BGRA: drop alpha
        img = img[:, :, :3]
    rgb = np.repeat(img[:, :, None], 3, axis=2) if img.ndim == 2 else cv2.cvtColor(img, cv2.COLOR_BGR2RGB)
    if n_channels == 3:
        return np.ascontiguousarray(rgb)
    if n_channels == 1:
        return img[:, :, None] if img.ndim == 2 else cv2.cvtColor(img, cv2.COLOR_BGR2GRAY)[:, :, None]
    raise ValueError(f"n_channels must be 1 or 3, got {n_channels}")


def imsave(img: np.ndarray, path: str | os.PathLike) -> None:
    """Write an RGB (HxWx3) or gray (HxW / HxWx1) uint8 image atomically."""
    img = np.squeeze(img)
    bgr = cv2.cvtColor(img, cv2.COLOR_RGB2BGR) if img.ndim == 3 else img

    def write(tmp: str) -> None:
        if not cv2.imwrite(tmp, bgr):
            raise HarnessError(f"{path}: OpenCV could not write the image")

    atomic_write(path, write)


def modcrop(img: np.ndarray, scale: int) -> np.ndarray:
    """Crop height and width down to multiples of ``scale`` (top-left anchored, as DIV2K's LR were made)."""
    h, w = img.shape[:2]
    return img[: h - h % scale, : w - w % scale, ...]


def uint2tensor4(img: np.ndarray, data_range: float = 1.0) -> torch.Tensor:
    """HxWxC uint8 -> 1xCxHxW float tensor scaled to [0, data_range] (a channels-last view of an HxWxC array).

    Converted in NumPy, single-threaded: PyTorch's threaded conversion of each small patch took most of a
    training step's data time in a training process. The division is IEEE float32 in both, so the values and
    the memory layout are those of ``torch.from_numpy(img).permute(2, 0, 1).float().div(255 / data_range)``."""
    if img.ndim == 2:
        img = img[:, :, None]
    hwc = img.astype(np.float32, order="C")  # a new array
    hwc /= np.float32(255.0 / data_range)
    return torch.from_numpy(hwc).permute(2, 0, 1).unsqueeze(0)


def tensor2uint(img: torch.Tensor, data_range: float = 1.0) -> np.ndarray:
    """1xCxHxW float tensor in [0, data_range] -> HxWxC uint8, clamped and rounded (as the harness scores it)."""
    arr = img.detach().squeeze(0).float().clamp(0, data_range).cpu().numpy()
    if arr.ndim == 3:
        arr = np.transpose(arr, (1, 2, 0))
    return np.uint8(np.round(arr * 255.0 / data_range))
