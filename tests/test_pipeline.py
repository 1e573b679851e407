"""The one end-to-end command, on its tiny configuration (configs/tiny.json)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import torch

from models.team00_RFDN import RFDN
from transform.architectures import load_model
from utils.checkpoint import read_model_checkpoint
from utils.datasets import ensure_builtin_dataset

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT / "scripts"))
import run_pipeline  # noqa: E402


@pytest.fixture
def tiny_config(tmp_path: Path, any_rfdn_checkpoint: Path) -> Path:
    """configs/tiny.json with its outputs in tmp_path (and random RFDN weights where ../shared is absent)."""
    config = json.loads((REPO_ROOT / "configs" / "tiny.json").read_text())
    config.update(rfdn=str(any_rfdn_checkpoint), work_dir=str(tmp_path / "work"), output=str(tmp_path / "team13_prfdn.pth"))
    config["data"]["train_dir"] = [str(ensure_builtin_dataset()[0].hr_path.parent)]
    path = tmp_path / "tiny.json"
    path.write_text(json.dumps(config))
    return path


def test_tiny_pipeline_runs_every_stage_and_continues(
    tiny_config: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run_pipeline.main([str(tiny_config)]) == 0
    work = tmp_path / "work"
    for stage in ("branch", "branch_trained", "merged", "pruned", "final"):
        assert (work / f"{stage}.pth").is_file(), stage
    final = read_model_checkpoint(tmp_path / "team13_prfdn.pth")
    assert final.arch == "prfdn" and final.provenance["stage"] == "final"
    chain = final.provenance
    stages = []
    while chain:
        stages.append(chain["stage"])
        chain = chain.get("parent_provenance")
    assert stages == ["final", "pruned", "merged", "train", "branch"]
    model = load_model(final)
    assert model(torch.rand(1, 3, 24, 24) * 255).shape == (1, 3, 96, 96)
    capsys.readouterr()
    assert run_pipeline.main([str(tiny_config)]) == 0  # everything there: every stage skipped
    assert capsys.readouterr().out.count("exists, skipped") == 5


def test_pipeline_config_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "bad.json").write_text('{"rfdn": "x"}')
    assert run_pipeline.main([str(tmp_path / "bad.json")]) == 2
    assert "config lacks work_dir, output, data" in capsys.readouterr().err
    torch.save(RFDN().state_dict(), tmp_path / "rfdn.pth")
    config = {"rfdn": str(tmp_path / "rfdn.pth"), "work_dir": str(tmp_path / "w"), "output": str(tmp_path / "o.pth")}
    (tmp_path / "empty").mkdir()
    config["data"] = {"train_dir": [str(tmp_path / "empty")]}
    (tmp_path / "c.json").write_text(json.dumps(config))
    assert run_pipeline.main([str(tmp_path / "c.json")]) == 2
    err = capsys.readouterr().err
    assert "empty" in err and "stage branch_trained failed" in err
