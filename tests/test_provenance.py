"""Provenance records: one builder, the same fields for every stage; git_dirty sees code, not run outputs."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
import torch

from utils import provenance as prov
from utils.checkpoint import ModelCheckpoint, read_model_checkpoint, save_model_checkpoint, weights_sha256
from utils.errors import HarnessError

COMMON_FIELDS = {
    "stage",
    "parent",
    "parent_sha256",
    "parent_weights_sha256",
    "parent_provenance",
    "git_commit",
    "git_dirty",
    "torch",
    "created",
}


def test_record_has_the_common_fields_and_the_parents_chain(tmp_path: Path) -> None:
    parent = tmp_path / "parent.pth"
    parent.write_bytes(b"weights")
    record = prov.provenance("merged", parent, {"stage": "branch"}, form="dense")
    assert set(record) >= COMMON_FIELDS and record["form"] == "dense"
    assert record["parent_sha256"] == prov.sha256_of(parent)
    assert record["parent_provenance"] == {"stage": "branch"}
    given = prov.provenance("train", parent, None, parent_sha256="f" * 64)
    assert given["parent_sha256"] == "f" * 64 and given["parent_provenance"] is None


@pytest.mark.skipif(shutil.which("git") is None, reason="needs git")
def test_git_dirty_sees_code_changes_but_not_run_outputs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    repo = tmp_path / "repo"
    (repo / "runs").mkdir(parents=True)
    (repo / "tool.py").write_text("x = 1\n")
    (repo / "runs" / "log.jsonl").write_text("{}\n")

    def git(*args: str) -> None:
        subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True)

    git("init", "-q")
    git("-c", "user.email=a@b", "-c", "user.name=a", "add", ".")
    git("-c", "user.email=a@b", "-c", "user.name=a", "commit", "-qm", "start")
    monkeypatch.setattr(prov, "REPO_ROOT", repo)
    assert prov.git_dirty() is False and len(prov.git_commit()) == 40
    (repo / "runs" / "log.jsonl").write_text("{}\n{}\n")  # a training run appends to its log
    (repo / "runs" / "new_state.pth").write_bytes(b"x")
    assert prov.git_dirty() is False
    (repo / "tool.py").write_text("x = 2\n")
    assert prov.git_dirty() is True
    git("checkout", "-q", "tool.py")
    (repo / "sub").mkdir()
    (repo / "sub" / "new_module.py").write_text("")  # new code counts too
    assert prov.git_dirty() is True


def tiny_checkpoint(provenance: dict[str, object]) -> ModelCheckpoint:
    return ModelCheckpoint("rfdn", {}, {"w": torch.arange(6.0).reshape(2, 3).t(), "n": torch.tensor(3)}, provenance=provenance)


def test_weights_digest_follows_the_weights_not_the_file_or_its_record() -> None:
    first = tiny_checkpoint({"created": "then"})
    again = tiny_checkpoint({"created": "now", "git_commit": "f" * 40})
    assert weights_sha256(first) == weights_sha256(again)  # non-contiguous tensors too
    changed = tiny_checkpoint({})
    changed.state_dict["w"] = changed.state_dict["w"].clone()
    changed.state_dict["w"][0, 0] += 1e-6
    assert weights_sha256(changed) != weights_sha256(first)
    renamed = tiny_checkpoint({})
    renamed.state_dict["v"] = renamed.state_dict.pop("w")
    assert weights_sha256(renamed) != weights_sha256(first)
    wider = tiny_checkpoint({})
    wider.config = {"channels": 2}
    assert weights_sha256(wider) != weights_sha256(first)


def test_a_parent_written_again_is_recognized_and_another_is_not(tmp_path: Path) -> None:
    parent = tmp_path / "final_trained.pth"
    record = {"stage": "train", "iterations": 40, "best_val_psnr": 27.1, "created": "then", "git_commit": "a" * 40}
    save_model_checkpoint(parent, tiny_checkpoint(record))
    made = prov.stage_record("pruned", parent, read_model_checkpoint(parent))
    save_model_checkpoint(parent, tiny_checkpoint({**record, "created": "now", "git_commit": "b" * 40}))
    assert made["parent_sha256"] != prov.sha256_of(parent)  # the file differs: a new time and commit
    assert prov.is_recorded_parent(made, parent)  # by its weights
    legacy = {key: value for key, value in made.items() if key != "parent_weights_sha256"}
    assert prov.is_recorded_parent(legacy, parent)  # a record without the digest: by the parent's own record

    other = tiny_checkpoint({**record, "created": "now"})
    other.state_dict["w"] = other.state_dict["w"] + 1
    save_model_checkpoint(parent, other)
    assert not prov.is_recorded_parent(made, parent)
    retrained = tiny_checkpoint({**record, "best_val_psnr": 27.2})
    save_model_checkpoint(parent, retrained)
    assert not prov.is_recorded_parent(legacy, parent)
    assert not prov.is_recorded_parent({**legacy, "parent_provenance": None}, parent)


def test_only_a_training_output_is_recognized_by_its_record_alone(tmp_path: Path) -> None:
    """Other stages' records hold settings, not results: a pruning redone to other weights has the same record."""
    parent = tmp_path / "pruned.pth"
    save_model_checkpoint(parent, tiny_checkpoint({"stage": "pruned", "ratio": 0.8, "created": "then"}))
    made = prov.stage_record("final", parent, read_model_checkpoint(parent))
    legacy = {key: value for key, value in made.items() if key != "parent_weights_sha256"}
    redone = tiny_checkpoint({"stage": "pruned", "ratio": 0.8, "created": "now"})
    redone.state_dict["w"] = redone.state_dict["w"] * 2
    save_model_checkpoint(parent, redone)
    assert not prov.is_recorded_parent(legacy, parent) and not prov.is_recorded_parent(made, parent)


def test_a_checkpoint_with_a_non_tensor_weight_is_refused_in_one_line(tmp_path: Path) -> None:
    bad = tmp_path / "bad.pth"
    checkpoint = tiny_checkpoint({})
    torch.save({**checkpoint.to_dict(), "state_dict": {"w": torch.zeros(2), "n": 3}}, bad)
    with pytest.raises(HarnessError, match=r"bad.pth: state_dict entry 'n' is not a tensor; expected tensors only"):
        read_model_checkpoint(bad)
