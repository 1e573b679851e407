"""Provenance records: one builder, the same fields for every stage; git_dirty sees code, not run outputs."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from utils import provenance as prov

COMMON_FIELDS = {"stage", "parent", "parent_sha256", "parent_provenance", "git_commit", "git_dirty", "torch", "created"}


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
