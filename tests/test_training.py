"""The training loop and train_prfdn.py: learning, exact resume, DDP, frozen layers, distillation, outputs, errors.

Tiny randomly initialised models (nf=8) and 16-pixel LR patches of shrunk scikit-image photos keep it fast.
"""

from __future__ import annotations

import copy
import errno
import itertools
import json
import os
import re
import shutil
import signal
import subprocess
import sys
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest
import torch
from skimage import data as skimage_data

import training.loop as training_loop
from models.branch import BranchPRFDN
from models.registry import model_config
from models.team00_RFDN import RFDN
from models.team13_PRFDN import PRFDN, PRFDNConfig
from training import run as train_prfdn
from training.data import load_training_data
from training.loop import TrainingInterruptedError, TrainSettings, _make_scheduler, fit, rfdn_with_features
from utils.checkpoint import ModelCheckpoint, read_model_checkpoint, save_model_checkpoint
from utils.errors import HarnessError
from utils.fileio import sha256_of
from utils.image import imsave
from utils.inference import cpu_has_native_bf16
from utils.model_io import load_model

REPO_ROOT = Path(__file__).resolve().parents[1]
PATCH = 16


@pytest.fixture(scope="module", autouse=True)
def one_thread() -> Any:
    """One intra-op thread: the results do not depend on it, and a shared 2-core machine stays responsive."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def tiny_prfdn(seed: int = 0) -> PRFDN:
    torch.manual_seed(seed)
    return PRFDN(PRFDNConfig.merged(nf=8))


def save_checkpoint(model: torch.nn.Module, path: Path) -> Path:
    arch, config = model_config(model)
    save_model_checkpoint(path, ModelCheckpoint(arch, config, model.state_dict()))
    return path


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("train")
    for name in ("astronaut", "chelsea", "coffee", "rocket"):
        img = getattr(skimage_data, name)()
        img = cv2.resize(img, (img.shape[1] // 4, img.shape[0] // 4), interpolation=cv2.INTER_AREA)
        imsave(img, root / "train" / f"{name}.png")
    imsave(cv2.resize(skimage_data.chelsea(), (112, 75), interpolation=cv2.INTER_AREA), root / "one" / "chelsea.png")
    save_checkpoint(tiny_prfdn(0), root / "src.pth")
    torch.manual_seed(1)
    torch.save(RFDN().state_dict(), root / "rfdn_teacher.pth")  # a plain state dict: the official RFDN's format
    return root


def settings(**overrides: Any) -> TrainSettings:
    base = {"iters": 10, "batch_size": 4, "patch_size": PATCH, "lr": 1e-3, "val_every": 5, "log_every": 1, "progress": False}
    return TrainSettings(**{**base, **overrides})


def assert_same_tensors(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> None:
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key


# --- fit ----------------------------------------------------------------------------------------------------


def test_loss_falls_on_a_tiny_overfit(workdir: Path) -> None:
    data = load_training_data([workdir / "one"], patch_size=PATCH, val_fraction=0)
    result = fit(tiny_prfdn(), data.train, data.val, settings(iters=80, log_every=10, val_every=1000))
    losses = [r["loss"] for r in result.history if "loss" in r]
    assert len(losses) == 8 and result.iterations == 80
    assert losses[-1] < 0.5 * losses[0], losses
    assert result.best_psnr is None and result.best_iteration == 80  # no validation: best = last
    assert_same_tensors(result.best_state_dict, result.last_state_dict)


def test_resume_after_interrupt_is_bit_exact(workdir: Path, tmp_path: Path) -> None:
    data = load_training_data([workdir / "train"], patch_size=PATCH, val_fraction=0.25, val_crop=96)
    # lr 3e-2 overshoots: validation PSNR drops at iteration 4 and the plateau rule lowers the lr to 2e-4
    run = settings(iters=10, lr=3e-2, val_every=2, plateau_patience=0, lr_after_plateau=2e-4, grad_clip=50.0)
    whole = fit(tiny_prfdn(), data.train, data.val, run)

    def interrupt_at_3(record: dict[str, Any]) -> None:  # before the plateau: the scheduler's best must carry over
        if record["iter"] == 3:
            os.kill(os.getpid(), signal.SIGINT)  # as Ctrl-C: the iteration finishes, then the state is handed over

    with pytest.raises(TrainingInterruptedError) as stop:
        fit(tiny_prfdn(), data.train, data.val, run, log=interrupt_at_3)
    assert stop.value.iteration == 3
    torch.save(stop.value.state, tmp_path / "state.pth")
    state = torch.load(tmp_path / "state.pth", weights_only=True)
    torch.manual_seed(123)  # disturb every generator: the state must restore them
    resumed = fit(tiny_prfdn(seed=5), data.train, data.val, run, state=state)

    assert_same_tensors(whole.last_state_dict, resumed.last_state_dict)
    assert_same_tensors(whole.best_state_dict, resumed.best_state_dict)
    assert (whole.best_psnr, whole.best_iteration) == (resumed.best_psnr, resumed.best_iteration)
    lrs = [r["lr"] for r in whole.history]
    assert min(lrs) == 2e-4 < max(lrs)  # the plateau rule fired
    tail = [{k: v for k, v in r.items() if k != "time"} for r in whole.history if r["iter"] > 3]
    assert tail == [{k: v for k, v in r.items() if k != "time"} for r in resumed.history]


def test_resume_with_a_new_lr_starts_a_new_lr_phase(workdir: Path) -> None:
    data = load_training_data([workdir / "train"], patch_size=PATCH, val_fraction=0.25, val_crop=96)
    first = settings(iters=6, lr=1e-3, val_every=3)

    def interrupt_at_3(record: dict[str, Any]) -> None:
        if record["iter"] == 3:
            os.kill(os.getpid(), signal.SIGINT)

    with pytest.raises(TrainingInterruptedError) as stop:
        fit(tiny_prfdn(), data.train, data.val, first, log=interrupt_at_3)
    state = stop.value.state
    same = fit(tiny_prfdn(), data.train, data.val, first, state=copy.deepcopy(state))
    assert {r["lr"] for r in same.history} == {1e-3}  # same schedule: exact continuation
    # a tiny new lr leaves the SR (rounded to uint8) as it was at the run's best (iteration 3): the new plateau
    # rule (patience 0) counts from that best, not from scratch, so the one validation, at 5, floors the lr
    second = settings(iters=5, lr=1e-9, val_every=5, lr_after_plateau=1e-10, plateau_patience=0)
    changed = fit(tiny_prfdn(), data.train, data.val, second, state=copy.deepcopy(state))
    assert state["best_iteration"] == 3 and changed.history[-1]["val_psnr"] == state["best_psnr"]
    lrs = {r["iter"]: r["lr"] for r in changed.history}
    assert lrs == {4: 1e-9, 5: 1e-10}, lrs  # the new lr, not the saved optimizer's 1e-3; then the new rule


def test_l2_loss_is_the_squared_error(workdir: Path) -> None:
    data = load_training_data([workdir / "one"], patch_size=PATCH, val_fraction=0)
    first = {}
    for loss in ("l1", "l2"):  # same weights, same first batch: the first record is the loss before any step
        result = fit(tiny_prfdn(), data.train, data.val, settings(iters=1, loss=loss, val_every=1000))
        first[loss] = result.history[0]
        assert set(first[loss]) & {"l1", "l2"} == {loss}
    l1, l2 = first["l1"]["l1"], first["l2"]["l2"]
    assert l1**2 <= l2 and abs(l2 - l1) > 0.01 * l1  # the mean of squares (Jensen), not the L1 again
    with pytest.raises(HarnessError, match="--loss l3"):
        settings(loss="l3").check()


def test_resume_with_another_loss_starts_adam_afresh(workdir: Path) -> None:
    data = load_training_data([workdir / "train"], patch_size=PATCH, val_fraction=0.25, val_crop=96)

    def interrupt_at_3(record: dict[str, Any]) -> None:
        if record["iter"] == 3:
            os.kill(os.getpid(), signal.SIGINT)

    with pytest.raises(TrainingInterruptedError) as stop:
        fit(tiny_prfdn(), data.train, data.val, settings(iters=6, val_every=3), log=interrupt_at_3)
    state = stop.value.state
    assert "loss" in state["settings"]
    same = fit(tiny_prfdn(), data.train, data.val, settings(iters=6, val_every=3), state=copy.deepcopy(state))
    assert same.state["optimizer"]["state"][0]["step"] == 6  # Adam's moments carried on
    old_state = copy.deepcopy(state)
    del old_state["settings"]["loss"]  # a state written before the loss setting existed: it was L1
    same_old = fit(tiny_prfdn(), data.train, data.val, settings(iters=6, val_every=3), state=old_state)
    assert same_old.state["optimizer"]["state"][0]["step"] == 6
    mse = settings(iters=6, val_every=3, loss="l2", lr=5e-4)
    changed = fit(tiny_prfdn(), data.train, data.val, mse, state=copy.deepcopy(state))
    assert changed.state["optimizer"]["state"][0]["step"] == 3  # fresh moments from iteration 3
    assert {r["iter"]: r["lr"] for r in changed.history if "loss" in r} == {4: 5e-4, 5: 5e-4, 6: 5e-4}
    assert changed.state["settings"]["loss"] == "l2" and all("l2" in r for r in changed.history if "loss" in r)


def test_ema_weights_are_the_moving_average_of_the_trained_weights(workdir: Path) -> None:
    data = load_training_data([workdir / "one"], patch_size=PATCH, val_fraction=0)
    after = [fit(tiny_prfdn(), data.train, None, settings(iters=n)).last_state_dict for n in (1, 2)]
    model = tiny_prfdn()
    result = fit(model, data.train, None, settings(iters=2, ema_decay=0.75))
    assert_same_tensors(model.state_dict(), after[1])  # the model itself ends with the trained weights
    for key, value in result.last_state_dict.items():  # the EMA starts at the first step's weights
        expected = 0.75 * after[0][key] + 0.25 * after[1][key] if value.is_floating_point() else after[1][key]
        torch.testing.assert_close(value, expected, rtol=0, atol=1e-6, msg=key)
    assert any(not torch.equal(result.last_state_dict[k], after[1][k]) for k in after[1])
    with pytest.raises(HarnessError, match=r"--ema_decay 1\.0: must be at least 0"):
        settings(ema_decay=1.0).check()


def test_ema_resumes_exactly_and_starts_on_a_resumed_run(workdir: Path) -> None:
    data = load_training_data([workdir / "train"], patch_size=PATCH, val_fraction=0.25, val_crop=96)

    def interrupted_state(run: TrainSettings) -> dict[str, Any]:
        def interrupt_at_3(record: dict[str, Any]) -> None:
            if record["iter"] == 3:
                os.kill(os.getpid(), signal.SIGINT)

        with pytest.raises(TrainingInterruptedError) as stop:
            fit(tiny_prfdn(), data.train, data.val, run, log=interrupt_at_3)
        return stop.value.state

    with_ema = settings(iters=6, val_every=2, ema_decay=0.5)
    whole = fit(tiny_prfdn(), data.train, data.val, with_ema)
    resumed = fit(tiny_prfdn(seed=5), data.train, data.val, with_ema, state=interrupted_state(with_ema))
    assert_same_tensors(whole.last_state_dict, resumed.last_state_dict)
    assert_same_tensors(whole.best_state_dict, resumed.best_state_dict)
    assert whole.best_psnr == resumed.best_psnr

    # a run without EMA, resumed with it: one more step, and the EMA is exactly the weights it reached
    state = interrupted_state(settings(iters=6, val_every=2))
    plain = fit(tiny_prfdn(), data.train, data.val, settings(iters=4, val_every=2), state=copy.deepcopy(state))
    started = fit(tiny_prfdn(), data.train, data.val, settings(iters=4, val_every=2, ema_decay=0.5), state=state)
    assert_same_tensors(plain.last_state_dict, started.last_state_dict)
    # turned on at a resume that runs no step, the EMA is the weights reached there, not SRC's
    reached = fit(tiny_prfdn(seed=5), data.train, data.val, settings(iters=3, ema_decay=0.5), state=copy.deepcopy(state))
    assert_same_tensors(reached.last_state_dict, state["model"])


def test_plateau_rule_lowers_the_lr_once() -> None:
    model = torch.nn.Linear(1, 1)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-5)
    scheduler = _make_scheduler(optimizer, settings(lr=1e-5, lr_after_plateau=5e-6, plateau_patience=2))
    lrs = []
    for psnr in (20.0, 21.0, 21.0, 20.5, 21.5, 21.0, 21.0, 21.4, 21.2, 20.0, 20.0):
        scheduler.step(psnr)
        lrs.append(optimizer.param_groups[0]["lr"])
    assert lrs == [1e-5] * 7 + [5e-6] * 4  # more than 2 validations in a row without a new best, then floored
    assert _make_scheduler(optimizer, settings(lr=1e-6, lr_after_plateau=5e-6)) is None  # never raises the lr


def test_frozen_parameters_stay_frozen(workdir: Path) -> None:
    data = load_training_data([workdir / "one"], patch_size=PATCH, val_fraction=0)
    model = tiny_prfdn()
    frozen = {"head_skip.weight", "rfdb.c5.bias"}
    for name, param in model.named_parameters():
        param.requires_grad_(name not in frozen)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    fit(model, data.train, data.val, settings(iters=5))
    after = model.state_dict()
    for name in before:
        assert torch.equal(before[name], after[name]) == (name in frozen), name
    assert all(p.requires_grad == (n not in frozen) for n, p in model.named_parameters())


def test_distillation_pulls_the_student_toward_the_teacher(workdir: Path) -> None:
    data = load_training_data([workdir / "one"], patch_size=PATCH, val_fraction=0)
    teacher = tiny_prfdn(seed=9)
    teacher_before = {k: v.clone() for k, v in teacher.state_dict().items()}
    calls = []
    teacher.register_forward_hook(lambda *_: calls.append(1))
    lr_batch = data.train[0][0][None]

    def distance_to_teacher(weight: float) -> float:
        student = tiny_prfdn()
        result = fit(student, data.train, None, settings(iters=25, distill_weight=weight), teacher=teacher)
        if weight:
            assert all("distill" in r for r in result.history)
        with torch.no_grad():
            return float((student(lr_batch) - teacher(lr_batch)).abs().mean())

    with_distill, without = distance_to_teacher(20.0), distance_to_teacher(0.0)
    assert with_distill < 0.8 * without
    assert len(calls) == 25 + 2  # once per iteration, plus the two comparisons here
    assert_same_tensors(teacher_before, teacher.state_dict())


def test_rfdn_with_features_is_rfdn_and_its_block_outputs() -> None:
    torch.manual_seed(3)
    rfdn, x = RFDN().eval(), torch.rand(1, 3, 16, 16) * 255
    with torch.no_grad():
        sr, blocks = rfdn_with_features(rfdn, x)
        assert torch.equal(sr, rfdn(x)) and len(blocks) == 4
        assert torch.equal(blocks[1], rfdn.B2(rfdn.B1(rfdn.fea_conv(x))))


def test_feature_distillation_pulls_the_branch_outputs_toward_rfdns_blocks(workdir: Path) -> None:
    data = load_training_data([workdir / "one"], patch_size=PATCH, val_fraction=0)
    torch.manual_seed(1)
    teacher, lr_batch = RFDN().eval(), data.train[0][0][None]

    def feature_gap(weight: float) -> float:
        torch.manual_seed(0)
        student = BranchPRFDN()
        result = fit(student, data.train, None, settings(iters=6, batch_size=2, feature_distill=weight), teacher=teacher)
        assert all(("feature" in r) == (weight > 0) for r in result.history if "loss" in r)
        with torch.no_grad():
            _, maps = student(lr_batch, with_features=True)
            _, targets = rfdn_with_features(teacher, lr_batch)
        return float(torch.stack([(m - t).abs().mean() for m, t in zip(maps, targets, strict=True)]).mean())

    assert feature_gap(5.0) < 0.8 * feature_gap(0.0)
    for student, teach in ((tiny_prfdn(), teacher), (BranchPRFDN(), tiny_prfdn())):
        with pytest.raises(HarnessError, match="--feature_distill > 0 needs a branch-model SRC and the official RFDN"):
            fit(student, data.train, None, settings(iters=1, feature_distill=1.0), teacher=teach)


def test_fast_path_is_the_default_only_on_a_cpu_with_native_bf16(monkeypatch: pytest.MonkeyPatch) -> None:
    assert cpu_has_native_bf16("processor : 0\nflags : fpu sse avx512f avx512_bf16\n")
    assert cpu_has_native_bf16("flags : fpu amx_bf16 amx_tile\n")
    assert not cpu_has_native_bf16("flags : fpu sse avx2 avx512f\n") and not cpu_has_native_bf16("")
    args = train_prfdn.parse_args(["src.pth", "out.pth", "--device", "cpu"])
    for native, expected in ((True, ("bf16", True)), (False, ("fp32", False))):
        monkeypatch.setattr(training_loop, "cpu_has_native_bf16", lambda native=native: native)
        assert training_loop.fast_path_default("cpu") == expected and training_loop.fast_path_default("cuda") == ("fp32", False)
        settings = train_prfdn.resolve_settings(copy.copy(args), "prfdn", None)
        assert (settings.precision, settings.channels_last) == expected
        resumed = train_prfdn.resolve_settings(copy.copy(args), "prfdn", asdict(TrainSettings(device="cpu")))
        assert (resumed.precision, resumed.channels_last) == ("fp32", False)  # a resumed run keeps its own
    monkeypatch.setattr(training_loop, "cpu_has_native_bf16", lambda: True)
    for flags in (["--precision", "fp32"], ["--precision", "fp32", "--no-channels_last"]):
        given = train_prfdn.parse_args(["s.pth", "o.pth", "--device", "cpu", *flags])
        settings = train_prfdn.resolve_settings(given, "prfdn", None)
        assert (settings.precision, settings.channels_last) == ("fp32", False)  # an fp32 run is plain fp32


# --- train_prfdn.py -----------------------------------------------------------------------------------------

CLI_TRAIN = ["--train_dir", "TRAIN", "--val_fraction", "0.25", "--val_crop", "96", "--teacher", "TEACHER"]
CLI_SETTINGS = ["--iters", "8", "--batch_size", "2", "--patch_size", str(PATCH), "--lr", "1e-3", "--val_every", "3"]
CLI_SETTINGS += ["--log_every", "1", "--device", "cpu", "--no_progress"]


def cli_args(workdir: Path, out: Path, *extra: str, src: Path | None = None) -> list[str]:
    train = [a.replace("TRAIN", str(workdir / "train")).replace("TEACHER", str(workdir / "rfdn_teacher.pth")) for a in CLI_TRAIN]
    return [str(src or workdir / "src.pth"), str(out), *train, *CLI_SETTINGS, *extra]


@pytest.fixture(scope="module")
def cli_run(workdir: Path) -> Path:
    """One uninterrupted CLI run: OUT.pth and its siblings."""
    out = workdir / "whole" / "out.pth"
    assert train_prfdn.cli(cli_args(workdir, out)) == 0
    return out


def test_cli_writes_self_describing_checkpoints(workdir: Path, cli_run: Path) -> None:
    paths = train_prfdn.output_paths(cli_run)
    for key in ("best", "last", "state"):
        torch.load(paths[key], weights_only=True)  # no pickled objects anywhere
    best, last = read_model_checkpoint(paths["best"]), read_model_checkpoint(paths["last"])
    src = read_model_checkpoint(workdir / "src.pth")
    assert (best.arch, best.config, best.scale, best.data_range) == (src.arch, src.config, src.scale, src.data_range)
    load_model(best), load_model(last)
    prov = best.provenance
    assert prov["stage"] == "train" and prov["weights"] == "best" and last.provenance["weights"] == "last"
    assert prov["parent"] == str(workdir / "src.pth") and prov["parent_sha256"] == sha256_of(workdir / "src.pth")
    assert prov["iterations"] == 8 and prov["settings"]["lr"] == 1e-3 and prov["settings"]["distill_weight"] == 1.0
    assert prov["teacher_sha256"] == sha256_of(workdir / "rfdn_teacher.pth")
    assert prov["data"]["train_dirs"] == [str(workdir / "train")] and prov["data"]["train_images"] == 3
    assert prov["data"]["validation"]["kind"] == "val_fraction" and len(prov["data"]["validation"]["val_images"]) == 1
    assert prov["git_commit"] is None or len(prov["git_commit"]) == 40
    log = [json.loads(line) for line in paths["log"].read_text().splitlines()]
    validations = [r for r in log if "val_psnr" in r]
    assert [r["iter"] for r in validations] == [0, 3, 6, 8]
    assert prov["best_val_psnr"] == max(r["val_psnr"] for r in validations)
    assert prov["best_iteration"] in (0, 3, 6, 8)
    assert all({"iter", "lr", "time"} <= r.keys() for r in log) and all("distill" in r for r in log if "loss" in r)


def test_cli_ema_decay_writes_the_averaged_weights(workdir: Path, tmp_path: Path) -> None:
    out = tmp_path / "ema.pth"
    assert train_prfdn.cli(cli_args(workdir, out, "--ema_decay", "0.5")) == 0
    paths = train_prfdn.output_paths(out)
    state = train_prfdn.read_state(paths["state"])
    last = read_model_checkpoint(paths["last"])
    assert last.provenance["settings"]["ema_decay"] == 0.5 and int(state["ema"]["n_averaged"]) == 8
    assert_same_tensors(last.state_dict, {k.removeprefix("module."): v for k, v in state["ema"].items() if k != "n_averaged"})
    assert any(not torch.equal(last.state_dict[k], state["model"][k]) for k in state["model"])


def test_cli_ctrl_c_then_resume_in_a_new_process_matches(workdir: Path, cli_run: Path, tmp_path: Path, monkeypatch: Any) -> None:
    class CtrlCAt3(train_prfdn.JsonlLog):
        def __call__(self, record: dict[str, Any]) -> None:
            super().__call__(record)
            if record["iter"] == 3:
                os.kill(os.getpid(), signal.SIGINT)

    out = tmp_path / "out.pth"
    monkeypatch.setattr(train_prfdn, "JsonlLog", CtrlCAt3)
    assert train_prfdn.cli(cli_args(workdir, out)) == 130
    assert not out.exists() and train_prfdn.output_paths(out)["state"].is_file()
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    resume = [sys.executable, "train_prfdn.py", str(workdir / "src.pth"), str(out), "--resume", "--no_progress"]
    done = subprocess.run(resume, cwd=REPO_ROOT, capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode == 0, done.stderr
    for key in ("best", "last"):
        expected = read_model_checkpoint(train_prfdn.output_paths(cli_run)[key]).state_dict
        assert_same_tensors(expected, read_model_checkpoint(train_prfdn.output_paths(out)[key]).state_dict)


@pytest.mark.slow  # two torchrun processes start PyTorch each: about 11 s on 2 cores
def test_ddp_two_gloo_processes(workdir: Path, tmp_path: Path) -> None:
    out = tmp_path / "ddp.pth"
    args = [str(workdir / "src.pth"), str(out), "--train_dir", str(workdir / "train"), "--val_fraction", "0.25"]
    args += ["--iters", "4", "--batch_size", "2", "--patch_size", str(PATCH), "--lr", "1e-3", "--val_every", "2"]
    args += ["--device", "cpu", "--no_progress", "--precision", "fp32", "--no-channels_last"]  # as fit() below
    launch = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", "train_prfdn.py"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run(launch + args, cwd=REPO_ROOT, capture_output=True, text=True, env=env, timeout=240)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    last = read_model_checkpoint(train_prfdn.output_paths(out)["last"])
    assert last.provenance["world_size"] == 2
    # 2 ranks x 2 patches draw the very patches of one process with 4: the same training up to float rounding
    data = load_training_data([workdir / "train"], patch_size=PATCH, val_fraction=0.25)
    single = fit(tiny_prfdn(), data.train, data.val, settings(iters=4, batch_size=4, val_every=2, lr_after_plateau=5e-6))
    for key, value in single.last_state_dict.items():
        torch.testing.assert_close(last.state_dict[key], value, rtol=1e-4, atol=1e-4, msg=key)


def test_default_learning_rate_per_stage(workdir: Path) -> None:
    args = train_prfdn.parse_args(["src.pth", "out.pth", "--train_dir", "d"])
    assert [train_prfdn.resolve_settings(args, arch, None).lr for arch in ("branch", "prfdn", "prfdn_helpers", "rfdn")] == [
        1e-5,
        1e-6,
        1e-6,
        1e-5,
    ]
    assert train_prfdn.resolve_settings(args, "branch", None).lr_after_plateau == 5e-6
    args = train_prfdn.parse_args(["src.pth", "out.pth", "--train_dir", "d", "--lr", "3e-4"])
    assert train_prfdn.resolve_settings(args, "prfdn", {"lr": 1e-6, "iters": 7}).lr == 3e-4  # flag > resumed > default
    assert train_prfdn.resolve_settings(args, "prfdn", {"lr": 1e-6, "iters": 7}).iters == 7


class RunsCode:
    """Pickled, it would call ``os.system`` when loaded unsafely (never called here: weights-only loading refuses it)."""

    def __reduce__(self) -> tuple[Any, tuple[str]]:
        return os.system, ("exit 3",)


def _error_case(name: str, workdir: Path, tmp: Path, cli_run: Path) -> tuple[list[str], str]:
    out = tmp / "out.pth"
    paths = train_prfdn.output_paths(out)
    if name == "empty training folder":
        (tmp / "empty").mkdir()
        args = cli_args(workdir, out)
        args[args.index(str(workdir / "train"))] = str(tmp / "empty")
        return args, f"{tmp / 'empty'}: training folder holds no images"
    if name == "training folder is a file":
        args = cli_args(workdir, out)
        args[args.index(str(workdir / "train"))] = str(workdir / "src.pth")
        return args, f"--train_dir {workdir / 'src.pth'}: is a file; expected a folder of training images"
    if name == "training folder is a loop of links":
        (tmp / "loop").symlink_to(tmp / "loop")
        args = cli_args(workdir, out)
        args[args.index(str(workdir / "train"))] = str(tmp / "loop")
        return args, f"--train_dir {tmp / 'loop'}: is a loop of symbolic links; expected a folder of training images"
    if name == "images smaller than the patch":
        return [*cli_args(workdir, out), "--patch_size", "40"], ".png: image is 128x128, smaller than the 160x160 HR patch"
    if name == "flat threshold no patch can pass":
        return [
            *cli_args(workdir, out),
            "--flat_threshold",
            "300",
        ], "--flat_threshold 300.0: must be at least 0 (0: off) and below 255"
    if name == "scale_aug that adds no copy":
        return [
            *cli_args(workdir, out),
            "--scale_aug",
            "0.1",
        ], "--scale_aug 0.1: no training image downscaled by it holds one 64x64"
    if name == "patch smaller than the network takes":
        return [*cli_args(workdir, out), "--patch_size", "14"], "--patch_size 14: must be at least 15 (LR pixels"
    if name == "validation crop smaller than the network takes":
        return [*cli_args(workdir, out), "--val_crop", "4"], "--val_crop 4: must be at least 60 (HR pixels"
    if name == "validation image smaller than the network takes":
        imsave(cv2.resize(skimage_data.coffee(), (40, 30)), tmp / "val" / "tiny.png")
        args = [*cli_args(workdir, out), "--val_fraction", "0", "--val_dir", str(tmp / "val")]
        return args, f"{tmp / 'val' / 'tiny.png'}: validation image (--val_dir) is 40x30, smaller than the network's smallest"
    if name == "negative lr in scientific notation":
        return [*cli_args(workdir, out), "--lr", "-1e-4"], "--lr -0.0001: must be positive"
    if name == "lr not a number":
        return [*cli_args(workdir, out), "--lr", "nan"], "--lr nan: must be positive and finite"
    if name == "distillation weight not a number":
        return [*cli_args(workdir, out), "--distill_weight", "nan"], "--distill_weight nan: must be at least 0 and finite"
    if name == "negative seed":
        return [*cli_args(workdir, out), "--seed", "-1"], "--seed -1: must not be negative"
    if name == "SRC is a folder":
        return cli_args(workdir, out, src=workdir / "train"), f"SRC {workdir / 'train'}: is a folder; expected a checkpoint file"
    if name == "corrupt SRC":
        (tmp / "bad.pth").write_bytes(b"not a checkpoint")
        return cli_args(workdir, out, src=tmp / "bad.pth"), "bad.pth: not a loadable weights-only checkpoint"
    if name == "SRC of meta tensors":  # a model built on the meta device, saved: shapes without values
        torch.save({k: v.to("meta") for k, v in tiny_prfdn().state_dict().items()}, tmp / "meta.pth")
        return cli_args(workdir, out, src=tmp / "meta.pth"), "meta.pth: tensor head_skip.weight is a meta tensor"
    if name == "SRC whose pickle would run code":
        torch.save({"weights": RunsCode()}, tmp / "evil.pth")
        expected = "evil.pth: unsafe checkpoint, refused: it holds a pickled posix.system (its module posix is blocked"
        return cli_args(workdir, out, src=tmp / "evil.pth"), expected
    if name == "SRC with a provenance nested too deep":  # once: a RecursionError saving OUT, after the training
        checkpoint = read_model_checkpoint(workdir / "src.pth")
        for _ in range(300):
            checkpoint.provenance = {"stage": "train", "parent_provenance": checkpoint.provenance}
        save_model_checkpoint(tmp / "deep.pth", checkpoint)
        return cli_args(workdir, out, src=tmp / "deep.pth"), "deep.pth: nested deeper than 200 levels (at provenance."
    if name == "teacher not RFDN-compatible":
        torch.save(tiny_prfdn().state_dict(), tmp / "teacher.pth")  # plain state dict, read as RFDN: does not fit
        args = cli_args(workdir, out)
        args[args.index(str(workdir / "rfdn_teacher.pth"))] = str(tmp / "teacher.pth")
        return args, "--teacher"
    if name == "teacher missing":
        args = cli_args(workdir, out)
        args[args.index(str(workdir / "rfdn_teacher.pth"))] = str(tmp / "missing.pth")
        return args, f"--teacher {tmp / 'missing.pth'}: checkpoint file not found"
    if name == "SRC with weights that are not finite":  # a diverged training's: not blamed on --lr once training
        model = tiny_prfdn()
        with torch.no_grad():
            next(model.parameters()).view(-1)[0] = float("nan")
        save_checkpoint(model, tmp / "nan.pth")
        return cli_args(workdir, out, src=tmp / "nan.pth"), f"SRC {tmp / 'nan.pth'}: weights hold values that are not finite"
    if name == "teacher with weights that are not finite":
        state = torch.load(workdir / "rfdn_teacher.pth")
        state["B1.c5.weight"][0, 0, 0, 0] = float("inf")
        torch.save(state, tmp / "teacher.pth")
        args = cli_args(workdir, out)
        args[args.index(str(workdir / "rfdn_teacher.pth"))] = str(tmp / "teacher.pth")
        return args, f"--teacher {tmp / 'teacher.pth'}: weights hold values that are not finite (1 of 5000 in B1.c5.weight"
    if name == "resume past its iters":
        shutil.copyfile(train_prfdn.output_paths(cli_run)["state"], paths["state"])
        return [*cli_args(workdir, out), "--resume", "--iters", "5"], "is at iteration 8, past --iters 5"
    if name == "resume with another selection rule":
        shutil.copyfile(train_prfdn.output_paths(cli_run)["state"], paths["state"])
        args = [*cli_args(workdir, out), "--resume", "--select", "worst_gap"]
        return args, f"--select worst_gap: {paths['state']} chose its best weights by --select mean; a resumed run keeps it"
    if name == "resume with another seed":
        shutil.copyfile(train_prfdn.output_paths(cli_run)["state"], paths["state"])
        return [*cli_args(workdir, out), "--resume", "--seed", "5"], "--seed 5: " + f"{paths['state']} was trained with --seed 0"
    if name == "resume after the data folders changed":  # as if a training image was added since the state was written
        state = torch.load(train_prfdn.output_paths(cli_run)["state"], weights_only=True)
        recorded = state["run"]["data_images"]
        recorded["train"].pop(next(iter(recorded["train"])))
        torch.save(state, paths["state"])
        return [
            *cli_args(workdir, out),
            "--resume",
        ], f"the data folders changed since {paths['state']} was written: 1 image added"
    if name == "resume with a log that is not UTF-8":
        shutil.copyfile(train_prfdn.output_paths(cli_run)["state"], paths["state"])
        paths["log"].write_bytes(b'{"iter": 0, "lr": 0.001}\n\xff\xfe not text\n')
        return [*cli_args(workdir, out), "--resume"], f"{paths['log']}: log is not UTF-8 text (byte 0xff at offset 25)"
    if name == "resume file missing":
        return [*cli_args(workdir, out), "--resume"], "out.state.pth not found"
    if name == "resume and overwrite":
        return [*cli_args(workdir, out), "--resume", "--overwrite"], "--resume and --overwrite: give one of them"
    if name == "accept_data_change without resume":
        return [*cli_args(workdir, out), "--accept_data_change"], "--accept_data_change: only with --resume"
    if name.startswith("earlier run's "):  # any of OUT's four files, from a run long or short
        key = name.removeprefix("earlier run's ")
        paths[key].write_bytes(b"an earlier run's file")
        label = train_prfdn.OUTPUT_LABELS[key]
        return cli_args(
            workdir, out
        ), f"{label} {paths[key]}: exists from an earlier run; give --resume to continue that run, or --overwrite"
    if name == "SRC is OUT_last":  # continuing from the last weights, OUT_last would be written over its own input
        shutil.copyfile(workdir / "src.pth", paths["last"])
        return cli_args(workdir, out, "--overwrite", src=paths["last"]), f"OUT_last {paths['last']}: is the same file as SRC"
    if name == "SRC hard-linked as OUT":
        shutil.copyfile(workdir / "src.pth", tmp / "src.pth")
        os.link(tmp / "src.pth", out)
        return cli_args(workdir, out, "--overwrite", src=tmp / "src.pth"), f"OUT {out}: is the same file as SRC"
    if name == "teacher linked as OUT's state":
        paths["state"].symlink_to(workdir / "rfdn_teacher.pth")
        return cli_args(workdir, out, "--resume"), f"OUT.state {paths['state']}: is the same file as --teacher"
    if name == "OUT is a training image":
        image = workdir / "train" / "coffee.png"
        return cli_args(workdir, image, "--overwrite"), f"OUT {image}: is the same file as --train_dir {image}"
    if name == "OUT is a folder":
        (tmp / "folder").mkdir()
        return cli_args(workdir, tmp / "folder"), f"OUT {tmp / 'folder'}: is a folder; expected a file name"
    if name == "OUT empty":
        args = cli_args(workdir, out)
        args[1] = ""
        return args, "OUT '.': expected a file name"
    if name == "OUT under a regular file":
        return cli_args(workdir, workdir / "src.pth" / "out.pth"), f"{workdir / 'src.pth'} is not a folder"
    if name == "cosine setting with the plateau schedule":
        return [*cli_args(workdir, out), "--min_lr", "1e-6"], "--min_lr: only with --schedule cosine (the plateau schedule"
    if name == "plateau setting with the cosine schedule":
        args = [*cli_args(workdir, out), "--schedule", "cosine", "--warmup", "1", "--plateau_patience", "3"]
        return args, "--plateau_patience: only with --schedule plateau (the cosine schedule does not read it"
    if name == "warm-up as long as the run":
        args = [*cli_args(workdir, out), "--schedule", "cosine", "--warmup", "8"]
        return args, "--warmup 8: must be below --iters 8"
    if name == "snapshots no more often than the run is long":
        return [*cli_args(workdir, out), "--minutes", "1", "--snapshot_minutes", "1"], "--snapshot_minutes 1: must be below"
    if name == "a snapshot from an earlier run":
        snapshot_file = train_prfdn.snapshot_path(out)
        snapshot_file.write_bytes(b"an earlier run's snapshot")
        args = [*cli_args(workdir, out), "--snapshot_minutes", "1"]
        return args, f"OUT_snapshot {snapshot_file}: exists from an earlier run; give --resume"
    if name == "snapshot path is a folder":
        train_prfdn.snapshot_path(out).mkdir()
        args = [*cli_args(workdir, out), "--snapshot_minutes", "1"]
        return args, f"OUT_snapshot {train_prfdn.snapshot_path(out)}: is a folder"
    if name == "teacher_x8 without distillation":
        return [*cli_args(workdir, out), "--teacher_x8", "--distill_weight", "0"], "--teacher_x8: no teacher's SR to ensemble"
    if name == "select_against without worst_gap":
        return [*cli_args(workdir, out), "--select_against", str(workdir / "src.pth")], (
            "--select_against: only with --select worst_gap (not mean)"
        )
    if name == "select_against missing":
        args = [*cli_args(workdir, out), "--select", "worst_gap", "--select_against", str(tmp / "gone.pth")]
        return args, f"--select_against {tmp / 'gone.pth'}: "
    if name == "select_against is OUT":
        args = [*cli_args(workdir, out), "--select", "worst_gap", "--select_against", str(out)]
        out.write_bytes((workdir / "src.pth").read_bytes())
        return [*args, "--overwrite"], f"OUT {out}: is the same file as --select_against"
    if name == "resume with another selection reference":  # a run that chose by the worst gap to its --teacher
        state = torch.load(train_prfdn.output_paths(cli_run)["state"], weights_only=True)
        state["settings"]["select"] = "worst_gap"
        torch.save(state, paths["state"])
        args = [*cli_args(workdir, out), "--resume", "--select_against", str(workdir / "src.pth")]
        return args, f"--select_against {workdir / 'src.pth'}: {paths['state']} measured its validation groups against"
    if name in ("resume against a replaced reference", "resume against its own output"):
        state = torch.load(train_prfdn.output_paths(cli_run)["state"], weights_only=True)
        reference = workdir / "src.pth" if name == "resume against a replaced reference" else paths["last"]
        state["settings"].update(select="worst_gap", select_against=str(reference))
        state["run"]["select_against_sha256"] = "0" * 64  # the digest of the weights the run measured against
        torch.save(state, paths["state"])
        if name == "resume against its own output":
            shutil.copyfile(workdir / "src.pth", paths["last"])
            return [*cli_args(workdir, out), "--resume"], f"OUT_last {paths['last']}: is the same file as --select_against"
        return [*cli_args(workdir, out), "--resume"], f"--select_against {reference}: changed since {paths['state']}"
    if name == "worst_gap without validation images":
        args = [*cli_args(workdir, out), "--select", "worst_gap", "--val_fraction", "0"]
        return args, "--select worst_gap: needs validation images"
    other = save_checkpoint(BranchPRFDN(nf=8), tmp / "branch.pth")  # resume a state of another model
    other_out = tmp / "other.pth"
    train_prfdn.output_paths(other_out)["state"].write_bytes(train_prfdn.output_paths(cli_run)["state"].read_bytes())
    return cli_args(workdir, other_out, "--resume", src=other), "from another model"


ERROR_CASES = [
    "empty training folder",
    "training folder is a file",
    "training folder is a loop of links",
    "images smaller than the patch",
    "flat threshold no patch can pass",
    "scale_aug that adds no copy",
    "patch smaller than the network takes",
    "validation crop smaller than the network takes",
    "validation image smaller than the network takes",
    "negative lr in scientific notation",
    "lr not a number",
    "distillation weight not a number",
    "negative seed",
    "SRC is a folder",
    "corrupt SRC",
    "SRC of meta tensors",
    "SRC whose pickle would run code",
    "SRC with a provenance nested too deep",
    "teacher not RFDN-compatible",
    "teacher missing",
    "SRC with weights that are not finite",
    "teacher with weights that are not finite",
    "resume file missing",
    "resume with a log that is not UTF-8",
    "resume past its iters",
    "resume with another selection rule",
    "resume with another seed",
    "resume after the data folders changed",
    "resume from another model",
    "resume and overwrite",
    "accept_data_change without resume",
    "earlier run's best",
    "earlier run's last",
    "earlier run's state",
    "earlier run's log",
    "SRC is OUT_last",
    "SRC hard-linked as OUT",
    "teacher linked as OUT's state",
    "OUT is a training image",
    "OUT is a folder",
    "OUT empty",
    "OUT under a regular file",
    "cosine setting with the plateau schedule",
    "plateau setting with the cosine schedule",
    "warm-up as long as the run",
    "snapshots no more often than the run is long",
    "a snapshot from an earlier run",
    "snapshot path is a folder",
    "teacher_x8 without distillation",
    "worst_gap without validation images",
    "select_against without worst_gap",
    "select_against missing",
    "select_against is OUT",
    "resume with another selection reference",
    "resume against a replaced reference",
    "resume against its own output",
]


def snapshot(*folders: Path) -> dict[Path, bytes]:
    """Every file under ``folders`` (read through links) and its content."""
    return {path: path.read_bytes() for folder in folders for path in sorted(folder.rglob("*")) if path.is_file()}


@pytest.mark.parametrize("case", ERROR_CASES)
def test_cli_bad_input_is_one_line_exit_2(case: str, workdir: Path, cli_run: Path, tmp_path: Path, capsys: Any) -> None:
    args, expected = _error_case(case, workdir, tmp_path, cli_run)
    before = snapshot(tmp_path, workdir)
    assert train_prfdn.cli(args) == 2
    err = capsys.readouterr().err
    assert err.startswith("train_prfdn.py: error: ") and err.count("\n") == 1, err
    assert expected in err, err
    assert snapshot(tmp_path, workdir) == before  # nothing written, nothing created (no out.pth either)


def copy_run(out: Path, to: Path) -> Path:
    """A copy of the four files of the run at ``out`` as the run at ``to``."""
    for key, path in train_prfdn.output_paths(out).items():
        shutil.copyfile(path, train_prfdn.output_paths(to)[key])
    return to


def log_iterations(out: Path) -> list[int]:
    return [json.loads(line)["iter"] for line in train_prfdn.output_paths(out)["log"].read_text().splitlines()]


def test_cli_overwrite_starts_a_new_run_over_an_earlier_one(workdir: Path, cli_run: Path, tmp_path: Path) -> None:
    out = copy_run(cli_run, tmp_path / "out.pth")
    assert train_prfdn.cli(cli_args(workdir, out, "--overwrite", "--iters", "1")) == 0
    assert log_iterations(out) == [0, 1]  # the earlier run's records are gone with it
    assert train_prfdn.read_state(train_prfdn.output_paths(out)["state"])["iteration"] == 1
    for key in ("best", "last"):
        assert read_model_checkpoint(train_prfdn.output_paths(out)[key]).provenance["iterations"] == 1


def test_cli_resume_goes_on_with_changed_data_only_when_told(
    workdir: Path, cli_run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The state records every image it trained and validated on: a resume with the same flags over changed folders is
    refused (see the error cases); --accept_data_change goes on, saying what changed, and records the data as it is."""
    out = copy_run(cli_run, tmp_path / "out.pth")
    state_path = train_prfdn.output_paths(out)["state"]
    state = torch.load(state_path, weights_only=True)
    recorded = state["run"]["data_images"]
    assert set(recorded) == {"train", "val"} and len(recorded["train"]) == 3 and len(recorded["val"]) == 1
    name, digest = recorded["train"].popitem()  # as if that image was added since
    recorded["val"]["train/old"] = "0" * 40  # and a held-out image removed
    torch.save(state, state_path)
    capsys.readouterr()
    assert train_prfdn.cli(cli_args(workdir, out, "--resume", "--iters", "9", "--accept_data_change")) == 0
    err = capsys.readouterr().err
    assert f"--resume with changed data folders: 1 image added ({name}); 1 image gone (train/old)" in err
    assert train_prfdn.read_state(state_path)["run"]["data_images"]["train"][name] == digest


def test_cli_resume_after_a_kill_logs_each_iteration_once_and_leaves_no_temp_file(
    workdir: Path, cli_run: Path, tmp_path: Path
) -> None:
    """kill -9 after the state of iteration 8: records of 9 and 10 (and half a line) were logged after it, and a
    save cut short left its temp files; the resumed run logs 9 again, once, and the temp files go."""
    out = copy_run(cli_run, tmp_path / "out.pth")
    paths = train_prfdn.output_paths(out)
    with open(paths["log"], "a", encoding="utf-8") as log:
        log.write('{"iter": 9, "lr": 0.001, "loss": 1.0}\n{"iter": 10, "lr": 0.001, "loss": 1.0}\n{"iter": 1')
    writer = subprocess.Popen(["true"])
    writer.wait()  # a writer that is gone, as after kill -9
    stale = [tmp_path / f".{path.name}.{writer.pid}.0123abcd.tmp{path.suffix}" for path in (paths["state"], out)]
    for path in stale:
        path.write_bytes(b"half a checkpoint")
    assert train_prfdn.cli(cli_args(workdir, out, "--resume", "--iters", "9")) == 0
    assert log_iterations(out) == list(range(10))
    assert not any(path.exists() for path in stale)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(p.name for p in paths.values())


def test_truncate_log_drops_unreadable_records_and_refuses_a_log_that_is_not_utf8(tmp_path: Path) -> None:
    log = tmp_path / "out.log.jsonl"
    log.write_text('{"iter": 1}\n{"iter": 1e400}\n' + "[" * 100000 + "\n" + '{"iter": 3}\n', encoding="utf-8")
    assert training_loop.truncate_log(log, 2) == 3  # an iteration of 1e400 (inf) or a line nested too deep is no record
    assert log.read_text(encoding="utf-8") == '{"iter": 1}\n'
    log.write_bytes(b'{"iter": 1}\n\x80\n')
    with pytest.raises(HarnessError, match=re.escape(f"{log}: log is not UTF-8 text (byte 0x80 at offset 12)")):
        training_loop.truncate_log(log, 0)
    assert log.read_bytes() == b'{"iter": 1}\n\x80\n'


def test_cli_refuses_to_write_an_out_another_run_is_writing(workdir: Path, tmp_path: Path, capsys: Any) -> None:
    from utils.fileio import exclusive_run

    out = tmp_path / "busy.pth"
    with exclusive_run(train_prfdn.output_paths(out)["state"], "OUT"):  # as a run in another process holds it
        assert train_prfdn.cli(cli_args(workdir, out, "--iters", "1")) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "busy.state.pth: another run is using it now" in err, err
    assert not any(p.exists() for p in train_prfdn.output_paths(out).values())


def test_fast_path_bf16_channels_last_trains_resumes_exactly_and_saves_plain_tensors(workdir: Path) -> None:
    """bf16 autocast + channels_last: the loss falls as in fp32, a resumed run matches an uninterrupted one, and
    the weights come back in the standard memory format (fp32)."""
    data = load_training_data([workdir / "one"], patch_size=PATCH, val_fraction=0)
    fast = settings(iters=40, log_every=10, val_every=1000, precision="bf16", channels_last=True)
    result = fit(tiny_prfdn(), data.train, data.val, fast)
    losses = [r["loss"] for r in result.history if "loss" in r]
    assert losses[-1] < 0.7 * losses[0], losses
    assert all(t.dtype == torch.float32 for t in result.last_state_dict.values())
    first = fit(tiny_prfdn(), data.train, data.val, replace(fast, iters=20))
    resumed = fit(tiny_prfdn(), data.train, data.val, fast, state=first.state)
    assert_same_tensors(resumed.last_state_dict, result.last_state_dict)
    weights = read_back(result.last_state_dict)
    assert all(t.is_contiguous() for t in weights.values())


def read_back(state_dict: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The tensors as a checkpoint file holds them."""
    return ModelCheckpoint("prfdn", {}, state_dict).to_dict()["state_dict"]


@pytest.mark.parametrize(
    "values, message",
    [({"precision": "fp16"}, "--precision fp16: must be one of fp32, bf16"), ({"precision": "bf16", "amp": True}, "give one")],
)
def test_fast_path_settings_are_checked(values: dict[str, Any], message: str) -> None:
    with pytest.raises(HarnessError, match=re.escape(message)):
        settings(**values).check()


@pytest.mark.parametrize(
    "values, message",
    [
        ({"batch_size": 100_000}, "--batch_size 100000: must be at most 4096"),
        ({"batch_size": 0}, "--batch_size 0: must be at least 1"),
        ({"num_workers": 100_000}, "--num_workers 100000: must be at most"),
        ({"num_workers": -1}, "--num_workers -1: must not be negative"),
    ],
)
def test_counts_are_bounded(values: dict[str, Any], message: str) -> None:
    """A typo such as an extra three digits is refused in one line, not spent as minutes of work or all the memory."""
    with pytest.raises(HarnessError, match=re.escape(message)):
        settings(**values).check()
    assert training_loop.MAX_BATCH_SIZE >= 1024 and training_loop.MAX_NUM_WORKERS >= 64  # generous: real runs pass


def test_teacher_cache_gives_the_per_batch_targets_where_the_teacher_has_no_context(workdir: Path, tmp_path: Path) -> None:
    """With LR files (patches on the LR grid) and a teacher that maps each LR pixel to its own 4x4 block, the
    cropped whole-image SR is exactly the SR of each patch: the same losses, the same weights, and the
    teacher runs once per image instead of once per batch."""
    hr_dir, lr_dir = tmp_path / "hr", tmp_path / "lr"
    hr_dir.mkdir()
    lr_dir.mkdir()
    for path in (workdir / "train").iterdir():
        hr = cv2.imread(str(path))
        hr = hr[: hr.shape[0] // 4 * 4, : hr.shape[1] // 4 * 4]
        cv2.imwrite(str(hr_dir / path.name), hr)
        cv2.imwrite(str(lr_dir / path.name), cv2.resize(hr, (hr.shape[1] // 4, hr.shape[0] // 4), interpolation=cv2.INTER_AREA))
    data = load_training_data([hr_dir], [lr_dir], patch_size=PATCH, val_fraction=0.25, val_crop=96)

    class NearestX4(torch.nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return torch.nn.functional.interpolate(x, scale_factor=4, mode="nearest")

    runs = {}
    for cache in (False, True):
        teacher, calls = NearestX4(), []
        teacher.register_forward_hook(lambda *_, calls=calls: calls.append(1))
        student = tiny_prfdn()
        result = fit(student, data.train, data.val, settings(distill_weight=1.0, teacher_cache=cache), teacher=teacher)
        runs[cache] = (result, len(calls))
    (per_batch, batch_calls), (cached, cache_calls) = runs[False], runs[True]
    assert per_batch.history == [{**r, "time": p["time"]} for r, p in zip(cached.history, per_batch.history, strict=True)]
    assert all("distill" in r for r in cached.history if "loss" in r)
    assert_same_tensors(per_batch.last_state_dict, cached.last_state_dict)
    assert batch_calls == 10 and cache_calls == len(data.train.images)


def test_teacher_cache_needs_a_teacher_and_no_feature_distillation(workdir: Path) -> None:
    data = load_training_data([workdir / "one"], patch_size=PATCH, val_fraction=0)
    with pytest.raises(HarnessError, match="--teacher_cache: nothing to cache"):
        fit(tiny_prfdn(), data.train, None, settings(teacher_cache=True))
    teacher = RFDN()
    with pytest.raises(HarnessError, match="--teacher_cache: feature distillation needs"):
        fit(BranchPRFDN(), data.train, None, settings(teacher_cache=True, distill_weight=1, feature_distill=1), teacher=teacher)


# --- cycles: cosine schedule, time-bounded runs, snapshots ----------------------------------------------------


def test_cosine_cycle_warms_up_then_falls_to_min_lr() -> None:
    cycle = settings(iters=110, lr=2e-4, schedule="cosine", warmup=10, min_lr=1e-6)
    lrs = [training_loop.cosine_lr(cycle, it, 0.0) for it in range(110)]
    assert lrs[0] == pytest.approx(2e-5) and lrs[9] == pytest.approx(2e-4)  # linear warm-up to the peak
    assert all(a >= b for a, b in itertools.pairwise(lrs[10:]))
    assert lrs[60] == pytest.approx((2e-4 + 1e-6) / 2, rel=0.02) and lrs[-1] == pytest.approx(1e-6, abs=1e-7)
    by_time = settings(iters=10**9, lr=2e-4, schedule="cosine", warmup=10, min_lr=1e-6, minutes=2.0)
    assert training_loop.cosine_lr(by_time, 500, 60.0) == pytest.approx((2e-4 + 1e-6) / 2)  # half the time: halfway
    assert training_loop.cosine_lr(by_time, 500, 500.0) == pytest.approx(1e-6)


def test_cosine_cycle_resumes_bit_exactly(workdir: Path) -> None:
    data = load_training_data([workdir / "train"], patch_size=PATCH, val_fraction=0.25, val_crop=96)
    run = settings(iters=8, schedule="cosine", warmup=2, lr=1e-3, min_lr=1e-5, val_every=2, ema_decay=0.9)
    whole = fit(tiny_prfdn(), data.train, data.val, run)

    def interrupt_at_4(record: dict[str, Any]) -> None:
        if record["iter"] == 4:
            os.kill(os.getpid(), signal.SIGINT)

    with pytest.raises(TrainingInterruptedError) as stop:
        fit(tiny_prfdn(), data.train, data.val, run, log=interrupt_at_4)
    torch.manual_seed(7)
    resumed = fit(tiny_prfdn(seed=3), data.train, data.val, run, state=stop.value.state)
    assert_same_tensors(whole.last_state_dict, resumed.last_state_dict)
    lrs = [r["lr"] for r in whole.history if r["iter"] > 0]
    assert lrs[1] == pytest.approx(1e-3) and lrs[-1] < 2e-4


def test_minutes_end_the_run_by_training_time_and_snapshots_are_written(workdir: Path) -> None:
    data = load_training_data([workdir / "one"], patch_size=PATCH, val_fraction=0)
    snapshots: list[int] = []
    run = settings(iters=10_000, log_every=1, val_every=1000, schedule="cosine", warmup=1, minutes=0.002, snapshot_minutes=1e-6)
    result = fit(tiny_prfdn(), data.train, None, run, save_snapshot=lambda weights, it: snapshots.append(it))
    assert 1 <= result.iterations < 10_000  # 0.12 s of training, not 10,000 iterations
    assert snapshots and snapshots == sorted(snapshots) and snapshots[-1] <= result.iterations


@pytest.mark.parametrize(
    "values, message",
    [
        ({"schedule": "step"}, "--schedule step: must be one of plateau, cosine"),
        ({"schedule": "cosine", "min_lr": 1.0}, "--min_lr 1: must not exceed --lr"),
        ({"minutes": 0.0}, "--minutes 0.0: must be positive and finite"),
        ({"warmup": -1}, "--warmup -1: must not be negative"),
    ],
)
def test_cycle_settings_are_checked(values: dict[str, Any], message: str) -> None:
    with pytest.raises(HarnessError, match=re.escape(message)):
        settings(**values).check()


def test_cli_cycle_from_weights_writes_its_end_weights_and_a_snapshot(workdir: Path, tmp_path: Path) -> None:
    out = tmp_path / "cycle" / "final.pth"
    argv = [str(workdir / "src.pth"), str(out), "--train_dir", str(workdir / "train"), "--val_fraction", "0.25"]
    argv += ["--patch_size", str(PATCH), "--batch_size", "2", "--schedule", "cosine", "--warmup", "1", "--minutes", "0.003"]
    argv += ["--snapshot_minutes", "0.0001", "--log_every", "1", "--val_every", "1000", "--no_progress", "--device", "cpu"]
    assert train_prfdn.cli(argv) == 0
    last = read_model_checkpoint(out.with_name("final_last.pth"))
    snap = read_model_checkpoint(out.with_name("final_snapshot.pth"))
    assert snap.provenance["weights"] == "snapshot" and 1 <= snap.provenance["iterations"] <= last.provenance["iterations"]
    assert last.provenance["settings"]["iters"] == training_loop.MAX_ITERS  # bounded by --minutes only


def test_cli_resume_of_a_run_whose_minutes_are_spent_trains_no_further(
    workdir: Path, cli_run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """As a resume at its --iters: the outputs are written from the state, and it says why nothing was trained."""
    out = copy_run(cli_run, tmp_path / "out.pth")
    state = train_prfdn.read_state(train_prfdn.output_paths(out)["state"])
    minutes = state["elapsed"] / 60 / 2
    capsys.readouterr()
    assert train_prfdn.cli(cli_args(workdir, out, "--resume", "--iters", "100", "--minutes", f"{minutes:.9f}")) == 0
    assert f"the run has trained {state['elapsed'] / 60:.2f} minutes" in capsys.readouterr().err
    assert train_prfdn.read_state(train_prfdn.output_paths(out)["state"])["iteration"] == state["iteration"]
    assert read_model_checkpoint(train_prfdn.output_paths(out)["last"]).provenance["iterations"] == state["iteration"]


# --- validation groups and the worst-group selection ----------------------------------------------------------


def test_validation_groups_are_held_out_and_the_val_dir_kinds() -> None:
    from training.data import validation_group

    assert validation_group("structured_val/clipart_cat") == "clipart"
    assert validation_group("structured_val/opencv_building_1") == "opencv"
    assert validation_group("my_photos/img1") == "my_photos"  # no kind prefix: the folder


def test_select_worst_gap_keeps_the_weights_whose_worst_group_is_closest_to_the_teacher(workdir: Path, tmp_path: Path) -> None:
    kinds = tmp_path / "val"
    for name, photo in (("lines_a", "text"), ("photo_b", "camera"), ("photo_c", "moon")):
        img = getattr(skimage_data, photo)()
        imsave(cv2.resize(np.stack([img] * 3, -1) if img.ndim == 2 else img, (96, 96)), kinds / f"{name}.png")
    data = load_training_data([workdir / "train"], patch_size=PATCH, val_fraction=0.25, val_crop=96, val_dir=kinds)
    assert {image.group for image in data.val} == {"held_out", "lines", "photo"}
    torch.manual_seed(1)
    teacher = tiny_prfdn(seed=9)
    result = fit(tiny_prfdn(), data.train, data.val, settings(iters=6, val_every=2, select="worst_gap"), teacher=teacher)
    validated = [r for r in result.history if "val_psnr" in r]
    for record in validated:
        gaps = [record["val_groups"][g] - record["reference_groups"][g] for g in record["val_groups"]]
        assert record["val_worst_gap"] == pytest.approx(min(gaps))
    best = max(validated, key=lambda r: r["val_worst_gap"])
    assert result.best_iteration == best["iter"] and result.best_psnr == pytest.approx(best["val_psnr"])
    with pytest.raises(HarnessError, match="--select worst_gap needs a --teacher"):
        fit(tiny_prfdn(), data.train, data.val, settings(select="worst_gap"))


def test_select_against_measures_the_groups_against_the_weights_given(workdir: Path, tmp_path: Path) -> None:
    data = load_training_data([workdir / "train"], patch_size=PATCH, val_fraction=0.25, val_crop=96)
    start = tiny_prfdn(seed=3)
    incumbent = copy.deepcopy(start)  # the weights in use: the start scores a gap of 0 on every group against them
    chosen = settings(iters=4, val_every=2, select="worst_gap", select_against="incumbent.pth")
    result = fit(start, data.train, data.val, chosen, teacher=tiny_prfdn(seed=9), reference=incumbent)
    first = next(r for r in result.history if "val_psnr" in r)
    assert first["iter"] == 0 and first["reference_groups"] == pytest.approx(first["val_groups"])
    assert first["val_worst_gap"] == pytest.approx(0.0, abs=1e-9)
    with pytest.raises(HarnessError, match="--select_against: only with --select worst_gap"):
        fit(tiny_prfdn(), data.train, data.val, settings(iters=2), reference=incumbent)


def test_cli_select_against_records_the_reference(workdir: Path, tmp_path: Path) -> None:
    out = tmp_path / "against.pth"
    args = cli_args(workdir, out, "--iters", "1", "--select", "worst_gap", "--select_against", str(workdir / "src.pth"))
    assert train_prfdn.cli(args) == 0
    records = [json.loads(line) for line in train_prfdn.output_paths(out)["log"].read_text().splitlines()]
    first = next(r for r in records if "val_psnr" in r)
    assert first["val_worst_gap"] == pytest.approx(0.0, abs=1e-9)  # SRC against itself
    state = torch.load(train_prfdn.output_paths(out)["state"], weights_only=True)
    assert state["settings"]["select_against"] == str(workdir / "src.pth")
    assert state["run"]["select_against_sha256"] == sha256_of(workdir / "src.pth")


@pytest.mark.parametrize("failure", ["python", "torch", "torch, space left"])
def test_a_full_disk_is_one_line_and_leaves_the_earlier_state_whole(
    failure: str, workdir: Path, cli_run: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: Any
) -> None:
    """The first checkpoint write fails as a full disk fails it (Python's file write, or torch's own writer's
    RuntimeError); one line saying so, exit 2, the earlier files as they were, no temp file left."""
    out = copy_run(cli_run, tmp_path / "out.pth")
    before = snapshot(tmp_path)

    def full_disk(obj: Any, f: Any, *args: Any, **kwargs: Any) -> None:
        if failure == "python":
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        raise RuntimeError("[enforce fail at inline_container.cc:672] . unexpected pos 576 vs 534")

    free = 1 << 40 if failure == "torch, space left" else 1 << 20
    monkeypatch.setattr(torch, "save", full_disk)
    monkeypatch.setattr(shutil, "disk_usage", lambda path: shutil._ntuple_diskusage(1 << 41, (1 << 41) - free, free))
    assert train_prfdn.cli(cli_args(workdir, out, "--resume", "--iters", "9")) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"train_prfdn.py: error: [Errno {errno.ENOSPC if free < 1 << 30 else errno.EIO}] cannot write ")
    assert err.count("\n") == 1 and "Traceback" not in err, err
    if free < 1 << 30:
        assert "No space left on device" in err
    else:
        assert "the write failed ([enforce fail at inline_container.cc:672] . unexpected pos 576 vs 534)" in err
    after = snapshot(tmp_path)
    assert {path: after[path] for path in before if path != train_prfdn.output_paths(out)["log"]} == {
        path: content for path, content in before.items() if path != train_prfdn.output_paths(out)["log"]
    }  # the log has iteration 9's record (truncated away by the next --resume); every other file is as it was
    assert set(after) == set(before)


def test_a_full_disk_while_logging_names_the_log(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    log = training_loop.JsonlLog(tmp_path / "out.log.jsonl")

    def full(*args: Any, **kwargs: Any) -> Any:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr("builtins.open", full)
    with pytest.raises(OSError, match=r"cannot write .*out\.log\.jsonl: No space left on device"):
        log({"iter": 1})


def test_a_config_file_gives_the_settings_the_command_line_leaves_out(tmp_path: Path) -> None:
    config = tmp_path / "cycle.json"
    config.write_text(
        json.dumps(
            {
                "_note": "a comment",
                "data_root": "/data",
                "train_dir": ["{data_root}/a"],
                "lr": 2,
                "mix": [3, 1],
                "schedule": "cosine",
                "skip_small": True,
                "warmup": 7,
            }
        )
    )
    args = train_prfdn.parse_args(["src.pth", "out.pth", "--config", str(config), "--warmup", "9"])
    assert args.train_dir == ["/data/a"] and args.skip_small is True and args.schedule == "cosine"
    assert args.lr == 2.0 and isinstance(args.lr, float) and args.mix == [3.0, 1.0]  # as the flags would give them
    assert args.warmup == 9  # the command line wins
    assert args.iters is None and args.val_dir is None  # left out in both: the stage's default applies later


def test_the_shipped_cycle_config_parses() -> None:
    args = train_prfdn.parse_args(["src.pth", "out.pth", "--config", str(REPO_ROOT / "configs" / "train_cycle.json")])
    assert args.schedule == "cosine" and args.select == "worst_gap" and args.val_dir == "data/free/val"
    # the content the ablations chose: one sampling weight per folder, the photographs' and the free content's
    assert len(args.mix) == len(args.train_dir) + len(args.extra_train_dir) == 6


@pytest.mark.parametrize(
    "content, message",
    [
        ("{not json", "not a readable JSON config"),
        ("[1, 2]", "expected a JSON object (see configs/train_cycle.json), got a list"),
        ('{"warmpu": 10}', "unknown setting warmpu; expected one of"),
        ('{"lr": "2e-4"}', 'lr: expected a number, got the string "2e-4"'),
        ('{"schedule": "linear"}', "schedule: expected one of plateau, cosine"),
        ('{"train_dir": "-a"}', "train_dir: expected a list of folders"),
        ('{"lr": 1, "lr": 2}', "key 'lr' is given twice"),
    ],
)
def test_a_bad_config_file_is_one_line_exit_2(
    content: str, message: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "cycle.json"
    config.write_text(content)
    with pytest.raises(SystemExit) as stop:  # a usage mistake, as a bad flag is
        train_prfdn.cli(["src.pth", str(tmp_path / "out.pth"), "--config", str(config)])
    assert stop.value.code == 2
    err = capsys.readouterr().err
    assert f"--config {config}" in err and message in err and err.count("\n") == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cycle.json"]  # nothing written


def test_rare_settings_are_left_out_of_the_help_but_still_parse(capsys: pytest.CaptureFixture[str]) -> None:
    from training.flags import RARE_SETTINGS

    with pytest.raises(SystemExit):
        train_prfdn.parse_args(["--help"])
    shown = capsys.readouterr().out
    assert "--config FILE" in shown and "--lr LR" in shown and "--warmup" not in shown and "--grad_clip" not in shown
    assert all(name in shown for name in RARE_SETTINGS)  # named once, in --config's help
    assert train_prfdn.parse_args(["a.pth", "b.pth", "--warmup", "5", "--val_crop", "64"]).warmup == 5
