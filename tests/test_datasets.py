from pathlib import Path

import numpy as np
import pytest

from utils.datasets import (
    BUILTIN_IMAGES,
    ImagePair,
    ensure_builtin_dataset,
    find_official_layout,
    load_pair,
    official_pairs,
    pair_folders,
)
from utils.errors import HarnessError
from utils.image import imread_uint, imsave
from utils.imresize import bicubic_downsample


def _write(path: Path, h: int, w: int, value: int = 100) -> None:
    imsave(np.full((h, w, 3), value, np.uint8), path)


def test_pairs_by_listing_with_and_without_x4_suffix(tmp_path: Path) -> None:
    for name in ["0801", "0802", "lsdir_0001"]:
        _write(tmp_path / "HR" / f"{name}.png", 16, 16)
    _write(tmp_path / "LR" / "0801x4.png", 4, 4)
    _write(tmp_path / "LR" / "0802.png", 4, 4)
    _write(tmp_path / "LR" / "lsdir_0001x4.png", 4, 4)
    pairs = pair_folders(tmp_path / "HR", tmp_path / "LR")
    assert [(p.name, p.lr_path.name) for p in pairs] == [
        ("0801", "0801x4.png"),
        ("0802", "0802.png"),
        ("lsdir_0001", "lsdir_0001x4.png"),
    ]


def test_missing_lr_names_the_hr_file(tmp_path: Path) -> None:
    _write(tmp_path / "HR" / "0801.png", 16, 16)
    (tmp_path / "LR").mkdir()
    with pytest.raises(HarnessError, match=r"0801\.png: no LR image 0801x4\.\* or 0801\.\*"):
        pair_folders(tmp_path / "HR", tmp_path / "LR")


def test_empty_or_missing_folders(tmp_path: Path) -> None:
    (tmp_path / "HR").mkdir()
    with pytest.raises(HarnessError, match="HR folder holds no images"):
        pair_folders(tmp_path / "HR", None)
    with pytest.raises(HarnessError, match="HR folder not found"):
        pair_folders(tmp_path / "nope", None)


@pytest.mark.parametrize(
    ("mode", "hr", "lr", "edition"),
    [
        ("valid", "DIV2K_LSDIR_valid_HR", "DIV2K_LSDIR_valid_LR", "2024"),
        ("valid", "DIV2K_valid_HR", "DIV2K_valid_LR", "2023"),
        ("valid", "DIV2K_valid_HR", "DIV2K_valid_LR_bicubic/X4", "DIV2K download"),
        ("test", "DIV2K_LSDIR_test_HR", "DIV2K_LSDIR_test_LR", "2024"),
        ("test", "DIV2K_test_HR", "DIV2K_test_LR", "2023"),
        ("hybrid_test", "LSDIR_DIV2K_test_HR", "LSDIR_DIV2K_test_LR", "hybrid"),
    ],
)
def test_official_layouts_are_found(tmp_path: Path, mode: str, hr: str, lr: str, edition: str) -> None:
    _write(tmp_path / hr / "0901.png", 8, 8)
    _write(tmp_path / lr / "0901x4.png", 2, 2)
    layout = find_official_layout(tmp_path, mode)
    assert (layout.hr, layout.lr) == (hr, lr) and edition in layout.edition
    assert [p.name for p in official_pairs(tmp_path, mode)] == ["0901"]


def test_absent_layout_says_what_was_expected(tmp_path: Path) -> None:
    with pytest.raises(HarnessError, match=r"no valid data found; expected DIV2K_LSDIR_valid_HR/ \+ DIV2K_LSDIR_valid_LR/"):
        find_official_layout(tmp_path, "valid")
    with pytest.raises(HarnessError, match="folder not found"):
        find_official_layout(tmp_path / "missing", "valid")


def test_load_pair_checks_sizes_and_makes_lr(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    hr = rng.integers(0, 256, (18, 21, 3), dtype=np.uint8)  # not a multiple of 4: cropped to 16x20
    imsave(hr, tmp_path / "a.png")
    lr, hr_cropped = load_pair(ImagePair(tmp_path / "a.png", None))
    assert hr_cropped.shape == (16, 20, 3)
    np.testing.assert_array_equal(lr, bicubic_downsample(hr[:16, :20]))
    _write(tmp_path / "ax4.png", 5, 5)
    with pytest.raises(HarnessError, match=r"ax4\.png: LR is 5x5 but HR a\.png .* is 20x16"):
        load_pair(ImagePair(tmp_path / "a.png", tmp_path / "ax4.png"))


def test_builtin_dataset_is_generated_from_scikit_image(tmp_path: Path) -> None:
    pairs = ensure_builtin_dataset(tmp_path)
    assert [p.name for p in pairs] == list(BUILTIN_IMAGES)
    for pair in pairs:
        hr, lr = imread_uint(pair.hr_path), imread_uint(pair.lr_path)
        assert hr.shape[0] % 4 == 0 and hr.shape[1] % 4 == 0
        np.testing.assert_array_equal(lr, bicubic_downsample(hr))
    camera = imread_uint(tmp_path / "HR" / "camera.png")
    assert (camera[..., 0] == camera[..., 2]).all()  # the grayscale one
    before = pairs[0].hr_path.stat().st_mtime_ns
    ensure_builtin_dataset(tmp_path)
    assert pairs[0].hr_path.stat().st_mtime_ns == before  # written once
