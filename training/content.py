"""Training content that covers what the photographs of BSD200/T91 lack: urban and material textures, sharp
wallpaper photographs and clean-edge artwork from Debian packages, and procedural images (``training.procedural``).

Every file's license is read from its package's machine-readable ``debian/copyright`` (python-debian): the last
``Files`` stanza naming the file (by its path, or else by its name: the packages install files elsewhere than their
source tree holds them) gives it, ``Files: *`` where none does. A part of each real source is held out for
validation by its sorted paths and a fixed seed; synthetic images never validate.

- ``ufoai-textures``: the colour maps of ``tex_buildings``, ``tex_streets`` and ``tex_material`` (normal,
  specular and gloss maps left out: names ending ``_nm``, ``_sm``, ``_g``), each at least ``MIN_SIDE`` px, kept when
  sharp (``is_sharp``).
- wallpapers: ``lomiri-wallpapers-16.04``, ``plasma-workspace-wallpapers`` (per wallpaper its largest landscape
  image), ``mate-backgrounds`` (photographs and artwork) and ``ukui-wallpapers`` (clean-edge artwork), each
  downscaled (area filter) so the longer side is at most ``WALLPAPER_MAX_SIDE``: sharper, and smaller on disk.
"""

from __future__ import annotations

import fnmatch
import posixpath
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from utils.errors import HarnessError
from utils.image import composite_on_white
from utils.imresize import imresize

TEXTURES = "ufoai-textures"
TEXTURE_ARCHIVE = "usr/share/games/ufoai/base/0textures.pk3"
TEXTURE_FOLDERS = ("tex_buildings", "tex_streets", "tex_material")
TEXTURE_MAPS = ("_nm", "_sm", "_g")  # normal, specular and gloss maps: not pictures
WALLPAPERS = ("lomiri-wallpapers-16.04", "plasma-workspace-wallpapers", "mate-backgrounds", "ukui-wallpapers")
FONTS = {"fonts-dejavu-core": "*.ttf", "fonts-noto-cjk": "*CJK-Regular.ttc"}
MIN_SIDE = 256
WALLPAPER_MAX_SIDE = 1280
VAL_MAX_SIDE = 512
SHARP_PSNR = 38.0  # an image that loses less than this (dB) to a x2 bicubic round trip holds no fine detail
VAL_SHARE, VAL_MIN = 0.05, 4
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")


@dataclass(frozen=True)
class Source:
    """One picture of a package: where it is, how to read it, and its license."""

    package: str
    path: str  # inside the package (a texture: inside its archive)
    license: str
    read: Callable[[], np.ndarray]  # RGB uint8


def copyright_licenses(copyright_file: Path) -> Callable[[str], str]:
    """A function giving the license of a path from a machine-readable debian/copyright."""
    from debian.copyright import Copyright, NotMachineReadableError

    try:
        with open(copyright_file, encoding="utf-8") as f:
            parsed = Copyright(f, strict=False)
    except (OSError, NotMachineReadableError, ValueError) as err:
        raise HarnessError(f"{copyright_file}: not a machine-readable debian/copyright ({err})") from None
    stanzas = [(p.files, p.license.synopsis if p.license else None) for p in parsed.all_files_paragraphs()]

    def license_of(path: str) -> str:
        name = posixpath.basename(path)
        found = None
        for patterns, license_ in stanzas:
            specific = [pattern for pattern in patterns if pattern not in ("*", "debian/*")]
            by_path = any(fnmatch.fnmatchcase(path, pattern) for pattern in specific)
            by_name = any(fnmatch.fnmatchcase(name, posixpath.basename(pattern)) for pattern in specific)
            if (by_path or by_name) and license_:
                found = license_  # the last stanza naming the file wins
        if found is None:
            found = next((license_ for patterns, license_ in stanzas if "*" in patterns and license_), None)
        if found is None:
            raise HarnessError(f"{copyright_file}: no license for {path}")
        return found

    return license_of


def decode(data: bytes, where: str) -> np.ndarray:
    """Encoded image bytes as RGB uint8 (alpha composited onto white), or a HarnessError naming ``where``."""
    img = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
    if img is None or img.size == 0:
        raise HarnessError(f"{where}: OpenCV could not decode it")
    return composite_on_white(img)


def texture_sources(root: Path) -> list[Source]:
    """The colour maps of ``TEXTURE_FOLDERS`` in the extracted ufoai-textures package at ``root``."""
    archive = root / TEXTURE_ARCHIVE
    if not archive.is_file():
        raise HarnessError(f"{TEXTURES}: has no {TEXTURE_ARCHIVE}")
    license_of = copyright_licenses(root / "usr/share/doc" / TEXTURES / "copyright")
    with zipfile.ZipFile(archive) as z:
        names = sorted(z.namelist())
    sources = []
    for name in names:
        parts = name.split("/")
        stem, suffix = posixpath.splitext(parts[-1])
        if len(parts) != 3 or parts[1] not in TEXTURE_FOLDERS or suffix not in IMAGE_SUFFIXES:
            continue
        if stem.endswith(TEXTURE_MAPS):
            continue

        def read(name: str = name) -> np.ndarray:
            with zipfile.ZipFile(archive) as z:
                return decode(z.read(name), f"{TEXTURES} {name}")

        sources.append(Source(TEXTURES, name, license_of(f"base/{name}"), read))  # the source tree's path
    return sources


def wallpaper_sources(package: str, root: Path) -> list[Source]:
    """The pictures of a wallpaper package; of a Plasma wallpaper (``NAME/contents/images/WxH.*``) the largest
    landscape one."""
    license_of = copyright_licenses(root / "usr/share/doc" / package / "copyright")
    files = sorted(p for p in (root / "usr/share").rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
    files = [p for p in files if "doc" not in p.relative_to(root).parts[:3] and p.name != "screenshot.png"]
    chosen: dict[str, Path] = {}
    for path in files:
        rel = path.relative_to(root).as_posix()
        if "/contents/images" in rel:
            if "/contents/images/" not in rel:
                continue  # images_dark and the like: variants of the same picture
            key = rel.split("/contents/")[0]
            width, height = (int(v) for v in path.stem.split("x")) if "x" in path.stem else (0, 0)
            best = chosen.get(key)
            if width >= height and (best is None or width * height > np.prod([int(v) for v in best.stem.split("x")])):
                chosen[key] = path
        else:
            chosen[rel] = path
    return [
        Source(package, path.relative_to(root).as_posix(), license_of(path.relative_to(root).as_posix()), _reader(path))
        for path in chosen.values()
    ]


def _reader(path: Path) -> Callable[[], np.ndarray]:
    return lambda: decode(path.read_bytes(), str(path))


def font_files(roots: dict[str, Path]) -> tuple[list[Path], list[Path]]:
    """(Latin fonts, CJK fonts) of the extracted font packages."""
    latin = sorted(roots["fonts-dejavu-core"].rglob(FONTS["fonts-dejavu-core"])) if "fonts-dejavu-core" in roots else []
    cjk = sorted(roots["fonts-noto-cjk"].rglob(FONTS["fonts-noto-cjk"])) if "fonts-noto-cjk" in roots else []
    return latin, cjk


# --- pure image functions ------------------------------------------------------------------------------------


def fit_side(rgb: np.ndarray, max_side: int) -> np.ndarray:
    """Downscaled with the area filter so the longer side is at most ``max_side`` (never upscaled)."""
    h, w = rgb.shape[:2]
    if max(h, w) <= max_side:
        return rgb
    factor = max_side / max(h, w)
    return cv2.resize(rgb, (round(w * factor), round(h * factor)), interpolation=cv2.INTER_AREA)


def is_sharp(rgb: np.ndarray) -> bool:
    """Whether the image has detail at its own resolution: a x2 bicubic round trip (MATLAB-compatible) loses more
    than ``SHARP_PSNR`` allows. Upscaled and blurred pictures, and flat ones, pass through it almost unchanged."""
    h, w = rgb.shape[:2]
    crop = rgb[: h - h % 2, : w - w % 2]
    back = imresize(imresize(crop, 0.5), 2.0)
    mse = float(np.mean((crop.astype(np.float64) - back.astype(np.float64)) ** 2))
    return mse > 0 and 10 * np.log10(255.0**2 / mse) < SHARP_PSNR


def held_out(count: int, seed: int) -> set[int]:
    """Indices (of ``count`` sorted paths) held out for validation: ``VAL_SHARE`` of them, at least ``VAL_MIN``."""
    if count == 0:
        return set()
    share = min(count, max(VAL_MIN, round(VAL_SHARE * count)))
    return {int(i) for i in np.random.default_rng(seed).permutation(count)[:share]}


def usable(sources: list[Source], max_side: int) -> Iterator[tuple[Source, np.ndarray]]:
    """Each source decoded and fitted to ``max_side``, when at least ``MIN_SIDE`` per side and sharp."""
    for source in sources:
        rgb = fit_side(source.read(), max_side)
        if min(rgb.shape[:2]) >= MIN_SIDE and is_sharp(rgb):
            yield source, rgb
