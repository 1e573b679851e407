"""scripts/score_groups.py: PSNR per validation group, the x8 self-ensemble, the gap to a reference."""

from __future__ import annotations

import json
import os
import warnings
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from skimage import data as skimage_data

from models.ensemble import SelfEnsemble
from models.registry import model_config
from models.team13_PRFDN import PRFDN, PRFDNConfig
from pipeline import groups
from utils.checkpoint import ModelCheckpoint, read_model_checkpoint, save_model_checkpoint
from utils.image import imsave


def test_self_ensemble_of_an_equivariant_model_is_the_model() -> None:
    def upscale(x: torch.Tensor) -> torch.Tensor:
        return F.interpolate(x, scale_factor=4, mode="nearest")

    class Nearest(torch.nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return upscale(x)

    x = torch.rand(2, 3, 5, 7)
    assert torch.allclose(SelfEnsemble(Nearest())(x), upscale(x))
    torch.manual_seed(0)
    net = PRFDN(PRFDNConfig.merged(nf=4)).eval()
    with torch.no_grad():
        out = SelfEnsemble(net)(torch.rand(1, 3, 16, 20) * 255)
    assert out.shape == (1, 3, 64, 80)


def test_groups_are_scored_per_kind_with_the_x8_ensemble_and_the_gap(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    for name in ("astronaut", "chelsea", "coffee", "rocket"):
        img = getattr(skimage_data, name)()
        imsave(
            cv2.resize(img, (img.shape[1] // 4, img.shape[0] // 4), interpolation=cv2.INTER_AREA),
            tmp_path / "train" / f"{name}.png",
        )
    imsave(cv2.resize(skimage_data.astronaut(), (96, 96)), tmp_path / "val" / "photo_a.png")
    imsave(cv2.resize(skimage_data.coffee(), (96, 96)), tmp_path / "val" / "lines_b.png")
    paths = []
    for folder, seed in (("a", 0), ("b", 1)):  # the same file name twice: the rows must not clash
        torch.manual_seed(seed)
        model = PRFDN(PRFDNConfig.merged(nf=4))
        arch, config = model_config(model)
        paths.append(tmp_path / folder / "final.pth")
        paths[-1].parent.mkdir()
        save_model_checkpoint(paths[-1], ModelCheckpoint(arch, config, model.state_dict()))
    out = tmp_path / "groups.json"
    argv = [
        *map(str, paths),
        "--train_dir",
        str(tmp_path / "train"),
        "--val_fraction",
        "0.25",
        "--val_dir",
        str(tmp_path / "val"),
    ]
    assert groups.main([*argv, "--x8", "--reference", "0", "--device", "cpu", "--json", str(out)]) == 0
    result = json.loads(out.read_text())
    rows = result["rows"]
    assert set(rows) == {str(paths[0]), str(paths[1]), f"{paths[0]} x8", f"{paths[1]} x8"}
    assert set(rows[str(paths[0])]) == {"held_out", "photo", "lines", "mean"}
    assert result["worst_gap"][str(paths[0])] == 0.0
    second = rows[str(paths[1])]
    assert result["worst_gap"][str(paths[1])] == pytest.approx(
        min(second[g] - rows[str(paths[0])][g] for g in ("held_out", "photo", "lines"))
    )
    assert "| worst gap |" in capsys.readouterr().out
    assert groups.main([*argv, "--json", str(out)]) == 2  # an existing --json is kept without --overwrite
    assert "--json" in capsys.readouterr().err and json.loads(out.read_text()) == result


# --- bad input: one line naming the checkpoint or image, exit 2, before any image is read where it can be ---------


@pytest.fixture
def small_data(tmp_path: Path) -> list[str]:
    """Data flags of one training image and one validation image, and a tiny PRFDN checkpoint a.pth beside them."""
    rng = np.random.default_rng(0)
    imsave(rng.integers(0, 256, (64, 64, 3), dtype=np.uint8), tmp_path / "train" / "t.png")
    imsave(rng.integers(0, 256, (64, 64, 3), dtype=np.uint8), tmp_path / "val" / "photo_v.png")
    torch.manual_seed(0)
    model = PRFDN(PRFDNConfig.merged(nf=4))
    arch, config = model_config(model)
    save_model_checkpoint(tmp_path / "a.pth", ModelCheckpoint(arch, config, model.state_dict()))
    return ["--train_dir", str(tmp_path / "train"), "--val_fraction", "0", "--val_dir", str(tmp_path / "val"), "--device", "cpu"]


def _refused(capsys: pytest.CaptureFixture[str], rc: int) -> str:
    err = capsys.readouterr().err
    assert rc == 2 and "Traceback" not in err and len(err.strip().splitlines()) == 1, err
    return err.strip()


def _variant(tmp_path: Path, name: str, change: Any) -> str:
    checkpoint = read_model_checkpoint(tmp_path / "a.pth")
    change(checkpoint)
    save_model_checkpoint(tmp_path / name, checkpoint)
    return str(tmp_path / name)


def test_checkpoints_are_checked_before_any_image_is_read(
    tmp_path: Path, small_data: list[str], capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(groups, "load_data_from_args", lambda *a, **k: pytest.fail("images read before the checks"))
    a = str(tmp_path / "a.pth")
    other = PRFDN(PRFDNConfig.merged(nf=8))
    narrow = _variant(tmp_path, "narrow.pth", lambda c: setattr(c, "config", model_config(other)[1]))
    line = _refused(capsys, groups.main([a, narrow, *small_data]))  # the second checkpoint, once after scoring the first
    assert f"CHECKPOINT {narrow}: weights do not fit its prfdn architecture" in line
    nan = _variant(tmp_path, "nan.pth", lambda c: c.state_dict["head_skip.weight"].fill_(float("nan")))
    line = _refused(capsys, groups.main([a, nan, *small_data]))  # once: black pixels, a figure, a NumPy warning
    assert f"CHECKPOINT {nan}: weights hold values that are not finite (108 of 108 in head_skip.weight are NaN" in line
    unit = _variant(tmp_path, "unit.pth", lambda c: setattr(c, "data_range", 1.0))
    line = _refused(capsys, groups.main([a, unit, *small_data]))
    assert f"CHECKPOINT {unit}: x4 on [0, 1], but the first, {a}, is x4 on [0, 255]" in line
    assert f"CHECKPOINT {a}: given twice" in _refused(capsys, groups.main([a, a, *small_data]))
    torch.save({k: v.to("meta") for k, v in read_model_checkpoint(a).state_dict.items()}, tmp_path / "meta.pth")
    assert "meta.pth: tensor " in _refused(capsys, groups.main([a, str(tmp_path / "meta.pth"), *small_data]))


def test_a_model_failing_on_the_images_is_one_line_naming_it(
    tmp_path: Path, small_data: list[str], capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    huge = _variant(tmp_path, "huge.pth", lambda c: [v.mul_(1e30) for v in c.state_dict.values() if v.is_floating_point()])
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # NaN pixels once reached NumPy's cast: a warning, a traceback under -W error
        line = _refused(capsys, groups.main([str(tmp_path / "a.pth"), huge, "--x8", *small_data]))
    assert f"CHECKPOINT {huge}: its output on 1 validation image(s) (e.g. val/photo_v) holds NaN or infinite values" in line

    def out_of_memory(*args: object) -> list[float]:
        raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 8.00 GiB")

    monkeypatch.setattr(groups, "psnr_scores", out_of_memory)
    line = _refused(capsys, groups.main([str(tmp_path / "a.pth"), *small_data]))
    assert f"CHECKPOINT {tmp_path / 'a.pth'}: out of memory scoring the validation images on cpu" in line
    assert line.endswith("try a smaller --val_crop")


def test_a_fifo_or_a_float_image_among_the_validation_images_is_refused(
    tmp_path: Path, small_data: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    cv2.imwrite(str(tmp_path / "val" / "photo_w.tif"), np.full((64, 64, 3), 200.0, np.float32))  # 0..255 in floats
    line = _refused(capsys, groups.main([str(tmp_path / "a.pth"), *small_data]))
    assert "photo_w.tif: float image with values in [200, 200]; expected floats in [0, 1]" in line
    (tmp_path / "val" / "photo_w.tif").unlink()
    os.mkfifo(tmp_path / "val" / "photo_x.png")
    line = _refused(capsys, groups.main([str(tmp_path / "a.pth"), *small_data]))
    assert "photo_x.png: is a FIFO (named pipe), not a regular file; expected an image" in line
