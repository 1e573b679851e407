"""Build the free-licensed training and validation content: a structured-content validation set, line-art
training images, urban and material textures, wallpaper photographs and artwork, and procedural images.

    python scripts/fetch_free_images.py [--out data/free] [--debs DIR] [--train_count 300] [--procedural_count 60]
                                        [--procedural_size 512] [--overwrite]

The images come from Debian packages, from scikit-image's bundled data and from ``training.procedural``, never from
the SR benchmark sets (Set5, Set14, BSD68, Urban100, Manga109, DIV2K). The textures and wallpapers
(``ufoai-textures``, ``lomiri-wallpapers-16.04``, ``plasma-workspace-wallpapers``, ``mate-backgrounds``,
``ukui-wallpapers``; each file's license from its package's debian/copyright) and the fonts the procedural text is
drawn in (``fonts-dejavu-core``, ``fonts-noto-cjk``): ``training.content``. The structured set:

- ``opencv-doc`` (samples/data is under debian/copyright's "Files: *", Apache-2.0 AND BSD-3-Clause): nine
  structured / urban photographs, kept at their size. leuvenB and graf3 show the scenes of leuvenA and graf1
  and are never used.
- ``openclipart-png`` (public domain dedication): PNG drawings with alpha, composited onto white. A drawing is a
  candidate when its PNG header gives a shorter side of at least 256 px. The candidates, in sorted path order,
  are shuffled by ``numpy.random.default_rng(SEED)``; walking that order, each is tried for validation until 8
  passed, then for training until ``--train_count`` passed, so the two picks are disjoint. Validation drawings
  are downscaled (INTER_AREA, never cropped) so the longer side is at most 512 px and pass when the shorter side
  is still at least 192 px; training drawings are downscaled so the longer side is at most 1024 px and pass when
  the shorter side is still at least 256 px. Nearly blank drawings never pass: at least 2% of the pixels must be
  ink (some channel below 224) and at least 1% edges (gray Sobel gradient magnitude above 64), in the final image.
- scikit-image: ``brick()``, ``grass()``, ``gravel()`` (CC0: CC0Textures, DeviantArt), gray made 3-channel.
  ``text()`` (public domain) is left out: it is 172 px high, under the 192 px every validation image has.

Written: OUT/structured_val/*.png (opencv_*, clipart_*, skimage_*), OUT/clipart_train/*.png (clipart_*),
OUT/texture_train/*.png (texture_*), OUT/wallpaper_train/*.png (wallpaper_*), OUT/procedural_train/*.png (proc_*),
OUT/val/*.png (every validation image: structured_val's and the held-out texture_* and wallpaper_*; a training's
``--val_dir`` groups them by that prefix), all RGB PNG, and OUT/SOURCES.md (each file's package and version, path
inside the package, license, and the command). A picture filed under several names is written once (a held-out
picture's copies never go to training). A drawing is named ``clipart_`` + its path under
usr/share/openclipart/png with ``/`` made ``__`` (stems alone repeat across the package's folders). The .deb files
are read from ``--debs DIR``, else fetched by ``apt-get download`` into a temporary folder; ``dpkg-deb -x``
extracts them. Nothing is written when OUT already holds files, unless ``--overwrite`` is given (then PNGs of the
two folders that this run does not write are removed); every image is encoded before the first file is written,
each file is written atomically.
"""

from __future__ import annotations

import argparse
import hashlib
import posixpath
import shlex
import shutil
import struct
import subprocess
import sys
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from training import content, procedural
from utils.cli import ArgumentParser
from utils.errors import HarnessError
from utils.fileio import atomic_write, check_output_file, sha256_of
from utils.image import composite_on_white

PROG = "fetch_free_images.py"
SEED = 20240613
VAL_DIR, TRAIN_DIR, SOURCES = "structured_val", "clipart_train", "SOURCES.md"
ALL_VAL_DIR = "val"  # every validation image: structured_val's, and the held-out textures and wallpapers
TEXTURE_DIR, WALLPAPER_DIR, PROCEDURAL_DIR = "texture_train", "wallpaper_train", "procedural_train"
FOLDERS = (VAL_DIR, TRAIN_DIR, ALL_VAL_DIR, TEXTURE_DIR, WALLPAPER_DIR, PROCEDURAL_DIR)
OPENCV, CLIPART = "opencv-doc", "openclipart-png"
OPENCV_ROOT = "usr/share/doc/opencv-doc/examples"
CLIPART_ROOT = "usr/share/openclipart/png"
OPENCV_FILES = [
    "data/building.jpg",
    "data/leuvenA.jpg",
    "data/graf1.png",
    "data/home.jpg",
    "data/box_in_scene.png",
    "data/sudoku.png",
    "text/scenetext01.jpg",
    "text/scenetext03.jpg",
    "text/scenetext04.jpg",
]
# the license each package's debian/copyright must state (checked, so a changed package is noticed)
LICENSES = {
    OPENCV: ("License: Apache-2.0 AND BSD-3-Clause", "Apache-2.0 AND BSD-3-Clause (debian/copyright, Files: *)"),
    CLIPART: ("Public Domain Dedication", "public domain (Creative Commons Public Domain Dedication, debian/copyright)"),
}
SKIMAGE_FILES = {  # three pictures, so the group's figure does not follow one picture
    "brick": "CC0 (CC0Textures, per skimage.data.brick)",
    "grass": "CC0 (DeviantArt, per skimage.data.grass)",
    "gravel": "CC0 (CC0Textures, per skimage.data.gravel)",
}
VAL_CLIPART, VAL_MAX_SIDE, VAL_MIN_SIDE = 8, 512, 192
TRAIN_MAX_SIDE, TRAIN_MIN_SIDE = 1024, 256
INK_LEVEL, MIN_INK = 224, 0.02  # a pixel is ink when some channel is below INK_LEVEL
EDGE_LEVEL, MIN_EDGES = 64.0, 0.01  # a pixel is an edge when its gray Sobel magnitude exceeds EDGE_LEVEL
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


@dataclass
class OutputImage:
    name: str  # relative to OUT, e.g. structured_val/opencv_building.png
    data: bytes  # the encoded PNG
    shape: tuple[int, ...]
    source: str  # package and version
    original: str  # path inside the package, or the scikit-image call
    license: str


@dataclass
class Package:
    name: str
    version: str
    sha256: str
    root: Path  # where it is extracted


# --- pure image functions ------------------------------------------------------------------------------------


def ink_fraction(rgb: np.ndarray) -> float:
    """Fraction of pixels with some channel below INK_LEVEL (not white)."""
    return float((rgb.min(axis=2) < INK_LEVEL).mean())


def edge_fraction(rgb: np.ndarray) -> float:
    """Fraction of pixels whose gray Sobel gradient magnitude exceeds EDGE_LEVEL."""
    gray = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
    gx = cv2.Sobel(gray, cv2.CV_32F, 1, 0)
    gy = cv2.Sobel(gray, cv2.CV_32F, 0, 1)
    return float((np.hypot(gx, gy) > EDGE_LEVEL).mean())


def is_nearly_blank(rgb: np.ndarray) -> bool:
    """Whether under MIN_INK of the pixels are ink or under MIN_EDGES are edges."""
    return ink_fraction(rgb) < MIN_INK or edge_fraction(rgb) < MIN_EDGES


def fit_within(rgb: np.ndarray, max_side: int) -> np.ndarray:
    """Downscale (INTER_AREA) so the longer side is at most ``max_side``; smaller images are returned as they are."""
    h, w = rgb.shape[:2]
    scale = max_side / max(h, w)
    if scale >= 1.0:
        return rgb
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    return cv2.resize(rgb, size, interpolation=cv2.INTER_AREA)


def prepare(rgb: np.ndarray, max_side: int, min_side: int) -> np.ndarray | None:
    """The image fitted within ``max_side``, or None when its shorter side falls under ``min_side`` or it is blank."""
    fitted = fit_within(rgb, max_side)
    if min(fitted.shape[:2]) < min_side or is_nearly_blank(fitted):
        return None
    return fitted


def pick_clipart(
    paths: Sequence[str], load: Callable[[str], np.ndarray], n_val: int, n_train: int, seed: int = SEED
) -> tuple[list[tuple[str, np.ndarray]], list[tuple[str, np.ndarray]]]:
    """Disjoint (path, image) picks for validation and training, in the seeded order of the sorted paths.

    ``load`` gives a path's RGB image; the first ``n_val`` that pass validation's checks go to validation, the
    next ``n_train`` that pass training's checks to training, except drawings of a folder that holds a validation
    drawing: a folder is a series (one symbol set, one icon theme, the same pictogram with other colours), so
    its other drawings would be near-copies of a validation image. Only as many images as needed are loaded.
    """
    ordered = sorted(paths)
    val: list[tuple[str, np.ndarray]] = []
    train: list[tuple[str, np.ndarray]] = []
    for index in np.random.default_rng(seed).permutation(len(ordered)):
        if len(val) == n_val and len(train) == n_train:
            break
        path = ordered[index]
        if len(val) == n_val and any(posixpath.dirname(path) == posixpath.dirname(v) for v, _ in val):
            continue  # a validation drawing's series
        wanted = (VAL_MAX_SIDE, VAL_MIN_SIDE, val) if len(val) < n_val else (TRAIN_MAX_SIDE, TRAIN_MIN_SIDE, train)
        image = prepare(load(path), wanted[0], wanted[1])
        if image is not None:
            wanted[2].append((path, image))
    return val, train


def png_size(path: Path) -> tuple[int, int] | None:
    """(width, height) from a PNG file's header, or None when it is not a PNG."""
    with open(path, "rb") as f:
        head = f.read(24)
    if len(head) < 24 or not head.startswith(PNG_SIGNATURE) or head[12:16] != b"IHDR":
        return None
    return struct.unpack(">II", head[16:24])


def encode_png(rgb: np.ndarray, name: str) -> bytes:
    """PNG bytes of an RGB uint8 image, at zlib's default level 6: level 9 takes several times as long for files a
    few per cent smaller."""
    ok, encoded = cv2.imencode(".png", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_PNG_COMPRESSION, 6])
    if not ok:
        raise HarnessError(f"{name}: OpenCV could not encode it as PNG")
    return encoded.tobytes()


# --- packages ------------------------------------------------------------------------------------------------


def check_tools(need_download: bool) -> None:
    """Refuse, in one line, when dpkg-deb (or apt-get, to download) is not on PATH."""
    missing = [tool for tool in ("apt-get", "dpkg-deb") if (tool != "apt-get" or need_download) and not shutil.which(tool)]
    if missing:
        raise HarnessError(f"{' and '.join(missing)} not found: needs Debian's apt/dpkg tools (or --debs with dpkg-deb)")


def run_tool(command: list[str], cwd: Path | None = None) -> str:
    """Run a command; its stdout, or a HarnessError with the first line of what it said."""
    try:
        done = subprocess.run(command, cwd=cwd, capture_output=True, text=True, check=False)
    except OSError as err:
        raise HarnessError(f"{command[0]}: {err.strerror or err}") from None
    if done.returncode != 0:
        said = ((done.stderr or done.stdout).strip().splitlines() or [f"exit status {done.returncode}"])[0][:200]
        raise HarnessError(f"{shlex.join(command)} failed: {said}")
    return done.stdout


def find_deb(folder: Path, package: str) -> Path:
    """The one ``PACKAGE_*.deb`` in ``folder``."""
    found = sorted(folder.glob(f"{package}_*.deb"))
    if len(found) != 1:
        what = "no" if not found else f"{len(found)}"
        raise HarnessError(f"--debs {folder}: {what} {package}_*.deb there; expected exactly one")
    return found[0]


def download_deb(package: str, folder: Path) -> Path:
    """``apt-get download PACKAGE`` into ``folder``; the .deb it wrote."""
    run_tool(["apt-get", "download", package], cwd=folder)
    return find_deb(folder, package)


def unpack(deb: Path, package: str, dest: Path) -> Package:
    """Extract ``deb`` into ``dest`` with dpkg-deb -x, check its name and license; its record."""
    name = run_tool(["dpkg-deb", "-f", str(deb), "Package"]).strip()
    if name != package:
        raise HarnessError(f"{deb}: holds package {name!r}, expected {package}")
    version = run_tool(["dpkg-deb", "-f", str(deb), "Version"]).strip()
    run_tool(["dpkg-deb", "-x", str(deb), str(dest)])
    copyright_file = dest / "usr/share/doc" / package / "copyright"
    if not copyright_file.is_file():
        raise HarnessError(f"{deb}: has no debian/copyright")
    if package in LICENSES and LICENSES[package][0] not in copyright_file.read_text(errors="replace"):
        raise HarnessError(f"{deb}: its debian/copyright does not state {LICENSES[package][0]!r}; check the license")
    return Package(package, version, sha256_of(deb), dest)


# --- the images ----------------------------------------------------------------------------------------------


def read_rgb(path: Path) -> np.ndarray:
    """An image file as RGB uint8, alpha composited onto white."""
    img = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if img is None or img.size == 0:
        raise HarnessError(f"{path}: OpenCV could not decode it")
    try:
        return composite_on_white(img)
    except ValueError as err:  # a float image outside [0, 1], or not finite (utils.image.to_uint8)
        raise HarnessError(f"{path}: {err}") from None


def output(name: str, rgb: np.ndarray, source: str, original: str, license_: str) -> OutputImage:
    return OutputImage(name, encode_png(rgb, name), rgb.shape, source, original, license_)


def opencv_images(pkg: Package) -> list[OutputImage]:
    """The nine opencv-doc validation images, at their size."""
    images = []
    for rel in OPENCV_FILES:
        path = pkg.root / OPENCV_ROOT / rel
        if not path.is_file():
            raise HarnessError(f"{OPENCV} {pkg.version}: has no {OPENCV_ROOT}/{rel}")
        rgb = read_rgb(path)
        if min(rgb.shape[:2]) < VAL_MIN_SIDE:
            raise HarnessError(f"{OPENCV} {rel}: {rgb.shape[1]}x{rgb.shape[0]}, under {VAL_MIN_SIDE} px")
        name = f"{VAL_DIR}/opencv_{Path(rel).stem}.png"
        images.append(output(name, rgb, f"{OPENCV} {pkg.version}", f"{OPENCV_ROOT}/{rel}", LICENSES[OPENCV][1]))
    return images


def skimage_images() -> list[OutputImage]:
    """scikit-image's bundled validation images, gray made 3-channel."""
    import skimage
    from skimage import data

    images = []
    for call, license_ in SKIMAGE_FILES.items():
        rgb = composite_on_white(getattr(data, call)())
        name = f"{VAL_DIR}/skimage_{call}.png"
        images.append(output(name, rgb, f"scikit-image {skimage.__version__}", f"skimage.data.{call}()", license_))
    return images


def clipart_candidates(pkg: Package) -> list[str]:
    """Paths under CLIPART_ROOT of the PNGs whose header gives a shorter side of at least TRAIN_MIN_SIDE."""
    root = pkg.root / CLIPART_ROOT
    if not root.is_dir():
        raise HarnessError(f"{CLIPART} {pkg.version}: has no {CLIPART_ROOT}")
    paths = []
    for path in sorted(root.rglob("*.png")):
        size = png_size(path)
        if size is not None and min(size) >= TRAIN_MIN_SIDE:
            paths.append(path.relative_to(root).as_posix())
    return paths


def clipart_name(folder: str, rel: str) -> str:
    return f"{folder}/clipart_{rel.removesuffix('.png').replace('/', '__')}.png"


def clipart_images(pkg: Package, train_count: int) -> tuple[list[OutputImage], list[OutputImage]]:
    """The validation and training drawings of openclipart-png."""
    root = pkg.root / CLIPART_ROOT
    val, train = pick_clipart(clipart_candidates(pkg), lambda rel: read_rgb(root / rel), VAL_CLIPART, train_count)
    if len(val) < VAL_CLIPART:
        raise HarnessError(f"{CLIPART}: only {len(val)} drawings pass the checks, {VAL_CLIPART} needed for validation")

    def outputs(folder: str, picks: list[tuple[str, np.ndarray]]) -> list[OutputImage]:
        source, license_ = f"{CLIPART} {pkg.version}", LICENSES[CLIPART][1]
        return [output(clipart_name(folder, rel), rgb, source, f"{CLIPART_ROOT}/{rel}", license_) for rel, rgb in picks]

    return outputs(VAL_DIR, val), outputs(TRAIN_DIR, train)


# --- output --------------------------------------------------------------------------------------------------


def check_out(out: Path, overwrite: bool) -> None:
    """Refuse an OUT that holds files (unless ``overwrite``) or where files cannot be written."""
    if out.exists() and not out.is_dir():
        raise HarnessError(f"--out {out}: is not a folder")
    held = sorted(p for p in out.rglob("*") if p.is_file()) if out.is_dir() else []
    if held and not overwrite:
        raise HarnessError(f"--out {out}: already holds {len(held)} files (e.g. {held[0]}); give --overwrite to replace them")
    for name in (SOURCES, *(f"{folder}/x.png" for folder in FOLDERS)):
        check_output_file(out / name, "--out")


FOLDER_TEXT = {
    VAL_DIR: "structured-content validation (photographs of buildings and text, line art)",
    TRAIN_DIR: "line-art training",
    ALL_VAL_DIR: f"every validation image: {VAL_DIR}'s and the held-out textures and wallpapers",
    TEXTURE_DIR: "urban and material textures, training",
    WALLPAPER_DIR: "wallpaper photographs and artwork, training",
    PROCEDURAL_DIR: "procedural images (training.procedural), training only",
}


def count(images: list[OutputImage], folder: str) -> int:
    return sum(image.name.startswith(folder + "/") for image in images)


def sources_md(images: list[OutputImage], packages: list[Package], command: str) -> str:
    """SOURCES.md: how the files were made, the packages, and one row per file."""
    import skimage

    lines = [
        "# Free-licensed images: sources and licenses",
        "",
        f"Made by `{command}` (scikit-image {skimage.__version__}, OpenCV {cv2.__version__}); the rules are in",
        "the script's docstring. Nothing here comes from Set5, Set14, BSD68 or Urban100.",
        "",
        *(f"- `{folder}/`: {FOLDER_TEXT[folder]}, {count(images, folder)} images." for folder in FOLDERS),
        "",
        "| package | version | .deb sha256 |",
        "| --- | --- | --- |",
        *(f"| {p.name} | {p.version} | `{p.sha256}` |" for p in packages),
        "",
        "| file | size | source | original path | license |",
        "| --- | --- | --- | --- | --- |",
        *(f"| {i.name} | {i.shape[1]}x{i.shape[0]} | {i.source} | `{i.original}` | {i.license} |" for i in images),
    ]
    return "\n".join(lines) + "\n"


def remove_stale(out: Path, keep: set[str]) -> int:
    """Remove PNGs of OUT's folders that are not in ``keep`` (names relative to OUT); how many."""
    stale = [p for d in FOLDERS for p in sorted((out / d).glob("*.png")) if f"{d}/{p.name}" not in keep]
    for path in stale:
        path.unlink()
    return len(stale)


def write_all(out: Path, images: list[OutputImage], sources: str) -> int:
    """Write every image and SOURCES.md atomically, then remove stale PNGs; how many were removed."""
    for image in images:
        atomic_write(out / image.name, lambda tmp, data=image.data: Path(tmp).write_bytes(data))
    atomic_write(out / SOURCES, lambda tmp: Path(tmp).write_text(sources, encoding="utf-8"))
    return remove_stale(out, {image.name for image in images})


def content_images(packages: dict[str, Package], seed: int) -> list[OutputImage]:
    """Textures and wallpapers (``training.content``): the held-out ones in ``val/``, the others for training."""
    images: list[OutputImage] = []
    groups = [("texture", TEXTURE_DIR, content.texture_sources(packages[content.TEXTURES].root), 1024)]
    wallpapers = [s for name in content.WALLPAPERS for s in content.wallpaper_sources(name, packages[name].root)]
    groups.append(("wallpaper", WALLPAPER_DIR, wallpapers, content.WALLPAPER_MAX_SIDE))
    for kind, folder, sources, max_side in groups:
        kept = list(content.usable(sources, max_side))
        val = content.held_out(len(kept), seed)
        # the training copies of a held-out picture filed under several names (ufoai's street tiles) are left out
        # here, by their pixels before the held-out copy is downscaled; copies within training go in without_copies
        keys = [hashlib.sha256(rgb.tobytes() + str(rgb.shape).encode()).digest() for _, rgb in kept]
        held = {keys[i] for i in val}
        for index, (source, rgb) in enumerate(kept):
            if index not in val and keys[index] in held:
                continue
            stem = f"{kind}_{source.package.split('-')[0]}__{Path(source.path).with_suffix('').as_posix().replace('/', '__')}"
            where, img = (ALL_VAL_DIR, content.fit_side(rgb, content.VAL_MAX_SIDE)) if index in val else (folder, rgb)
            version = packages[source.package].version
            images.append(output(f"{where}/{stem}.png", img, f"{source.package} {version}", source.path, source.license))
    return images


def procedural_images(packages: dict[str, Package], per_kind: int, size: int) -> list[OutputImage]:
    """``per_kind`` images of each kind of ``training.procedural``, seeds 0.. (text in the fonts' packages' fonts)."""
    roots = {name: packages[name].root for name in content.FONTS if name in packages}
    latin, cjk = content.font_files(roots)
    fonts = ", ".join(f"{name} {packages[name].version}" for name in content.FONTS if name in packages)
    images = []
    for kind in procedural.KINDS:
        for seed in range(per_kind):
            rgb = procedural.render(kind, seed, size, latin, cjk)
            call = f"training.procedural.render({kind!r}, seed={seed}, size={size})"
            license_ = "made by this repository's code" + (f"; glyphs of {fonts} (their font licenses)" if kind == "text" else "")
            images.append(output(f"{PROCEDURAL_DIR}/proc_{kind}_{seed:04d}.png", rgb, "training.procedural", call, license_))
    return images


def build(args: argparse.Namespace, work: Path, command: str) -> tuple[list[OutputImage], str]:
    """Fetch or find the .deb files, extract them, make every image and SOURCES.md (in memory)."""
    names = [OPENCV, CLIPART, content.TEXTURES, *content.WALLPAPERS, *content.FONTS]
    packages = {}
    for package in names:
        deb = find_deb(args.debs, package) if args.debs else download_deb(package, work)
        packages[package] = unpack(deb, package, work / package)
    val_clipart, train = clipart_images(packages[CLIPART], args.train_count)
    structured = [*opencv_images(packages[OPENCV]), *val_clipart, *skimage_images()]
    in_all_val = [
        OutputImage(f"{ALL_VAL_DIR}/{Path(i.name).name}", i.data, i.shape, i.source, i.original, i.license) for i in structured
    ]
    images = [*structured, *train, *in_all_val, *content_images(packages, SEED)]
    images += procedural_images(packages, args.procedural_count, args.procedural_size)
    images = without_copies(images)
    return images, sources_md(images, list(packages.values()), command)


def without_copies(images: list[OutputImage]) -> list[OutputImage]:
    """``images`` less each training image identical to a validation image or to an earlier training image (clip
    art filed in two categories), so no validation picture is trained on and none counts twice."""
    validation = (VAL_DIR, ALL_VAL_DIR)
    seen = {hashlib.sha256(i.data).digest() for i in images if i.name.split("/")[0] in validation}
    kept = []
    for image in images:
        if image.name.split("/")[0] not in validation:
            key = hashlib.sha256(image.data).digest()
            if key in seen:
                continue
            seen.add(key)
        kept.append(image)
    return kept


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = ArgumentParser(prog=PROG, description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=Path("data/free"), help="output folder (default data/free)")
    parser.add_argument("--debs", type=Path, help="folder holding the .deb files (default: apt-get download them)")
    parser.add_argument(
        "--train_count",
        type=int,
        default=300,
        help="line-art training drawings picked (default 300; a copy of a picked one is then left out)",
    )
    parser.add_argument(
        "--procedural_count", type=int, default=60, help="procedural training images of each of the 7 kinds (default 60)"
    )
    parser.add_argument("--procedural_size", type=int, default=512, help="their side in pixels (default 512)")
    parser.add_argument("--overwrite", action="store_true", help="replace what OUT holds")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = parse_args(argv)
    command = shlex.join(["python", "scripts/fetch_free_images.py", *argv])
    try:
        if args.train_count < 0:
            raise HarnessError(f"--train_count {args.train_count}: must be 0 or more")
        if args.procedural_count < 0:
            raise HarnessError(f"--procedural_count {args.procedural_count}: must be 0 or more")
        if not 192 <= args.procedural_size <= 4096:
            raise HarnessError(f"--procedural_size {args.procedural_size}: must be from 192 (one HR patch) to 4096")
        if args.debs is not None and not args.debs.is_dir():
            raise HarnessError(f"--debs {args.debs}: folder not found")
        check_out(args.out, args.overwrite)
        check_tools(need_download=args.debs is None)
        with tempfile.TemporaryDirectory(prefix="free_images_") as work:
            images, sources = build(args, Path(work), command)
        removed = write_all(args.out, images, sources)
    except (HarnessError, OSError, cv2.error) as err:
        print(f"{PROG}: error: {err}", file=sys.stderr)
        return 2
    total = sum(len(i.data) for i in images)
    counts = ", ".join(f"{folder}/ {count(images, folder)}" for folder in FOLDERS)
    print(f"{counts} images ({total / 1e6:.1f} MB) in {args.out}" + (f"; {removed} stale PNGs removed" if removed else ""))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
