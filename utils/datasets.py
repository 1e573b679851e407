"""Evaluation data: the official layouts, any HR/LR folder pair, and the built-in default set.

Pairs are found by listing files, never by hard-coded index ranges: an HR image ``NAME.ext`` is paired with
the LR image ``NAMEx4.*`` (DIV2K naming) or ``NAME.*`` in the LR folder.
"""

from __future__ import annotations

import errno
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from models.team13_PRFDN import MIN_INPUT_SIZE
from utils.errors import HarnessError
from utils.image import imread_uint, imsave, list_images, modcrop
from utils.imresize import bicubic_downsample

SCALE = 4
# where scripts/fetch_free_images.py writes by default (structured validation, line-art training images)
FREE_IMAGES_DIR = Path(__file__).resolve().parents[1] / "data" / "free"


# Where the third-party data lives (the benchmark sets, the training images, the official RFDN checkpoint). A config
# writes its paths into it as "{data_root}/train/BSD200"; its "data_root" key (default DEFAULT_DATA_ROOT) or the
# environment variable PRFDN_DATA_ROOT (over both) says where it is on this machine.
DEFAULT_DATA_ROOT = "../shared"
DATA_ROOT_PLACEHOLDER = "{data_root}"
DATA_ROOT_VARIABLE = "PRFDN_DATA_ROOT"


def data_root(configured: str | None = None) -> str:
    """The data root: ``PRFDN_DATA_ROOT`` when set, else the config's ``data_root``, else ``DEFAULT_DATA_ROOT``."""
    return os.environ.get(DATA_ROOT_VARIABLE) or configured or DEFAULT_DATA_ROOT


def with_data_root(value: Any, root: str) -> Any:
    """``value`` (a config's JSON: objects, lists, strings) with ``{data_root}`` replaced by ``root`` in every string."""
    if isinstance(value, str):
        return value.replace(DATA_ROOT_PLACEHOLDER, root)
    if isinstance(value, list):
        return [with_data_root(item, root) for item in value]
    if isinstance(value, dict):
        return {key: with_data_root(item, root) for key, item in value.items()}
    return value


def fetch_hint(folder: str | os.PathLike) -> str:
    """For a missing folder: how to make it, when it is one that ``scripts/fetch_free_images.py`` writes."""
    path = Path(os.path.realpath(folder))  # never raises, not even on a loop of links
    if path == FREE_IMAGES_DIR or FREE_IMAGES_DIR in path.parents:
        return " (python scripts/fetch_free_images.py makes it)"
    return ""


def why_not_a_folder(folder: str | os.PathLike, kind: str) -> str:
    """What ``folder``, which is not a folder, is instead, for a one-line error after ``"<flag> <folder>: "``: a
    file, a loop of symbolic links, a broken link, or nothing (with ``fetch_hint``); ``kind`` names its images."""
    path = Path(folder)
    if path.is_symlink():
        try:
            path.stat()
        except OSError as err:
            if err.errno == errno.ELOOP:
                return f"is a loop of symbolic links; expected a folder of {kind} images"
            return f"is a broken symbolic link (to {os.readlink(path)}); expected a folder of {kind} images"
    if path.exists():
        return f"is a file; expected a folder of {kind} images"
    try:
        os.stat(path)
    except OSError as err:
        if err.errno == errno.ELOOP:  # a loop of links on the way to it
            return f"its path runs through a loop of symbolic links; expected a folder of {kind} images"
    return f"folder not found{fetch_hint(folder)}"


@dataclass(frozen=True)
class ImagePair:
    """One evaluation image: its HR file and its LR file (``None``: LR is made from the HR by bicubic x4)."""

    hr_path: Path
    lr_path: Path | None

    @property
    def name(self) -> str:
        return self.hr_path.stem


@dataclass(frozen=True)
class Layout:
    """Where one official edition keeps the HR and LR images of one mode, relative to ``--data_dir``."""

    hr: str
    lr: str
    edition: str


OFFICIAL_LAYOUTS: dict[str, tuple[Layout, ...]] = {
    "valid": (
        Layout("DIV2K_LSDIR_valid_HR", "DIV2K_LSDIR_valid_LR", "NTIRE 2024 and later"),
        Layout("DIV2K_valid_HR", "DIV2K_valid_LR", "NTIRE 2023"),
        Layout("DIV2K_valid_HR", "DIV2K_valid_LR_bicubic/X4", "DIV2K download"),
    ),
    "test": (
        Layout("DIV2K_LSDIR_test_HR", "DIV2K_LSDIR_test_LR", "NTIRE 2024 and later"),
        Layout("DIV2K_test_HR", "DIV2K_test_LR", "NTIRE 2023"),
    ),
    "hybrid_test": (Layout("LSDIR_DIV2K_test_HR", "LSDIR_DIV2K_test_LR", "NTIRE 2023 hybrid test"),),
}


def _by_stem(images: list[Path]) -> dict[str, Path]:
    """Images keyed by name without extension; two files of one name (a.png, a.jpg) are ambiguous."""
    by_stem: dict[str, Path] = {}
    for path in images:
        if path.stem in by_stem:
            raise HarnessError(f"{path}: same name as {by_stem[path.stem].name}; keep one image per name")
        by_stem[path.stem] = path
    return by_stem


def _check_folder(folder: Path, kind: str) -> None:
    if folder.exists() and not folder.is_dir():
        raise HarnessError(f"{folder}: is a file; expected the folder of the {kind} images")
    if not folder.is_dir():
        why = why_not_a_folder(folder, kind)
        raise HarnessError(f"{folder}: {kind} folder not found" if why.startswith("folder not found") else f"{folder}: {why}")


def pair_folders(hr_dir: str | os.PathLike, lr_dir: str | os.PathLike | None, scale: int = SCALE) -> list[ImagePair]:
    """Pair every image of ``hr_dir`` with its LR image in ``lr_dir`` (or with none, if ``lr_dir`` is None)."""
    hr_dir = Path(hr_dir)
    _check_folder(hr_dir, "HR")
    hr_images = list_images(hr_dir)
    if not hr_images:
        raise HarnessError(f"{hr_dir}: HR folder holds no images (expected .png/.bmp/.jpg/.tif files)")
    _by_stem(hr_images)
    if lr_dir is None:
        return [ImagePair(p, None) for p in hr_images]
    lr_dir = Path(lr_dir)
    _check_folder(lr_dir, "LR")
    if lr_dir.resolve() == hr_dir.resolve():
        raise HarnessError(
            f"{lr_dir}: LR folder is the HR folder {hr_dir}; expected the folder of the LR images "
            "(or none: LR made from the HR by bicubic)"
        )
    lr_by_stem = _by_stem(list_images(lr_dir))
    pairs = []
    for hr in hr_images:
        lr = lr_by_stem.get(f"{hr.stem}x{scale}") or lr_by_stem.get(hr.stem)
        if lr is None:
            raise HarnessError(f"{hr}: no LR image {hr.stem}x{scale}.* or {hr.stem}.* in {lr_dir}")
        pairs.append(ImagePair(hr, lr))
    return pairs


def find_official_layout(data_dir: str | os.PathLike, mode: str) -> Layout:
    """The first layout of ``mode`` whose HR and LR folders both exist under ``data_dir``."""
    if mode not in OFFICIAL_LAYOUTS:
        raise HarnessError(f"unknown mode {mode!r}: expected one of {', '.join(OFFICIAL_LAYOUTS)}")
    data_dir = Path(data_dir)
    if not data_dir.is_dir():
        why = why_not_a_folder(data_dir, "data")
        raise HarnessError(f"--data_dir {data_dir}: {'folder not found' if why.startswith('folder not found') else why}")
    for layout in OFFICIAL_LAYOUTS[mode]:
        if (data_dir / layout.hr).is_dir() and (data_dir / layout.lr).is_dir():
            return layout
    expected = " or ".join(f"{lay.hr}/ + {lay.lr}/ ({lay.edition})" for lay in OFFICIAL_LAYOUTS[mode])
    raise HarnessError(f"--data_dir {data_dir}: no {mode} data found; expected {expected}")


def official_pairs(data_dir: str | os.PathLike, mode: str) -> list[ImagePair]:
    layout = find_official_layout(data_dir, mode)
    return pair_folders(Path(data_dir) / layout.hr, Path(data_dir) / layout.lr)


def load_pair(pair: ImagePair, scale: int = SCALE) -> tuple[np.ndarray, np.ndarray]:
    """(LR, HR) as RGB uint8; HR cropped to a multiple of ``scale``; sizes checked against each other."""
    hr = _read_hr(pair, scale)
    lr = bicubic_downsample(hr, scale) if pair.lr_path is None else imread_uint(pair.lr_path)
    check_lr_size(pair, lr, hr, scale)
    return lr, hr


def _read_hr(pair: ImagePair, scale: int) -> np.ndarray:
    hr = modcrop(imread_uint(pair.hr_path), scale)
    if hr.size == 0:
        raise HarnessError(f"{pair.hr_path}: HR image is smaller than {scale}x{scale} pixels")
    return hr


def check_lr_size(pair: ImagePair, lr: np.ndarray, hr: np.ndarray, scale: int = SCALE) -> None:
    """The (modcropped) HR must be exactly ``scale`` times the LR; otherwise a one-line error naming the files."""
    if (lr.shape[0] * scale, lr.shape[1] * scale) != hr.shape[:2]:
        raise HarnessError(
            f"{pair.lr_path}: LR is {lr.shape[1]}x{lr.shape[0]} but HR {pair.hr_path.name} cropped to a multiple of "
            f"{scale} is {hr.shape[1]}x{hr.shape[0]} (expected exactly {scale}x the LR size)"
        )


def check_pairs(pairs: list[ImagePair], scale: int = SCALE, min_lr_size: int = MIN_INPUT_SIZE) -> None:
    """Read every image once: readable, HR exactly ``scale`` times its LR, and LR at least ``min_lr_size`` pixels
    high and wide (the smallest input the network takes; for HR-only pairs, the HR at least ``scale`` times that).
    Run before any work, so a bad file stops a run before any image is processed."""
    for pair in pairs:
        try:
            _check_pair(pair, scale, min_lr_size)
        except MemoryError:
            raise HarnessError(f"{pair.lr_path or pair.hr_path}: out of memory reading this image pair") from None


def _check_pair(pair: ImagePair, scale: int, min_lr_size: int) -> None:
    hr = _read_hr(pair, scale)
    if pair.lr_path is None:
        least = min_lr_size * scale
        if min(hr.shape[:2]) < least:
            raise HarnessError(
                f"{pair.hr_path}: HR image is {hr.shape[1]}x{hr.shape[0]} (cropped to a multiple of {scale}); expected "
                f"at least {least}x{least}, so that its bicubic LR reaches {min_lr_size}x{min_lr_size}, the smallest "
                "input the network takes"
            )
        return
    lr = imread_uint(pair.lr_path)
    if min(lr.shape[:2]) < min_lr_size:
        raise HarnessError(
            f"{pair.lr_path}: LR image is {lr.shape[1]}x{lr.shape[0]}; expected at least {min_lr_size}x{min_lr_size} "
            "(the smallest input the network takes)"
        )
    check_lr_size(pair, lr, hr, scale)


# --- built-in default data --------------------------------------------------------------------------------

BUILTIN_IMAGES = ("astronaut", "chelsea", "coffee", "rocket", "camera")  # photographs shipped by scikit-image
BUILTIN_ROOT = Path(__file__).resolve().parent.parent / "data" / "builtin_x4"


def ensure_builtin_dataset(root: str | os.PathLike = BUILTIN_ROOT) -> list[ImagePair]:
    """Write (once) and return the default set: scikit-image photos cropped to a multiple of 4, LR by bicubic x4.

    ``camera`` is grayscale on purpose: real data folders have such files.
    """
    from skimage import data as skimage_data  # imported here: only the default run needs it

    root = Path(root)
    pairs = []
    for name in BUILTIN_IMAGES:
        hr_path, lr_path = root / "HR" / f"{name}.png", root / "LR_bicubic" / f"X{SCALE}" / f"{name}x{SCALE}.png"
        if not (hr_path.is_file() and lr_path.is_file()):
            hr = modcrop(getattr(skimage_data, name)(), SCALE)
            imsave(hr, hr_path)
            imsave(bicubic_downsample(hr, SCALE), lr_path)
        pairs.append(ImagePair(hr_path, lr_path))
    return pairs
