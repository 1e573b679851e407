"""scripts/run_ablations.py: runs from one start, resumed or skipped where they stand, tabulated per validation group."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import pytest
import torch

from models.registry import model_config
from models.team13_PRFDN import PRFDN, PRFDNConfig
from pipeline import ablations as run_ablations
from training.flags import SETTING_NAMES, settings_from_flags
from training.loop import check_schedule_settings
from utils.checkpoint import ModelCheckpoint, read_model_checkpoint, save_model_checkpoint
from utils.datasets import ensure_builtin_dataset
from utils.errors import HarnessError

REPO_ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def config(tmp_path: Path) -> Path:
    torch.manual_seed(0)
    model = PRFDN(PRFDNConfig.merged(nf=8))
    arch, cfg = model_config(model)
    src = tmp_path / "src.pth"
    save_model_checkpoint(src, ModelCheckpoint(arch, cfg, model.state_dict()))
    pairs = ensure_builtin_dataset()
    val_dir = tmp_path / "val"
    val_dir.mkdir()
    (val_dir / "extra.png").write_bytes(pairs[0].hr_path.read_bytes())  # a separate validation folder...
    train_dir = tmp_path / "train"
    train_dir.mkdir()
    for pair in pairs[1:]:  # ...kept apart from the training images
        (train_dir / pair.hr_path.name).write_bytes(pair.hr_path.read_bytes())
    common = ["--train_dir", str(train_dir), "--val_fraction", "0.3", "--val_dir", str(val_dir), "--val_crop", "96"]
    common += ["--iters", "2", "--batch_size", "2", "--patch_size", "16", "--lr", "1e-4", "--val_every", "1"]
    common += ["--log_every", "1", "--device", "cpu", "--no_progress"]
    path = tmp_path / "ablations.json"
    runs = [{"name": "base", "flags": []}, {"name": "more", "flags": ["--iters", "3"]}]
    config = {"src": str(src), "reference": str(src), "work_dir": str(tmp_path / "work"), "common": common, "runs": runs}
    path.write_text(json.dumps(config))
    return path


def test_runs_are_trained_then_skipped_and_tabulated_per_group(
    config: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run_ablations.main([str(config)]) == 0
    summary = json.loads((tmp_path / "work" / "ablations.json").read_text())
    base, more = summary["runs"]
    assert [v["iter"] for v in base["validations"]] == [0, 1, 2] and [v["iter"] for v in more["validations"]] == [0, 1, 2, 3]
    for validation in base["validations"]:
        assert set(validation) == {"iter", "val_psnr", "val_held_out", "val_val"}  # val/extra.png: the folder's group
        assert min(validation["val_held_out"], validation["val_val"]) <= validation["val_psnr"]
    reference = summary["reference"]  # the start itself: its scores are every run's iteration 0
    assert {k: reference[k] for k in ("val_psnr", "val_held_out", "val_val")} == {
        k: base["validations"][0][k] for k in ("val_psnr", "val_held_out", "val_val")
    }
    out = capsys.readouterr().out
    assert "| base | `(common only)` | 2 |" in out and "| more | `--iters 3` | 3 |" in out
    assert run_ablations.main([str(config)]) == 0  # both at their --iters: nothing trains again
    assert capsys.readouterr().out.count("done (") == 2
    (tmp_path / "work" / "more.pth").write_bytes((tmp_path / "work" / "base.pth").read_bytes())
    assert run_ablations.main([str(config), "--only", "more"]) == 0  # weights of iteration 2 beside a state at 3:
    assert "more: resuming at 3" in capsys.readouterr().out  # not finished; resuming writes them from the state
    assert read_model_checkpoint(tmp_path / "work" / "more.pth").provenance["iterations"] == 3
    assert run_ablations.main([str(config), "--only", "other"]) == 2
    assert "--only other: not a run of" in capsys.readouterr().err
    (tmp_path / "work" / "more.state.pth").unlink()  # a finished run kept without its state: its log says it is done
    assert run_ablations.main([str(config)]) == 0
    assert "more: done (3 iterations, from its log)" in capsys.readouterr().out
    with open(tmp_path / "work" / "base.log.jsonl", "a", encoding="utf-8") as log:
        log.write('{"iter": 3, "val_ps')  # a line cut off by a killed run is no record
    (tmp_path / "work" / "reference_val.json").write_text("{not json")  # a damaged cache is scored again
    assert run_ablations.main([str(config), "--table"]) == 0
    again = json.loads((tmp_path / "work" / "ablations.json").read_text())
    assert again["runs"][0]["validations"] == base["validations"] and again["reference"] == summary["reference"]
    for protected in (config, tmp_path / "src.pth", tmp_path / "work" / "base.log.jsonl"):
        before = protected.read_bytes()
        assert run_ablations.main([str(config), "--table", "--json", str(protected)]) == 2
        assert protected.read_bytes() == before


def test_a_run_cut_short_is_resumed(config: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    raw = json.loads(config.read_text())
    raw["runs"] = raw["runs"][:1]
    config.write_text(json.dumps(raw))
    assert run_ablations.main([str(config)]) == 0
    raw["runs"][0]["flags"] = ["--iters", "4"]  # the same run, taken further
    config.write_text(json.dumps(raw))
    assert run_ablations.main([str(config)]) == 0
    assert "base: resuming at 2" in capsys.readouterr().out
    log = [json.loads(line) for line in (tmp_path / "work" / "base.log.jsonl").read_text().splitlines()]
    assert [r["iter"] for r in log if "val_psnr" in r] == [0, 1, 2, 3, 4]


@pytest.mark.parametrize(
    "change, message",
    [
        ({"runs": []}, "runs: expected a list"),
        ({"runs": [{"name": "a b"}]}, "runs[0].name: expected a name"),
        ({"runs": [{"name": "a"}, {"name": "a"}]}, "the name a is given twice"),
        ({"common": "--iters 2"}, "common: expected a list of strings"),
        ({"src": "missing.pth"}, "src missing.pth: checkpoint file not found"),
        ({"extra": 1}, "unknown key extra"),
        ({"reference": ""}, "reference: expected a path"),
        ({"runs": [{"name": "a"}, {"name": "b", "flags": ["--iters", "0"]}]}, "runs b: --iters 0: must be at least 1"),
        ({"runs": [{"name": "a", "flags": ["--no_such_flag"]}]}, "runs a: unrecognized arguments: --no_such_flag"),
        ({"runs": [{"name": "a", "flag": ["--iters", "3"]}]}, "runs[0]: unknown key flag; expected name, flags"),
        # what a later run reads is checked before the first run trains
        ({"runs": [{"name": "a"}, {"name": "b", "flags": ["--train_dir", "nowhere"]}]}, "runs b: --train_dir nowhere: folder"),
        ({"runs": [{"name": "a"}, {"name": "b", "flags": ["--val_dir", "nowhere"]}]}, "runs b: --val_dir nowhere: folder"),
        (
            {"runs": [{"name": "a"}, {"name": "b", "flags": ["--extra_train_dir", "nowhere"]}]},
            "runs b: --extra_train_dir nowhere: folder",
        ),
        (
            {"runs": [{"name": "a"}, {"name": "b", "flags": ["--teacher", "nowhere.pth"]}]},
            "runs b: --teacher nowhere.pth: checkpoint file not found",
        ),
        ({"runs": [{"name": "a"}, {"name": "b", "flags": ["--val_fraction", "1"]}]}, "runs b: --val_fraction 1.0: must be"),
        ({"runs": [{"name": "a"}, {"name": "b", "flags": ["--teacher_cache"]}]}, "runs b: --teacher_cache: nothing to cache"),
    ],
)
def test_bad_configs_are_one_line_exit_2(
    config: Path, change: dict, message: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    raw = {**json.loads(config.read_text()), **change}
    config.write_text(json.dumps(raw))
    assert run_ablations.main([str(config)]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1
    assert not (tmp_path / "work").exists()


def test_kinds_score_the_best_weights_per_kind_of_validation_image(
    config: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    image = cv2.imread(str(ensure_builtin_dataset()[0].hr_path))
    cv2.imwrite(str(tmp_path / "val" / "drawing_a.png"), image[::-1].copy())  # a second kind in --val_dir
    assert run_ablations.main([str(config)]) == 0
    assert run_ablations.main([str(config), "--table", "--kinds"]) == 0
    kinds = json.loads((tmp_path / "work" / "kinds.json").read_text())
    assert list(kinds) == ["start", "reference", "base", "more"]
    assert all(list(scores) == ["held_out", "drawing", "val"] for scores in kinds.values())  # extra.png: no kind
    summary = json.loads((tmp_path / "work" / "ablations.json").read_text())
    reference = summary["reference"]  # the start: the training logs give the same groups as --kinds
    assert {kind: kinds["start"][kind] for kind in ("held_out", "drawing", "val")} == pytest.approx(
        {kind: reference[f"val_{kind}"] for kind in ("held_out", "drawing", "val")}
    )
    assert "| weights | held_out | drawing | val |" in capsys.readouterr().out
    (tmp_path / "work" / "more.pth").unlink()  # best weights not kept (e.g. a clean clone): the row stays
    assert run_ablations.main([str(config), "--table", "--kinds"]) == 0
    assert json.loads((tmp_path / "work" / "kinds.json").read_text())["more"] == kinds["more"]


def test_runs_with_their_own_src_start_from_it(config: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Runs comparing starts under one recipe: each trains its own src; --kinds scores each start as NAME.start."""
    other = tmp_path / "other.pth"
    raw = json.loads(config.read_text())
    src = raw.pop("src")
    raw["runs"] = [{"name": "narrow", "src": src}, {"name": "wide", "src": str(other)}]
    config.write_text(json.dumps(raw))
    assert run_ablations.main([str(config), "--only", "narrow"]) == 0  # the other run's start is not needed yet
    torch.manual_seed(1)
    wider = PRFDN(PRFDNConfig.merged(nf=12))
    arch, cfg = model_config(wider)
    save_model_checkpoint(other, ModelCheckpoint(arch, cfg, wider.state_dict()))
    assert run_ablations.main([str(config), "--kinds"]) == 0
    out = capsys.readouterr().out
    assert f"| wide | `src {other}; (common only)` | 2 |" in out
    assert read_model_checkpoint(tmp_path / "work" / "wide.pth").config == cfg  # trained from its own start
    assert read_model_checkpoint(tmp_path / "work" / "narrow.pth").config["skip"] == 8
    kinds = json.loads((tmp_path / "work" / "kinds.json").read_text())
    assert list(kinds) == ["reference", "narrow.start", "narrow", "wide.start", "wide"]
    summary = json.loads((tmp_path / "work" / "ablations.json").read_text())
    assert summary["src"] is None and [run["src"] for run in summary["runs"]] == [src, str(other)]
    assert kinds["wide.start"]["held_out"] == pytest.approx(summary["runs"][1]["validations"][0]["val_held_out"])


@pytest.mark.parametrize(
    "runs, message",
    [
        ([{"name": "a"}], "runs[0]: no src; give the run one, or give the config a src for every run"),
        ([{"name": "a", "src": ""}], "runs[0].src: expected a path"),
        ([{"name": "a", "src": "nowhere.pth"}], "src nowhere.pth: checkpoint file not found"),
    ],
)
def test_a_run_without_a_start_is_refused(
    config: Path, runs: list, message: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    raw = json.loads(config.read_text())
    del raw["src"]
    config.write_text(json.dumps({**raw, "runs": runs}))
    assert run_ablations.main([str(config)]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1
    assert not (tmp_path / "work").exists()


def test_an_existing_json_is_replaced_only_with_overwrite(
    config: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "table.json"
    out.write_text("my table\n")
    assert run_ablations.main([str(config), "--table", "--json", str(out)]) == 2
    err = capsys.readouterr().err
    assert f"--json {out}: exists; give --overwrite to replace it, or another path" in err and err.count("\n") == 1
    assert out.read_text() == "my table\n" and not (tmp_path / "work").exists()
    assert run_ablations.main([str(config), "--table", "--json", str(out), "--overwrite"]) == 0
    assert [run["name"] for run in json.loads(out.read_text())["runs"]] == ["base", "more"]
    image = sorted((tmp_path / "train").iterdir())[0]
    before = image.read_bytes()
    (tmp_path / "link.json").symlink_to(image)  # --overwrite writes through a link: onto a training image
    assert run_ablations.main([str(config), "--table", "--json", str(tmp_path / "link.json"), "--overwrite"]) == 2
    assert f"is the same file as --train_dir {image}" in capsys.readouterr().err and image.read_bytes() == before


@pytest.mark.parametrize(
    "text",
    [
        "{not json",
        '{"start": {"held_out": "x"}}',
        '["start"]',
        pytest.param('{"start": ' + "[" * 100_000 + "]" * 100_000 + "}", id="deeper than json reads"),
    ],
)
def test_a_damaged_kinds_file_is_refused_and_kept(
    config: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], text: str
) -> None:
    kinds = tmp_path / "work" / "kinds.json"
    kinds.parent.mkdir()
    kinds.write_text(text)
    for argv in ([str(config), "--kinds"], [str(config), "--table", "--kinds"]):
        assert run_ablations.main(argv) == 2
        err = capsys.readouterr().err
        assert f"WORK/kinds.json {kinds}:" in err and "expected the rows an earlier --kinds wrote" in err
        assert err.count("\n") == 1 and kinds.read_text() == text
        assert [p.name for p in kinds.parent.iterdir()] == ["kinds.json"]  # nothing trained, nothing tabulated


@pytest.mark.parametrize(
    "record, message",
    [
        ('{"iter": 2, "val_psnr": "bad", "val_groups": [1]}', 'line 2: val_psnr is "bad"; expected a number'),
        ('{"iter": 2, "val_psnr": "bad"}', 'line 2: val_psnr is "bad"; expected a number'),
        ('{"iter": 2, "val_psnr": 30.0, "val_groups": [1]}', "line 2: val_groups is [1]; expected an object of PSNRs"),
        ('{"iter": 2, "val_psnr": 30.0, "val_groups": {"held_out": null}}', "line 2: val_groups is"),
        ('{"iter": 2, "time": "soon"}', 'line 2: time is "soon"; expected a number'),
    ],
)
def test_a_malformed_log_record_is_refused_with_its_line(
    config: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], record: str, message: str
) -> None:
    log = tmp_path / "work" / "base.log.jsonl"
    log.parent.mkdir()
    text = '{"iter": 0, "val_psnr": 25.0, "val_groups": {"held_out": 25.0}, "time": 1.0}\n' + record + "\n"
    log.write_text(text)
    for argv in ([str(config), "--table"], [str(config)]):  # tabulating, and before any run trains
        assert run_ablations.main(argv) == 2
        err = capsys.readouterr().err
        assert f"{log} {message}" in err and err.count("\n") == 1 and "Traceback" not in err
        assert log.read_text() == text and [p.name for p in log.parent.iterdir()] == ["base.log.jsonl"]


def _with_pruning_runs(config: Path, tmp_path: Path) -> dict:
    raw = json.loads(config.read_text())
    raw["prune_common"] = ["--ratio", "0.5", "--steps", "2"]
    data = ["--train_dir", str(tmp_path / "train"), "--val_fraction", "0.3", "--patch_size", "16", "--batch_size", "2"]
    raw["runs"] = [
        {"name": "coarse", "prune": ["--importance", "magnitude"]},
        {"name": "fine", "prune": ["--steps", "4", "--finetune_iters", "1", "--calibration_patches", "4", *data]},
    ]
    config.write_text(json.dumps(raw))
    return raw


def test_pruning_runs_train_src_pruned_and_exported(config: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    raw = _with_pruning_runs(config, tmp_path)
    work = tmp_path / "work"
    assert run_ablations.main([str(config), "--kinds"]) == 0
    src_params = sum(v.numel() for v in read_model_checkpoint(tmp_path / "src.pth").state_dict.values())
    for name, steps, importance in (("coarse", 2, "magnitude"), ("fine", 4, "taylor")):
        start = read_model_checkpoint(work / f"{name}.start.pth")
        record = start.provenance["parent_provenance"]  # the export's parent: the pruning, with its settings
        assert start.arch == "prfdn" and record["stage"] == "pruned" and record["steps_done"] == steps
        assert record["arguments"]["importance"] == importance and record["arguments"]["ratio"] == 0.5
        assert sum(v.numel() for v in start.state_dict.values()) < src_params
        trained = read_model_checkpoint(work / f"{name}.pth").provenance
        assert trained["parent"] == str(work / f"{name}.start.pth") and trained["iterations"] == 2
    out = capsys.readouterr().out
    assert "| coarse | `prune --importance magnitude; train (common only)` | 2 |" in out
    assert f"coarse: pruning {tmp_path / 'src.pth'}" in out and f"fine: pruning {tmp_path / 'src.pth'}" in out
    assert list(json.loads((work / "kinds.json").read_text())) == [
        "start", "reference", "coarse.start", "coarse", "fine.start", "fine"
    ]  # fmt: skip
    starts = {name: (work / f"{name}.start.pth").read_bytes() for name in ("coarse", "fine")}
    raw["runs"][0]["flags"] = ["--iters", "3"]  # trained further from the same start: not pruned again
    config.write_text(json.dumps(raw))
    assert run_ablations.main([str(config)]) == 0
    out = capsys.readouterr().out
    assert "coarse: resuming at 2" in out and ": pruning " not in out
    assert {name: (work / f"{name}.start.pth").read_bytes() for name in ("coarse", "fine")} == starts
    for path in work.glob("fine*"):  # only the pruned file kept: exported again, not pruned again
        if path.name != "fine.pruned.pth":
            path.unlink()
    assert run_ablations.main([str(config), "--only", "fine"]) == 0
    assert "fine: pruning " not in capsys.readouterr().out and (work / "fine.start.pth").is_file()


def _coarse_run_trained(config: Path, tmp_path: Path) -> dict:
    """The config with its one run ``coarse`` (pruned by magnitude, then trained to its end)."""
    raw = _with_pruning_runs(config, tmp_path)
    raw["runs"] = raw["runs"][:1]
    config.write_text(json.dumps(raw))
    assert run_ablations.main([str(config)]) == 0
    return raw


def _contents(folder: Path) -> dict[str, bytes]:
    return {path.name: path.read_bytes() for path in folder.iterdir()}


def test_pruned_files_of_other_settings_are_refused_and_kept(
    config: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    raw, work = _coarse_run_trained(config, tmp_path), tmp_path / "work"
    raw["runs"][0]["prune"] = ["--importance", "magnitude", "--ratio", "0.4"]  # another pruning under the same name
    before = _contents(work)
    for iters in ([], ["--iters", "3"]):  # finished (its table row would name these settings) or to train on
        raw["runs"][0]["flags"] = iters
        config.write_text(json.dumps(raw))
        for argv in ([str(config)], [str(config), "--table"]):
            assert run_ablations.main(argv) == 2
            err = capsys.readouterr().err
            assert f"{work / 'coarse.pruned.pth'}: not src {tmp_path / 'src.pth'} pruned with this run's settings" in err
            assert err.count("\n") == 1 and _contents(work) == before


def test_a_pruning_runs_state_without_its_start_is_refused_before_pruning_again(
    config: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    raw, work = _coarse_run_trained(config, tmp_path), tmp_path / "work"
    for name in ("coarse.start.pth", "coarse.pruned.pth"):
        (work / name).unlink()
    raw["runs"][0]["flags"] = ["--iters", "3"]
    config.write_text(json.dumps(raw))
    before = _contents(work)
    assert run_ablations.main([str(config)]) == 2
    err = capsys.readouterr().err
    assert f"{work / 'coarse.start.pth'}: not found, but the training state {work / 'coarse.state.pth'} continues" in err
    assert err.count("\n") == 1 and _contents(work) == before


def test_a_later_runs_unreachable_budget_is_refused_before_the_first_run_trains(
    config: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    raw = json.loads(config.read_text())
    raw["runs"] = [{"name": "plain"}, {"name": "tight", "prune": ["--ratio", "0.5", "--target_params", "10"]}]
    config.write_text(json.dumps(raw))
    assert run_ablations.main([str(config)]) == 2
    err = capsys.readouterr().err
    assert "runs tight: budget not reached at --ratio 0.5" in err and err.count("\n") == 1
    assert not (tmp_path / "work").exists()


def test_a_stop_while_pruning_is_exit_130_in_one_line(
    config: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    raw = _with_pruning_runs(config, tmp_path)
    raw["runs"] = raw["runs"][:1]
    config.write_text(json.dumps(raw))

    def stopped(*args: object, **kwargs: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(run_ablations.prune, "prune", stopped)
    assert run_ablations.main([str(config)]) == 130
    err = capsys.readouterr().err
    assert "interrupted; run the same command again" in err and err.count("\n") == 1 and "Traceback" not in err
    assert not (tmp_path / "work" / "coarse.pruned.pth").exists()


@pytest.mark.parametrize(
    "change, message",
    [
        ({"runs": [{"name": "a", "prune": "--ratio 0.5"}]}, "runs[0].prune: expected a list of strings"),
        ({"prune_common": ["--ratio"]}, "runs a: prune: argument --ratio: expected one argument"),
        ({"prune_common": ["--ratio", "2"]}, "runs a: prune: --ratio 2.0: must be in (0, 1)"),
        ({"prune_common": ["--finetune_iters", "5"]}, "runs a: prune: --finetune_iters needs --train_dir"),
        ({"prune_common": ["--teacher", "nowhere.pth"]}, "runs a: --teacher nowhere.pth: checkpoint file not found"),
        ({"prune_common": ["--train_dir", "nowhere"]}, "runs a: --train_dir nowhere: folder"),
    ],
)
def test_bad_pruning_flags_are_one_line_exit_2(
    config: Path, change: dict, message: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    raw = {**json.loads(config.read_text()), "runs": [{"name": "a", "prune": []}], **change}
    config.write_text(json.dumps(raw))
    assert run_ablations.main([str(config)]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1
    assert not (tmp_path / "work").exists()


@pytest.mark.parametrize(
    "name", ["ablations_branch.json", "ablations_final.json", "ablations_prune.json", "depth.json", "ablations_content.json"]
)
def test_shipped_ablation_configs_parse(name: str) -> None:
    """Every run's training flags, and a pruning run's transform.prune flags, as the stages check them (no data read)."""
    config = run_ablations.read_config(REPO_ROOT / "configs" / name)
    for run in config.runs:
        args = run_ablations.parse_run(config, run)
        settings = settings_from_flags(args)
        settings.check()
        check_schedule_settings(settings.schedule, [name for name in SETTING_NAMES if getattr(args, name) is not None])
        if run.prune is not None:
            assert run_ablations.parse_prune(config, run).importance == "taylor"
    assert any(run.prune is not None for run in config.runs) == (name == "ablations_prune.json")


def test_settings_by_name_are_the_same_run_as_its_flags(tmp_path: Path) -> None:
    """``common`` and a run's ``flags`` may be objects of settings by name (as ``train_prfdn.py --config`` reads
    them): the same training flags as the lists they replace; a wrong value is one line naming the key."""
    base = {"src": "start.pth", "work_dir": str(tmp_path / "work")}
    as_flags = {
        **base,
        "common": ["--iters", "20", "--lr", "0.0002", "--skip_small", "--amp"],
        "runs": [{"name": "a", "flags": ["--mix", "1", "3", "--no-channels_last", "--schedule", "cosine"]}],
    }
    as_settings = {
        **base,
        "common": {"iters": 20, "lr": 2e-4, "skip_small": True, "amp": True, "_why": "a comment"},
        "runs": [{"name": "a", "flags": {"mix": [1, 3], "channels_last": False, "schedule": "cosine"}}],
    }
    (tmp_path / "flags.json").write_text(json.dumps(as_flags))
    (tmp_path / "settings.json").write_text(json.dumps(as_settings))
    assert run_ablations.read_config(tmp_path / "settings.json") == run_ablations.read_config(tmp_path / "flags.json")
    as_settings["runs"][0]["flags"]["mix"] = "1 3"
    (tmp_path / "settings.json").write_text(json.dumps(as_settings))
    with pytest.raises(HarnessError, match=r"runs\[0\]\.flags: mix: expected"):
        run_ablations.read_config(tmp_path / "settings.json")


def test_settings_by_name_keep_every_digit_and_refuse_a_switch_they_cannot_turn_off(tmp_path: Path) -> None:
    """A float is written in full; ``no_progress`` is train_prfdn.py's switch; a false store_true switch (no --no-
    form, so a run could not undo common's true) is refused rather than silently dropped."""
    base = {"src": "start.pth", "work_dir": str(tmp_path / "work")}

    def read(common: dict, flags: dict | None = None) -> run_ablations.AblationConfig:
        (tmp_path / "c.json").write_text(json.dumps({**base, "common": common, "runs": [{"name": "a", "flags": flags or {}}]}))
        return run_ablations.read_config(tmp_path / "c.json")

    assert read({"lr": 1.2345678e-4, "no_progress": True}).common == ("--lr", "0.00012345678", "--no_progress")
    with pytest.raises(HarnessError, match=r"runs\[0\]\.flags\.skip_small: expected true \(false is its default"):
        read({"skip_small": True}, {"skip_small": False})
    with pytest.raises(HarnessError, match=r"common\.no_progress: expected true"):
        read({"no_progress": False})


def test_the_reference_cache_is_keyed_on_the_data_settings_not_on_how_the_flags_are_written(tmp_path: Path) -> None:
    config = run_ablations.AblationConfig(None, tmp_path / "work", (), ())
    written = ["--train_dir", "d", "--val_fraction", "5e-2", "--lr", "2e-4"]
    same = run_ablations.validation_settings(["--train_dir", "d", "--val_fraction", "0.05", "--lr", "0.0002"], config)
    assert run_ablations.validation_settings(written, config) == same
    other = run_ablations.validation_settings(["--train_dir", "d", "--val_fraction", "0.1"], config)
    assert other != same
    assert run_ablations.validation_settings(["--no_such_flag"], config) is None
    assert run_ablations.validation_settings("not a list", config) is None
