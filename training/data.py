"""Training data: random LR/HR patches from HR folders (LR from a folder or bicubic x4 on the fly), a held-out
validation split of whole (optionally centre-cropped) images, and a counter-based patch sampler.

Every decoded image is cached in memory (the classic SR sets, BSD200 + T91, take ~100 MB).

The sampler is counter-based: patch number ``n`` of a run is drawn from ``numpy.random.default_rng((seed, n))``
(image, crop position, one of the 8 flips/rotations). So a patch never depends on which process, worker or
earlier run produced the ones before it, and the sampler's whole state is the iteration counter: resuming
at iteration ``k`` continues the exact stream, and under DistributedDataParallel rank ``r`` of ``W`` takes
the ``r``-th slice of every global batch (the W ranks together draw what one process would with W times
the batch).
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import math
import os
import sys
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset, Sampler

from models.team13_PRFDN import MIN_INPUT_SIZE
from utils.config_file import first_duplicate
from utils.datasets import SCALE, check_lr_size, pair_folders, why_not_a_folder
from utils.errors import HarnessError
from utils.fileio import check_distinct
from utils.image import imread_uint, list_images, modcrop, uint2tensor4
from utils.imresize import bicubic_downsample, imresize
from utils.settings import add_flags, flag, help_of, setting, setting_names

NUM_TRANSFORMS = 8
FLAT_TRIES = 8  # crops drawn at most for one patch when flat ones are skipped
MAX_GRADIENT_ENERGY = 255  # ``gradient_energy`` of 0-255 images is at most this (a checkerboard of 0 and 255)


# --- the 8 flips / rotations (the dihedral group of the square) -------------------------------------------


def augment(img: np.ndarray, transform: int) -> np.ndarray:
    """Rotate an HxW[xC] image by ``90 * (transform % 4)`` degrees, then mirror it left-right if ``transform >= 4``."""
    if not 0 <= transform < NUM_TRANSFORMS:
        raise ValueError(f"transform must be in 0..7, got {transform}")
    out = np.rot90(img, transform % 4, axes=(0, 1))
    if transform >= 4:
        out = out[:, ::-1]
    return np.ascontiguousarray(out)


def inverse_transform(transform: int) -> int:
    """The transform undoing ``transform``: rotations by their opposite, mirrored ones (reflections) by themselves."""
    return (4 - transform) % 4 if transform < 4 else transform


# --- images -------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TrainImage:
    """One decoded training image: HR (RGB uint8) and its LR (None: ``TrainPatches`` makes it once, by bicubic x4 of
    the whole HR, as the benchmarks' LR is made)."""

    name: str  # "<folder name>/<file stem>": unique over several training folders
    path: Path
    hr: np.ndarray
    lr: np.ndarray | None = None
    source: int = 0  # which training folder it came from (--train_dir, then --extra_train_dir): the --mix weights'


def with_whole_lr(image: TrainImage, scale: int = SCALE) -> TrainImage:
    """``image`` with its LR: the given one, else bicubic x``scale`` of the whole HR (cropped to a multiple of it)."""
    if image.lr is not None:
        return image
    hr = modcrop(image.hr, scale)
    return dataclasses.replace(image, hr=hr, lr=bicubic_downsample(np.ascontiguousarray(hr), scale))


def gradient_energy(hr: np.ndarray) -> float:
    """Mean absolute difference between neighbouring pixels (0-255, all channels): about 0 on a flat patch."""
    img = hr.astype(np.float32)
    return float((np.abs(np.diff(img, axis=0)).mean() + np.abs(np.diff(img, axis=1)).mean()) / 2)


def _content_key(img: np.ndarray) -> str:
    return hashlib.sha1(np.ascontiguousarray(img).tobytes() + str(img.shape).encode()).hexdigest()


def check_patch_size(patch_size: int, name: str = "patch_size") -> None:
    """Refuse an LR patch smaller than the network takes (``MIN_INPUT_SIZE`` pixels per side)."""
    if patch_size < MIN_INPUT_SIZE:
        raise HarnessError(
            f"{flag(name)} {patch_size}: must be at least {MIN_INPUT_SIZE} (LR pixels; the network takes no smaller input)"
        )


def check_seed(seed: int, name: str = "seed") -> None:
    """Refuse a negative seed (NumPy's generators take none)."""
    if seed < 0:
        raise HarnessError(f"{flag(name)} {seed}: must not be negative")


def image_folder(folder: str | os.PathLike, label: str, kind: str = "training") -> Path:
    """``folder`` as a Path, or a one-line HarnessError naming ``label`` (a flag or config key): not a folder (why), or
    a ``kind`` folder holding no images."""
    folder = Path(folder)
    if not folder.is_dir():
        raise HarnessError(f"{label} {folder}: {why_not_a_folder(folder, kind)}")
    if not list_images(folder):
        raise HarnessError(f"{label} {folder}: {kind} folder holds no images (expected .png/.bmp/.jpg/.tif files)")
    return folder


def read_folder(
    hr_dir: str | os.PathLike, lr_dir: str | os.PathLike | None = None, scale: int = SCALE, source: int = 0
) -> list[TrainImage]:
    """Decode every image of ``hr_dir`` (and its LR ``NAMEx4.*`` / ``NAME.*`` in ``lr_dir``), sizes checked."""
    hr_dir = image_folder(hr_dir, flag("train_dir"))
    if lr_dir is not None:
        lr_dir = image_folder(lr_dir, flag("lr_dir"), "LR")
    images = []
    for pair in pair_folders(hr_dir, lr_dir, scale):
        hr = imread_uint(pair.hr_path)
        lr = None
        if pair.lr_path is not None:
            hr = modcrop(hr, scale)
            lr = imread_uint(pair.lr_path)
            check_lr_size(pair, lr, hr, scale)
        images.append(TrainImage(f"{hr_dir.name}/{pair.hr_path.stem}", pair.hr_path, hr, lr, source))
    return images


def check_patch_fits(images: Sequence[TrainImage], patch_size: int, scale: int = SCALE) -> None:
    """Every image must hold one HR patch of ``scale * patch_size`` pixels per side."""
    need = scale * patch_size
    small = [image for image in images if min(image.hr.shape[:2]) < need]
    if small:
        h, w = small[0].hr.shape[:2]
        others = f", as are {len(small) - 1} more" if len(small) > 1 else ""
        raise HarnessError(
            f"{small[0].path}: image is {w}x{h}, smaller than the {need}x{need} HR patch ({flag('patch_size')} {patch_size} "
            f"LR pixels x{scale}){others}; lower {flag('patch_size')}, give {flag('skip_small')} to leave such images out, "
            "or remove "
            "the image"
        )


# --- training patches ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PatchInfo:
    """Where patch ``n`` comes from: image index, HR top-left corner, and the flip/rotation applied."""

    image: int
    top: int
    left: int
    transform: int


class TrainPatches(Dataset):
    """Map-style dataset indexed by the global patch number: item ``n`` is (LR, HR) float tensors (CxHxW) in
    [0, data_range], LR ``patch_size`` and HR ``scale * patch_size`` pixels per side."""

    def __init__(
        self,
        images: Sequence[TrainImage],
        patch_size: int,
        scale: int = SCALE,
        data_range: float = 255.0,
        seed: int = 0,
        targets: Sequence[np.ndarray] | None = None,
        mix: Sequence[float] | None = None,
        flat_threshold: float = 0.0,
    ) -> None:
        if not images:
            raise HarnessError("no training images")
        if patch_size < 1:
            raise HarnessError(f"{flag('patch_size')} {patch_size}: must be at least 1")
        check_seed(seed)
        check_patch_fits(images, patch_size, scale)
        self.images = [with_whole_lr(image, scale) for image in images]
        if targets is not None and [t.shape[:2] for t in targets] != [image.hr.shape[:2] for image in self.images]:
            raise ValueError("targets: expected one HR-sized array per training image")
        self.patch_size = patch_size
        self.scale = scale
        self.data_range = float(data_range)
        self.seed = int(seed)
        self.targets = None if targets is None else list(targets)
        self.mix = None if mix is None else tuple(float(w) for w in mix)
        self.flat_threshold = float(flat_threshold)
        self._by_source: list[list[int]] = []
        if self.mix is not None:
            self._by_source = [[i for i, image in enumerate(self.images) if image.source == s] for s in range(len(self.mix))]
            empty = [s for s, members in enumerate(self._by_source) if not members and self.mix[s] > 0]
            if len(self.mix) <= max(image.source for image in self.images) or empty:
                raise HarnessError(
                    f"{flag('mix')}: give one weight per training folder ({max(image.source for image in self.images) + 1}), "
                    "each folder with a weight above 0 holding training images"
                )
            weights = np.asarray(self.mix)
            if not math.isfinite(sum(self.mix)):  # huge weights whose sum overflows: scaled to at most 1 first
                weights = weights / weights.max()
            self._weights = weights / sum(weights)

    def with_targets(self, targets: Sequence[np.ndarray]) -> TrainPatches:
        """The same patch stream, each item with a third tensor: the crop of ``targets[image]`` (an HR-sized
        HxWx3 array per training image, e.g. a teacher's SR of the whole image) at the HR patch's place, under
        the patch's flip / rotation."""
        return TrainPatches(
            self.images, self.patch_size, self.scale, self.data_range, self.seed, targets, self.mix, self.flat_threshold
        )

    def _order(self, epoch: int) -> np.ndarray:
        return _permutation(self.seed, epoch, len(self.images))

    def patch_info(self, index: int) -> PatchInfo:
        """Image visited in a seeded shuffled order (each image once per ``len(images)`` patches), or with ``mix``
        a folder drawn by its weight and an image of it; random crop on the LR grid (LR and HR stay aligned), random
        transform; all from a generator seeded with ``(seed, index)``. With ``flat_threshold``, a crop whose HR
        gradient energy is below it is drawn again (up to ``FLAT_TRIES`` times; the last one is kept)."""
        rng = np.random.default_rng((self.seed, int(index)))
        if self.mix is None:
            epoch, position = divmod(int(index), len(self.images))
            image_index = int(self._order(epoch)[position])
        else:
            members = self._by_source[int(rng.choice(len(self._weights), p=self._weights))]
            image_index = members[int(rng.integers(0, len(members)))]
        image = self.images[image_index]
        p, s = self.patch_size, self.scale
        for _ in range(FLAT_TRIES if self.flat_threshold > 0 else 1):
            top = s * int(rng.integers(0, image.lr.shape[0] - p + 1))
            left = s * int(rng.integers(0, image.lr.shape[1] - p + 1))
            crop = image.hr[top : top + s * p, left : left + s * p]
            if self.flat_threshold <= 0 or gradient_energy(crop) >= self.flat_threshold:
                break
        return PatchInfo(image_index, top, left, int(rng.integers(0, NUM_TRANSFORMS)))

    def patch_uint8(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        """(LR, HR) patch ``index`` as HxWx3 uint8, flipped/rotated."""
        return self._patch(self.patch_info(index))

    def _patch(self, info: PatchInfo) -> tuple[np.ndarray, np.ndarray]:
        image = self.images[info.image]
        p, s = self.patch_size, self.scale
        hr = image.hr[info.top : info.top + s * p, info.left : info.left + s * p]
        lr = image.lr[info.top // s : info.top // s + p, info.left // s : info.left // s + p]
        return augment(lr, info.transform), augment(hr, info.transform)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, ...]:
        info = self.patch_info(index)
        lr, hr = self._patch(info)
        if self.targets is None:
            return to_tensor(lr, self.data_range), to_tensor(hr, self.data_range)
        side = self.scale * self.patch_size
        target = self.targets[info.image][info.top : info.top + side, info.left : info.left + side]
        target = torch.from_numpy(augment(target, info.transform).astype(np.float32)).permute(2, 0, 1)  # NumPy's cast:
        # torch's float16 -> float32 of the permuted view took 8x as long on 2 threads
        return to_tensor(lr, self.data_range), to_tensor(hr, self.data_range), target


@lru_cache(maxsize=4)
def _permutation(seed: int, epoch: int, n: int) -> np.ndarray:
    return np.random.default_rng((seed, 1 << 40, epoch)).permutation(n)  # (.., 1 << 40, ..): apart from patch streams


def to_tensor(img: np.ndarray, data_range: float = 255.0) -> torch.Tensor:
    """HxWxC uint8 -> CxHxW float32 in [0, data_range]."""
    return uint2tensor4(img, data_range)[0]


class PatchSampler(Sampler[int]):
    """Global patch numbers for iterations ``start .. iters - 1`` of this rank, ``batch_size`` per iteration.

    Rank ``r`` of ``world_size`` takes numbers ``(it * world_size + r) * batch_size + b``: the ranks shard each
    global batch, and together draw exactly what one process with ``world_size * batch_size`` would.
    """

    def __init__(self, start: int, iters: int, batch_size: int, rank: int = 0, world_size: int = 1) -> None:
        self.start, self.iters, self.batch_size = start, iters, batch_size
        self.rank, self.world_size = rank, world_size

    def __iter__(self) -> Iterator[int]:
        for it in range(self.start, self.iters):
            first = (it * self.world_size + self.rank) * self.batch_size
            yield from range(first, first + self.batch_size)

    def __len__(self) -> int:
        return max(0, self.iters - self.start) * self.batch_size


# --- validation ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ValidationImage:
    name: str
    lr: np.ndarray  # uint8 HxWx3
    hr: np.ndarray  # uint8, exactly scale x the LR size
    group: str = "held_out"  # "held_out" (by --val_fraction), else ``validation_group``: the log gives each group's mean


def center_crop(hr: np.ndarray, max_size: int | None, scale: int = SCALE) -> tuple[int, int, int, int]:
    """(top, left, height, width) of the centred crop of at most ``max_size`` per side, on the ``scale`` grid."""
    h, w = hr.shape[0] - hr.shape[0] % scale, hr.shape[1] - hr.shape[1] % scale
    if max_size is not None:
        limit = max(scale, max_size - max_size % scale)
        h, w = min(h, limit), min(w, limit)
    top = ((hr.shape[0] - h) // 2) // scale * scale
    left = ((hr.shape[1] - w) // 2) // scale * scale
    return top, left, h, w


def validation_group(name: str) -> str:
    """The group of a ``--val_dir`` image named ``FOLDER/STEM``: the stem's prefix before its first ``_`` (the free
    images are named by kind: ``clipart_...`` line art, ``opencv_...`` photographs), else the folder's name."""
    folder, _, stem = name.rpartition("/")
    return stem.split("_")[0] if "_" in stem else folder or stem


def validation_image(
    image: TrainImage, max_size: int | None, scale: int = SCALE, source: str | None = None, group: str = "val_dir"
) -> ValidationImage:
    """The whole image (HR cropped to a multiple of ``scale``), centre-cropped to at most ``max_size`` HR pixels
    per side; LR from the LR file where there is one, else bicubic x4 of the (cropped) HR. An image whose LR
    would be smaller than the network takes (``MIN_INPUT_SIZE``) is refused, naming ``source`` (default: the val_dir flag)."""
    top, left, h, w = center_crop(image.hr, max_size, scale)
    if min(h, w) < scale * MIN_INPUT_SIZE:
        height, width = image.hr.shape[:2]
        raise HarnessError(
            f"{image.path}: validation image ({source or flag('val_dir')}) is {width}x{height}, smaller than the network's "
            "smallest input "
            f"(HR {scale * MIN_INPUT_SIZE}x{scale * MIN_INPUT_SIZE}, LR {MIN_INPUT_SIZE}x{MIN_INPUT_SIZE}); remove it"
        )
    hr = np.ascontiguousarray(image.hr[top : top + h, left : left + w])
    if image.lr is None:
        lr = bicubic_downsample(hr, scale)
    else:
        lr = np.ascontiguousarray(image.lr[top // scale : (top + h) // scale, left // scale : (left + w) // scale])
    return ValidationImage(image.name, lr, hr, group)


def holdout_split(names: Sequence[str], fraction: float, seed: int) -> set[str]:
    """The names held out: ``round(fraction * n)`` (at least 1 when fraction > 0) of the sorted names, drawn
    with a generator seeded with ``seed``; the same names, fraction and seed always give the same split."""
    ordered = sorted(names)
    if fraction <= 0 or not ordered:
        return set()
    count = max(1, round(fraction * len(ordered)))
    order = np.random.default_rng(seed).permutation(len(ordered))
    return {ordered[i] for i in order[:count]}


def check_sampling(mix: Sequence[float] | None, flat_threshold: float | None, folders: int) -> None:
    """``mix``: one finite weight >= 0 per training folder, not all 0; ``flat_threshold``: finite, >= 0."""
    if mix is not None:
        if len(mix) != folders:
            raise HarnessError(
                f"{flag('mix')}: give one weight per training folder ({flag('train_dir')}, then "
                f"{flag('extra_train_dir')}: {folders}), got {len(mix)}"
            )
        if not all(math.isfinite(w) and w >= 0 for w in mix) or sum(mix) <= 0:
            raise HarnessError(f"{flag('mix')} {' '.join(f'{w:g}' for w in mix)}: weights must be finite, at least 0, not all 0")
    if flat_threshold is not None and not (math.isfinite(flat_threshold) and 0 <= flat_threshold < MAX_GRADIENT_ENERGY):
        raise HarnessError(
            f"{flag('flat_threshold')} {flat_threshold}: must be at least 0 (0: off) and below {MAX_GRADIENT_ENERGY} (the "
            "gradient energy of 0-255 images is below it, so every patch would count as flat)"
        )


def check_scale_aug(factors: Sequence[float] | None) -> None:
    """Scale-augmentation factors must lie strictly between 0 and 1 (downscaling) and be distinct."""
    for factor in factors or ():
        if not (math.isfinite(factor) and 0 < factor < 1):
            raise HarnessError(f"{flag('scale_aug')} {factor}: each factor must be between 0 and 1 (exclusive): HR is downscaled")
    if factors and len(set(factors)) != len(factors):
        raise HarnessError(f"{flag('scale_aug')}: give each factor once")


def _copy_fits(image: TrainImage, factor: float, min_side: int) -> bool:
    h, w = image.hr.shape[:2]
    return min(math.ceil(h * factor), math.ceil(w * factor)) >= min_side


def plan_copies(images: Sequence[TrainImage], factors: Sequence[float], min_side: int) -> list[tuple[TrainImage, float]]:
    """(image, factor) of every copy ``downscaled_copies`` makes, in its order; refused in one line where a factor
    would add nothing at all: no copy of it holds one ``min_side`` HR patch, or every image has its own LR. Copies
    left out are said on stderr (how many, and of which factor)."""
    copyable = [image for image in images if image.lr is None]
    if not copyable:
        raise HarnessError(
            f"{flag('scale_aug')}: every training image has its own LR file ({flag('lr_dir')}), and such images are not "
            "downscaled (their "
            f"LR would no longer match), so it would add nothing; leave {flag('scale_aug')} out"
        )
    for factor in factors:
        if not any(_copy_fits(image, factor, min_side) for image in copyable):
            largest = max(copyable, key=lambda image: min(image.hr.shape[:2]))
            h, w = largest.hr.shape[:2]
            raise HarnessError(
                f"{flag('scale_aug')} {factor:g}: no training image downscaled by it holds one {min_side}x{min_side} HR "
                "patch (the "
                f"largest, {largest.name}, becomes {math.ceil(w * factor)}x{math.ceil(h * factor)}), so it would add "
                f"nothing; raise the factor or lower {flag('patch_size')}"
            )
    plan = [(image, factor) for image in copyable for factor in factors if _copy_fits(image, factor, min_side)]
    if len(plan) < len(copyable) * len(factors):
        counts = [(factor, sum(not _copy_fits(image, factor, min_side) for image in copyable)) for factor in factors]
        print(
            f"{flag('scale_aug')}: {len(plan)} downscaled copies made; {len(copyable) * len(factors) - len(plan)} left out as "
            f"smaller than a {min_side}x{min_side} HR patch ({', '.join(f'{n} at {f:g}' for f, n in counts if n)})",
            file=sys.stderr,
        )
    if len(copyable) < len(images):
        print(f"{flag('scale_aug')}: {len(images) - len(copyable)} images with their own LR file are not copied", file=sys.stderr)
    return plan


def downscaled_copies(images: Sequence[TrainImage], factors: Sequence[float], min_side: int) -> list[TrainImage]:
    """Each image downscaled by each factor (MATLAB-compatible bicubic, antialiased), named ``NAME@FACTOR``:
    more scales of the same content (a texture seen from further away), cut into patches like the originals.
    Copies that could not hold one ``min_side`` HR patch are not made (whether or not ``--skip_small`` is given:
    the originals are the images the user chose), and said on stderr; a factor none of whose copies would hold
    one is refused (``plan_copies``). Images with their own LR file are not copied (their LR would no longer
    match)."""
    return [
        TrainImage(f"{image.name}@{factor:g}", image.path, imresize(image.hr, factor), source=image.source)
        for image, factor in plan_copies(images, factors, min_side)
    ]


@dataclass
class TrainData:
    """What ``load_training_data`` returns: training patches, validation images, a description for provenance, and
    each training and validation image's name and pixel digest, by which a resumed run tells
    whether the folders changed since."""

    train: TrainPatches
    val: list[ValidationImage]
    description: dict[str, Any] = field(default_factory=dict)
    images: dict[str, dict[str, str]] = field(default_factory=dict)  # {"train": {name: digest}, "val": ...}


def load_training_data(
    train_dirs: Sequence[str | os.PathLike],
    lr_dirs: Sequence[str | os.PathLike] | None = None,
    *,
    patch_size: int,
    val_dir: str | os.PathLike | None = None,
    val_fraction: float | None = None,
    val_seed: int = 0,
    val_crop: int | None = 256,
    seed: int = 0,
    data_range: float = 255.0,
    scale: int = SCALE,
    skip_small: bool = False,
    extra_train_dirs: Sequence[str | os.PathLike] | None = None,
    scale_aug: Sequence[float] | None = None,
    mix: Sequence[float] | None = None,
    flat_threshold: float | None = None,
    make_copies: bool = True,
) -> TrainData:
    """Decode the training folders and hold out the validation images.

    Validation: the ``val_fraction`` of ``train_dirs`` held out (group ``held_out``) plus every image of
    ``val_dir`` (group ``val_dir``); either or both. ``extra_train_dirs``: further training folders (HR only)
    that are never held out, so adding them leaves the held-out split of ``train_dirs`` as it was.
    ``scale_aug``: factors in (0, 1); each training image (never a held-out one) also enters downscaled by
    each (``downscaled_copies``). ``skip_small``: training images that cannot hold one HR patch are left out
    (and listed in the description) instead of being an error; T91, for one, has images of 78x78. ``mix``: a
    sampling weight per training folder (``train_dirs``, then ``extra_train_dirs``); ``flat_threshold``: flat patches
    are drawn again (``TrainPatches``). ``make_copies`` False: the scale-augmentation copies are checked (``plan_copies``)
    but not made (a check of the data before a run, as the pipeline makes).
    """
    if not train_dirs:
        raise HarnessError(f"{flag('train_dir')}: give at least one folder of training images")
    if lr_dirs and len(lr_dirs) != len(train_dirs):
        raise HarnessError(
            f"{flag('lr_dir')}: give one LR folder per {flag('train_dir')} ({len(train_dirs)}), got {len(lr_dirs)}"
        )
    check_data_values(val_dir, val_fraction, val_seed, val_crop, scale)
    check_scale_aug(scale_aug)
    check_sampling(mix, flat_threshold, len(train_dirs) + len(extra_train_dirs or ()))

    images: list[TrainImage] = []
    for i, folder in enumerate(train_dirs):
        images += read_folder(folder, lr_dirs[i] if lr_dirs else None, scale, source=i)
    extra: list[TrainImage] = []
    for j, folder in enumerate(extra_train_dirs or ()):
        extra += read_folder(image_folder(folder, flag("extra_train_dir")), None, scale, source=len(train_dirs) + j)
    dup = first_duplicate([image.name for image in images + extra])
    if dup is not None:
        flags = f"{flag('train_dir')} / {flag('extra_train_dir')}" if extra else flag("train_dir")
        raise HarnessError(f"{flags}: two training images are named {dup} (give folders of distinct names)")

    held_out = holdout_split([image.name for image in images], val_fraction or 0.0, val_seed)
    held_out_images = [image for image in images if image.name in held_out]
    train_images = [image for image in images if image.name not in held_out] + extra
    digest = {image.name: _content_key(image.hr) for image in images + extra}  # each image hashed once; names distinct
    extra_keys = {digest[image.name]: image for image in extra}
    for image in held_out_images:
        same = extra_keys.get(digest[image.name])
        if same is not None:
            raise HarnessError(
                f"{flag('extra_train_dir')}: {same.path} is also a held-out validation image ({image.path}); keep the two "
                "sets apart"
            )
    dir_images = read_folder_as_validation(val_dir, scale) if val_dir is not None else []
    dir_digests = [_content_key(image.hr) for image in dir_images]
    train_keys = {digest[image.name]: image for image in train_images}
    for image, key in zip(dir_images, dir_digests, strict=True):
        same = train_keys.get(key)
        if same is not None:
            raise HarnessError(f"{flag('val_dir')}: {image.path} is also a training image ({same.path}); keep the two sets apart")
    # the record by which a resumed run tells whether its folders changed since: each image's name and pixel digest
    # (training images before scale augmentation and --skip_small); two loads of the same folders give the same
    # record (also from a lossless packed copy), an image added, removed or changed shows
    digests = {
        "train": {image.name: digest[image.name] for image in train_images},
        "val": {
            **{image.name: digest[image.name] for image in held_out_images},
            **{image.name: key for image, key in zip(dir_images, dir_digests, strict=True)},
        },
    }
    split: dict[str, Any] = {}
    if held_out or val_dir is None:
        split.update(kind="val_fraction", val_fraction=float(val_fraction or 0.0), val_seed=int(val_seed))
    if val_dir is not None:
        split["kind"] = "val_fraction+val_dir" if held_out else "val_dir"
        split["val_dir"] = str(val_dir)
    if not train_images:
        raise HarnessError(
            f"no images left for training after holding out {len(held_out_images)} for validation; lower {flag('val_fraction')} "
            "or add images"
        )
    side = patch_size * scale
    if scale_aug and not make_copies:
        plan_copies(train_images, scale_aug, side)  # refused or said as the copies would be, none made
    copies = downscaled_copies(train_images, scale_aug, side) if scale_aug and make_copies else []
    train_images = train_images + copies
    skipped = []
    if skip_small:
        small = [image for image in train_images if min(image.hr.shape[:2]) < side]
        skipped = sorted(image.name for image in small)
        if len(small) == len(train_images):
            raise HarnessError(
                f"no training image holds a {side}x{side} HR patch ({flag('patch_size')} {patch_size} LR pixels x{scale}), "
                "so none "
                f"is left to train on; lower {flag('patch_size')}"
            )
        if small:
            examples = ", ".join(f"{image.name} {image.hr.shape[1]}x{image.hr.shape[0]}" for image in small[:3])
            print(
                f"training data: left out {len(small)} of {len(train_images)} training images smaller than the {side}x{side} "
                f"HR patch ({examples}{', ...' if len(small) > 3 else ''})",
                file=sys.stderr,
            )
        train_images = [image for image in train_images if min(image.hr.shape[:2]) >= side]
    split["val_images"] = sorted(image.name for image in held_out_images + dir_images)
    split["val_crop"] = val_crop
    train = TrainPatches(train_images, patch_size, scale, data_range, seed, mix=mix, flat_threshold=flat_threshold or 0.0)
    val = [
        validation_image(image, val_crop, scale, f"held out by {flag('val_fraction')}", "held_out") for image in held_out_images
    ]
    val += [validation_image(image, val_crop, scale, flag("val_dir"), validation_group(image.name)) for image in dir_images]
    description = {
        "train_dirs": [str(d) for d in train_dirs],
        "lr_dirs": [str(d) for d in lr_dirs] if lr_dirs else None,
        "extra_train_dirs": [str(d) for d in extra_train_dirs or ()],
        "scale_aug": list(scale_aug or ()),
        "scale_aug_copies": len(copies),
        "train_images": len(train_images),
        "skipped_small": skipped,
        "mix": list(mix) if mix else None,
        "flat_threshold": flat_threshold or 0.0,
        "validation": split,
    }
    return TrainData(train, val, description, digests)


def describe_data_change(saved: Mapping[str, Any], now: Mapping[str, Mapping[str, str]]) -> str | None:
    """How the images ``now`` differ from the ``saved`` record of ``TrainData.images`` (for a message): images added,
    gone or changed, and images that changed sides between training and validation (the held-out split); None
    when nothing changed."""

    def by_name(record: Mapping[str, Any]) -> dict[str, dict[str, str]]:
        names: dict[str, dict[str, str]] = {}
        for role in ("train", "val"):
            for name, digest in (record.get(role) or {}).items():
                names.setdefault(name, {})[role] = digest
        return names

    before, after = by_name(saved), by_name(now)
    common = set(before) & set(after)
    kinds = (
        ("added", sorted(set(after) - set(before))),
        ("gone", sorted(set(before) - set(after))),
        ("changed", sorted(n for n in common if set(before[n].values()) != set(after[n].values()))),
    )
    parts = [f"{len(names)} image{'s' if len(names) > 1 else ''} {what} ({_some(names)})" for what, names in kinds if names]
    moved = sorted(n for n in common if set(before[n]) != set(after[n]))
    if moved:
        parts.append(f"the held-out split changed ({len(moved)} moved between training and validation: {_some(moved)})")
    return "; ".join(parts) or None


def _some(names: Sequence[str], shown: int = 3) -> str:
    return ", ".join(names[:shown]) + (", ..." if len(names) > shown else "")


def check_data_values(
    val_dir: str | os.PathLike | None,
    val_fraction: float | None,
    val_seed: int,
    val_crop: int | None,
    scale: int = SCALE,
) -> None:
    """Refuse validation flags out of range (before any image is decoded)."""
    if val_fraction is not None and not (math.isfinite(val_fraction) and 0 <= val_fraction < 1):
        raise HarnessError(f"{flag('val_fraction')} {val_fraction}: must be in [0, 1)")
    check_seed(val_seed, "val_seed")
    smallest = scale * MIN_INPUT_SIZE
    if val_crop is not None and val_crop < smallest:
        raise HarnessError(
            f"{flag('val_crop')} {val_crop}: must be at least {smallest} (HR pixels; the network takes no LR smaller than "
            f"{MIN_INPUT_SIZE}x{MIN_INPUT_SIZE})"
        )


def read_folder_as_validation(folder: str | os.PathLike, scale: int = SCALE) -> list[TrainImage]:
    folder = image_folder(folder, flag("val_dir"), "validation")
    return [TrainImage(f"{folder.name}/{p.stem}", p, imread_uint(p)) for p in list_images(folder)]


# --- command-line data flags, shared by train_prfdn.py and transform.prune ----------------------------------


@dataclass(frozen=True)
class DataSettings:
    """The data settings of every command that trains, fits or prunes, and the config's ``data`` section. Each is
    None when not given, so a resumed run can tell given settings from omitted ones (``fill_data_defaults``)."""

    train_dir: tuple[str, ...] | None = setting(None, "folders of HR training images")
    lr_dir: tuple[str, ...] | None = setting(None, "their LR images (NAMEx4.* or NAME.*), one folder per --train_dir")
    extra_train_dir: tuple[str, ...] | None = setting(
        None, "further folders of HR training images, never held out (the held-out split stays that of --train_dir)"
    )
    scale_aug: tuple[float, ...] | None = setting(
        None, "also train on each training image downscaled by these factors in (0, 1), e.g. 0.5 0.75 (default none)"
    )
    val_dir: str | None = setting(None, "folder of HR validation images (LR: bicubic x4); with --val_fraction, both are used")
    val_fraction: float | None = setting(
        None, "hold out this fraction of the --train_dir images (default 0.05 without --val_dir, else 0)"
    )
    val_seed: int | None = setting(None, "seed of the held-out split (default 0)")
    val_crop: int | None = setting(None, "centre-crop validation HR to at most this size (default 256)")
    skip_small: bool | None = setting(None, "leave out training images smaller than a patch", action="store_true")
    mix: tuple[float, ...] | None = setting(
        None,
        "sampling weight of each training folder (--train_dir, then --extra_train_dir), e.g. 3 1 (default: every "
        "image once per epoch)",
    )
    flat_threshold: float | None = setting(
        None,
        "draw a patch again when its HR gradient energy (mean |difference| of neighbouring pixels, 0-255) is below "
        "this, e.g. 2 (default 0: off)",
    )
    teacher: str | None = setting(None, "checkpoint to distil from, e.g. the official RFDN (L1 to its SR)")


DATA_FLAGS = setting_names(DataSettings)
DEFAULT_VAL_FRACTION = 0.05


def add_data_arguments(parser: argparse.ArgumentParser, teacher: bool = True, unlisted: Iterable[str] = ()) -> None:
    """The data flags (``DataSettings``), each None when not given. With ``teacher`` False (a command that distils
    from no teacher) ``--teacher`` is left out of the help; the command refuses it in one line saying why.
    ``unlisted``: flags left out of the help (``utils.settings.add_flags``)."""
    data = parser.add_argument_group("data")
    add_flags(data, DataSettings, DATA_FLAGS[:-1], unlisted=unlisted)
    teacher_help = help_of(DataSettings, "teacher") if teacher else argparse.SUPPRESS
    data.add_argument("--teacher", default=None, help=teacher_help)


def fill_data_defaults(job: Any, scale: int = SCALE) -> None:
    """Defaults for the data flags not given, then their values checked (before any image is decoded)."""
    if job.val_dir is None and job.val_fraction is None:
        job.val_fraction = DEFAULT_VAL_FRACTION
    job.val_seed = 0 if job.val_seed is None else job.val_seed
    job.val_crop = 256 if job.val_crop is None else job.val_crop
    job.skip_small = bool(job.skip_small)
    check_data_values(job.val_dir, job.val_fraction, job.val_seed, job.val_crop, scale)
    check_scale_aug(getattr(job, "scale_aug", None))
    folders = len(job.train_dir or ()) + len(getattr(job, "extra_train_dir", None) or ())
    check_sampling(getattr(job, "mix", None), getattr(job, "flat_threshold", None), folders)


FOLDER_FLAGS = {"train_dir": "training", "lr_dir": "LR", "extra_train_dir": "training", "val_dir": "validation"}


def data_folders(job: Any) -> list[tuple[str, str]]:
    """(flag, folder) for every folder the data flags of ``job`` give, in flag order."""
    pairs = []
    for name in FOLDER_FLAGS:
        folders = getattr(job, name, None)
        pairs += [(name, str(folder)) for folder in ([folders] if isinstance(folders, str) else folders or [])]
    return pairs


def data_input_files(job: Any) -> list[tuple[str, Path]]:
    """(flag, image file) for every image the data flags read (folders that are not there are skipped: the
    loader refuses them), so outputs can be checked against them before any work."""
    files = []
    for name, folder in data_folders(job):
        if Path(folder).is_dir():
            files += [(flag(name), path) for path in list_images(folder)]
    return files


def check_apart_from_data(outputs: Mapping[str, str | os.PathLike], job: Any) -> None:
    """Refuse an output that is one of the images the data flags of ``job`` read (through links too)."""
    for label, image in data_input_files(job):
        check_distinct(outputs, {label: image})


def check_data_folders(job: Any) -> None:
    """The folders of the data flags are there and hold images (one LR folder per training folder), without
    decoding any: for a run that takes the data flags but reads no images (``transform.prune`` by magnitude)."""
    if job.lr_dir and len(job.lr_dir) != len(job.train_dir or ()):
        raise HarnessError(
            f"{flag('lr_dir')}: give one LR folder per {flag('train_dir')} ({len(job.train_dir or ())}), got {len(job.lr_dir)}"
        )
    for name, folder in data_folders(job):
        image_folder(folder, flag(name), FOLDER_FLAGS[name])


def load_data_from_args(
    job: Any, *, patch_size: int, seed: int, data_range: float, scale: int, make_copies: bool = True
) -> TrainData:
    return load_training_data(
        job.train_dir,
        job.lr_dir,
        patch_size=patch_size,
        val_dir=job.val_dir,
        val_fraction=job.val_fraction,
        val_seed=job.val_seed,
        val_crop=job.val_crop,
        seed=seed,
        data_range=data_range,
        scale=scale,
        skip_small=job.skip_small,
        extra_train_dirs=getattr(job, "extra_train_dir", None),
        scale_aug=getattr(job, "scale_aug", None),
        mix=getattr(job, "mix", None),
        flat_threshold=getattr(job, "flat_threshold", None),
        make_copies=make_copies,
    )
