"""Training data: the 8 flips/rotations, LR/HR alignment, LR made on the fly, sharding, hold-out, errors."""

from __future__ import annotations

import dataclasses
import itertools
import re
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from skimage import data as skimage_data
from torch.utils.data import DataLoader

from training.data import (
    NUM_TRANSFORMS,
    PatchSampler,
    TrainPatches,
    augment,
    gradient_energy,
    holdout_split,
    inverse_transform,
    load_training_data,
    read_folder,
)
from utils import datasets
from utils.errors import HarnessError
from utils.image import imsave, modcrop
from utils.imresize import bicubic_downsample, imresize

PHOTOS = ("astronaut", "chelsea", "coffee", "rocket", "camera")


def write_photos(folder: Path, names: tuple[str, ...] = PHOTOS, shrink: int = 4) -> Path:
    """scikit-image's photos, shrunk (fast tests), as PNGs in ``folder``."""
    for name in names:
        img = getattr(skimage_data, name)()
        img = cv2.resize(img, (img.shape[1] // shrink, img.shape[0] // shrink), interpolation=cv2.INTER_AREA)
        imsave(img, folder / f"{name}.png")
    return folder


def to_uint8(t: torch.Tensor, data_range: float) -> np.ndarray:
    return np.round(t.permute(1, 2, 0).numpy() * 255.0 / data_range).astype(np.uint8)


@pytest.fixture(scope="module")
def hr_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_photos(tmp_path_factory.mktemp("hr"))


@pytest.fixture(scope="module")
def lr_dir(tmp_path_factory: pytest.TempPathFactory, hr_dir: Path) -> Path:
    folder = tmp_path_factory.mktemp("lr")
    for path in hr_dir.iterdir():
        hr = modcrop(cv2.cvtColor(cv2.imread(str(path)), cv2.COLOR_BGR2RGB), 4)
        imsave(bicubic_downsample(hr, 4), folder / f"{path.stem}x4.png")
    return folder


def test_augment_is_the_dihedral_group() -> None:
    patch = np.random.default_rng(0).integers(0, 256, (6, 6, 3), dtype=np.uint8)
    variants = [augment(patch, t) for t in range(NUM_TRANSFORMS)]
    assert np.array_equal(variants[0], patch)
    assert len({v.tobytes() for v in variants}) == NUM_TRANSFORMS  # all distinct
    for a, b in itertools.product(range(NUM_TRANSFORMS), repeat=2):  # closed under composition
        composed = augment(augment(patch, a), b)
        assert any(np.array_equal(composed, v) for v in variants)
    for t in range(NUM_TRANSFORMS):
        assert np.array_equal(augment(augment(patch, t), inverse_transform(t)), patch)
    assert np.array_equal(augment(patch, 1), np.rot90(patch))
    assert np.array_equal(augment(patch, 4), patch[:, ::-1])


def test_patches_from_lr_folder_stay_aligned(hr_dir: Path, lr_dir: Path) -> None:
    dataset = TrainPatches(read_folder(hr_dir, lr_dir), patch_size=8, seed=3)
    seen = set()
    for n in range(48):
        info = dataset.patch_info(n)
        image = dataset.images[info.image]
        lr, hr = dataset.patch_uint8(n)
        assert lr.shape == (8, 8, 3) and hr.shape == (32, 32, 3)
        undo = inverse_transform(info.transform)
        assert info.top % 4 == 0 and info.left % 4 == 0
        assert np.array_equal(augment(hr, undo), image.hr[info.top : info.top + 32, info.left : info.left + 32])
        assert np.array_equal(augment(lr, undo), image.lr[info.top // 4 : info.top // 4 + 8, info.left // 4 : info.left // 4 + 8])
        seen.add(info.transform)
    assert seen == set(range(NUM_TRANSFORMS))


def test_lr_is_the_crop_of_the_whole_images_bicubic(hr_dir: Path) -> None:
    """Without LR files, LR is made once per image (bicubic x4 of the whole HR, as the benchmarks' LR is made) and the
    patches are aligned crops of both."""
    images = read_folder(hr_dir)
    dataset = TrainPatches(images, patch_size=8, data_range=255.0, seed=1)
    for n in range(12):
        info = dataset.patch_info(n)
        whole_hr = modcrop(images[info.image].hr, 4)
        whole_lr = bicubic_downsample(np.ascontiguousarray(whole_hr), 4)
        lr, hr = dataset[n]
        assert info.top % 4 == 0 and info.left % 4 == 0
        crop = whole_hr[info.top : info.top + 32, info.left : info.left + 32]
        assert np.array_equal(to_uint8(hr, 255.0), augment(crop, info.transform))
        lr_crop = whole_lr[info.top // 4 : info.top // 4 + 8, info.left // 4 : info.left // 4 + 8]
        assert np.array_equal(to_uint8(lr, 255.0), augment(lr_crop, info.transform))


def test_mix_weights_draw_each_folder_by_its_weight(hr_dir: Path, tmp_path: Path) -> None:
    second = write_photos(tmp_path / "second")
    images = read_folder(hr_dir, source=0) + [
        dataclasses.replace(image, name=f"b/{image.name}") for image in read_folder(second, source=1)
    ]

    def share_of_second(mix: tuple[float, ...] | None) -> float:
        dataset = TrainPatches(images, patch_size=8, seed=3, mix=mix)
        return float(np.mean([dataset.images[dataset.patch_info(n).image].source == 1 for n in range(400)]))

    assert 0.4 < share_of_second(None) < 0.6  # every image once per epoch: the folders' sizes
    assert share_of_second((3.0, 1.0)) == pytest.approx(0.25, abs=0.07)
    assert share_of_second((0.0, 1.0)) == 1.0
    again = TrainPatches(images, patch_size=8, seed=3, mix=(3.0, 1.0))
    assert [again.patch_info(n) for n in range(20)] == [
        TrainPatches(images, 8, seed=3, mix=(3.0, 1.0)).patch_info(n) for n in range(20)
    ]
    with pytest.raises(HarnessError, match="--mix: give one weight per training folder"):
        TrainPatches(images, patch_size=8, mix=(1.0,))
    with pytest.raises(HarnessError, match="--mix 1 nan: weights must be finite"):
        load_training_data([hr_dir, second], patch_size=8, mix=(1.0, float("nan")))


def test_mix_weights_too_large_to_sum_still_draw_by_weight(hr_dir: Path, tmp_path: Path) -> None:
    second = write_photos(tmp_path / "second")
    images = read_folder(hr_dir, source=0) + [
        dataclasses.replace(image, name=f"b/{image.name}") for image in read_folder(second, source=1)
    ]
    dataset = TrainPatches(images, patch_size=8, seed=3, mix=(1e308, 1e308))  # their sum is infinity
    assert 0.4 < float(np.mean([dataset.images[dataset.patch_info(n).image].source == 1 for n in range(200)])) < 0.6


def test_flat_patches_are_drawn_again(tmp_path: Path) -> None:
    """Half of the image is one flat colour: with a threshold, patches come from the textured half."""
    photo = np.ascontiguousarray(skimage_data.astronaut()[:128, :256])
    photo[:, :128] = 128
    folder = tmp_path / "half_flat"
    folder.mkdir()
    imsave(photo, folder / "half.png")
    images = read_folder(folder)

    def flat_share(threshold: float) -> float:
        dataset = TrainPatches(images, patch_size=8, seed=0, flat_threshold=threshold)
        return float(np.mean([gradient_energy(dataset.patch_uint8(n)[1]) < 1.0 for n in range(200)]))

    assert flat_share(0.0) > 0.2
    assert flat_share(2.0) < 0.01
    with pytest.raises(HarnessError, match=r"flat_threshold -1\.0: must be at least 0"):
        load_training_data([folder], patch_size=8, flat_threshold=-1.0)
    with pytest.raises(HarnessError, match=r"flat_threshold 255\.0: must be at least 0 \(0: off\) and below 255"):
        load_training_data([folder], patch_size=8, flat_threshold=255.0)  # every patch flat: the option would do nothing


@pytest.mark.parametrize("data_range", [1.0, 255.0])
def test_batches_are_float_in_data_range(hr_dir: Path, data_range: float) -> None:
    dataset = TrainPatches(read_folder(hr_dir), patch_size=8, data_range=data_range)
    loader = DataLoader(dataset, batch_size=3, sampler=PatchSampler(0, 2, 3))
    batches = list(loader)
    assert len(batches) == 2
    lr, hr = batches[0]
    assert lr.shape == (3, 3, 8, 8) and hr.shape == (3, 3, 32, 32)
    assert lr.dtype == hr.dtype == torch.float32
    assert hr.min() >= 0 and hr.max() <= data_range and hr.max() > data_range / 2
    lr_u8, _ = dataset.patch_uint8(0)
    assert torch.equal(lr[0], torch.from_numpy(lr_u8).permute(2, 0, 1).float() / (255.0 / data_range))


def test_patch_stream_is_deterministic_and_sharded(hr_dir: Path) -> None:
    images = read_folder(hr_dir)
    a, b, c = (TrainPatches(images, 8, seed=s) for s in (0, 0, 1))
    assert all(np.array_equal(a.patch_uint8(n)[1], b.patch_uint8(n)[1]) for n in range(10))
    assert any(not np.array_equal(a.patch_uint8(n)[1], c.patch_uint8(n)[1]) for n in range(10))
    # each image once per len(images) patches
    assert sorted(a.patch_info(n).image for n in range(len(images))) == list(range(len(images)))
    single = list(PatchSampler(0, 5, batch_size=6))
    ranks = [list(PatchSampler(0, 5, batch_size=3, rank=r, world_size=2)) for r in range(2)]
    assert not set(ranks[0]) & set(ranks[1])
    for it in range(5):  # the two ranks' slices make up one process's batch of 6
        assert sorted(ranks[0][3 * it : 3 * it + 3] + ranks[1][3 * it : 3 * it + 3]) == single[6 * it : 6 * it + 6]
    assert list(PatchSampler(2, 5, batch_size=6)) == single[12:]  # resuming continues the stream


def test_val_fraction_split_is_deterministic_and_disjoint(hr_dir: Path) -> None:
    first = load_training_data([hr_dir], patch_size=8, val_fraction=0.4, val_seed=7, val_crop=64)
    again = load_training_data([hr_dir], patch_size=8, val_fraction=0.4, val_seed=7, val_crop=64)
    held = first.description["validation"]["val_images"]
    assert held == again.description["validation"]["val_images"] and len(held) == 2
    train_names = {image.name for image in first.train.images}
    assert not train_names & set(held) and len(train_names) + len(held) == len(PHOTOS)
    assert {v.name for v in first.val} == set(held)
    for v in first.val:
        assert v.hr.shape[0] <= 64 and v.hr.shape[1] <= 64 and v.hr.shape[0] % 4 == 0 and v.hr.shape[1] % 4 == 0
        assert np.array_equal(v.lr, bicubic_downsample(v.hr, 4))
    other_seeds = {tuple(sorted(holdout_split([f"n{i}" for i in range(20)], 0.25, s))) for s in range(5)}
    assert len(other_seeds) > 1  # the seed matters


def test_val_dir_is_used_whole_and_must_not_overlap(hr_dir: Path, tmp_path: Path) -> None:
    val_dir = write_photos(tmp_path / "val", ("coins",), shrink=2)
    loaded = load_training_data([hr_dir], patch_size=8, val_dir=val_dir, val_crop=None)
    assert len(loaded.train.images) == len(PHOTOS) and [v.name for v in loaded.val] == ["val/coins"]
    assert loaded.val[0].hr.shape[:2] == (148, 192)  # coins 303x384 halved: 151x192, cropped to a multiple of 4
    with pytest.raises(HarnessError, match="also a training image"):
        load_training_data([hr_dir], patch_size=8, val_dir=hr_dir)


def test_val_dir_and_val_fraction_together_validate_on_both_groups(hr_dir: Path, tmp_path: Path) -> None:
    val_dir = write_photos(tmp_path / "val", ("coins",), shrink=2)
    held_only = load_training_data([hr_dir], patch_size=8, val_fraction=0.4, val_seed=7)
    both = load_training_data([hr_dir], patch_size=8, val_fraction=0.4, val_seed=7, val_dir=val_dir)
    assert [(v.name, v.group) for v in both.val] == [(v.name, "held_out") for v in held_only.val] + [
        ("val/coins", "val")
    ]  # a --val_dir image without a kind prefix: its folder
    assert [i.name for i in both.train.images] == [i.name for i in held_only.train.images]
    assert both.description["validation"]["kind"] == "val_fraction+val_dir"


def test_extra_train_dirs_are_trained_on_and_never_held_out(hr_dir: Path, tmp_path: Path) -> None:
    extra = write_photos(tmp_path / "extra", ("coins", "moon"), shrink=2)
    plain = load_training_data([hr_dir], patch_size=8, val_fraction=0.4, val_seed=7)
    more = load_training_data([hr_dir], patch_size=8, val_fraction=0.4, val_seed=7, extra_train_dirs=[extra])
    assert [v.name for v in more.val] == [v.name for v in plain.val]  # the held-out split does not move
    assert [i.name for i in more.train.images] == [i.name for i in plain.train.images] + ["extra/coins", "extra/moon"]
    with pytest.raises(HarnessError, match="--train_dir / --extra_train_dir: two training images are named extra/coins"):
        load_training_data([hr_dir], patch_size=8, extra_train_dirs=[extra, extra])
    leak = tmp_path / "leak"
    leak.mkdir()
    for name in plain.description["validation"]["val_images"]:  # a held-out image copied into an extra folder
        stem = name.split("/")[1]
        (leak / f"{stem}.png").write_bytes((hr_dir / f"{stem}.png").read_bytes())
    with pytest.raises(HarnessError, match=r"--extra_train_dir: .* is also a held-out validation image"):
        load_training_data([hr_dir], patch_size=8, val_fraction=0.4, val_seed=7, extra_train_dirs=[leak])


def test_scale_aug_adds_downscaled_copies_of_training_images_only(hr_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    plain = load_training_data([hr_dir], patch_size=8, val_fraction=0.4, val_seed=7)
    aug = load_training_data([hr_dir], patch_size=8, val_fraction=0.4, val_seed=7, scale_aug=[0.5])
    originals = plain.train.images
    assert [i.name for i in aug.train.images] == [i.name for i in originals] + [f"{i.name}@0.5" for i in originals]
    decoded = {image.name: image.hr for image in read_folder(hr_dir)}  # before the crop to a multiple of 4
    for image, copy in zip(originals, aug.train.images[len(originals) :], strict=True):
        assert np.array_equal(copy.hr, modcrop(imresize(decoded[image.name], 0.5), 4))
    held = set(aug.description["validation"]["val_images"])
    assert not any(i.name.split("@")[0] in held for i in aug.train.images)
    big_patch = load_training_data([hr_dir], patch_size=12, val_fraction=0.4, val_seed=7, scale_aug=[0.5, 0.4])
    assert all(min(i.hr.shape[:2]) >= 48 for i in big_patch.train.images)  # copies too small for a patch: not made
    made = big_patch.description["scale_aug_copies"]
    assert 0 < made < 2 * len(originals)
    said = capsys.readouterr().err  # and said: how many, of which factor
    assert f"--scale_aug: {made} downscaled copies made; {2 * len(originals) - made} left out as smaller than a 48x48" in said
    with pytest.raises(HarnessError, match=r"--scale_aug 0.3: no training image downscaled by it holds one 48x48 HR patch"):
        load_training_data([hr_dir], patch_size=12, val_fraction=0.4, val_seed=7, scale_aug=[0.5, 0.3])  # adds nothing
    for bad in ([1.0], [0.0], [float("nan")], [0.5, 0.5]):
        with pytest.raises(HarnessError, match="--scale_aug"):
            load_training_data([hr_dir], patch_size=8, scale_aug=bad)


def test_scale_aug_is_refused_where_no_image_is_copied(hr_dir: Path, lr_dir: Path) -> None:
    with pytest.raises(HarnessError, match=r"--scale_aug: every training image has its own LR file \(--lr_dir\)"):
        load_training_data([hr_dir], [lr_dir], patch_size=8, val_fraction=0, scale_aug=[0.5])


def test_clear_errors(hr_dir: Path, tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "notes.txt").write_text("no images here")
    with pytest.raises(HarnessError, match=f"{empty}: training folder holds no images"):
        load_training_data([empty], patch_size=8)
    with pytest.raises(HarnessError, match=r"chelsea.png: image is 112x75, smaller than the 80x80 HR patch") as err:
        load_training_data([hr_dir], patch_size=20)
    assert "\n" not in str(err.value)
    one = write_photos(tmp_path / "one", ("coffee",))
    with pytest.raises(HarnessError, match="no images left for training"):
        load_training_data([one], patch_size=8, val_fraction=0.5)
    with pytest.raises(HarnessError, match=r"folder not found$"):
        load_training_data([tmp_path / "missing"], patch_size=8)


def test_a_missing_free_images_folder_says_how_to_make_it(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(datasets, "FREE_IMAGES_DIR", tmp_path / "free")
    with pytest.raises(
        HarnessError, match=r"free/clipart_train: folder not found \(python scripts/fetch_free_images.py makes it\)"
    ):
        load_training_data([tmp_path / "free" / "clipart_train"], patch_size=8)


def test_skip_small_leaves_out_images_smaller_than_a_patch(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rng = np.random.default_rng(0)
    imsave(rng.integers(0, 256, (64, 64, 3), dtype=np.uint8), tmp_path / "big.png")
    imsave(rng.integers(0, 256, (40, 40, 3), dtype=np.uint8), tmp_path / "small.png")
    imsave(rng.integers(0, 256, (30, 44, 3), dtype=np.uint8), tmp_path / "smaller.png")
    with pytest.raises(
        HarnessError, match=r"small\.png: image is 40x40, smaller than the 48x48 HR patch .*, as are 1 more; lower "
    ):
        load_training_data([tmp_path], patch_size=12, val_fraction=0)  # the way out named: --skip_small
    with pytest.raises(HarnessError, match=r"give --skip_small to leave such images out"):
        load_training_data([tmp_path], patch_size=12, val_fraction=0)
    capsys.readouterr()
    data = load_training_data([tmp_path], patch_size=12, val_fraction=0, skip_small=True)
    assert data.description["train_images"] == 1
    assert data.description["skipped_small"] == [f"{tmp_path.name}/small", f"{tmp_path.name}/smaller"]
    said = capsys.readouterr().err  # how many were left out, said
    assert said == (
        f"training data: left out 2 of 3 training images smaller than the 48x48 HR patch ({tmp_path.name}/small 40x40, "
        f"{tmp_path.name}/smaller 44x30)\n"
    )
    with pytest.raises(HarnessError) as none_left:  # names no flag a command may lack (bench_training.py skips always)
        load_training_data([tmp_path], patch_size=20, val_fraction=0, skip_small=True)
    assert str(none_left.value) == (
        "no training image holds a 80x80 HR patch (--patch_size 20 LR pixels x4), so none is left to train on; lower --patch_size"
    )


def test_bench_training_on_small_images_names_only_its_own_flags(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from training import bench

    imsave(np.zeros((40, 40, 3), dtype=np.uint8), tmp_path / "train" / "small.png")
    assert (
        bench.main(
            [str(Path(__file__).resolve().parents[1] / "model_zoo" / "team13_prfdn.pth"), "--train_dir", str(tmp_path / "train")]
        )
        == 2
    )
    err = capsys.readouterr().err
    assert err.startswith("bench_training.py: error: no training image holds a 192x192 HR patch") and "--skip_small" not in err


def test_validation_images_must_be_as_large_as_the_network_takes(hr_dir: Path, tmp_path: Path) -> None:
    """The network takes no LR smaller than MIN_INPUT_SIZE: a smaller validation crop or image is refused up front."""
    with pytest.raises(HarnessError, match=r"--val_crop 59: must be at least 60 \(HR pixels"):
        load_training_data([hr_dir], patch_size=8, val_fraction=0.4, val_crop=59)
    data = load_training_data([hr_dir], patch_size=8, val_fraction=0.4, val_crop=60)
    assert all(v.lr.shape[:2] == (15, 15) for v in data.val)
    rng = np.random.default_rng(0)
    imsave(rng.integers(0, 256, (59, 200, 3), dtype=np.uint8), tmp_path / "val" / "flat.png")
    with pytest.raises(HarnessError, match=r"flat\.png: validation image \(--val_dir\) is 200x59, smaller than") as err:
        load_training_data([hr_dir], patch_size=8, val_dir=tmp_path / "val")
    assert "\n" not in str(err.value)
    folder = write_photos(tmp_path / "train", ("coffee",))
    imsave(rng.integers(0, 256, (40, 40, 3), dtype=np.uint8), folder / "tiny.png")
    with pytest.raises(HarnessError, match=r"tiny\.png: validation image \(held out by --val_fraction\) is 40x40"):
        load_training_data([folder], patch_size=8, val_fraction=0.5, val_seed=3)


@pytest.mark.parametrize(
    "flags, expected",
    [
        ({"val_fraction": float("nan")}, "--val_fraction nan: must be in"),
        ({"val_fraction": 0.2, "val_seed": -1}, "--val_seed -1: must not be negative"),
        ({"val_fraction": 0.2, "seed": -3}, "--seed -3: must not be negative"),
    ],
)
def test_flags_out_of_range_are_refused(hr_dir: Path, flags: dict, expected: str) -> None:
    with pytest.raises(HarnessError, match=re.escape(expected)):
        load_training_data([hr_dir], patch_size=8, **flags)


def test_a_file_given_for_a_folder_is_refused(hr_dir: Path) -> None:
    image = next(hr_dir.iterdir())
    with pytest.raises(HarnessError, match=re.escape(f"--train_dir {image}: is a file; expected a folder of training images")):
        load_training_data([image], patch_size=8)
    with pytest.raises(HarnessError, match=re.escape(f"--lr_dir {image}: is a file; expected a folder of LR images")):
        load_training_data([hr_dir], [image], patch_size=8)
    with pytest.raises(HarnessError, match=re.escape(f"--val_dir {image}: is a file; expected a folder of validation images")):
        load_training_data([hr_dir], patch_size=8, val_dir=image)


def test_a_loop_of_links_for_a_folder_is_one_line(tmp_path: Path) -> None:
    loop = tmp_path / "loop"
    loop.symlink_to(loop)
    for folder, expected in ((loop, "is a loop of symbolic links"), (loop / "x", "its path runs through a loop")):
        with pytest.raises(HarnessError, match=f"--train_dir {folder}: {expected}.*; expected a folder of training images"):
            load_training_data([folder], patch_size=8)
    (tmp_path / "broken").symlink_to(tmp_path / "nowhere")
    with pytest.raises(HarnessError, match=r"--train_dir .*broken: is a broken symbolic link \(to .*nowhere\)"):
        load_training_data([tmp_path / "broken"], patch_size=8)


# --- the teacher's SR made beforehand (--teacher_cache) --------------------------------------------------------


class NearestX4(torch.nn.Module):
    """A stand-in teacher without context: each LR pixel becomes a 4x4 block (so a patch's SR is the crop of the
    whole image's, under any flip or rotation)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.nn.functional.interpolate(x, scale_factor=4, mode="nearest")


def test_targets_are_cropped_and_turned_with_the_patch(hr_dir: Path) -> None:
    patches = TrainPatches(read_folder(hr_dir), patch_size=8, seed=5)
    images = patches.images  # HR cropped to a multiple of 4: the targets are made of these
    dataset = patches.with_targets([image.hr.astype(np.float16) for image in images])
    transforms = set()
    for n in range(40):
        _, hr, target = dataset[n]
        assert target.dtype == torch.float32 and torch.equal(target, hr)  # the HR itself as target: the same crop
        transforms.add(dataset.patch_info(n).transform)
    assert transforms == set(range(NUM_TRANSFORMS))
    with pytest.raises(ValueError, match="one HR-sized array per training image"):
        TrainPatches(images, patch_size=8).with_targets([image.hr[:-1] for image in images])


def test_teacher_targets_are_the_sr_of_the_whole_lr_at_the_hr_size(hr_dir: Path, lr_dir: Path) -> None:
    from training.teacher_targets import teacher_targets

    bicubic_lr = read_folder(hr_dir)
    assert any(image.hr.shape[0] % 4 for image in bicubic_lr) and any(image.hr.shape[1] % 4 for image in bicubic_lr)
    for images in (bicubic_lr, read_folder(hr_dir, lr_dir)):  # padded where the HR is no multiple of 4; LR files
        targets = teacher_targets(images, NearestX4(), scale=4, data_range=255.0, device=torch.device("cpu"))
        for image, target in zip(images, targets, strict=True):
            assert target.dtype == np.float16 and target.shape == image.hr.shape
            lr = image.lr if image.lr is not None else bicubic_downsample(modcrop(image.hr, 4), 4)
            sr = np.repeat(np.repeat(lr, 4, axis=0), 4, axis=1).astype(np.float16)
            h, w = sr.shape[:2]
            assert np.array_equal(target[:h, :w], sr)
            assert np.array_equal(target[h:, :w], np.repeat(sr[-1:], image.hr.shape[0] - h, axis=0))  # edge rows
            assert np.array_equal(target[:, w:], np.repeat(target[:, w - 1 : w], image.hr.shape[1] - w, axis=1))
