import math

import cv2
import numpy as np
import pytest

from utils.metrics import calculate_psnr, calculate_ssim, rgb2y, shave


def _reference_ssim_channel(a: np.ndarray, b: np.ndarray) -> float:
    """SSIM as in the SR literature's MATLAB-derived code: 11x11 Gaussian (sigma 1.5), 'valid' filtering."""
    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
    window = np.outer(cv2.getGaussianKernel(11, 1.5), cv2.getGaussianKernel(11, 1.5).T)

    def filt(x: np.ndarray) -> np.ndarray:
        return cv2.filter2D(x, -1, window)[5:-5, 5:-5]

    mu1, mu2 = filt(a), filt(b)
    s1, s2, s12 = filt(a * a) - mu1**2, filt(b * b) - mu2**2, filt(a * b) - mu1 * mu2
    return float((((2 * mu1 * mu2 + c1) * (2 * s12 + c2)) / ((mu1**2 + mu2**2 + c1) * (s1 + s2 + c2))).mean())


def _pair(shape: tuple[int, ...]) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(3)
    a = rng.integers(0, 256, shape).astype(np.uint8)
    b = np.clip(a.astype(int) + rng.integers(-20, 21, shape), 0, 255).astype(np.uint8)
    return a, b


def test_psnr_known_value_and_border() -> None:
    a = np.zeros((12, 12, 3), np.uint8)
    b = a.copy()
    b[4:8, 4:8] = 10  # inside a 4-pixel border: MSE over the 4x4 centre = 100
    assert calculate_psnr(a, b, border=4) == pytest.approx(20 * math.log10(255 / 10))
    assert calculate_psnr(a, a, border=4) == math.inf
    b[0, 0] = 255  # in the shaved border: no effect
    assert calculate_psnr(a, b, border=4) == pytest.approx(20 * math.log10(255 / 10))


def test_mismatched_shapes_are_refused() -> None:
    with pytest.raises(ValueError, match="differ in shape"):
        calculate_psnr(np.zeros((4, 4)), np.zeros((4, 5)))


@pytest.mark.parametrize("shape", [(40, 36), (40, 36, 3)])
def test_ssim_matches_the_sr_literature_definition(shape: tuple[int, ...]) -> None:
    a, b = _pair(shape)
    a3, b3 = a.reshape(*shape[:2], -1).astype(np.float64), b.reshape(*shape[:2], -1).astype(np.float64)
    expected = np.mean([_reference_ssim_channel(a3[..., c], b3[..., c]) for c in range(a3.shape[2])])
    assert calculate_ssim(a, b) == pytest.approx(expected, abs=1e-9)
    assert calculate_ssim(a, b, border=4) == pytest.approx(calculate_ssim(shave(a, 4), shave(b, 4)))
    assert calculate_ssim(a, a) == pytest.approx(1.0)


def test_rgb2y_bt601() -> None:
    img = np.array([[[0, 0, 0], [255, 255, 255], [255, 0, 0]]], np.uint8)
    np.testing.assert_allclose(rgb2y(img)[0], [16.0, 235.0, 16.0 + 65.481])
