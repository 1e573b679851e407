"""Stages 4 and 5: concatenations as 1x1 convolutions, pruning with Torch-Pruning, the exact export, and every
stage's checkpoint evaluated through test_demo.py."""

from __future__ import annotations

import copy
import json
import os
from pathlib import Path

import pytest
import torch

import test_demo
from models.branch import BranchPRFDN
from models.helpers import HelperPRFDN, is_helper
from models.registry import model_config
from models.team13_PRFDN import PRFDN
from transform import export as export_stage
from transform import prune as prune_stage
from transform import reparam as reparam_stage
from transform.common import max_abs_difference
from transform.helpers import fold_helpers, with_helpers
from transform.prune import figures, figures_at_ratio, planned_result, prune, smaller
from transform.reparam import merge_branches
from utils.checkpoint import ModelCheckpoint, read_model_checkpoint, save_model_checkpoint
from utils.errors import HarnessError
from utils.model_io import load_model

X = torch.rand(1, 3, 40, 44) * 255


def _small_branch(seed: int = 0, nf: int = 16, srfdb_stages: int = 1) -> BranchPRFDN:
    torch.manual_seed(seed)
    branch = BranchPRFDN(nf=nf, srfdb_stages=srfdb_stages)
    for param in branch.parameters():
        param.data.uniform_(-0.08, 0.08)
    return branch


def _exact(a: torch.nn.Module, b: torch.nn.Module) -> float:
    return max_abs_difference(a.double(), b.double(), X.double())


@pytest.mark.parametrize("form", ["grouped", "dense"])
def test_concatenations_as_1x1_convs_are_exact(form: str) -> None:
    merged = merge_branches(_small_branch(), form)
    helper = with_helpers(merged)
    assert isinstance(helper, HelperPRFDN)
    assert not any("cat" in str(type(m)).lower() for m in helper.modules())
    assert _exact(merged, helper) < 1e-9
    assert all(not p.requires_grad for n, p in helper.named_parameters() if is_helper(n))


def test_prune_shrinks_keeps_shape_and_helpers_stay_selections() -> None:
    helper = with_helpers(merge_branches(_small_branch(), "dense"))
    before = figures(helper)
    pruned, history = prune(helper, ratio=0.5, steps=2)
    after = figures(pruned)
    assert after["params_M"] < before["params_M"] and after["flops_G"] < before["flops_G"]
    assert [h["step"] for h in history] == [0, 1, 2]
    assert pruned(X).shape == (1, 3, 160, 176) and pruned.upsampler[0].out_channels == 48
    for name, param in pruned.named_parameters():
        if is_helper(name):
            assert not param.requires_grad and set(param.unique().tolist()) <= {0.0, 1.0}
            assert (param[:, :, 0, 0].sum(1) <= 1).all()


def test_taylor_pruning_with_calibration_and_finetuning(tmp_path: Path) -> None:
    """The CLI path with training data: Taylor importance from calibration patches, fine-tuning between steps."""
    from utils.datasets import ensure_builtin_dataset

    train_dir = ensure_builtin_dataset()[0].hr_path.parent
    merged = _save(tmp_path / "merged.pth", merge_branches(_small_branch(4), "dense"))
    argv = ["--ratio", "0.4", "--steps", "2", "--train_dir", str(train_dir), "--val_fraction", "0.2", "--patch_size", "16"]
    argv += ["--batch_size", "2", "--calibration_patches", "4", "--finetune_iters", "2", "--device", "cpu"]
    assert prune_stage.main([str(merged), str(tmp_path / "pruned.pth"), *argv]) == 0
    record = read_model_checkpoint(tmp_path / "pruned.pth").provenance
    assert record["importance"] == "taylor" and record["finetune_iters"] == 2 and record["data"]["train_images"] == 4
    pruned = load_model(read_model_checkpoint(tmp_path / "pruned.pth"))
    for name, param in pruned.named_parameters():  # placements survived fine-tuning untouched: still selections
        if is_helper(name):
            assert set(param.unique().tolist()) <= {0.0, 1.0}


def test_prune_to_a_budget() -> None:
    helper = with_helpers(merge_branches(_small_branch(), "dense"))
    target = 0.4 * figures(helper)["params_M"] * 1e6
    pruned, history = prune(helper, ratio=0.9, steps=10, target_params=target)
    assert figures(pruned)["params_M"] * 1e6 <= target and len(history) < 11


@pytest.mark.parametrize("budget", [{}, {"target_params": 0.5}, {"target_flops": 0.7}])
def test_planned_result_is_where_pruning_ends(budget: dict[str, float]) -> None:
    helper = with_helpers(merge_branches(_small_branch(), "dense"))
    start = figures(helper)
    units = {"target_params": start["params_M"] * 1e6, "target_flops": start["flops_G"] * 1e9}
    targets = {key: share * units[key] for key, share in budget.items()}
    with pytest.raises(HarnessError, match=r"budget not reached at --ratio 0\.1"):
        planned_result(helper, ratio=0.1, steps=2, target_params=0.1 * start["params_M"] * 1e6)
    plan = planned_result(helper, ratio=0.8, steps=6, **targets)
    _, history = prune(helper, ratio=0.8, steps=6, **targets)  # prunes helper itself
    assert plan == history[-1] and (plan["step"] < 6) == bool(budget)


@pytest.mark.parametrize("srfdb_stages", [1, 3])
def test_export_is_exact_and_leaves_no_helper(srfdb_stages: int) -> None:
    """Every cut (transform.branch --variant) prunes and exports exactly."""
    pruned, _ = prune(with_helpers(merge_branches(_small_branch(srfdb_stages=srfdb_stages), "dense")), ratio=0.4, steps=2)
    final = fold_helpers(pruned)
    assert type(final) is PRFDN and not any(is_helper(n) for n, _ in final.named_modules())
    assert _exact(pruned, final) < 1e-9
    # the exported join (concatenation or gather) goes back to the pruning form exactly, too
    assert _exact(final, with_helpers(final)) < 1e-9


def test_export_refuses_trained_join_placements() -> None:
    helper = with_helpers(merge_branches(_small_branch(), "dense"))
    with torch.no_grad():
        helper.join_rest.weight[0, 1, 0, 0] = 0.5
    with pytest.raises(Exception, match="no longer a 0/1 selection"):
        fold_helpers(helper)


def _save(path: Path, model: torch.nn.Module) -> Path:
    arch, config = model_config(model)
    save_model_checkpoint(path, ModelCheckpoint(arch, config, model.state_dict(), provenance={"stage": "test"}))
    return path


@pytest.fixture(scope="module")
def stage_checkpoints(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """branch -> merged (grouped) -> pruned -> final, through the stage CLIs, on a small random network."""
    root = tmp_path_factory.mktemp("stages")
    paths = {
        "branch": _save(root / "branch.pth", _small_branch(3)),
        **{s: root / f"{s}.pth" for s in ("merged", "pruned", "final")},
    }
    assert reparam_stage.main([str(paths["branch"]), str(paths["merged"])]) == 0
    prune_argv = ["--ratio", "0.5", "--steps", "2", "--importance", "magnitude"]
    assert prune_stage.main([str(paths["merged"]), str(paths["pruned"]), *prune_argv]) == 0
    assert export_stage.main([str(paths["pruned"]), str(paths["final"])]) == 0
    return paths


def test_minimal_prune_command_and_pruning_a_final_model_again(stage_checkpoints: dict[str, Path], tmp_path: Path) -> None:
    """``--ratio R`` alone works (magnitude importance without data); an exported final model prunes and exports again."""
    again, final = tmp_path / "again.pth", tmp_path / "final2.pth"
    assert prune_stage.main([str(stage_checkpoints["final"]), str(again), "--ratio", "0.3", "--steps", "1"]) == 0
    assert read_model_checkpoint(again).provenance["importance"] == "magnitude"
    assert export_stage.main([str(again), str(final)]) == 0
    assert max_abs_difference(load_model(read_model_checkpoint(again)), load_model(read_model_checkpoint(final))) <= 1e-3


def test_train_prfdn_keeps_placements_of_a_pruned_checkpoint(stage_checkpoints: dict[str, Path], tmp_path: Path) -> None:
    from training import run as train_prfdn
    from utils.datasets import ensure_builtin_dataset

    train_dir = str(ensure_builtin_dataset()[0].hr_path.parent)
    out = tmp_path / "trained.pth"
    argv = [str(stage_checkpoints["pruned"]), str(out), "--train_dir", train_dir, "--iters", "3", "--batch_size", "2"]
    assert (
        train_prfdn.cli([*argv, "--patch_size", "16", "--val_every", "3", "--lr", "1e-3", "--device", "cpu", "--no_progress"])
        == 0
    )
    before = read_model_checkpoint(stage_checkpoints["pruned"]).state_dict
    after = read_model_checkpoint(tmp_path / "trained_last.pth").state_dict
    changed = [k for k in before if not torch.equal(before[k], after[k])]
    assert changed and not any(is_helper(k) for k in changed)


def test_stage_checkpoints_are_self_describing(stage_checkpoints: dict[str, Path]) -> None:
    expected = {"branch": "branch", "merged": "prfdn", "pruned": "prfdn_helpers", "final": "prfdn"}
    for stage, path in stage_checkpoints.items():
        raw = torch.load(path, weights_only=True)
        assert raw["arch"] == expected[stage] and raw["scale"] == 4 and raw["data_range"] == 255.0
        assert set(raw) >= {"format", "config", "state_dict", "provenance"}
    final = read_model_checkpoint(stage_checkpoints["final"])
    assert final.provenance["stage"] == "final" and final.provenance["parent_provenance"]["stage"] == "pruned"
    assert final.provenance["parent_sha256"] and final.provenance["max_abs_difference"] <= 1e-3
    pruned = read_model_checkpoint(stage_checkpoints["pruned"])
    assert pruned.provenance["after"]["params_M"] < pruned.provenance["before"]["params_M"]
    assert max_abs_difference(load_model(pruned), load_model(final)) <= 1e-3


def test_every_stage_evaluates_through_test_demo(
    stage_checkpoints: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    for path in stage_checkpoints.values():
        assert test_demo.cli(["--model_id", "13", "--model_path", str(path), "--device", "cpu", "--warmup", "0"]) == 0
    results = json.loads(Path("results.json").read_text())
    assert set(results) == {f"13_PRFDN@{stage}" for stage in stage_checkpoints}
    # the pruned model and its export are the same network: same scores
    assert results["13_PRFDN@pruned"]["builtin_psnr"] == pytest.approx(results["13_PRFDN@final"]["builtin_psnr"], abs=1e-3)
    assert results["13_PRFDN@final"]["num_parameters"] < results["13_PRFDN@merged"]["num_parameters"]


def test_stage_errors(stage_checkpoints: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert export_stage.main([str(stage_checkpoints["merged"]), str(tmp_path / "x.pth")]) == 2
    assert "is a 'prfdn' checkpoint; export takes prfdn_helpers" in capsys.readouterr().err
    assert prune_stage.main([str(stage_checkpoints["branch"]), str(tmp_path / "x.pth")]) == 2
    assert "pruning takes prfdn or prfdn_helpers" in capsys.readouterr().err
    merged = str(stage_checkpoints["merged"])
    assert prune_stage.main([merged, str(tmp_path / "x.pth"), "--finetune_iters", "5", "--importance", "magnitude"]) == 2
    assert "--finetune_iters needs --train_dir" in capsys.readouterr().err
    assert prune_stage.main([merged, str(tmp_path / "x.pth"), "--importance", "taylor"]) == 2
    assert "--importance taylor needs calibration patches" in capsys.readouterr().err
    for flag, value, shown in (
        ("--calibration_patches", "0", "0"),
        ("--calibration_patches", "1000000000", "1000000000"),
        ("--batch_size", "100000", "100000"),
        ("--round_to", "0", "0"),
        ("--ratio", "1.5", "1.5"),
        ("--target_params", "-5", "-5.0"),
    ):
        assert prune_stage.main([merged, str(tmp_path / "x.pth"), flag, value]) == 2
        assert f"{flag} {shown}: must" in capsys.readouterr().err
    assert not (tmp_path / "x.pth").exists()


@pytest.mark.parametrize("failure", [OSError(28, "No space left on device"), RuntimeError("iostream error")])
def test_export_on_a_full_disk_is_one_line_and_keeps_the_earlier_file(
    stage_checkpoints: dict[str, Path],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    failure: Exception,
) -> None:
    """Python's file write or torch's own writer fails (the disk is full): one line saying so, the DST there stays whole."""
    import shutil

    dst = tmp_path / "final.pth"
    dst.write_bytes(stage_checkpoints["final"].read_bytes())

    def full_disk(*args: object, **kwargs: object) -> None:
        raise failure

    monkeypatch.setattr(torch, "save", full_disk)
    monkeypatch.setattr(shutil, "disk_usage", lambda path: shutil._ntuple_diskusage(1 << 40, (1 << 40) - 4096, 4096))
    assert export_stage.main([str(stage_checkpoints["pruned"]), str(dst), "--overwrite"]) == 2
    err = capsys.readouterr().err
    assert err == f"transform.export: error: [Errno 28] cannot write {dst}: No space left on device\n"
    assert dst.read_bytes() == stage_checkpoints["final"].read_bytes() and sorted(tmp_path.iterdir()) == [dst]


def test_stage_clis_refuse_a_dst_that_is_an_input_and_bad_flags_before_any_work(
    stage_checkpoints: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from utils.datasets import ensure_builtin_dataset

    train_dir = str(ensure_builtin_dataset()[0].hr_path.parent)
    merged, pruned, branch = (str(stage_checkpoints[s]) for s in ("merged", "pruned", "branch"))
    (tmp_path / "merged_link.pth").symlink_to(merged)
    os.link(pruned, tmp_path / "pruned_hard.pth")
    before = {path: path.read_bytes() for path in stage_checkpoints.values()}
    teacher = str(tmp_path / "teacher.pth")
    cases = [
        (reparam_stage, [branch, branch], "is the same file as SRC"),
        (prune_stage, [merged, str(tmp_path / "merged_link.pth")], "is the same file as SRC"),
        (export_stage, [pruned, str(tmp_path / "pruned_hard.pth")], "is the same file as SRC"),
        (prune_stage, [merged, teacher, "--teacher", teacher], "is the same file as --teacher"),
        (export_stage, [pruned, str(tmp_path)], "is a folder; expected a file name"),
        (export_stage, [str(tmp_path), str(tmp_path / "x.pth")], f"{tmp_path}: is a folder; expected a checkpoint file"),
        (export_stage, [pruned, f"{pruned}/final.pth"], "is not a folder"),
        # the network takes no LR patch under MIN_INPUT_SIZE: refused, not a crash in the calibration pass
        (prune_stage, [merged, str(tmp_path / "x.pth"), "--train_dir", train_dir, "--patch_size", "14"], "--patch_size 14: must"),
        # fine-tuning settings are checked before the first pruning step, not after it
        (
            prune_stage,
            [merged, str(tmp_path / "x.pth"), "--train_dir", train_dir, "--finetune_iters", "1", "--lr", "nan"],
            "--lr nan: must be positive and finite",
        ),
        (prune_stage, [merged, str(tmp_path / "x.pth"), "--seed", "-2"], "--seed -2: must not be negative"),
        # a teacher is checked whenever given, also where no fine-tuning would use it
        (
            prune_stage,
            [merged, str(tmp_path / "x.pth"), "--importance", "magnitude", "--teacher", str(tmp_path / "nonexistent.pth")],
            f"--teacher {tmp_path / 'nonexistent.pth'}: checkpoint file not found",
        ),
        # data flags that are not used (magnitude, no fine-tuning) are still checked, without reading the images
        (
            prune_stage,
            [merged, str(tmp_path / "x.pth"), "--importance", "magnitude", "--train_dir", str(tmp_path / "missing")],
            f"--train_dir {tmp_path / 'missing'}: folder not found",
        ),
    ]
    for stage, argv, expected in cases:
        assert stage.main(argv) == 2, argv
        captured = capsys.readouterr()
        assert captured.err.count("\n") == 1 and expected in captured.err, captured.err
        assert not captured.out, captured.out  # no work done
    assert {path: path.read_bytes() for path in stage_checkpoints.values()} == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["merged_link.pth", "pruned_hard.pth"]


def test_taylor_gradients_in_chunks_equal_the_one_pass_mean() -> None:
    """--calibration_patches go through the network --batch_size at a time; each chunk's loss weighted by its share
    gives the gradients of the mean over all patches in one pass."""
    from transform.prune import compute_gradients

    model = with_helpers(merge_branches(_small_branch(5, nf=8), "dense")).double()
    torch.manual_seed(0)
    calibration = (torch.rand(5, 3, 16, 16, dtype=torch.float64) * 255, torch.rand(5, 3, 64, 64, dtype=torch.float64) * 255)
    compute_gradients(model, calibration)
    one_pass = {name: param.grad.clone() for name, param in model.named_parameters()}
    sizes: list[int] = []
    hook = model.register_forward_pre_hook(lambda module, inputs: sizes.append(inputs[0].shape[0]))
    compute_gradients(model, calibration, batch_size=2)
    hook.remove()
    assert sizes == [2, 2, 1]
    for name, param in model.named_parameters():
        torch.testing.assert_close(param.grad, one_pass[name], msg=name)


def test_prune_by_magnitude_without_finetuning_reads_no_training_images(
    stage_checkpoints: dict[str, Path], tmp_path: Path
) -> None:
    """Images too small for the patch size do not matter where no patch is drawn: they are not even decoded."""
    import cv2
    from skimage import data as skimage_data

    from utils.image import imsave

    imsave(cv2.resize(skimage_data.chelsea(), (40, 30)), tmp_path / "small" / "chelsea.png")
    out = tmp_path / "pruned.pth"
    argv = ["--ratio", "0.5", "--steps", "2", "--importance", "magnitude", "--train_dir", str(tmp_path / "small")]
    assert prune_stage.main([str(stage_checkpoints["merged"]), str(out), *argv]) == 0
    assert read_model_checkpoint(out).provenance["data"] is None


# --- the input's own size is a budget: pruning never returns a network that is not smaller ------------------


def _merged_checkpoint(path: Path, form: str) -> Path:
    return _save(path, merge_branches(_small_branch(5, nf=8), form))


def _exported_figures(path: Path) -> dict[str, float]:
    return figures(load_model(read_model_checkpoint(path)))


@pytest.mark.parametrize(
    ("form", "ratio", "shrinks"), [("grouped", "0.3", False), ("grouped", "0.5", True), ("dense", "0.3", True)]
)
def test_pruning_never_grows_the_input(
    form: str, ratio: str, shrinks: bool, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A grouped merge is about 3.4x smaller than the dense form pruning works on: a small ratio is refused
    (one line, nothing written), a large enough one gives a smaller network; a dense input shrinks at any ratio."""
    merged, out = _merged_checkpoint(tmp_path / "merged.pth", form), tmp_path / "pruned.pth"
    code = prune_stage.main([str(merged), str(out), "--ratio", ratio, "--steps", "2", "--importance", "magnitude"])
    output = capsys.readouterr()
    assert ("converted to its dense form for pruning" in output.out) == (form == "grouped")
    if shrinks:
        assert code == 0
        before, after = _exported_figures(merged), _exported_figures(out)
        assert after["params_M"] < before["params_M"] and after["flops_G"] < before["flops_G"]
        assert read_model_checkpoint(out).provenance["input_form"] == form
    else:
        assert code == 2 and not out.exists() and "step 1/2" not in output.out
        error = output.err.strip()
        assert len(error.splitlines()) == 1 and f"--ratio {ratio} gives" in error and "not smaller than the input" in error
        assert "transform.reparam --form dense" in error


def test_readme_stage_commands_with_defaults_shrink(tmp_path: Path) -> None:
    """``transform.reparam`` in its default (grouped) form, then ``transform.prune`` with only ``--ratio``, then export."""
    paths = {name: tmp_path / f"{name}.pth" for name in ("merged", "pruned", "final")}
    branch = _save(tmp_path / "branch.pth", _small_branch(5, nf=8))
    assert reparam_stage.main([str(branch), str(paths["merged"])]) == 0
    assert read_model_checkpoint(paths["merged"]).config["rfdb_groups"] == 4
    assert prune_stage.main([str(paths["merged"]), str(paths["pruned"]), "--ratio", "0.5"]) == 0
    assert export_stage.main([str(paths["pruned"]), str(paths["final"])]) == 0
    before, after = _exported_figures(paths["merged"]), _exported_figures(paths["final"])
    assert after["params_M"] < before["params_M"] and after["flops_G"] < before["flops_G"]


def test_budget_above_the_input_stops_once_smaller_than_the_input(tmp_path: Path) -> None:
    """A budget the grouped input already meets: the steps still go on until the network is smaller than the input."""
    merged, out = _merged_checkpoint(tmp_path / "merged.pth", "grouped"), tmp_path / "pruned.pth"
    argv = ["--target_params", "1e9", "--ratio", "0.8", "--steps", "4", "--importance", "magnitude"]
    assert prune_stage.main([str(merged), str(out), *argv]) == 0
    record = read_model_checkpoint(out).provenance
    assert record["after"]["params_M"] < record["before"]["params_M"] and record["after"]["flops_G"] < record["before"]["flops_G"]
    # steps at 0.2 and 0.4 of the dense form are still larger than the grouped input; 0.6 is the first below it
    assert [h["params_M"] < record["before"]["params_M"] for h in record["history"]] == [False, False, False, True]
    assert record["steps_done"] == 3


def test_unreachable_budget_is_refused_before_any_step(capsys: pytest.CaptureFixture[str]) -> None:
    helper = with_helpers(merge_branches(_small_branch(5, nf=8), "dense"))
    with pytest.raises(HarnessError, match=r"budget not reached at --ratio 0.2: its last step gives"):
        prune(helper, ratio=0.2, steps=2, target_params=100)
    assert "step 1/2" not in capsys.readouterr().out


def test_same_size_is_not_smaller() -> None:
    size = {"params_M": 0.5, "flops_G": 30.0}
    assert not smaller(size, size)
    assert not smaller({"params_M": 0.4, "flops_G": 30.0}, size) and not smaller({"params_M": 0.5, "flops_G": 20.0}, size)
    assert smaller({"params_M": 0.4, "flops_G": 20.0}, size)


def test_widths_do_not_depend_on_the_ranking() -> None:
    """What the up-front check relies on: the same schedule ranked by magnitude on a copy gives the size of any run."""
    helper = with_helpers(merge_branches(_small_branch(5, nf=8), "dense"))
    predicted = figures_at_ratio(helper, 0.5, 3, round_to=4)
    torch.manual_seed(0)
    calibration = (torch.rand(2, 3, 20, 20) * 255, torch.rand(2, 3, 80, 80) * 255)
    pruned, history = prune(helper, ratio=0.5, steps=3, round_to=4, importance="taylor", calibration=calibration)
    assert predicted == figures(pruned) == {k: v for k, v in history[-1].items() if k != "step"}


def test_the_tracing_size_does_not_change_the_pruning(monkeypatch: pytest.MonkeyPatch) -> None:
    """The small tracing input (prune_stage.EXAMPLE_SIZE) gives the graph, and so the channels, of a large one."""
    torch.manual_seed(0)
    helper = with_helpers(merge_branches(_small_branch(5, nf=8), "dense"))
    pruned = {}
    for size in (prune_stage.EXAMPLE_SIZE, 64):
        monkeypatch.setattr(prune_stage, "EXAMPLE_SIZE", size)
        pruned[size] = prune(copy.deepcopy(helper), ratio=0.5, steps=2, importance="magnitude")[0].state_dict()
    small, large = pruned.values()
    assert small.keys() == large.keys() and all(torch.equal(small[key], large[key]) for key in small)


def test_a_round_to_that_prunes_nothing_is_named() -> None:
    helper = with_helpers(merge_branches(_small_branch(5, nf=8), "dense"))
    with pytest.raises(HarnessError, match=r"--round_to 512: at --ratio 0.5 no layer loses a whole multiple of 512"):
        prune(helper, ratio=0.5, steps=2, round_to=512)


def test_changed_settings_name_what_a_pruned_file_was_made_otherwise_with() -> None:
    args = prune_stage.parse_args(["SRC.pth", "DST.pth", "--ratio", "0.6", "--steps", "3", "--device", "cpu"])
    checked = prune_stage.parse_args(["SRC.pth", "DST.pth", "--ratio", "0.6", "--steps", "3"])
    prune_stage._check_arguments(checked)
    record = {"arguments": prune_stage.recorded_arguments(checked)}  # made without --device
    assert prune_stage.changed_settings(record, args) == []  # where it ran is not what it made
    assert args.importance == "auto"  # the caller's arguments stay as given
    other = prune_stage.parse_args(["SRC.pth", "DST.pth", "--ratio", "0.6", "--steps", "3", "--lr", "3e-5"])
    assert prune_stage.changed_settings(record, other) == [("lr", None, 3e-5)]
    assert prune_stage.describe_change(("lr", None, 3e-5)) == "lr unset (the default), the config now gives 3e-05"
    early = {"ratio": 0.6, "steps": 2, "finetune_iters": 0, "round_to": None, "target_params": None, "target_flops": None}
    assert prune_stage.changed_settings(early, other) == [("steps", 2, 3)]  # only what an early record has


def test_prune_chain_prunes_rfdn_directly_to_a_budget(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The control of docs/depth.md: RFDN pruned without branching, an rfdn_chain checkpoint within the budget."""
    from models.team00_RFDN import RFDN
    from transform import prune_chain

    torch.manual_seed(0)
    torch.save(RFDN().state_dict(), tmp_path / "rfdn.pth")  # the official checkpoint's format
    dst = tmp_path / "control.pth"
    argv = [str(tmp_path / "rfdn.pth"), str(dst), "--target_params", "300000", "--ratio", "0.8", "--steps", "8"]
    assert prune_chain.main(argv) == 0
    out = read_model_checkpoint(dst)
    assert out.arch == "rfdn_chain" and out.provenance["stage"] == "prune_chain"
    assert out.provenance["after"]["params_M"] * 1e6 <= 300000 < out.provenance["history"][-2]["params_M"] * 1e6
    model = load_model(out).eval()
    assert model(torch.rand(1, 3, 16, 20) * 255).shape == (1, 3, 64, 80)
    capsys.readouterr()
    assert (
        prune_chain.main([str(tmp_path / "rfdn.pth"), str(tmp_path / "x.pth"), "--target_params", "1000", "--ratio", "0.3"]) == 2
    )
    assert "--ratio 0.3: pruned to it, the network is still" in capsys.readouterr().err
    assert not (tmp_path / "x.pth").exists()


def test_prune_chain_prunes_as_the_pipeline_does_taylor_and_fine_tuning(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The control pruned like the merged PRFDN: Taylor importance on training patches, the training loop after
    each step (distilling from RFDN), the settings recorded; a missing --train_dir is refused before any work."""
    from models.team00_RFDN import RFDN
    from transform import prune_chain
    from utils.datasets import ensure_builtin_dataset

    torch.manual_seed(0)
    torch.save(RFDN().state_dict(), tmp_path / "rfdn.pth")
    train_dir = str(ensure_builtin_dataset()[0].hr_path.parent)
    dst = tmp_path / "control.pth"
    argv = [str(tmp_path / "rfdn.pth"), str(dst), "--ratio", "0.3", "--steps", "2", "--finetune_iters", "2"]
    argv += ["--train_dir", train_dir, "--val_fraction", "0.2", "--patch_size", "16", "--batch_size", "2"]
    argv += ["--calibration_patches", "2", "--teacher", str(tmp_path / "rfdn.pth"), "--device", "cpu"]
    assert prune_chain.main(argv) == 0
    out = capsys.readouterr().out
    assert out.count("fine-tuned 2 iterations") == 2 and "step 2/2" in out
    record = read_model_checkpoint(dst).provenance
    assert record["arguments"]["importance"] == "taylor" and record["arguments"]["finetune_iters"] == 2
    assert record["after"]["params_M"] < record["before"]["params_M"]
    assert prune_chain.main([str(tmp_path / "rfdn.pth"), str(tmp_path / "x.pth"), "--finetune_iters", "1"]) == 2
    assert "--finetune_iters needs --train_dir" in capsys.readouterr().err and not (tmp_path / "x.pth").exists()


def test_rare_pruning_flags_are_left_out_of_the_help_but_still_parse(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        prune_stage.parse_args(["--help"])
    shown = capsys.readouterr().out
    assert "--ratio RATIO" in shown and "--finetune_iters" in shown and "--calibration_patches CALIBRATION" not in shown
    assert "Also accepted, rarely changed: --calibration_patches," in " ".join(shown.split())  # named once, at the end
    args = prune_stage.parse_args(["a.pth", "b.pth", "--calibration_patches", "8", "--val_crop", "64", "--seed", "3"])
    assert (args.calibration_patches, args.val_crop, args.seed) == (8, 64, 3)
