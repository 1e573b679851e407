"""Image I/O and tensor conversion, with the conventions of the official harness (RGB uint8, HxWxC).

Reading normalizes what real data folders contain: grayscale becomes 3 identical channels, an alpha channel
is dropped (as OpenCV's default colour read does), 16-bit images are mapped to 8 bits (x / 257, rounded), float
images in [0, 1] to 8 bits (x * 255, rounded). What cannot be read as it is meant is refused, naming the file: a
float image with values outside [0, 1] (e.g. 0..255) or not finite, a JPEG whose bytes end before its image
does (OpenCV would decode the missing part as grey), an image over OpenCV's pixel limit, a file that is not a
regular file. OpenCV's own log lines are kept off stderr: the refusal is the one line.
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np
import torch

from utils.errors import HarnessError, first_line
from utils.fileio import atomic_write, write_target

IMAGE_EXTENSIONS = (".png", ".bmp", ".jpg", ".jpeg", ".tif", ".tiff", ".webp", ".ppm", ".pgm")
# a float value within half an 8-bit level of [0, 1] rounds to 0 or 255 as if it were in range
FLOAT_TOLERANCE = 0.5 / 255.0


@contextlib.contextmanager
def _opencv_quiet() -> Iterator[None]:
    """OpenCV's log lines (``[ERROR:0@...] imread_ ...``) off stderr while it reads or writes: a failure is said
    in the caller's one line, naming the file."""
    level = cv2.utils.logging.getLogLevel()
    cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_SILENT)
    try:
        yield
    finally:
        cv2.utils.logging.setLogLevel(level)


def is_image_file(path: str | os.PathLike) -> bool:
    return Path(path).suffix.lower() in IMAGE_EXTENSIONS


def list_images(folder: str | os.PathLike) -> list[Path]:
    """Image files directly inside ``folder``, sorted by name; hidden files (``._a.png``, ...) are skipped.

    Anything else with an image name that is not a regular file (a symlink that leads nowhere, dangling or a
    loop; a FIFO, socket, device or folder) is an error, not skipped: the average would otherwise cover fewer
    images than the folder shows.
    """
    images = []
    for path in sorted(Path(folder).iterdir()):
        if not is_image_file(path) or path.name.startswith("."):
            continue
        if path.is_symlink() and not path.exists():
            why = _why_unreachable(path)
            raise HarnessError(f"{path}: broken symbolic link (to {os.readlink(path)}, {why}); expected an image")
        kind = _special_kind(path)
        if kind:
            raise HarnessError(f"{path}: is {kind}, not a regular file; expected an image (move it out of this folder)")
        images.append(path)
    return images


def _special_kind(path: Path) -> str | None:
    """What ``path`` (followed through links) is when it is not a regular file: 'a folder', 'a FIFO', ..."""
    mode = path.stat().st_mode
    kinds = (
        (stat.S_ISREG, None),
        (stat.S_ISDIR, "a folder"),
        (stat.S_ISFIFO, "a FIFO (named pipe)"),
        (stat.S_ISSOCK, "a socket"),
        (stat.S_ISCHR, "a character device"),
        (stat.S_ISBLK, "a block device"),
    )
    return next((kind for test, kind in kinds if test(mode)), "a special file")


def _why_unreachable(link: Path) -> str:
    try:
        link.stat()
    except OSError as err:
        return "a loop of links" if err.errno == errno.ELOOP else "which does not exist"
    return "unreachable"


def to_uint8(img: np.ndarray) -> np.ndarray:
    """Map an 8-bit, 16-bit or float [0, 1] image to uint8 (16-bit: round(x / 257), so 65535 -> 255; float:
    round(x * 255)). A float image with values that are not finite, or outside [0, 1] (beyond half an 8-bit
    level), is a ValueError: clipped, a 0..255 float image would read as white."""
    if img.dtype == np.uint8:
        return img
    if img.dtype == np.uint16:
        return np.round(img.astype(np.float64) / 257.0).astype(np.uint8)
    if np.issubdtype(img.dtype, np.floating):
        not_finite = int(np.count_nonzero(~np.isfinite(img)))
        if not_finite:
            kinds = (
                "NaN or infinite" if np.isnan(img).any() and np.isinf(img).any() else "NaN" if np.isnan(img).any() else "infinite"
            )
            raise ValueError(f"float image with {kinds} values ({not_finite} of {img.size}); expected finite values in [0, 1]")
        low, high = float(img.min()), float(img.max())
        if low < -FLOAT_TOLERANCE or high > 1.0 + FLOAT_TOLERANCE:
            hint = (
                " (0..255: save it as an 8-bit image, or divide by 255)" if high <= 255.0 + FLOAT_TOLERANCE and low >= 0 else ""
            )
            raise ValueError(f"float image with values in [{low:g}, {high:g}]; expected floats in [0, 1]{hint}")
        return np.round(np.clip(img, 0.0, 1.0) * 255.0).astype(np.uint8)
    raise ValueError(f"unsupported image dtype {img.dtype}; expected 8-bit, 16-bit or float in [0, 1]")


def jpeg_truncation(data: bytes) -> str | None:
    """Why a JPEG's bytes end before its image does; None for a complete JPEG or other bytes (their decoder
    judges them). The segments before the first scan are walked by their lengths (an embedded thumbnail's end
    marker is skipped with its segment); after it, the end-of-image marker must come: entropy-coded data never
    holds the bytes FF D9 (a data byte FF is followed by 00)."""
    if data[:2] != b"\xff\xd8":
        return None
    pos = 2
    while pos + 1 < len(data):
        if data[pos] != 0xFF:
            return None  # not the marker structure of a JPEG: the decoder says what it is
        marker = data[pos + 1]
        if marker == 0xFF:  # fill byte
            pos += 1
            continue
        if marker == 0xD9:
            return None
        if 0xD0 <= marker <= 0xD7 or marker == 0x01:  # markers without a length
            pos += 2
            continue
        if pos + 4 > len(data):
            break
        end = pos + 2 + int.from_bytes(data[pos + 2 : pos + 4], "big")
        if marker == 0xDA:
            if data.find(b"\xff\xd9", end) < 0:
                return f"truncated JPEG: its {len(data)} bytes end inside the image data (no end-of-image marker)"
            return None
        pos = end
    return f"truncated JPEG: its {len(data)} bytes end inside its header"


def _decode_failure(err: cv2.error) -> str:
    """OpenCV's reason for refusing to decode, in words."""
    text = str(err)
    if "CV_IO_MAX_IMAGE_PIXELS" in text or "CV_IO_MAX_IMAGE_WIDTH" in text or "CV_IO_MAX_IMAGE_HEIGHT" in text:
        return (
            "its header gives a size over OpenCV's limit (CV_IO_MAX_IMAGE_PIXELS, 2^30 pixels, or 2^20 per side): "
            "a decompression bomb or a far larger image than an SR benchmark holds; expected an image under the limit"
        )
    reason = text.split("error:", 1)[-1].strip().splitlines()[0] if "error:" in text else first_line(err)
    return f"unreadable or corrupt image (OpenCV: {reason})"


def imread_uint(path: str | os.PathLike, n_channels: int = 3) -> np.ndarray:
    """Read an image as uint8: HxWx3 RGB (``n_channels=3``) or HxWx1 gray (``n_channels=1``)."""
    path = str(path)
    if not os.path.exists(path):
        raise HarnessError(f"{path}: image file not found")
    kind = _special_kind(Path(path))
    if kind:
        raise HarnessError(f"{path}: is {kind}, not a regular file; expected an image")
    try:
        with open(path, "rb") as file:
            data = file.read()
    except OSError as err:
        raise HarnessError(f"{path}: cannot read this image ({err.strerror or err})") from None
    truncated = jpeg_truncation(data)
    if truncated:
        raise HarnessError(f"{path}: {truncated}; expected a whole image (copy it again)")
    try:
        with _opencv_quiet():
            img = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED) if data else None
    except cv2.error as err:
        raise HarnessError(f"{path}: {_decode_failure(err)}") from None
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
    """Write an RGB (HxWx3) or gray (HxW / HxWx1) uint8 image atomically.

    Encoded in memory by OpenCV (the format from the suffix), then written by Python: a failing write says its
    cause (``no space left on device``, ...), where ``cv2.imwrite`` only returns False."""
    img = np.squeeze(img)
    bgr = cv2.cvtColor(img, cv2.COLOR_RGB2BGR) if img.ndim == 3 else img
    suffix = write_target(path).suffix  # the format of the file written (a symlink's target, as the rename)
    try:
        with _opencv_quiet():
            ok, encoded = cv2.imencode(suffix, bgr)
    except cv2.error as err:
        raise HarnessError(f"{path}: OpenCV could not encode the image as {suffix} ({first_line(err)})") from None
    if not ok:
        raise HarnessError(f"{path}: OpenCV could not encode the image as {suffix}")

    def write(tmp: str) -> None:
        with open(tmp, "wb") as file:
            file.write(encoded)  # the buffer itself, no copy

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


def check_finite_output(sr: torch.Tensor, source: str | os.PathLike) -> None:
    """Refuse a model output with NaN or infinite values (``source``: the input image): rounded to uint8 they
    became 0 with only a NumPy warning, and the PSNR a figure of black pixels."""
    finite = torch.isfinite(sr)
    if not bool(finite.all()):
        bad = int(finite.numel() - finite.sum())
        raise HarnessError(
            f"{source}: the model's output holds NaN or infinite values ({bad} of {finite.numel()}); expected a finite image "
            "(weights that overflow on this input?)"
        )


def tensor2uint(img: torch.Tensor, data_range: float = 1.0) -> np.ndarray:
    """1xCxHxW float tensor in [0, data_range] -> HxWxC uint8, clamped and rounded (as the harness scores it)."""
    arr = img.detach().squeeze(0).float().clamp(0, data_range).cpu().numpy()
    if arr.ndim == 3:
        arr = np.transpose(arr, (1, 2, 0))
    return np.uint8(np.round(arr * 255.0 / data_range))


def composite_on_white(img: np.ndarray) -> np.ndarray:
    """RGB uint8 of an OpenCV-read image (gray, gray+alpha, BGR, BGRA; 8 or 16 bit), alpha laid onto white."""
    img = to_uint8(img)
    if img.ndim == 2:
        img = img[:, :, None]
    color, alpha = (img[:, :, :-1], img[:, :, -1:]) if img.shape[2] in (2, 4) else (img, None)
    rgb = np.repeat(color, 3, axis=2) if color.shape[2] == 1 else cv2.cvtColor(color, cv2.COLOR_BGR2RGB)
    if alpha is None:
        return np.ascontiguousarray(rgb)
    a = alpha.astype(np.float32) / 255.0
    return np.round(rgb.astype(np.float32) * a + 255.0 * (1.0 - a)).astype(np.uint8)
