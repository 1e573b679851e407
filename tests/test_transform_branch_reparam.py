"""Stages 1 and 3: branching from RFDN, and the exact re-parametrization of the branches."""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import pytest
import torch

from models.branch import BranchPRFDN
from models.team00_RFDN import RFDN
from models.team13_PRFDN import PRFDN
from transform import branch as branch_stage
from transform import reparam as reparam_stage
from transform.branch import branch_from_rfdn
from transform.common import check_equivalent, max_abs_difference
from transform.reparam import merge_branches
from utils.checkpoint import read_model_checkpoint
from utils.errors import HarnessError
from utils.model_io import load_model


def _random_rfdn_state(seed: int = 0) -> dict[str, torch.Tensor]:
    torch.manual_seed(seed)
    return RFDN().state_dict()


def test_branch_loads_exactly_the_rfdn_tensors_it_claims() -> None:
    rfdn = _random_rfdn_state()
    model, report = branch_from_rfdn(rfdn)
    state = model.state_dict()
    assert sorted(report.loaded.values()) == sorted(rfdn)  # every RFDN tensor has a place, each used once
    for target, source in report.loaded.items():
        assert torch.equal(state[target], rfdn[source]), target
    assert report.loaded["head1.weight"] == "fea_conv.weight" and report.loaded["B3.esa.conv4.bias"] == "B3.esa.conv4.bias"
    new_modules = {key.split(".")[0] for key in report.initialized}
    assert new_modules == {"head2", "head3", "head4", "srfdb2", "srfdb3", "srfdb4"}
    assert set(report.loaded).isdisjoint(report.initialized) and set(report.loaded) | set(report.initialized) == set(state)
    # the documented starting points: heads copy fea_conv, SRFDBs start from B1's first stage
    assert torch.equal(state["head3.weight"], rfdn["fea_conv.weight"])
    assert torch.equal(state["srfdb4.c1_r.weight"], rfdn["B1.c1_r.weight"])
    assert torch.equal(state["srfdb2.c5.weight"], torch.cat([rfdn["B1.c5.weight"][:, :25], rfdn["B1.c5.weight"][:, 75:]], 1))


def test_branch_refuses_an_rfdn_with_missing_tensors() -> None:
    rfdn = _random_rfdn_state()
    del rfdn["B2.c4.bias"]
    with pytest.raises(HarnessError, match=r"not an RFDN state dict \(nf=50\): 1 missing \(e.g. B2.c4.bias\)"):
        branch_from_rfdn(rfdn)


def test_branch_says_what_it_loaded_in_one_line_and_lists_it_with_verbose(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A pipeline run prints the branching's summary, not a line per tensor; --verbose lists them."""
    torch.save(_random_rfdn_state(), tmp_path / "rfdn.pth")
    assert branch_stage.main([str(tmp_path / "rfdn.pth"), str(tmp_path / "branch.pth")]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("loaded 128 tensors from RFDN (every one it has); 72 new ones") and "--verbose" in out[0]
    assert len(out) == 2 and out[1].startswith(f"wrote {tmp_path / 'branch.pth'}")
    assert branch_stage.main([str(tmp_path / "rfdn.pth"), str(tmp_path / "branch.pth"), "--overwrite", "--verbose"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert "  head1.weight                 <- fea_conv.weight" in out and len(out) == 1 + 128 + 1 + 72 + 1


def test_deeper_cuts_start_their_srfdbs_from_b1_and_deep3_is_rfdns_first_two_blocks() -> None:
    rfdn_state = _random_rfdn_state(3)
    rfdn = RFDN()
    rfdn.load_state_dict(rfdn_state)
    x = torch.rand(1, 3, 20, 24) * 255
    for variant, stages in (("deep2", 2), ("deep3", 3)):
        model, _ = branch_from_rfdn(rfdn_state, variant=variant)
        state = model.state_dict()
        assert model.config["srfdb_stages"] == stages and f"srfdb3.c{stages}_r.weight" in state
        assert torch.equal(state["srfdb3.c2_r.weight"], rfdn_state["B1.c2_r.weight"])
        c5 = rfdn_state["B1.c5.weight"]
        expected = c5 if stages == 3 else torch.cat([c5[:, : 25 * stages], c5[:, 75:]], 1)
        assert torch.equal(state["srfdb2.c5.weight"], expected)
    with torch.no_grad():  # deep3: branch 2 computes RFDN's B2(B1(fea_conv(x))) exactly
        _, outs = model.eval().branch_outputs(x)
        assert torch.equal(outs[1], rfdn.eval().B2(rfdn.B1(rfdn.fea_conv(x))))


@pytest.mark.parametrize("form, stages", [("grouped", 1), ("dense", 1), ("grouped", 3), ("dense", 2)])
def test_reparam_is_exact_on_random_weights(form: str, stages: int) -> None:
    torch.manual_seed(1)
    branch = BranchPRFDN(nf=8, srfdb_stages=stages)
    for param in branch.parameters():  # random weights everywhere, small enough to keep features bounded
        param.data.uniform_(-0.1, 0.1)
    merged = merge_branches(branch, form)
    x = torch.rand(1, 3, 40, 36) * 255
    assert max_abs_difference(branch.double(), merged.double(), x.double()) < 1e-9
    assert max_abs_difference(branch.float(), merged.float(), x) < 1e-3


def test_dense_form_is_block_diagonal_with_exact_zeros() -> None:
    torch.manual_seed(2)
    branch = BranchPRFDN(nf=8)
    dense = merge_branches(branch, "dense")
    weight = dense.rfdb.c1_r.weight  # 4 branches of 8 channels
    for g in range(4):
        for h in range(4):
            block = weight[8 * g : 8 * (g + 1), 8 * h : 8 * (h + 1)]
            assert (block != 0).any() if g == h else (block == 0).all()
    grouped = merge_branches(branch, "grouped")
    assert sum(p.numel() for p in grouped.parameters()) == sum(p.numel() for p in branch.parameters())
    assert grouped.rfdb.c1_r.groups == 4 and dense.rfdb.c1_r.groups == 1


def test_equivalence_check_refuses_a_wrong_merge() -> None:
    branch, _ = branch_from_rfdn(_random_rfdn_state())
    merged = merge_branches(branch, "grouped")
    check_equivalent(branch, merged, "random RFDN weights")
    with torch.no_grad():
        merged.rfdb.c2_r.weight[60, 0, 1, 1] += 0.5  # one weight of branch 2 off
    with pytest.raises(HarnessError, match="not equivalent"):
        check_equivalent(branch, merged, "perturbed")


@pytest.mark.parametrize("form", ["grouped", "dense"])
def test_stage_clis_on_the_real_rfdn(tmp_path: Path, rfdn_checkpoint: Path, form: str) -> None:
    branch_path, merged_path = tmp_path / "branch.pth", tmp_path / "merged.pth"
    assert branch_stage.main([str(rfdn_checkpoint), str(branch_path)]) == 0
    assert reparam_stage.main([str(branch_path), str(merged_path), "--form", form]) == 0
    branch_ckpt, merged_ckpt = read_model_checkpoint(branch_path), read_model_checkpoint(merged_path)
    assert (branch_ckpt.arch, merged_ckpt.arch) == ("branch", "prfdn")
    assert merged_ckpt.provenance["stage"] == "merged" and merged_ckpt.provenance["form"] == form
    assert merged_ckpt.provenance["max_abs_difference"] <= 1e-3
    assert merged_ckpt.provenance["parent_provenance"]["stage"] == "branch"
    torch.load(merged_path, weights_only=True)  # safe to load
    branch, merged = load_model(branch_ckpt), load_model(merged_ckpt)
    assert isinstance(merged, PRFDN) and max_abs_difference(branch, merged) <= 1e-3


def test_stage_clis_refuse_wrong_stage_and_corrupt_input(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rfdn_path = tmp_path / "rfdn.pth"
    torch.save(_random_rfdn_state(), rfdn_path)
    assert reparam_stage.main([str(rfdn_path), str(tmp_path / "out.pth")]) == 2
    assert "is a 'rfdn' checkpoint; re-parametrization takes branch" in capsys.readouterr().err
    (tmp_path / "corrupt.pth").write_bytes(b"not a checkpoint")
    assert branch_stage.main([str(tmp_path / "corrupt.pth"), str(tmp_path / "out.pth")]) == 2
    assert "not a loadable weights-only checkpoint" in capsys.readouterr().err
    assert not (tmp_path / "out.pth").exists()
    missing = tmp_path / "model_zoo" / "team00_rfdn.pth"  # the third-party checkpoint: where to get it
    assert branch_stage.main([str(missing), str(tmp_path / "out.pth")]) == 2
    err = capsys.readouterr().err
    assert f"{missing}: checkpoint file not found (the official RFDN checkpoint: model_zoo/team00_rfdn.pth of the" in err
    assert len(err.strip().splitlines()) == 1 and not (tmp_path / "out.pth").exists()
    assert branch_stage.main([str(tmp_path / "other.pth"), str(tmp_path / "out.pth")]) == 2
    assert capsys.readouterr().err.strip().endswith("other.pth: checkpoint file not found")


def test_stages_refuse_weights_that_are_not_finite_naming_the_file(
    feature_fit_inputs: dict[str, str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A diverged training's weights (NaN, infinity) as SRC or --rfdn: refused before any work, naming the file."""
    from transform import feature_fit

    state = _random_rfdn_state()
    state["B3.c5.bias"][2] = float("nan")
    torch.save(state, tmp_path / "nan_rfdn.pth")
    branch = read_model_checkpoint(feature_fit_inputs["branch"])
    branch.state_dict["srfdb2.c4.weight"].view(-1)[0] = float("-inf")
    from utils.checkpoint import save_model_checkpoint

    save_model_checkpoint(tmp_path / "inf_branch.pth", branch)
    cases = [
        (branch_stage.main, [str(tmp_path / "nan_rfdn.pth")], f"SRC {tmp_path / 'nan_rfdn.pth'}", "B3.c5.bias"),
        (reparam_stage.main, [str(tmp_path / "inf_branch.pth")], f"SRC {tmp_path / 'inf_branch.pth'}", "srfdb2.c4.weight"),
        (
            feature_fit.main,
            [
                feature_fit_inputs["branch"],
                "--rfdn",
                str(tmp_path / "nan_rfdn.pth"),
                "--train_dir",
                feature_fit_inputs["train_dir"],
            ],
            f"--rfdn {tmp_path / 'nan_rfdn.pth'}",
            "B3.c5.bias",
        ),
    ]
    for main, argv, named, tensor in cases:
        src, *flags = argv
        assert main([src, str(tmp_path / "out.pth"), *flags]) == 2
        err = capsys.readouterr().err
        assert f"{named}: weights hold values that are not finite (1 of " in err and f"in {tensor} are NaN or infinity" in err
        assert err.count("\n") == 1 and not (tmp_path / "out.pth").exists()


@pytest.mark.parametrize("fast", [False, True], ids=["fp32", "bf16+channels_last"])
def test_feature_fit_moves_only_the_new_layers_towards_rfdn_features(fast: bool) -> None:
    """Stage 1b: the loss falls on a fixed batch, RFDN's own tensors in the branch model stay bit-identical (also
    on the fast path: bf16 autocast with channels_last)."""
    from transform.feature_fit import feature_loss, fit_features

    torch.manual_seed(0)
    rfdn = RFDN().eval()
    model, _ = branch_from_rfdn(rfdn.state_dict())
    before = {k: v.clone() for k, v in model.state_dict().items()}
    batch = torch.rand(2, 3, 24, 24) * 255
    with torch.no_grad():
        loss_before = float(feature_loss(model, rfdn, batch))
    options = {"precision": "bf16", "channels_last": True} if fast else {}
    fit_features(model, rfdn, iter([batch] * 12), iters=12, lr=2e-3, log_every=10, **options)
    with torch.no_grad():
        loss_after = float(feature_loss(model, rfdn, batch))
    assert loss_after < 0.9 * loss_before
    new = ("head2", "head3", "head4", "srfdb2", "srfdb3", "srfdb4")
    for name, value in model.state_dict().items():
        changed = not torch.equal(value, before[name])
        if name.split(".")[0] not in new:
            assert not changed, name
    assert any(not torch.equal(model.state_dict()[n], before[n]) for n in before if n.startswith("srfdb3."))
    assert all(p.requires_grad for p in model.parameters())  # nothing left frozen for the next stage


def test_branch_errors_measure_each_new_branch_against_rfdns_features() -> None:
    """deep3's branch 2 is RFDN's B1 exactly (error 0); fitting lowers the seed cut's errors on unseen images."""
    import numpy as np

    from training.data import ValidationImage
    from transform.feature_fit import branch_errors, fit_features

    torch.manual_seed(0)
    rfdn = RFDN().eval()
    rng = np.random.default_rng(0)
    images = [
        ValidationImage(f"v{i}", rng.integers(0, 256, (20, 24, 3), dtype=np.uint8), np.zeros((80, 96, 3), np.uint8))
        for i in range(2)
    ]
    deep3, _ = branch_from_rfdn(rfdn.state_dict(), variant="deep3")
    errors = branch_errors(deep3, rfdn, images, 255.0, torch.device("cpu"))
    assert list(errors) == [2, 3, 4] and errors[2] < 1e-5 < min(errors[3], errors[4])
    seed, _ = branch_from_rfdn(rfdn.state_dict())
    before = branch_errors(seed, rfdn, images, 255.0, torch.device("cpu"))
    fit_features(seed, rfdn, iter([torch.rand(2, 3, 24, 24) * 255] * 12), iters=12, lr=2e-3, log_every=10)
    after = branch_errors(seed, rfdn, images, 255.0, torch.device("cpu"))
    assert sum(after.values()) < sum(before.values())
    assert branch_errors(seed, rfdn, [], 255.0, torch.device("cpu")) == {}


def test_feature_fit_cli_refuses_missing_data_and_wrong_rfdn(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from transform import feature_fit

    model, _ = branch_from_rfdn(RFDN().state_dict())
    torch.save(RFDN().state_dict(), tmp_path / "rfdn.pth")
    from transform.common import write_stage_output
    from utils.checkpoint import ModelCheckpoint

    write_stage_output(str(tmp_path / "b.pth"), model, ModelCheckpoint("rfdn", {}, {}), {"stage": "branch"})
    assert feature_fit.main([str(tmp_path / "b.pth"), str(tmp_path / "o.pth"), "--rfdn", str(tmp_path / "rfdn.pth")]) == 2
    assert "--train_dir" in capsys.readouterr().err
    argv = [str(tmp_path / "b.pth"), str(tmp_path / "o.pth"), "--rfdn", str(tmp_path / "b.pth"), "--train_dir", str(tmp_path)]
    assert feature_fit.main(argv) == 2
    assert "expected the official RFDN" in capsys.readouterr().err
    assert not (tmp_path / "o.pth").exists()


def test_stage_cli_refuses_a_dst_that_is_an_input_before_any_work(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """DST is SRC itself (the official RFDN, say), through a link, a hard link or another spelling; or cannot be written."""
    rfdn = tmp_path / "rfdn.pth"
    torch.save(_random_rfdn_state(), rfdn)
    (tmp_path / "alias.pth").symlink_to(rfdn)
    os.link(rfdn, tmp_path / "hard.pth")
    (tmp_path / "sub").mkdir()
    content = rfdn.read_bytes()
    for dst, expected in (
        (rfdn, "is the same file as SRC"),
        (tmp_path / "alias.pth", "is the same file as SRC"),
        (tmp_path / "hard.pth", "is the same file as SRC"),
        (tmp_path / "sub" / ".." / "rfdn.pth", "is the same file as SRC"),
        (tmp_path / "sub", "is a folder; expected a file name"),
        (rfdn / "branch.pth", f"{rfdn} is not a folder"),
    ):
        assert branch_stage.main([str(rfdn), str(dst)]) == 2
        captured = capsys.readouterr()
        assert captured.err.startswith(f"transform.branch: error: DST {dst}: ") and captured.err.count("\n") == 1
        assert expected in captured.err and not captured.out  # refused before any work
    assert rfdn.read_bytes() == content
    assert sorted(p.name for p in tmp_path.iterdir()) == ["alias.pth", "hard.pth", "rfdn.pth", "sub"]


@pytest.fixture(scope="module")
def feature_fit_inputs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """A branch checkpoint, the random RFDN it came from, and the built-in training images."""
    from transform.common import write_stage_output
    from utils.checkpoint import ModelCheckpoint
    from utils.datasets import ensure_builtin_dataset

    root = tmp_path_factory.mktemp("feature_fit")
    rfdn_state = _random_rfdn_state(3)
    torch.save(rfdn_state, root / "rfdn.pth")
    model, _ = branch_from_rfdn(rfdn_state)
    write_stage_output(str(root / "branch.pth"), model, ModelCheckpoint("rfdn", {}, {}), {"stage": "branch"})
    train_dir = str(ensure_builtin_dataset()[0].hr_path.parent)
    return {"branch": str(root / "branch.pth"), "rfdn": str(root / "rfdn.pth"), "train_dir": train_dir}


@pytest.mark.parametrize(
    "flags, expected",
    [
        # feature fitting has no teacher (its targets are --rfdn's features): refused, never silently ignored
        (
            ["--teacher", "teacher.pth", "--iters", "1", "--batch_size", "1", "--patch_size", "15"],
            "--teacher teacher.pth: feature fitting distils from no teacher",
        ),
        (["--patch_size", "14"], "--patch_size 14: must be at least 15 (LR pixels"),
        (["--val_crop", "8"], "--val_crop 8: must be at least 60 (HR pixels"),
        (["--lr", "inf"], "--lr inf: must be positive and finite"),
        (["--seed", "-1"], "--seed -1: must not be negative"),
        (["DST=--rfdn"], "is the same file as --rfdn"),
    ],
)
def test_feature_fit_cli_refuses_bad_flags_before_any_work(
    feature_fit_inputs: dict[str, str], tmp_path: Path, capsys: pytest.CaptureFixture[str], flags: list[str], expected: str
) -> None:
    from transform import feature_fit

    dst = feature_fit_inputs["rfdn"] if flags == ["DST=--rfdn"] else str(tmp_path / "fitted.pth")
    argv = [
        feature_fit_inputs["branch"],
        dst,
        "--rfdn",
        feature_fit_inputs["rfdn"],
        "--train_dir",
        feature_fit_inputs["train_dir"],
    ]
    content = Path(feature_fit_inputs["rfdn"]).read_bytes()
    assert feature_fit.main([*argv, *(f for f in flags if not f.startswith("DST="))]) == 2
    captured = capsys.readouterr()
    assert captured.err.startswith("transform.feature_fit: error: ") and captured.err.count("\n") == 1
    assert expected in captured.err and not captured.out
    assert not (tmp_path / "fitted.pth").exists() and Path(feature_fit_inputs["rfdn"]).read_bytes() == content


def test_feature_fit_without_validation_images_records_null(feature_fit_inputs: dict[str, str], tmp_path: Path) -> None:
    """--val_fraction 0: no PSNR to measure, so null in the provenance (not NaN) and no NumPy warning."""
    from transform import feature_fit

    argv = [feature_fit_inputs["branch"], str(tmp_path / "fitted.pth"), "--rfdn", feature_fit_inputs["rfdn"]]
    argv += ["--train_dir", feature_fit_inputs["train_dir"], "--val_fraction", "0", "--iters", "1", "--batch_size", "1"]
    argv += ["--patch_size", "15", "--device", "cpu"]
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        assert feature_fit.main(argv) == 0
    record = read_model_checkpoint(tmp_path / "fitted.pth").provenance
    assert record["val_psnr_before"] is None and record["val_psnr_after"] is None and record["val_psnr_rfdn"] is None
    assert record["data"]["validation"]["val_images"] == []


def test_stage_cli_replaces_an_existing_dst_only_with_overwrite(
    tmp_path: Path, random_rfdn_checkpoint: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from transform import branch as branch_stage

    dst = tmp_path / "kept.pth"
    dst.write_bytes(b"a user's file")
    assert branch_stage.main([str(random_rfdn_checkpoint), str(dst)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "kept.pth: exists; give another path, or --overwrite to replace it" in err
    assert dst.read_bytes() == b"a user's file"
    assert branch_stage.main([str(random_rfdn_checkpoint), str(dst), "--overwrite"]) == 0
    assert dst.read_bytes() != b"a user's file"


def test_feature_fit_bounds_the_batch_size(feature_fit_inputs: dict[str, str]) -> None:
    """Checked on the arguments alone: a batch this large would take all the memory before any check could speak."""
    from transform import feature_fit

    argv = [feature_fit_inputs["branch"], "fitted.pth", "--rfdn", feature_fit_inputs["rfdn"]]
    args = feature_fit.parse_args([*argv, "--train_dir", feature_fit_inputs["train_dir"], "--batch_size", "100000"])
    with pytest.raises(HarnessError, match="--batch_size 100000: must be at most 4096"):
        feature_fit._check_arguments(args)


def test_feature_fit_help_does_not_offer_a_teacher(capsys: pytest.CaptureFixture[str]) -> None:
    from transform import feature_fit

    with pytest.raises(SystemExit):
        feature_fit.parse_args(["--help"])
    assert "--teacher" not in capsys.readouterr().out


@pytest.mark.parametrize(
    "key, value, expected",
    [
        ("data_range", float("nan"), "key 'data_range' is nan; expected a finite positive number"),
        ("data_range", 0.0, "key 'data_range' is 0.0; expected a finite positive number"),
        ("data_range", "255", "key 'data_range' is '255'; expected a finite positive number"),
        ("scale", 4.7, "key 'scale' is 4.7; expected a positive whole number"),
        ("scale", 0, "key 'scale' is 0; expected a positive whole number"),
        ("scale", 3, "key 'scale' is 3 but its config's 'scale' is 4; expected the same"),
    ],
)
def test_checkpoint_header_values_are_checked(
    key: str, value: object, expected: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A header value that is not what the model needs is refused, naming the file and the key; no output is written."""
    from transform.common import write_stage_output
    from utils.checkpoint import ModelCheckpoint

    model, _ = branch_from_rfdn(_random_rfdn_state())
    write_stage_output(str(tmp_path / "branch.pth"), model, ModelCheckpoint("rfdn", {}, {}), {"stage": "branch"})
    raw = torch.load(tmp_path / "branch.pth", weights_only=True)
    raw[key] = value
    torch.save(raw, tmp_path / "bad.pth")
    assert reparam_stage.main([str(tmp_path / "bad.pth"), str(tmp_path / "merged.pth")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"{tmp_path / 'bad.pth'}: {expected}" in err, err
    assert not (tmp_path / "merged.pth").exists()
    raw[key] = {"scale": 4.0, "data_range": 255}[key]  # the same values as other numbers are taken
    torch.save(raw, tmp_path / "fine.pth")
    checkpoint = read_model_checkpoint(tmp_path / "fine.pth")
    assert (checkpoint.scale, checkpoint.data_range) == (4, 255.0) and type(checkpoint.scale) is int


def test_feature_fit_that_diverges_writes_nothing(
    feature_fit_inputs: dict[str, str], tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A loss that is not finite stops the fitting as it stops training (exit 2), with no unfitted input written back."""
    from transform import feature_fit

    monkeypatch.setattr(feature_fit, "feature_loss", lambda model, rfdn, batch: (batch * float("nan")).mean())
    argv = [feature_fit_inputs["branch"], str(tmp_path / "fitted.pth"), "--rfdn", feature_fit_inputs["rfdn"]]
    argv += ["--train_dir", feature_fit_inputs["train_dir"], "--iters", "3", "--batch_size", "1", "--patch_size", "16"]
    assert feature_fit.main(argv) == 2
    err = capsys.readouterr().err
    assert err == "transform.feature_fit: error: training diverged: the feature loss is nan at iteration 1; lower --lr\n"
    assert not (tmp_path / "fitted.pth").exists()
