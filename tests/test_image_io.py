from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from utils.errors import HarnessError
from utils.image import imread_uint, imsave, list_images, modcrop, tensor2uint, uint2tensor4


def _rgb(h: int = 6, w: int = 5) -> np.ndarray:
    rng = np.random.default_rng(0)
    return rng.integers(0, 256, (h, w, 3), dtype=np.uint8)


def test_rgb_roundtrip_keeps_channel_order(tmp_path: Path) -> None:
    img = _rgb()
    imsave(img, tmp_path / "a.png")
    np.testing.assert_array_equal(imread_uint(tmp_path / "a.png"), img)
    # on disk it is BGR, as every OpenCV-written PNG
    np.testing.assert_array_equal(cv2.imread(str(tmp_path / "a.png"))[..., ::-1], img)


def test_grayscale_becomes_three_equal_channels(tmp_path: Path) -> None:
    gray = _rgb()[..., 0]
    cv2.imwrite(str(tmp_path / "g.png"), gray)
    img = imread_uint(tmp_path / "g.png")
    assert img.shape == (*gray.shape, 3)
    for c in range(3):
        np.testing.assert_array_equal(img[..., c], gray)
    assert imread_uint(tmp_path / "g.png", n_channels=1).shape == (*gray.shape, 1)


def test_rgba_drops_alpha(tmp_path: Path) -> None:
    img = _rgb()
    bgra = np.dstack([img[..., ::-1], np.full(img.shape[:2], 7, np.uint8)])
    cv2.imwrite(str(tmp_path / "a.png"), bgra)
    np.testing.assert_array_equal(imread_uint(tmp_path / "a.png"), img)


def test_16bit_maps_to_8bit(tmp_path: Path) -> None:
    img16 = np.array([[[0, 257, 65535], [32896, 128, 65280]]], dtype=np.uint16)  # BGR
    cv2.imwrite(str(tmp_path / "d.png"), img16)
    got = imread_uint(tmp_path / "d.png")
    assert got.dtype == np.uint8
    np.testing.assert_array_equal(got[0, 0], [255, 1, 0])  # RGB of B=0, G=257, R=65535
    np.testing.assert_array_equal(got[0, 1], [254, 0, 128])


def test_corrupt_and_missing_files_name_the_file(tmp_path: Path) -> None:
    bad = tmp_path / "broken.png"
    bad.write_bytes(b"not a png at all")
    with pytest.raises(HarnessError, match=r"broken\.png: unreadable or corrupt"):
        imread_uint(bad)
    with pytest.raises(HarnessError, match=r"nothere\.png: image file not found"):
        imread_uint(tmp_path / "nothere.png")


def test_list_images_filters_and_sorts(tmp_path: Path) -> None:
    for name in ["b.png", "a.BMP", "notes.txt", "c.jpg"]:
        (tmp_path / name).write_bytes(b"x")
    (tmp_path / "sub.png").mkdir()
    assert [p.name for p in list_images(tmp_path)] == ["a.BMP", "b.png", "c.jpg"]


def test_modcrop() -> None:
    assert modcrop(np.zeros((10, 7, 3)), 4).shape == (8, 4, 3)
    assert modcrop(np.zeros((8, 8)), 4).shape == (8, 8)


@pytest.mark.parametrize("data_range", [1.0, 255.0])
def test_tensor_conversion_roundtrip(data_range: float) -> None:
    img = _rgb()
    tensor = uint2tensor4(img, data_range)
    assert tensor.shape == (1, 3, 6, 5) and tensor.dtype == torch.float32
    assert float(tensor.max()) <= data_range
    np.testing.assert_array_equal(tensor2uint(tensor, data_range), img)


def test_tensor2uint_clamps_and_rounds() -> None:
    tensor = torch.tensor([[[[-10.0, 0.4, 0.6, 254.5, 300.0]]]])
    np.testing.assert_array_equal(tensor2uint(tensor, 255.0)[..., 0], [[0, 0, 1, 254, 255]])


@pytest.mark.parametrize("data_range", [1.0, 2.0, 255.0])
@pytest.mark.parametrize("shape", [(37, 41, 3), (5, 7), (192, 192, 3)])
def test_uint2tensor4_equals_torchs_own_conversion_values_and_layout(shape: tuple[int, ...], data_range: float) -> None:
    img = np.random.default_rng(1).integers(0, 256, shape, dtype=np.uint8)
    hwc = img if img.ndim == 3 else img[:, :, None]
    expected = torch.from_numpy(hwc.copy()).permute(2, 0, 1).float().div(255.0 / data_range).unsqueeze(0)
    out = uint2tensor4(img, data_range)
    assert out.dtype == torch.float32 and out.stride() == expected.stride() and torch.equal(out, expected)
