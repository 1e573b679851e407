"""RFDN through test_demo.py reproduces the reference figures of ../shared/README.md (and the official ones)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import test_demo

# RGB and Y (BT.601) PSNR, 4-pixel border, SR rounded to uint8, LR from LR_bicubic/X4 (../shared/README.md)
REFERENCE = {"Set5": (30.253, 32.155), "Set14": (26.831, 28.645), "BSD68": (26.455, 27.806)}
SLOW_SETS = {"Set14", "BSD68"}  # 14 and 68 images: the same code path as Set5, at 6 and 15 s


@pytest.mark.parametrize(
    "set_name", [pytest.param(name, marks=pytest.mark.slow) if name in SLOW_SETS else name for name in sorted(REFERENCE)]
)
def test_rfdn_reference_psnr(
    set_name: str, benchmark_dir: Path, rfdn_checkpoint: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    hr_dir, lr_dir = benchmark_dir / set_name / "HR", benchmark_dir / set_name / "LR_bicubic" / "X4"
    argv = ["--hr_dir", str(hr_dir), "--lr_dir", str(lr_dir), "--model_id", "0", "--model_path", str(rfdn_checkpoint)]
    assert test_demo.cli([*argv, "--ssim", "--device", "cpu", "--warmup", "0"]) == 0
    entry = next(iter(json.loads(Path("results.json").read_text()).values()))
    rgb, y = REFERENCE[set_name]
    assert entry["custom_ave_psnr"] == pytest.approx(rgb, abs=0.005)
    assert entry["custom_ave_psnr_y"] == pytest.approx(y, abs=0.005)
    assert 0.5 < entry["custom_ave_ssim"] < entry["custom_ave_ssim_y"] < 1
    # the official complexity figures of RFDN: 0.433 M params, 27.10 G FLOPs, 112.03 M activations, 64 convs
    assert (round(entry["num_parameters"], 3), round(entry["flops"], 2), round(entry["activations"], 2)) == (0.433, 27.10, 112.03)
    assert entry["num_conv"] == 64
