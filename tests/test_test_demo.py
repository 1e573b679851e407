"""test_demo.py as users run it: official flags, keys and layouts, the new flags, and every bad input."""

from __future__ import annotations

import argparse
import errno
import json
import os
import shutil
import stat
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest
import torch

import test_demo
import utils.evaluation
import utils.image
import utils.inference
import utils.results
from models.team00_RFDN import RFDN
from models.team13_PRFDN import PRFDN, PRFDNConfig
from utils.checkpoint import ModelCheckpoint, save_model_checkpoint
from utils.datasets import ensure_builtin_dataset
from utils.image import imread_uint, imsave

REPO_ROOT = Path(__file__).resolve().parents[1]
OFFICIAL_KEYS = ("num_parameters", "flops", "activations", "num_conv")


def _mode_keys(mode: str) -> tuple[str, ...]:
    return (f"{mode}_psnr", f"{mode}_ave_psnr", f"{mode}_runtime", f"{mode}_ave_runtime", f"{mode}_memory")


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Run in a temp folder, as the official harness writes results.json in the working directory."""
    monkeypatch.chdir(tmp_path)
    return tmp_path


def _small_official_data(root: Path, hr: str, lr: str, names: list[str], lr_suffix: str = "x4") -> None:
    """A tiny official-layout folder from the built-in images, under the official names."""
    builtin = {p.name: p for p in ensure_builtin_dataset()}
    for name, source in zip(names, ["chelsea", "coffee"], strict=False):
        imsave(imread_uint(builtin[source].hr_path)[:96, :128], root / hr / f"{name}.png")
        imsave(imread_uint(builtin[source].lr_path)[:24, :32], root / lr / f"{name}{lr_suffix}.png")


def _run(*argv: str) -> int:
    return test_demo.cli(["--device", "cpu", "--warmup", "0", *argv])


def _error_line(capsys: pytest.CaptureFixture[str]) -> str:
    err = capsys.readouterr().err
    assert "Traceback" not in err
    lines = [line for line in err.splitlines() if line.startswith("test_demo.py: error:")]
    assert len(lines) == 1, err
    return lines[0]


def test_select_model_official_signature(random_rfdn_checkpoint: Path) -> None:
    args = argparse.Namespace(model_id=0, model_path=str(random_rfdn_checkpoint))
    model, name, data_range, tile = test_demo.select_model(args, torch.device("cpu"))
    assert isinstance(model, RFDN) and not model.training
    assert name == "00_RFDN_baseline@rfdn_random" and data_range == 255.0 and tile is None
    assert not any(p.requires_grad for p in model.parameters())


def test_official_2023_layout_with_test_set(workdir: Path, random_rfdn_checkpoint: Path) -> None:
    data = workdir / "data"
    _small_official_data(data, "DIV2K_valid_HR", "DIV2K_valid_LR", ["0801", "0802"])
    _small_official_data(data, "DIV2K_test_HR", "DIV2K_test_LR", ["0901"], lr_suffix="")  # 2023 test LR: no x4
    rc = _run(
        "--data_dir",
        str(data),
        "--save_dir",
        "out",
        "--model_id",
        "0",
        "--model_path",
        str(random_rfdn_checkpoint),
        "--include_test",
    )
    assert rc == 0
    results = json.loads((workdir / "results.json").read_text())
    entry = results["00_RFDN_baseline@rfdn_random"]
    for key in (*_mode_keys("valid"), *_mode_keys("test"), *OFFICIAL_KEYS):
        assert key in entry, key
    assert len(entry["valid_psnr"]) == 2 and len(entry["test_psnr"]) == 1
    assert entry["valid_ave_psnr"] == pytest.approx(np.mean(entry["valid_psnr"]))
    assert entry["num_conv"] == 64 and entry["flops"] == pytest.approx(27.10, abs=0.005)
    assert entry["valid_memory_kind"] == "cpu_peak_rss" and entry["device"].startswith("cpu")
    saved = workdir / "out" / "00_RFDN_baseline@rfdn_random"
    assert sorted(p.name for p in (saved / "valid").iterdir()) == ["0801.png", "0802.png"]
    assert imread_uint(saved / "test" / "0901.png").shape == (96, 128, 3)
    assert (workdir / "out" / "test_demo.log").read_text().count("PSNR") >= 3
    assert "valid" in (workdir / "results.txt").read_text()


def test_later_layout_with_ssim(workdir: Path, random_rfdn_checkpoint: Path) -> None:
    data = workdir / "data"
    _small_official_data(data, "DIV2K_LSDIR_valid_HR", "DIV2K_LSDIR_valid_LR", ["0801"])
    assert _run("--data_dir", str(data), "--model_path", str(random_rfdn_checkpoint), "--model_id", "0", "--ssim") == 0
    entry = json.loads((workdir / "results.json").read_text())["00_RFDN_baseline@rfdn_random"]
    for key in ("ave_ssim", "ave_psnr_y", "ave_ssim_y"):
        assert f"valid_{key}" in entry
    assert 0 < entry["valid_ave_ssim"] <= 1


def test_hybrid_test_runs_alone_as_in_the_official_harness(workdir: Path, random_rfdn_checkpoint: Path) -> None:
    data = workdir / "data"  # a folder with the hybrid test set only: valid is not needed
    _small_official_data(data, "LSDIR_DIV2K_test_HR", "LSDIR_DIV2K_test_LR", ["0001", "0002"])
    assert _run("--data_dir", str(data), "--model_path", str(random_rfdn_checkpoint), "--hybrid_test") == 0
    entry = json.loads((workdir / "results.json").read_text())["00_RFDN_baseline@rfdn_random"]
    assert len(entry["hybrid_test_psnr"]) == 2 and "valid_psnr" not in entry


def test_custom_folders_and_results_merge(workdir: Path, random_rfdn_checkpoint: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(test_demo, "OFFICIAL_INPUT_DIM", (3, 16, 16))  # the complexity figures are tested elsewhere
    hr_dir = workdir / "hr_custom"
    hr_dir.mkdir()
    for pair in ensure_builtin_dataset()[:2]:
        shutil.copy(pair.hr_path, hr_dir / pair.hr_path.name)
    workdir.joinpath("results.json").write_text(json.dumps({"99_other": {"valid_ave_psnr": 1.0}}))
    other = workdir / "other.pth"
    torch.manual_seed(1)
    torch.save(RFDN().state_dict(), other)
    assert _run("--hr_dir", str(hr_dir), "--model_id", "0", "--model_path", str(random_rfdn_checkpoint)) == 0
    assert (
        _run("--hr_dir", str(hr_dir), "--model_id", "0", "--model_path", str(other), "--tile", "48", "--tile_overlap", "16") == 0
    )
    results = json.loads((workdir / "results.json").read_text())
    assert set(results) == {"99_other", "00_RFDN_baseline@rfdn_random", "00_RFDN_baseline@other"}
    assert results["00_RFDN_baseline@other"]["custom_ave_psnr"] != results["00_RFDN_baseline@rfdn_random"]["custom_ave_psnr"]
    assert len(results["00_RFDN_baseline@other"]["custom_psnr"]) == 2
    assert results["00_RFDN_baseline@other"]["checkpoint_sha256"] != results["00_RFDN_baseline@rfdn_random"]["checkpoint_sha256"]


def test_model_is_inferred_from_the_checkpoint(
    workdir: Path, random_rfdn_checkpoint: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """--model_path without --model_id: the model whose architecture the checkpoint fits (here RFDN)."""
    assert _run("--model_path", str(random_rfdn_checkpoint)) == 0
    assert "00_RFDN_baseline@rfdn_random" in json.loads(Path("results.json").read_text())
    torch.save({"other.weight": torch.zeros(3)}, "foreign.pth")
    assert _run("--model_path", "foreign.pth") == 2
    assert "foreign.pth: fits none of the known models (0 (RFDN_baseline), 13 (PRFDN)); pass --model_id" in _error_line(capsys)
    near = RFDN().state_dict()
    near["upsampler.0.weight"] = torch.zeros(48, 50, 3, 1)  # RFDN's but one tensor: the closest model and the tensor
    torch.save(near, "near.pth")
    assert _run("--model_path", "near.pth") == 2
    line = _error_line(capsys)
    assert "near.pth: fits none of the known models; closest is 0 (RFDN_baseline), 128 of whose 128 tensor names it holds" in line
    assert "but 1 with another shape (e.g. upsampler.0.weight: checkpoint (48, 50, 3, 1) vs model (48, 50, 3, 3))" in line


def test_generated_lr_path_equals_the_lr_file_path(workdir: Path, random_rfdn_checkpoint: Path) -> None:
    pairs = ensure_builtin_dataset()
    hr_dir, lr_dir = pairs[0].hr_path.parent, pairs[0].lr_path.parent
    common = ("--model_id", "0", "--model_path", str(random_rfdn_checkpoint), "--hr_dir", str(hr_dir))
    assert _run(*common, "--results_json", "generated.json") == 0
    assert _run(*common, "--lr_dir", str(lr_dir), "--results_json", "given.json") == 0
    generated = json.loads(Path("generated.json").read_text())["00_RFDN_baseline@rfdn_random"]["custom_psnr"]
    given = json.loads(Path("given.json").read_text())["00_RFDN_baseline@rfdn_random"]["custom_psnr"]
    assert generated == given


# --- bad input: one line naming the culprit, exit code 2, results.json untouched -------------------------


@pytest.fixture
def previous_results(workdir: Path) -> Path:
    path = workdir / "results.json"
    path.write_text('{"00_RFDN_baseline": {"valid_ave_psnr": 26.9}}\n')
    return path


def _bad(previous_results: Path, capsys: pytest.CaptureFixture[str], *argv: str) -> str:
    before = previous_results.read_bytes()
    assert _run(*argv) == 2
    assert previous_results.read_bytes() == before
    return _error_line(capsys)


def test_a_refused_run_creates_no_output_folder(previous_results: Path, capsys: pytest.CaptureFixture[str]) -> None:
    for argv in (["--model_path", "missing.pth"], ["--hr_dir", "nowhere"]):
        line = _bad(previous_results, capsys, "--model_id", "13", "--save_dir", "out/sr", "--results_json", "res/r.json", *argv)
        assert line and not Path("out").exists() and not Path("res").exists()


def test_missing_and_empty_data_folders(
    previous_results: Path, capsys: pytest.CaptureFixture[str], random_rfdn_checkpoint: Path
) -> None:
    ckpt = ("--model_path", str(random_rfdn_checkpoint), "--model_id", "0")
    assert "nowhere: folder not found" in _bad(previous_results, capsys, "--data_dir", "nowhere", *ckpt)
    Path("empty").mkdir()
    line = _bad(previous_results, capsys, "--data_dir", "empty", *ckpt)
    assert "no valid data found" in line and "DIV2K_LSDIR_valid_HR/" in line and "DIV2K_valid_HR/" in line
    Path("emptyhr").mkdir()
    assert "emptyhr: HR folder holds no images" in _bad(previous_results, capsys, "--hr_dir", "emptyhr", *ckpt)


def test_hidden_files_are_skipped_and_duplicate_names_refused(
    previous_results: Path, capsys: pytest.CaptureFixture[str], random_rfdn_checkpoint: Path
) -> None:
    ckpt = ("--model_path", str(random_rfdn_checkpoint), "--model_id", "0", "--results_json", "other.json")
    imsave(np.zeros((96, 96, 3), np.uint8), Path("hr/a.png"))
    Path("hr/._a.png").write_bytes(b"macOS resource fork, not an image")
    assert _run("--hr_dir", "hr", *ckpt) == 0
    imsave(np.zeros((96, 96, 3), np.uint8), Path("hr/a.jpg"))
    assert "a.png: same name as a.jpg; keep one image per name" in _bad(previous_results, capsys, "--hr_dir", "hr", *ckpt)


def test_unusable_output_paths(previous_results: Path, capsys: pytest.CaptureFixture[str], random_rfdn_checkpoint: Path) -> None:
    ckpt = ("--model_path", str(random_rfdn_checkpoint), "--model_id", "0")
    Path("afile").write_text("x")
    assert "--save_dir afile/test_demo.log: afile is not a folder" in _bad(previous_results, capsys, "--save_dir", "afile", *ckpt)
    assert "--results_json afile/r.json: afile is not a folder" in _bad(
        previous_results, capsys, "--results_json", "afile/r.json", *ckpt
    )
    Path("adir").mkdir()
    assert "--results_json adir: is a folder" in _bad(previous_results, capsys, "--results_json", "adir", *ckpt)


def test_size_mismatch_and_corrupt_image_name_the_file(
    previous_results: Path, capsys: pytest.CaptureFixture[str], random_rfdn_checkpoint: Path
) -> None:
    ckpt = ("--model_path", str(random_rfdn_checkpoint), "--model_id", "0")
    imsave(np.zeros((96, 96, 3), np.uint8), Path("hr/a.png"))
    imsave(np.zeros((25, 24, 3), np.uint8), Path("lr/ax4.png"))
    assert "ax4.png: LR is 24x25 but HR a.png" in _bad(previous_results, capsys, "--hr_dir", "hr", "--lr_dir", "lr", *ckpt)
    Path("hr/b.png").write_bytes(b"\x89PNG truncated")
    imsave(np.zeros((24, 24, 3), np.uint8), Path("lr/ax4.png"))
    imsave(np.zeros((24, 24, 3), np.uint8), Path("lr/bx4.png"))
    assert "b.png: unreadable or corrupt image" in _bad(previous_results, capsys, "--hr_dir", "hr", "--lr_dir", "lr", *ckpt)


def test_image_too_small_for_the_network(
    previous_results: Path, capsys: pytest.CaptureFixture[str], random_rfdn_checkpoint: Path
) -> None:
    """Checked before any work: the line names the file and the minimum (LR 15 pixels; HR 60 when LR is made)."""
    imsave(np.zeros((32, 32, 3), np.uint8), Path("tiny/t.png"))  # LR 8x8: below what RFDN's ESA pooling takes
    ckpt = ("--model_id", "0", "--model_path", str(random_rfdn_checkpoint))
    line = _bad(previous_results, capsys, "--hr_dir", "tiny", *ckpt)
    assert "t.png: HR image is 32x32 (cropped to a multiple of 4); expected at least 60x60" in line
    imsave(np.zeros((3, 96, 3), np.uint8), Path("flat/f.png"))
    assert "f.png: HR image is smaller than 4x4 pixels" in _bad(previous_results, capsys, "--hr_dir", "flat", *ckpt)
    imsave(np.zeros((56, 400, 3), np.uint8), Path("strip/s.png"))  # wide enough, 4 pixels too low
    assert "s.png: HR image is 400x56" in _bad(previous_results, capsys, "--hr_dir", "strip", *ckpt)
    imsave(np.zeros((56, 96, 3), np.uint8), Path("hr/a.png"))
    imsave(np.zeros((14, 24, 3), np.uint8), Path("lr/ax4.png"))
    line = _bad(previous_results, capsys, "--hr_dir", "hr", "--lr_dir", "lr", *ckpt)
    assert "ax4.png: LR image is 24x14; expected at least 15x15" in line
    imsave(np.zeros((96, 96, 3), np.uint8), Path("ok/o.png"))
    line = _bad(previous_results, capsys, "--hr_dir", "ok", "--tile", "8", "--tile_overlap", "2", *ckpt)
    assert "--tile 8: expected at least 15" in line
    assert not list(Path("results").rglob("*.png"))  # refused before any SR image was written


def test_unknown_model_lists_the_known_ones(previous_results: Path, capsys: pytest.CaptureFixture[str]) -> None:
    line = _bad(previous_results, capsys, "--model_id", "7")
    assert "--model_id 7: unknown model; known ids: 0 (RFDN_baseline), 13 (PRFDN)" in line


def test_checkpoints_that_do_not_fit(previous_results: Path, capsys: pytest.CaptureFixture[str]) -> None:
    wrong = RFDN(nf=48).state_dict()
    del wrong["fea_conv.bias"]
    torch.save(wrong, "wrong.pth")
    line = _bad(previous_results, capsys, "--model_id", "0", "--model_path", "wrong.pth")
    assert "wrong.pth: checkpoint does not fit RFDN_baseline: 1 missing (e.g. fea_conv.bias)" in line
    assert "with another shape (e.g. fea_conv.weight: checkpoint (48, 3, 3, 3) vs model (50, 3, 3, 3))" in line
    Path("corrupt.pth").write_bytes(b"garbage" * 10)
    assert "corrupt.pth: not a loadable weights-only checkpoint" in _bad(
        previous_results, capsys, "--model_id", "0", "--model_path", "corrupt.pth"
    )
    torch.save(RFDN(), "pickled_module.pth")  # a whole pickled module: refused by weights_only loading
    assert "pickled_module.pth: unsafe checkpoint, refused: it holds a pickled models.team00_RFDN.RFDN" in _bad(
        previous_results, capsys, "--model_id", "0", "--model_path", "pickled_module.pth"
    )
    line = _bad(previous_results, capsys, "--model_path", "pickled_module.pth")
    assert "it holds a pickled models.team00_RFDN.RFDN (not an allowed global, torch says)" in line and "Re-running" not in line
    assert "corrupt" not in line
    torch.save({k: v.to("meta") for k, v in RFDN().state_dict().items()}, "meta.pth")  # once an 80-line traceback
    for model_id in ([], ["--model_id", "0"], ["--model_id", "13"]):
        line = _bad(previous_results, capsys, "--model_path", "meta.pth", *model_id)
        assert "meta.pth: tensor fea_conv.weight is a meta tensor (a shape without values" in line
    assert "--model_path absent.pth: checkpoint file not found" in _bad(
        previous_results, capsys, "--model_id", "0", "--model_path", "absent.pth"
    )
    line = _bad(previous_results, capsys, "--model_id", "0", "--model_path", "elsewhere/team00_rfdn.pth")
    assert "elsewhere/team00_rfdn.pth: checkpoint file not found (the official RFDN checkpoint:" in line


def test_weights_that_are_not_finite_are_one_line(
    previous_results: Path, capsys: pytest.CaptureFixture[str], random_rfdn_checkpoint: Path
) -> None:
    state = torch.load(random_rfdn_checkpoint, weights_only=True)
    state["upsampler.0.weight"].view(-1)[:3] = float("nan")  # a diverged training's weights: no image from them
    torch.save(state, "nan.pth")
    line = _bad(previous_results, capsys, "--model_id", "0", "--model_path", "nan.pth")
    assert line == (
        "test_demo.py: error: nan.pth: weights hold values that are not finite (3 of 21600 in upsampler.0.weight are NaN "
        "or infinity); expected a checkpoint of finite weights (from a training that diverged?)"
    )


def test_flag_combinations(previous_results: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert "--include_test and --hybrid_test need --data_dir" in _bad(previous_results, capsys, "--include_test")
    assert "--lr_dir needs --hr_dir" in _bad(previous_results, capsys, "--lr_dir", "x")
    assert "expected 0 <= overlap < tile" in _bad(previous_results, capsys, "--tile", "16", "--tile_overlap", "16")
    assert "--hybrid_test runs the hybrid test set instead of valid and test" in _bad(
        previous_results, capsys, "--data_dir", ".", "--hybrid_test", "--include_test"
    )


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message of a machine without CUDA")
def test_cuda_requested_without_cuda(previous_results: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert test_demo.cli(["--device", "cuda"]) == 2
    assert "--device cuda: CUDA is not available" in _error_line(capsys)


def test_corrupt_results_file_is_kept(workdir: Path, capsys: pytest.CaptureFixture[str], random_rfdn_checkpoint: Path) -> None:
    Path("results.json").write_text("{broken")
    assert _run("--model_id", "0", "--model_path", str(random_rfdn_checkpoint)) == 2
    assert "results.json: existing results file is not readable JSON" in _error_line(capsys)
    assert Path("results.json").read_text() == "{broken"


# --- the default run on a fresh machine ------------------------------------------------------------------


def _fresh_copy(tmp_path: Path) -> Path:
    """The repository as a clean clone has it: no generated data, results, caches or checkpoints."""
    clone = tmp_path / "clone"
    generated = {REPO_ROOT / n for n in ("results", "results.json", "results.txt", ".git", "data/builtin_x4")}

    def ignore(folder: str, names: list[str]) -> set[str]:
        caches = {"__pycache__", ".pytest_cache", ".ruff_cache"}
        return {n for n in names if Path(folder, n) in generated or n in caches or n.endswith((".pth", ".log"))}

    shutil.copytree(REPO_ROOT, clone, ignore=ignore)
    return clone


def _python(clone: Path, *argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "test_demo.py", *argv], cwd=clone, capture_output=True, text=True, timeout=600)


def test_default_run_without_any_checkpoint_says_where_to_get_it(tmp_path: Path) -> None:
    clone = _fresh_copy(tmp_path)
    done = _python(clone)
    assert done.returncode == 2
    assert done.stderr.count("\n") == 1 and "Traceback" not in done.stderr
    assert (
        "model_zoo/team00_rfdn.pth not found" in done.stderr and "official NTIRE Efficient-SR challenge repository" in done.stderr
    )
    assert not (clone / "results.json").exists()


def test_default_run_on_a_fresh_clone(tmp_path: Path, any_rfdn_checkpoint: Path) -> None:
    """No arguments: built-in data generated from scikit-image, the model whose checkpoint is present."""
    clone = _fresh_copy(tmp_path)
    shutil.copy(any_rfdn_checkpoint, clone / "model_zoo" / "team00_rfdn.pth")
    done = _python(clone, "--device", "cpu")
    assert done.returncode == 0, done.stderr
    entry = json.loads((clone / "results.json").read_text())["00_RFDN_baseline"]
    assert len(entry["builtin_psnr"]) == 5 and all(np.isfinite(entry["builtin_psnr"]))
    assert sorted(p.name for p in (clone / "data" / "builtin_x4" / "HR").iterdir())[0] == "astronaut.png"
    assert len(list((clone / "results" / "00_RFDN_baseline" / "builtin").glob("*.png"))) == 5
    if any_rfdn_checkpoint.name == "team00_rfdn.pth":  # the real weights: far better than bicubic on photos
        assert entry["builtin_ave_psnr"] > 28.0


# --- checked before any work; results merged under a lock, through links, keeping the file's mode ---------


@pytest.fixture
def tiny_run(workdir: Path, random_rfdn_checkpoint: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[str, ...]:
    """Flags of a fast run: one 64x64 HR image (LR 16x16), random RFDN weights, complexity counted on 16x16."""
    monkeypatch.setattr(test_demo, "OFFICIAL_INPUT_DIM", (3, 16, 16))
    rng = np.random.default_rng(0)
    imsave(rng.integers(0, 256, (64, 64, 3), dtype=np.uint8), workdir / "hr" / "a.png")
    return ("--hr_dir", "hr", "--model_id", "0", "--model_path", str(random_rfdn_checkpoint))


def test_results_json_that_its_table_would_replace_is_refused(
    previous_results: Path, capsys: pytest.CaptureFixture[str], tiny_run: tuple[str, ...], random_rfdn_checkpoint: Path
) -> None:
    Path("r.txt").write_text('{"kept": {}}\n')
    line = _bad(previous_results, capsys, *tiny_run, "--results_json", "r.txt")
    assert "--results_json r.txt: its table goes to the same name with suffix .txt" in line
    assert Path("r.txt").read_text() == '{"kept": {}}\n'
    line = _bad(previous_results, capsys, *tiny_run, "--results_json", str(random_rfdn_checkpoint))
    assert f"--results_json {random_rfdn_checkpoint}: is the same file as --model_path" in line
    line = _bad(previous_results, capsys, *tiny_run, "--results_json", "hr/a.png")
    assert "--results_json hr/a.png: is the same file as HR image hr/a.png" in line
    Path("notes.txt").write_text("a user's notes, not a results table\n")  # where notes.json's table would go
    line = _bad(previous_results, capsys, *tiny_run, "--results_json", "notes.json")
    assert "--results_json notes.json: its table goes to notes.txt, which exists and is not a results table" in line
    assert Path("notes.txt").read_text() == "a user's notes, not a results table\n" and not Path("notes.json").exists()
    assert _run(*tiny_run, "--results_json", "mine.json") == 0
    assert _run(*tiny_run, "--results_json", "mine.json") == 0  # its own table is rewritten


def test_runs_finishing_together_keep_both_entries(
    workdir: Path, tiny_run: tuple[str, ...], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A second run merging while the first one writes must wait for it, then merge into what it wrote."""
    write_results = utils.results.write_results
    other: list[threading.Thread] = []

    def other_run_merges() -> None:
        utils.results.merge_into("results.json", "99_other", {"valid_ave_psnr": 1.0}, ["valid"])

    def write_while_another_run_merges(json_path: Path, results: dict) -> Path:
        if not other:  # this run's write (the other run's own write goes straight through)
            other.append(threading.Thread(target=other_run_merges))
            other[0].start()
            other[0].join(timeout=0.3)  # without the lock it is done by now, and its entry lost below
        return write_results(json_path, results)

    monkeypatch.setattr(utils.results, "write_results", write_while_another_run_merges)
    assert _run(*tiny_run) == 0
    other[0].join()
    assert set(json.loads(Path("results.json").read_text())) == {"00_RFDN_baseline@rfdn_random", "99_other"}


def test_results_json_symlink_and_mode_are_kept(workdir: Path, tiny_run: tuple[str, ...]) -> None:
    real = workdir / "store" / "results.json"
    real.parent.mkdir()
    real.write_text('{"99_other": {"valid_ave_psnr": 1.0}}\n')
    real.chmod(0o644)
    Path("link.json").symlink_to(real)
    old_umask = os.umask(0o077)  # a fresh file would get 0600: the existing one must keep 0644
    try:
        assert _run(*tiny_run, "--results_json", "link.json") == 0
    finally:
        os.umask(old_umask)
    assert Path("link.json").is_symlink() and Path("link.json").resolve() == real
    assert set(json.loads(real.read_text())) == {"99_other", "00_RFDN_baseline@rfdn_random"}
    assert stat.S_IMODE(real.stat().st_mode) == 0o644
    Path("ahead.json").symlink_to("later/results.json")  # a link into a folder not made yet
    assert _run(*tiny_run, "--results_json", "ahead.json") == 0
    assert Path("ahead.json").is_symlink() and "00_RFDN_baseline@rfdn_random" in json.loads(
        Path("later/results.json").read_text()
    )


def test_tile_mode_reaches_the_tiling_and_is_recorded(
    workdir: Path, tiny_run: tuple[str, ...], monkeypatch: pytest.MonkeyPatch
) -> None:
    modes: list[str] = []

    def forward(*args: object) -> torch.Tensor:
        modes.append(args[-1])
        return utils.inference.forward(*args)

    monkeypatch.setattr(utils.evaluation, "forward", forward)
    assert _run(*tiny_run, "--tile", "15", "--tile_overlap", "4", "--tile_mode", "stitch") == 0
    entry = json.loads(Path("results.json").read_text())["00_RFDN_baseline@rfdn_random"]
    assert modes == ["stitch"]
    assert (entry["custom_tile"], entry["custom_tile_overlap"], entry["custom_tile_mode"]) == (15, 4, "stitch")
    assert _run(*tiny_run) == 0  # whole images: the stale tiling keys go with the re-run mode
    assert "custom_tile_mode" not in json.loads(Path("results.json").read_text())["00_RFDN_baseline@rfdn_random"]


def test_broken_links_in_image_folders_are_refused(
    previous_results: Path, capsys: pytest.CaptureFixture[str], tiny_run: tuple[str, ...]
) -> None:
    Path("hr/b.png").symlink_to("gone.png")
    assert "hr/b.png: broken symbolic link (to gone.png, which does not exist)" in _bad(previous_results, capsys, *tiny_run)
    Path("hr/b.png").unlink()
    imsave(np.zeros((16, 16, 3), np.uint8), Path("lr/ax4.png"))
    Path("lr/bx4.png").symlink_to("bx4.png")
    line = _bad(previous_results, capsys, *tiny_run, "--lr_dir", "lr")
    assert "lr/bx4.png: broken symbolic link (to bx4.png, a loop of links)" in line
    assert "hr: LR folder is the HR folder hr; expected the folder of the LR images" in _bad(
        previous_results, capsys, *tiny_run, "--lr_dir", "hr"
    )


def test_folders_that_are_loops_of_links_are_one_line(
    previous_results: Path, capsys: pytest.CaptureFixture[str], random_rfdn_checkpoint: Path
) -> None:
    Path("loop").symlink_to("loop")
    ckpt = ("--model_path", str(random_rfdn_checkpoint), "--model_id", "0")
    line = _bad(previous_results, capsys, "--hr_dir", "loop", *ckpt)
    assert line == "test_demo.py: error: loop: is a loop of symbolic links; expected a folder of HR images"
    line = _bad(previous_results, capsys, "--results_json", "loop/r.json", *ckpt)
    assert line == "test_demo.py: error: --results_json loop/r.json: loop is a loop of symbolic links; expected a folder"


def test_numeric_flags_out_of_range(
    previous_results: Path, capsys: pytest.CaptureFixture[str], tiny_run: tuple[str, ...]
) -> None:
    assert "--warmup -3: expected 0 or more" in _bad(previous_results, capsys, *tiny_run, "--warmup", "-3")
    assert "--tile_overlap -1: expected 0 or more" in _bad(previous_results, capsys, *tiny_run, "--tile_overlap", "-1")
    assert "--tile 14: expected at least 15" in _bad(previous_results, capsys, *tiny_run, "--tile", "14", "--tile_overlap", "2")


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ('{"00_RFDN_baseline": 26.9}', "entry '00_RFDN_baseline' is a number (26.9); expected an object of figures"),
        ('{"m": {"valid_ave_psnr": "26.9"}}', "'m' has valid_ave_psnr = a string (\"26.9\"); expected a number"),
        ('{"00_RFDN_baseline@rfdn_random": {"flops": null}}', "has flops = null; expected a number"),
        ('{"m": {"notes": ' + "[" * 40 + "]" * 40 + "}}", "entry 'm' nests lists or objects 32 levels deep or more"),
        pytest.param(
            '{"m": ' + "[" * 100_000 + "]" * 100_000 + "}",
            "results file is not readable JSON (maximum recursion depth",
            id="deeper than json reads",
        ),
    ],
)
def test_malformed_results_entries_are_refused_before_work(
    workdir: Path, capsys: pytest.CaptureFixture[str], tiny_run: tuple[str, ...], content: str, message: str
) -> None:
    Path("results.json").write_text(content)
    assert _run(*tiny_run) == 2
    assert message in _error_line(capsys)
    assert Path("results.json").read_text() == content and not Path("results.txt").exists()


def test_unwritable_outputs_are_refused_before_work(
    previous_results: Path, capsys: pytest.CaptureFixture[str], tiny_run: tuple[str, ...]
) -> None:
    """Root writes through permission bits: a regular file where a folder must be stands in for 'unwritable'."""
    Path("afile").write_text("x")
    Path("link.json").symlink_to("afile/r.json")
    line = _bad(previous_results, capsys, *tiny_run, "--results_json", "link.json")
    assert line.endswith("--results_json link.json: afile is not a folder")
    Path("out").mkdir()
    Path("out/00_RFDN_baseline@rfdn_random").write_text("a file where the SR images' folder goes")
    assert "--save_dir out/00_RFDN_baseline@rfdn_random/custom/a.png: out/00_RFDN_baseline@rfdn_random is not a folder" in _bad(
        previous_results, capsys, *tiny_run, "--save_dir", "out"
    )
    Path("out2/test_demo.log").mkdir(parents=True)
    assert "--save_dir out2/test_demo.log: is a folder" in _bad(previous_results, capsys, *tiny_run, "--save_dir", "out2")
    imsave(np.zeros((64, 64, 3), np.uint8), Path("hr/b.png"))
    Path("out3/00_RFDN_baseline@rfdn_random/custom/b.png").mkdir(parents=True)  # the second image's output: a folder
    line = _bad(previous_results, capsys, *tiny_run, "--save_dir", "out3")
    assert "--save_dir out3/00_RFDN_baseline@rfdn_random/custom/b.png: is a folder" in line
    assert not Path("out3/00_RFDN_baseline@rfdn_random/custom/a.png").exists()  # refused before the first image
    assert not list(Path(".").rglob("*.png.*"))  # no temp file left


def test_sr_images_never_replace_the_inputs(
    previous_results: Path, capsys: pytest.CaptureFixture[str], tiny_run: tuple[str, ...]
) -> None:
    """--hr_dir pointing at a previous run's SR output, under the same --save_dir: the SR images would replace it."""
    sr_dir = Path("results/00_RFDN_baseline@rfdn_random/custom")
    imsave(np.zeros((64, 64, 3), np.uint8), sr_dir / "a.png")
    before = (sr_dir / "a.png").read_bytes()
    args = [a if a != "hr" else str(sr_dir) for a in tiny_run]
    assert "SR image results/00_RFDN_baseline@rfdn_random/custom/a.png: is the same file as HR image" in _bad(
        previous_results, capsys, *args
    )
    assert (sr_dir / "a.png").read_bytes() == before


def _prfdn_checkpoint(path: Path, arch: str = "prfdn", **changes: object) -> Path:
    config = {**PRFDNConfig.merged(nf=8).to_config(), **changes}
    save_model_checkpoint(path, ModelCheckpoint(arch, config, {"head_skip.weight": torch.zeros(1)}))
    return path


@pytest.mark.parametrize("model_id", [[], ["--model_id", "13"]])
def test_checkpoints_that_say_what_is_wrong_with_them(
    previous_results: Path, capsys: pytest.CaptureFixture[str], model_id: list[str]
) -> None:
    """With or without --model_id, the line says what the file is or what is wrong with it, naming the file."""
    _prfdn_checkpoint(Path("negative.pth"), skip=-8)
    assert "negative.pth: malformed prfdn config (" in _bad(previous_results, capsys, "--model_path", "negative.pth", *model_id)
    _prfdn_checkpoint(Path("future.pth"), arch="prfdn_v9")
    line = _bad(previous_results, capsys, "--model_path", "future.pth", *model_id)
    assert "future.pth: unknown architecture 'prfdn_v9': expected rfdn, branch, prfdn, prfdn_helpers or rfdn_chain" in line
    Path("corrupt.pth").write_bytes(b"garbage" * 10)
    line = _bad(previous_results, capsys, "--model_path", "corrupt.pth", *model_id)
    assert "corrupt.pth: not a loadable weights-only checkpoint (unreadable: corrupt, truncated or not a PyTorch file" in line
    assert "fits none" not in line
    x2 = PRFDNConfig.merged(nf=8, grouped=False, scale=2)
    save_model_checkpoint("x2.pth", ModelCheckpoint("prfdn", x2.to_config(), PRFDN(x2).state_dict(), scale=2))
    line = _bad(previous_results, capsys, "--model_path", "x2.pth", *model_id)
    assert "x2.pth: is an x2 model; expected x4" in line
    x4 = PRFDNConfig.merged(nf=8, grouped=False)
    save_model_checkpoint("unit.pth", ModelCheckpoint("prfdn", x4.to_config(), PRFDN(x4).state_dict(), data_range=1.0))
    assert "unit.pth: takes inputs in [0, 1]; expected [0, 255]" in _bad(
        previous_results, capsys, "--model_path", "unit.pth", *model_id
    )


@pytest.mark.parametrize("model_id", [[], ["--model_id", "13"], ["--model_id", "0"]])
def test_training_state_names_the_weights_beside_it(
    previous_results: Path, capsys: pytest.CaptureFixture[str], model_id: list[str]
) -> None:
    from training.loop import STATE_FORMAT

    torch.save({"format": STATE_FORMAT, "iteration": 10, "model": RFDN(nf=4).state_dict()}, "run.state.pth")
    torch.save({}, "run.pth")
    line = _bad(previous_results, capsys, "--model_path", "run.state.pth", *model_id)
    assert f"run.state.pth: is a training state ({STATE_FORMAT}, for train_prfdn.py --resume), not model weights" in line
    assert line.endswith("evaluate run.pth (best by validation) or run_last.pth (last)")


def test_paths_that_are_folders_or_one_another(
    previous_results: Path, capsys: pytest.CaptureFixture[str], tiny_run: tuple[str, ...]
) -> None:
    Path("weights").mkdir()
    line = _bad(previous_results, capsys, "--model_path", "weights")
    assert "--model_path weights: is a folder; expected a checkpoint file" in line
    line = _bad(previous_results, capsys, *tiny_run, "--save_dir", "r.json", "--results_json", "r.json")
    assert "--results_json r.json: is the --save_dir folder; expected a file name" in line and not Path("r.json").exists()
    line = _bad(previous_results, capsys, *tiny_run[2:], "--hr_dir", "hr/a.png")
    assert "hr/a.png: is a file; expected the folder of the HR images" in line


def test_a_model_output_of_another_size_is_one_line(tmp_path: Path) -> None:
    """A model that does not upscale x4 (here x2) is stopped with the file and both sizes, not a metrics crash."""
    imsave(np.zeros((64, 64, 3), np.uint8), tmp_path / "a.png")
    x2 = torch.nn.Sequential(torch.nn.Conv2d(3, 12, 1), torch.nn.PixelShuffle(2))
    with pytest.raises(
        test_demo.HarnessError, match=r"a\.png: the model made a 32x32 image of this 16x16 LR input; expected the HR's 64x64"
    ):
        utils.evaluation.evaluate_mode(
            x2,
            [test_demo.ImagePair(tmp_path / "a.png", None)],
            "custom",
            data_range=255.0,
            device=torch.device("cpu"),
            save_dir=tmp_path / "out",
            logger=test_demo.get_logger("test", None, console=False),
            warmup=0,
        )


def test_two_checkpoints_of_one_file_name_keep_both_entries(
    workdir: Path, tiny_run: tuple[str, ...], capsys: pytest.CaptureFixture[str]
) -> None:
    """Every run's weights are final.pth: keyed by the file stem, the second replaced the first's entry and SR folder."""
    for run, seed in (("run_a", 1), ("run_b", 2)):
        torch.manual_seed(seed)
        Path(run).mkdir()
        torch.save(RFDN().state_dict(), Path(run) / "final.pth")
    flags = list(tiny_run[:4])  # --hr_dir hr --model_id 0
    for _ in range(2):  # a second round replaces each checkpoint's own entry, and only it
        for run in ("run_a", "run_b"):
            assert _run(*flags, "--model_path", f"{run}/final.pth") == 0
    results = json.loads(Path("results.json").read_text())
    assert set(results) == {"00_RFDN_baseline@final", "00_RFDN_baseline@run_b-final"}
    assert results["00_RFDN_baseline@final"]["model_path"] == "run_a/final.pth"
    assert results["00_RFDN_baseline@run_b-final"]["model_path"] == "run_b/final.pth"
    assert results["00_RFDN_baseline@final"]["custom_psnr"] != results["00_RFDN_baseline@run_b-final"]["custom_psnr"]
    for name in results:
        assert (Path("results") / name / "custom" / "a.png").is_file()
    log = Path("results/test_demo.log").read_text()
    assert "00_RFDN_baseline@final is the results entry of another checkpoint (run_a/final.pth): this one is " in log


def test_a_long_hr_name_is_written_and_a_too_long_folder_refused_before_work(
    previous_results: Path, capsys: pytest.CaptureFixture[str], tiny_run: tuple[str, ...], random_rfdn_checkpoint: Path
) -> None:
    """A 240-byte HR name once failed after the inference: its SR image's temp name passed 255 bytes."""
    long_name = "h" * 240
    Path("hr/a.png").rename(Path("hr") / f"{long_name}.png")
    assert _run(*tiny_run, "--results_json", "long.json") == 0
    assert Path(f"results/00_RFDN_baseline@rfdn_random/custom/{long_name}.png").is_file()
    long_checkpoint = Path("c" * 250 + ".pth")  # the SR folder, 00_RFDN_baseline@ccc..., is 267 bytes
    shutil.copyfile(random_rfdn_checkpoint, long_checkpoint)
    line = _bad(previous_results, capsys, *tiny_run[:4], "--model_path", str(long_checkpoint))
    assert "the name 00_RFDN_baseline@ccccccccccccccc... is 267 bytes; a file system takes at most 255" in line


def test_running_out_of_memory_is_one_line_naming_the_image(
    previous_results: Path, capsys: pytest.CaptureFixture[str], tiny_run: tuple[str, ...], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A large image once ended in a NumPy traceback after minutes of inference."""

    def forward_out_of_memory(*args: object) -> torch.Tensor:
        raise utils.evaluation._OUT_OF_MEMORY("CUDA out of memory. Tried to allocate 20.00 GiB")

    monkeypatch.setattr(utils.evaluation, "forward", forward_out_of_memory)
    line = _bad(previous_results, capsys, *tiny_run)
    assert (
        "hr/a.png: the model ran out of memory (CUDA out of memory. Tried to allocate 20.00 GiB) on this 16x16 LR input" in line
    )
    assert line.endswith("try tiled inference: --tile 256 (LR tiles of 256 pixels; smaller takes less memory)")
    line = _bad(previous_results, capsys, *tiny_run, "--tile", "16", "--tile_overlap", "4")
    assert "in tiles of 16 px (--tile); try a smaller --tile than 16" in line
    monkeypatch.setattr(utils.evaluation, "forward", lambda *args: torch.empty(2**60, dtype=torch.uint8))  # the CPU's own
    line = _bad(previous_results, capsys, *tiny_run)
    assert "hr/a.png: the model ran out of memory ([enforce fail at" in line and "can't allocate memory" in line
    assert line.endswith("; try tiled inference: --tile 256 (LR tiles of 256 pixels; smaller takes less memory)")

    def psnr_out_of_memory(*args: object, **kwargs: object) -> float:
        raise MemoryError("Unable to allocate 9.00 GiB for an array with shape (40000, 40000, 3) and data type float64")

    monkeypatch.setattr(utils.evaluation, "forward", utils.inference.forward)
    monkeypatch.setattr(utils.evaluation, "calculate_psnr", psnr_out_of_memory)
    line = _bad(previous_results, capsys, *tiny_run)
    assert "hr/a.png: out of memory scoring or saving the SR image of this 16x16 LR input; try tiled inference" in line


def test_a_full_disk_is_said_when_sr_images_are_saved(
    previous_results: Path, capsys: pytest.CaptureFixture[str], tiny_run: tuple[str, ...], monkeypatch: pytest.MonkeyPatch
) -> None:
    """cv2.imwrite said only "OpenCV could not write the image": the cause is the news."""
    real_open = open

    def open_on_a_full_disk(path: str, mode: str = "r", *args: object, **kwargs: object) -> object:
        if "w" in mode and str(path).endswith(".tmp.png"):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))
        return real_open(path, mode, *args, **kwargs)

    monkeypatch.setattr(utils.image, "open", open_on_a_full_disk, raising=False)
    line = _bad(previous_results, capsys, *tiny_run)
    assert line.endswith("cannot write results/00_RFDN_baseline@rfdn_random/custom/a.png: No space left on device")
    assert not list(Path("results").rglob("*.png*"))  # no image, no temp file


def test_a_model_output_with_nan_is_one_line(tmp_path: Path) -> None:
    """NaN pixels became 0 in the uint8 SR image with only a NumPy warning, and a PSNR of black pixels was given."""
    imsave(np.zeros((64, 64, 3), np.uint8), tmp_path / "a.png")

    class Overflows(torch.nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            out = torch.nn.functional.interpolate(x, scale_factor=4)
            out[..., 0, 0] = float("nan")
            return out

    with pytest.raises(test_demo.HarnessError, match=r"a\.png: the model's output holds NaN or infinite values \(3 of 12288\)"):
        utils.evaluation.evaluate_mode(
            Overflows(),
            [test_demo.ImagePair(tmp_path / "a.png", None)],
            "custom",
            data_range=255.0,
            device=torch.device("cpu"),
            save_dir=tmp_path / "out",
            logger=test_demo.get_logger("test", None, console=False),
            warmup=0,
        )
    assert not (tmp_path / "out").exists()
