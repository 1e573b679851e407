"""scripts/score_groups.py: PSNR per validation group, the x8 self-ensemble, the gap to a reference."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import pytest
import torch
import torch.nn.functional as F
from skimage import data as skimage_data

from models.ensemble import SelfEnsemble
from models.registry import model_config
from models.team13_PRFDN import PRFDN, PRFDNConfig
from pipeline import groups
from utils.checkpoint import ModelCheckpoint, save_model_checkpoint
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
