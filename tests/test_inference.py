from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn as nn
from skimage import data as skimage_data

from models.team00_RFDN import RFDN
from utils.image import tensor2uint, uint2tensor4
from utils.imresize import bicubic_downsample
from utils.inference import Stopwatch, forward, peak_memory_mib
from utils.metrics import calculate_psnr


def _local_model() -> nn.Module:
    """Receptive field 5x5 (2 pixels each side): tiles overlapping by >= 4 reproduce the whole image exactly."""
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 12, 3, padding=1), nn.ReLU(), nn.Conv2d(12, 48, 3, padding=1), nn.PixelShuffle(4))


@torch.no_grad()
def test_tiles_reassemble_a_local_model_exactly() -> None:
    model, img = _local_model(), torch.rand(1, 3, 37, 53)
    whole = forward(img, model)
    tiled = forward(img, model, tile=16, tile_overlap=8, tile_mode="stitch")
    assert tiled.shape == whole.shape == (1, 3, 148, 212)
    torch.testing.assert_close(tiled, whole, atol=1e-6, rtol=0)
    with pytest.raises(AssertionError):  # a too-small overlap does show the seams: the check can fail
        torch.testing.assert_close(forward(img, model, tile=16, tile_overlap=2, tile_mode="stitch"), whole, atol=1e-6, rtol=0)
    with pytest.raises(AssertionError):  # the official averaging mixes in tile-edge pixels: close, not exact
        torch.testing.assert_close(forward(img, model, tile=16, tile_overlap=8), whole, atol=1e-6, rtol=0)


@torch.no_grad()
def test_official_averaging_is_exact_for_a_pointwise_model() -> None:
    torch.manual_seed(0)
    model, img = nn.Sequential(nn.Conv2d(3, 48, 1), nn.PixelShuffle(4)), torch.rand(1, 3, 37, 53)
    torch.testing.assert_close(forward(img, model, tile=16, tile_overlap=5), forward(img, model), atol=1e-6, rtol=0)


@torch.no_grad()
def test_overlap_wider_than_a_clipped_tile_stays_finite() -> None:
    """A 20-pixel-high strip with tile 64 and overlap 32: the official code would divide by zero here."""
    img = torch.rand(1, 3, 20, 100)
    for mode in ("average", "stitch"):
        out = forward(img, _local_model(), tile=64, tile_overlap=32, tile_mode=mode)
        assert out.shape == (1, 3, 80, 400) and torch.isfinite(out).all()


@torch.no_grad()
def test_tile_larger_than_image_is_whole_image() -> None:
    model, img = _local_model(), torch.rand(1, 3, 20, 24)
    torch.testing.assert_close(forward(img, model, tile=64, tile_overlap=8, tile_mode="stitch"), forward(img, model))
    torch.testing.assert_close(forward(img, model, tile=64, tile_overlap=8), forward(img, model, tile=20, tile_overlap=8))


def test_overlap_must_be_smaller_than_tile() -> None:
    with pytest.raises(ValueError, match="overlap"):
        forward(torch.rand(1, 3, 20, 20), _local_model(), tile=8, tile_overlap=8)
    with pytest.raises(ValueError, match="tile mode"):
        forward(torch.rand(1, 3, 20, 20), _local_model(), tile=8, tile_overlap=2, tile_mode="blend")


def test_tile_spans_cover_each_pixel_once() -> None:
    from utils.inference import _tile_spans

    for length, tile, overlap in [(37, 16, 8), (40, 16, 8), (16, 16, 8), (100, 33, 5)]:
        spans = _tile_spans(length, tile, overlap)
        kept = [i for _, a, b in spans for i in range(a, b)]
        assert kept == list(range(length))
        assert all(start <= a and b <= start + tile for start, a, b in spans)


@torch.no_grad()
def test_tiled_rfdn_on_a_large_image_within_a_tenth_of_a_db(rfdn_checkpoint: Path) -> None:
    model = RFDN().eval()
    model.load_state_dict(torch.load(rfdn_checkpoint, weights_only=True))
    hr = skimage_data.hubble_deep_field()[:560, :664]  # HR 560x664, LR 140x166: 3x3 tiles of 64 with overlap 16
    lr = uint2tensor4(bicubic_downsample(hr), 255.0)
    psnr_whole = calculate_psnr(tensor2uint(forward(lr, model), 255.0), hr, border=4)
    for mode in ("average", "stitch"):
        tiled = forward(lr, model, tile=64, tile_overlap=16, tile_mode=mode)
        assert abs(calculate_psnr(tensor2uint(tiled, 255.0), hr, border=4) - psnr_whole) < 0.1


def test_cpu_stopwatch_and_memory_are_labelled() -> None:
    stopwatch = Stopwatch(torch.device("cpu"))
    out, ms = stopwatch.time(lambda x: x * 2, torch.ones(3))
    assert stopwatch.method == "perf_counter" and ms >= 0 and out.tolist() == [2.0, 2.0, 2.0]
    memory, kind = peak_memory_mib(torch.device("cpu"))
    assert kind == "cpu_peak_rss" and memory > 10
    assert np.isfinite(memory)
