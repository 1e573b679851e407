import errno
import io
import os
import struct
import warnings
import zlib
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

import utils.image
from utils.errors import HarnessError
from utils.fileio import TEMP_MARK
from utils.image import imread_uint, imsave, jpeg_truncation, list_images, modcrop, tensor2uint, uint2tensor4


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
    (tmp_path / "sub").mkdir()
    assert [p.name for p in list_images(tmp_path)] == ["a.BMP", "b.png", "c.jpg"]


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs named pipes")
def test_what_is_not_a_regular_file_under_an_image_name_is_refused_not_skipped(tmp_path: Path) -> None:
    """A FIFO (or folder) named like an image would leave the average short of an image without a word."""
    imsave(_rgb(), tmp_path / "a.png")
    os.mkfifo(tmp_path / "b.png")
    with pytest.raises(HarnessError, match=r"b\.png: is a FIFO \(named pipe\), not a regular file; expected an image"):
        list_images(tmp_path)
    with pytest.raises(HarnessError, match=r"b\.png: is a FIFO"):  # read directly: refused, never opened (it would block)
        imread_uint(tmp_path / "b.png")
    (tmp_path / "b.png").unlink()
    (tmp_path / "c.png").mkdir()
    with pytest.raises(HarnessError, match=r"c\.png: is a folder, not a regular file"):
        list_images(tmp_path)


def _float_tiff(path: Path, values: np.ndarray) -> Path:
    assert cv2.imwrite(str(path), values.astype(np.float32))
    return path


def test_float_images_in_0_1_are_read_and_others_refused(tmp_path: Path) -> None:
    unit = np.linspace(0.0, 1.0, 4 * 5 * 3).reshape(4, 5, 3)
    got = imread_uint(_float_tiff(tmp_path / "unit.tif", unit))
    np.testing.assert_array_equal(got, np.round(unit[..., ::-1] * 255).astype(np.uint8))
    wide = _float_tiff(tmp_path / "wide.tif", unit * 255.0)  # 0..255 in floats: clipped, it read as white
    with pytest.raises(
        HarnessError, match=r"wide\.tif: float image with values in \[0, 255\]; expected floats in \[0, 1\] \(0\.\.255"
    ):
        imread_uint(wide)
    negative = _float_tiff(tmp_path / "negative.tif", unit - 0.5)
    with pytest.raises(HarnessError, match=r"negative\.tif: float image with values in \[-0\.5, 0\.5\]"):
        imread_uint(negative)


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_float_images_with_values_that_are_not_finite_are_refused(tmp_path: Path, bad: float) -> None:
    """NaN once became 0 with a NumPy warning (a traceback under PYTHONWARNINGS=error): now refused before any cast."""
    values = np.full((4, 5, 3), 0.5)
    values[1, 2, 0] = bad
    path = _float_tiff(tmp_path / "bad.tif", values)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(
            HarnessError, match=r"bad\.tif: float image with (NaN|infinite) values \(1 of 60\); expected finite values"
        ):
            imread_uint(path)


def _photo(h: int = 64, w: int = 80) -> np.ndarray:
    y, x = np.mgrid[0:h, 0:w]
    return np.dstack([(x * 3) % 256, (y * 4) % 256, (x + y) % 256]).astype(np.uint8)


@pytest.mark.parametrize("suffix", [".jpg", ".png"])
def test_an_image_cut_at_half_its_bytes_is_refused(tmp_path: Path, capfd: pytest.CaptureFixture[str], suffix: str) -> None:
    """OpenCV decodes a JPEG cut short with the missing rows grey (and a libjpeg warning): refused, as a cut PNG."""
    _, encoded = cv2.imencode(suffix, _photo())
    data = encoded.tobytes()
    (tmp_path / f"whole{suffix}").write_bytes(data)
    (tmp_path / f"half{suffix}").write_bytes(data[: len(data) // 2])
    assert imread_uint(tmp_path / f"whole{suffix}").shape == (64, 80, 3)
    expected = r"truncated JPEG: its \d+ bytes end inside the image data" if suffix == ".jpg" else "unreadable or corrupt image"
    with pytest.raises(HarnessError, match=rf"half\{suffix}: {expected}"):
        imread_uint(tmp_path / f"half{suffix}")
    assert capfd.readouterr().err == ""  # neither libjpeg's nor OpenCV's own lines reach stderr


def test_jpeg_truncation_reads_markers_not_a_thumbnail_end(tmp_path: Path) -> None:
    """A JPEG whose header holds a thumbnail (with its own end marker) is judged by the main image's end."""
    _, main = cv2.imencode(".jpg", _photo())
    _, thumb = cv2.imencode(".jpg", _photo(8, 10))
    exif = b"Exif\x00\x00" + thumb.tobytes()
    app1 = b"\xff\xe1" + (len(exif) + 2).to_bytes(2, "big") + exif
    whole = main.tobytes()[:2] + app1 + main.tobytes()[2:]
    assert jpeg_truncation(whole) is None
    assert "end inside the image data" in jpeg_truncation(whole[: len(whole) - 200])
    assert "end inside its header" in jpeg_truncation(whole[:40])
    assert jpeg_truncation(b"\x89PNG not a jpeg") is None  # other formats: their decoder judges them


def test_an_image_over_opencvs_pixel_limit_is_one_line(tmp_path: Path) -> None:
    """A PNG header claiming 100000x100000 pixels (a decompression bomb): OpenCV raises; refused naming the file."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", 100_000, 100_000, 8, 2, 0, 0, 0)
    bomb = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b"")
    (tmp_path / "bomb.png").write_bytes(bomb)
    with pytest.raises(HarnessError, match=r"bomb\.png: its header gives a size over OpenCV's limit"):
        imread_uint(tmp_path / "bomb.png")


def test_a_full_disk_is_named_when_an_image_is_saved(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """cv2.imwrite said only False: the bytes are now written by Python, whose error says why."""

    class FullDisk(io.BytesIO):
        def write(self, data: bytes) -> int:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    real_open = open

    def open_on_a_full_disk(path: str, mode: str = "r", *args: object, **kwargs: object) -> object:
        return FullDisk() if "w" in mode and TEMP_MARK in str(path) else real_open(path, mode, *args, **kwargs)

    monkeypatch.setattr(utils.image, "open", open_on_a_full_disk, raising=False)
    with pytest.raises(OSError, match=r"cannot write .*a\.png: No space left on device"):
        imsave(_rgb(), tmp_path / "a.png")
    assert list(tmp_path.iterdir()) == []  # neither the image nor a temp file


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
