"""Re-encode training folders as lossless WebP, small enough to copy to a GPU server.

    python scripts/pack_training_data.py ../shared/train/BSD200 ../shared/train/T91 --out .gpu_data/train [--max_mb 55]

BSD200 (PNG) + T91 (BMP) are 68.0 MB, 41.2 MB once packed. Each image is decoded as the training loader decodes
it (``utils.image.imread_uint``: 8-bit RGB) and written as OUT/<folder name>/<stem>.webp; the encoded bytes are
decoded again and compared pixel for pixel before anything is written. Training names are ``folder/stem`` and
the images keep their order, so the held-out split and the patch stream of the packed folders are those of the
originals: training on the copy is training on the same pixels. Nothing is written when the images total more
than ``--max_mb`` (10^6 bytes), when an OUT folder holds other files (they would be trained on too) or, unless
``--overwrite``, packed copies already, or when OUT is a training folder, is inside one, or holds one as
OUT/<folder name> (the copies would land among the originals). OpenCV does the encoding; only the folder walk,
the checks and the budget are written here.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from utils.cli import ArgumentParser
from utils.config_file import first_duplicate
from utils.datasets import why_not_a_folder
from utils.errors import HarnessError
from utils.fileio import atomic_write, check_new_output, same_file
from utils.image import imread_uint, list_images

PROG = "pack_training_data.py"
WEBP_LOSSLESS = [cv2.IMWRITE_WEBP_QUALITY, 101]  # OpenCV: quality above 100 selects lossless WebP


@dataclass
class PackedImage:
    source: Path
    target: Path
    data: bytes


def encode_lossless(rgb: np.ndarray, source: Path) -> bytes:
    """WebP bytes of an RGB uint8 image, checked to decode to exactly the same pixels."""
    ok, encoded = cv2.imencode(".webp", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), WEBP_LOSSLESS)
    if not ok:
        raise HarnessError(f"{source}: OpenCV could not encode it as WebP")
    decoded = cv2.imdecode(encoded, cv2.IMREAD_UNCHANGED)  # as utils.image.imread_uint reads it
    if decoded is None or decoded.shape != rgb.shape or not np.array_equal(cv2.cvtColor(decoded, cv2.COLOR_BGR2RGB), rgb):
        raise HarnessError(f"{source}: the WebP copy does not decode to the same pixels (this OpenCV lacks lossless WebP?)")
    return encoded.tobytes()


def check_out(folders: list[Path], out: Path) -> None:
    """Refuse an OUT that would write into a training folder: OUT/<name> is one, or OUT is one or inside one."""
    for folder in folders:
        if not folder.is_dir():
            continue  # refused by plan_folder, naming what it is
        if same_file(out / folder.name, folder):
            raise HarnessError(
                f"--out {out}: {out / folder.name} is the training folder {folder} itself; pack into another folder"
            )
        real_out = Path(os.path.realpath(out))  # realpath: no error on a loop of links (refused as a folder)
        if Path(os.path.realpath(folder)) in (real_out, *real_out.parents):
            raise HarnessError(f"--out {out}: is inside the training folder {folder}; pack into a folder of its own")


def plan_folder(folder: Path, out: Path, overwrite: bool = False) -> list[tuple[Path, Path]]:
    """(image, its packed copy) for every image of ``folder``, every check made before any image is decoded; a
    packed copy already there is refused unless ``overwrite``."""
    if not folder.is_dir():
        why = why_not_a_folder(folder, "training")
        raise HarnessError(f"{folder}: training folder not found" if why.startswith("folder not found") else f"{folder}: {why}")
    sources = list_images(folder)
    if not sources:
        raise HarnessError(f"{folder}: training folder holds no images")
    stems = [p.stem for p in sources]
    clash = first_duplicate(stems)
    if clash is not None:
        raise HarnessError(f"{folder}: two images are named {clash} (their packed copies would collide)")
    targets = [out / folder.name / f"{stem}.webp" for stem in stems]
    if sorted(t.name for t in targets) != [t.name for t in targets]:  # e.g. a.png, a.b.png -> a.b.webp < a.webp
        raise HarnessError(f"{folder}: renamed to .webp its images would change order (and the patch stream)")
    stale = sorted({p.name for p in (out / folder.name).glob("*") if p.is_file()} - {t.name for t in targets})
    if stale:
        raise HarnessError(f"{out / folder.name}: holds {len(stale)} other files (e.g. {stale[0]}); pack into an empty folder")
    for target in targets:
        check_new_output(target, "--out", overwrite)
    return list(zip(sources, targets, strict=True))


def check_no_copy_is_a_source(pairs: list[tuple[Path, Path]]) -> None:
    """Refuse a packed copy already there that is one of the images being packed (a link or hard link to it):
    ``--overwrite`` would write the WebP through it onto the training image. Compared by file identity, so
    thousands of images cost one ``stat`` each."""
    sources = {}
    for source, _ in pairs:
        info = source.stat()
        sources[(info.st_dev, info.st_ino)] = source
    for _, target in pairs:
        try:
            info = target.stat()
        except OSError:  # not there (or a dangling link): a new file
            continue
        source = sources.get((info.st_dev, info.st_ino))
        if source is not None:
            raise HarnessError(f"--out: {target} is the training image {source} (a link); pack into another folder")


def pack(folders: list[Path], out: Path, max_bytes: int, overwrite: bool = False) -> list[PackedImage]:
    """Check every folder and OUT, encode every image, check the budget, then write them all (each atomically)."""
    clash = first_duplicate([f.name for f in folders])
    if clash is not None:
        raise HarnessError(f"two training folders are named {clash}: their images would share names")
    check_out(folders, out)
    pairs = [pair for folder in folders for pair in plan_folder(folder, out, overwrite)]
    check_no_copy_is_a_source(pairs)
    packed = [PackedImage(source, target, encode_lossless(imread_uint(source), source)) for source, target in pairs]
    total = sum(len(image.data) for image in packed)
    if total > max_bytes:
        raise HarnessError(f"--max_mb: the packed images take {total / 1e6:.1f} MB, over {max_bytes / 1e6:.1f} MB")
    for image in packed:
        atomic_write(image.target, lambda tmp, data=image.data: Path(tmp).write_bytes(data))
    return packed


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = ArgumentParser(prog=PROG, description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("folders", nargs="+", type=Path, help="training folders (their names are kept)")
    parser.add_argument("--out", type=Path, required=True, help="where OUT/<folder name>/<stem>.webp go, e.g. .gpu_data/train")
    parser.add_argument("--max_mb", type=float, default=55.0, help="write nothing if the images take more MB (default 55)")
    parser.add_argument(
        "--overwrite", action="store_true", help="replace packed copies already there (OUT/<folder name>/<stem>.webp)"
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        if not (math.isfinite(args.max_mb) and args.max_mb > 0):
            raise HarnessError(f"--max_mb {args.max_mb}: must be a positive number")
        packed = pack(args.folders, args.out, int(args.max_mb * 1e6), args.overwrite)
    except (HarnessError, OSError, cv2.error) as err:
        print(f"{PROG}: error: {err}", file=sys.stderr)
        return 2
    source_bytes = sum(image.source.stat().st_size for image in packed)
    packed_bytes = sum(len(image.data) for image in packed)
    print(f"{len(packed)} images, {source_bytes / 1e6:.1f} MB -> {packed_bytes / 1e6:.1f} MB lossless WebP in {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
