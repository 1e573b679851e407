"""What the repository tracks: a small tree without training states, and of the run outputs under runs/ only the
evidence the docs cite (training logs, pipeline.txt, the ablation tables) and the weights behind the README
results table's rows.

Those weights are listed in one place: the results table's own record, docs/results/evaluation.json (each row's
``path``, as scripts/report.py wrote it). A row whose checkpoint lies in the repository must be tracked, and
.gitignore's ``!/runs/....pth`` lines must name exactly the rows' paths under runs/ and the start of the next
training work (the ``src`` of configs/ablations_content.json: the adopted cut's branch model, whose training ends
a cycle), so that the rules keep them and nothing else."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
EVALUATION = REPO_ROOT / "docs" / "results" / "evaluation.json"
MAX_TRACKED_BYTES = 25_000_000
ABLATION_TABLES = ("ablations.json", "kinds.json", "reference_val.json")


def is_run_evidence(path: str) -> bool:
    """A small run output the docs cite, kept by .gitignore's rules: any run's ``*.log.jsonl`` and
    ``pipeline.txt``, an ablation folder's tables (``runs/ablations*/{ablations,kinds,reference_val}.json``)."""
    parts = path.split("/")
    if parts[0] != "runs" or len(parts) < 3:
        return False
    if parts[-1].endswith(".log.jsonl") or parts[-1] == "pipeline.txt":
        return True
    return len(parts) == 3 and parts[1].startswith("ablations") and parts[2] in ABLATION_TABLES


def results_weights() -> dict[str, str]:
    """{row name: path relative to the repository root} of every results row whose checkpoint is in the
    repository (rows read from elsewhere, e.g. RFDN from ../shared, are not ours to track)."""
    rows = json.loads(EVALUATION.read_text(encoding="utf-8"))["models"]
    assert rows, f"{EVALUATION}: no results rows"
    inside = {}
    for name, row in rows.items():
        path = Path(os.path.normpath(REPO_ROOT / row["path"]))
        if path.is_relative_to(REPO_ROOT):
            inside[name] = path.relative_to(REPO_ROOT).as_posix()
    return inside


def next_start() -> str:
    """The start of the content ablations (configs/ablations_content.json's ``src``): weights a training cycle ended
    with, kept so that the next cycle can begin from them on any machine."""
    return json.loads((REPO_ROOT / "configs" / "ablations_content.json").read_text(encoding="utf-8"))["src"]


def _git(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["git", *args], cwd=REPO_ROOT, capture_output=True, text=True, encoding="utf-8")


@pytest.fixture(scope="module")
def tracked() -> list[str]:
    """``git ls-files`` of this checkout; skips where there is none (no git, or an unpacked archive)."""
    if shutil.which("git") is None:
        pytest.skip("git is not installed: the tracked tree cannot be listed")
    top = _git("rev-parse", "--show-toplevel")
    if top.returncode != 0 or Path(top.stdout.strip()).resolve() != REPO_ROOT:
        pytest.skip(f"{REPO_ROOT} is not the root of a git checkout (e.g. an unpacked archive): no tracked tree to check")
    files = _git("ls-files", "-z")
    assert files.returncode == 0, files.stderr
    return [path for path in files.stdout.split("\0") if path]


def test_tracked_tree_is_small_and_holds_no_training_state(tracked: list[str]) -> None:
    states = [path for path in tracked if path.endswith(".state.pth")]
    assert not states, f"training states are tracked (every committed run is finished; git rm them): {states}"
    sizes = {path: os.lstat(REPO_ROOT / path).st_size for path in tracked if os.path.lexists(REPO_ROOT / path)}
    total = sum(sizes.values())
    largest = sorted(sizes, key=sizes.__getitem__, reverse=True)[:5]
    assert total < MAX_TRACKED_BYTES, (
        f"the tracked tree holds {total / 1e6:.1f} MB, over {MAX_TRACKED_BYTES / 1e6:.0f} MB; largest: "
        + ", ".join(f"{path} ({sizes[path] / 1e6:.1f} MB)" for path in largest)
    )


def test_every_results_row_in_the_repository_is_tracked(tracked: list[str]) -> None:
    rows = results_weights()
    assert rows.get("final") == "model_zoo/team13_prfdn.pth"  # the submission's row
    missing = {name: path for name, path in rows.items() if path not in tracked or not (REPO_ROOT / path).is_file()}
    assert not missing, f"results rows whose weights are not tracked or not there (docs/results/evaluation.json): {missing}"


def test_the_next_start_is_tracked(tracked: list[str]) -> None:
    assert next_start() in tracked and (REPO_ROOT / next_start()).is_file()


def test_run_outputs_tracked_are_results_weights_or_evidence(tracked: list[str]) -> None:
    weights = {*results_weights().values(), next_start()}
    other = [path for path in tracked if path.startswith("runs/") and path not in weights and not is_run_evidence(path)]
    assert not other, (
        f"tracked under runs/ but neither a results row's weights (docs/results/evaluation.json) nor a log or table: {other}"
    )


def test_gitignore_keeps_exactly_the_results_weights_and_the_evidence(tracked: list[str]) -> None:
    weights = sorted({*(path for path in results_weights().values() if path.startswith("runs/")), next_start()})
    lines = (REPO_ROOT / ".gitignore").read_text(encoding="utf-8").splitlines()
    kept = sorted(line[2:] for line in lines if line.startswith("!/runs/") and line.endswith(".pth"))
    assert kept == weights, (
        f".gitignore keeps {kept} under runs/; the results rows (docs/results/evaluation.json) and the next start are {weights}"
    )
    evidence = [path for path in tracked if path.startswith("runs/") and is_run_evidence(path)]
    assert evidence, "no training log or table tracked under runs/"
    # what the rules make of the files kept, and of what a run leaves beside them (checked as if untracked)
    beside = [w.removesuffix(".pth") + end for w in weights for end in (".state.pth", "_last.pth")]
    beside += [str(Path(w).parent / name) for w in weights for name in ("merged.pth", "pruned.pth", "final.pth")]
    beside += ["runs/ablations/branch_fit.pth", "runs/ablations_prune/taylor512.start.pth", "runs/next/final.pth"]
    check = _git("check-ignore", "--no-index", *weights, *evidence, *beside)
    assert check.returncode in (0, 1), check.stderr
    ignored = set(check.stdout.splitlines())
    keep, drop = {*weights, *evidence}, set(beside) - set(weights)
    assert not ignored & keep, f".gitignore ignores run outputs it must keep: {sorted(ignored & keep)}"
    assert drop <= ignored, f".gitignore does not ignore run outputs it must: {sorted(drop - ignored)}"
