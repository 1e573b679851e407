from pathlib import Path

import numpy as np
import pytest

from utils.image import imread_uint, list_images, modcrop
from utils.imresize import bicubic_downsample, cubic, imresize, resize_matrix


def test_cubic_kernel_is_keys_a_minus_half() -> None:
    np.testing.assert_allclose(cubic(np.array([0.0, 1.0, 2.0, 2.5])), [1.0, 0.0, 0.0, 0.0])
    # a = -0.5: k(0.5) = 1.5/8 - 2.5/4 + 1
    np.testing.assert_allclose(cubic(np.array([0.5, -0.5, 1.5])), [0.5625, 0.5625, -0.0625])


@pytest.mark.parametrize(("n_in", "scale"), [(16, 0.25), (17, 0.25), (9, 2.0), (40, 0.5)])
def test_rows_sum_to_one_and_sizes_follow_matlab(n_in: int, scale: float) -> None:
    matrix = resize_matrix(n_in, int(np.ceil(n_in * scale)), scale)
    assert matrix.shape == (int(np.ceil(n_in * scale)), n_in)
    np.testing.assert_allclose(matrix.sum(axis=1), 1.0, atol=1e-12)


def test_constant_image_stays_constant_and_ramp_stays_linear_inside() -> None:
    np.testing.assert_array_equal(imresize(np.full((20, 12, 3), 77, np.uint8), 0.25), np.full((5, 3, 3), 77))
    ramp = np.tile(np.arange(64, dtype=np.float64), (8, 1))
    out = imresize(ramp, 0.25)
    # away from the mirrored borders a cubic kernel reproduces a linear signal: centre of pixel j is 4j + 1.5
    np.testing.assert_allclose(out[:, 2:-2], np.tile(4 * np.arange(16)[2:-2] + 1.5, (2, 1)), atol=1e-9)


def test_gray_and_colour_agree_per_channel() -> None:
    rng = np.random.default_rng(1)
    img = rng.integers(0, 256, (24, 20, 3), dtype=np.uint8)
    out = imresize(img, 0.25)
    for c in range(3):
        np.testing.assert_array_equal(out[..., c], imresize(img[..., c], 0.25))


def test_downsample_requires_modcropped_input() -> None:
    with pytest.raises(ValueError, match="multiple of 4"):
        bicubic_downsample(np.zeros((10, 8), np.uint8))


def test_matches_matlab_lr_of_the_benchmark_sets(benchmark_dir: Path) -> None:
    """The shared LR_bicubic/X4 images were made with MATLAB's imresize: at most 1 level apart, nearly all equal.
    Every third image of each set (sorted by name), which keeps the test short."""
    total = differing = 0
    worst = 0
    hr_paths = [path for folder in sorted(benchmark_dir.glob("*/HR")) for path in sorted(folder.glob("*.png"))[::3]]
    assert {path.parent.parent.name for path in hr_paths} >= {"Set5", "Set14", "BSD68"}
    for hr_path in hr_paths:
        lr_path = hr_path.parent.parent / "LR_bicubic" / "X4" / f"{hr_path.stem}x4.png"
        ours = bicubic_downsample(modcrop(imread_uint(hr_path), 4)).astype(int)
        theirs = imread_uint(lr_path).astype(int)
        diff = np.abs(ours - theirs)
        total, differing, worst = total + diff.size, differing + int((diff > 0).sum()), max(worst, int(diff.max()))
    assert total > 0 and len(list_images(benchmark_dir / "Set5" / "HR")) == 5
    assert worst <= 1
    assert differing / total < 1e-3
