"""The one end-to-end command, on its tiny configuration (configs/tiny.json)."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import pytest
import torch

from models.team00_RFDN import RFDN
from transform.architectures import load_model
from utils.checkpoint import read_model_checkpoint, save_model_checkpoint
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
    for stage in ("branch", "branch_fitted", "branch_trained", "merged", "pruned", "final", "final_trained", "final_tuned"):
        assert (work / f"{stage}.pth").is_file(), stage
    final = read_model_checkpoint(tmp_path / "team13_prfdn.pth")
    assert final.arch == "prfdn" and final.provenance["stage"] == "train"  # the last stage: final_tuned
    chain = final.provenance
    stages = []
    while chain:
        stages.append(chain["stage"])
        chain = chain.get("parent_provenance")
    assert stages == ["train", "train", "final", "pruned", "merged", "train", "feature_fit", "branch"]
    model = load_model(final)
    assert model(torch.rand(1, 3, 24, 24) * 255).shape == (1, 3, 96, 96)
    capsys.readouterr()
    assert run_pipeline.main([str(tiny_config)]) == 0  # everything there: every stage skipped
    assert capsys.readouterr().out.count("exists, skipped") == 8
    (work / "pruned.pth").unlink()  # redo one stage: what was made from the old one is refused, not chained
    assert run_pipeline.main([str(tiny_config)]) == 2
    assert "final.pth exists but was made from another" in capsys.readouterr().err

    # a machine that holds only the merged network (e.g. a fresh GPU machine) starts at pruning
    for path in work.iterdir():
        if path.name != "merged.pth":
            path.unlink()
    assert run_pipeline.main([str(tiny_config), "--from", "pruned"]) == 0
    assert sorted(p.stem for p in work.glob("*.pth") if "." not in p.stem and "_last" not in p.stem) == [
        "final",
        "final_trained",
        "final_tuned",
        "merged",
        "pruned",
    ]
    (work / "merged.pth").unlink()
    assert run_pipeline.main([str(tiny_config), "--from", "pruned", "--force"]) == 2
    assert "--from pruned: its input" in capsys.readouterr().err
    assert run_pipeline.main([str(tiny_config), "--from", "final", "--until", "pruned"]) == 2
    assert "--until pruned comes before --from final" in capsys.readouterr().err


def test_save_next_then_from_continues_on_a_fresh_machine(
    tiny_config: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = json.loads(tiny_config.read_text())
    assert run_pipeline.main([str(tiny_config), "--until", "final"]) == 0
    work = Path(config["work_dir"])
    assert run_pipeline.main([str(tiny_config), "--save_next", str(tmp_path / "out1")]) == 0
    assert sorted(p.name for p in (tmp_path / "out1").iterdir()) == ["final.pth"]
    assert "go on with --from final_trained" in capsys.readouterr().out

    # final_trained interrupted after its state was saved: the state and log travel with the input
    assert run_pipeline.main([str(tiny_config), "--until", "final_trained"]) == 0
    (work / "final_trained.pth").unlink()
    assert run_pipeline.main([str(tiny_config), "--save_next", str(tmp_path / "out2")]) == 0
    carried = sorted(p.name for p in (tmp_path / "out2").iterdir())
    assert carried == ["final.pth", "final_trained.log.jsonl", "final_trained.state.pth"]

    fresh = {**config, "work_dir": str(tmp_path / "fresh"), "output": str(tmp_path / "fresh_out.pth")}
    (tmp_path / "fresh.json").write_text(json.dumps(fresh))
    shutil.copytree(tmp_path / "out2", tmp_path / "fresh")
    capsys.readouterr()
    assert run_pipeline.main([str(tmp_path / "fresh.json"), "--from", "final_trained"]) == 0
    out = capsys.readouterr().out
    assert "--resume" in out and "== branch" not in out and (tmp_path / "fresh_out.pth").is_file()
    assert run_pipeline.main([str(tmp_path / "fresh.json"), "--save_next", str(tmp_path / "out3")]) == 0
    assert "every stage is done" in capsys.readouterr().out
    names = sorted(p.name for p in (tmp_path / "out3").iterdir())
    assert names == ["final_trained.log.jsonl", "final_tuned.log.jsonl", "fresh_out.pth"]


def test_later_lr_phases_continue_the_same_run(tiny_config: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = json.loads(tiny_config.read_text())
    config["final_tuning"]["then"] = [{"iters": 3, "lr": 1e-5}]
    tiny_config.write_text(json.dumps(config))
    assert run_pipeline.main([str(tiny_config)]) == 0
    work = Path(config["work_dir"])
    state = run_pipeline.train_prfdn.read_state(work / "final_tuned.state.pth")
    assert state["iteration"] == 3 and state["settings"]["lr"] == 1e-5
    log = [json.loads(line) for line in (work / "final_tuned.log.jsonl").read_text().splitlines()]
    assert [(r["iter"], r["lr"]) for r in log if "val_psnr" in r] == [(0, 2e-4), (1, 2e-4), (2, 1e-5), (3, 1e-5)]
    assert read_model_checkpoint(tmp_path / "team13_prfdn.pth").provenance["iterations"] == 3
    capsys.readouterr()
    assert run_pipeline.main([str(tiny_config)]) == 0
    assert capsys.readouterr().out.count("exists, skipped") == 9  # the phase step too
    (work / "final_tuned.pth").unlink()  # lost: the last phase writes it again from the kept state, no training
    assert run_pipeline.main([str(tiny_config)]) == 0
    out = capsys.readouterr().out
    assert "final_tuned: its training state is past this phase, skipped" in out and (work / "final_tuned.pth").is_file()
    assert run_pipeline.train_prfdn.read_state(work / "final_tuned.state.pth")["settings"]["lr"] == 1e-5
    assert len((work / "final_tuned.log.jsonl").read_text().splitlines()) == len(log)
    stale = read_model_checkpoint(work / "final_tuned.pth")  # a run stopped at 3 beside the output of iteration 2
    stale.provenance["iterations"] = 2
    save_model_checkpoint(work / "final_tuned.pth", stale)
    assert run_pipeline.main([str(tiny_config)]) == 0
    assert "--iters 3" in capsys.readouterr().out
    assert read_model_checkpoint(tmp_path / "team13_prfdn.pth").provenance["iterations"] == 3
    assert len((work / "final_tuned.log.jsonl").read_text().splitlines()) == len(log)

    # a later phase added after the run: a fresh machine gets the stage's output and state, and goes on
    config["final_tuning"]["then"].append({"iters": 4})
    tiny_config.write_text(json.dumps(config))
    assert run_pipeline.main([str(tiny_config), "--save_next", str(tmp_path / "next")]) == 0
    assert "go on with --from final_tuned" in capsys.readouterr().out
    carried = sorted(p.name for p in (tmp_path / "next").iterdir())
    assert carried == ["final_trained.pth", "final_tuned.log.jsonl", "final_tuned.pth", "final_tuned.state.pth"]
    fresh = {**config, "work_dir": str(tmp_path / "fresh"), "output": str(tmp_path / "fresh_out.pth")}
    (tmp_path / "fresh.json").write_text(json.dumps(fresh))
    shutil.copytree(tmp_path / "next", tmp_path / "fresh")
    assert run_pipeline.main([str(tmp_path / "fresh.json"), "--from", "final_tuned", "--until", "final_tuned"]) == 0
    out = capsys.readouterr().out
    assert out.count("exists, skipped") == 2 and "--iters 4" in out and "--resume" in out
    assert run_pipeline.train_prfdn.read_state(tmp_path / "fresh" / "final_tuned.state.pth")["iteration"] == 4


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


@pytest.mark.parametrize(
    "name, stages",
    [
        ("x4.json", ["branch", "branch_trained", "merged", "pruned", "final"]),
        (
            "x4_gpu.json",
            ["branch", "branch_fitted", "branch_trained", "merged", "pruned", "final", "final_trained", "final_tuned"],
        ),
        (
            "x4_cpu.json",
            ["branch", "branch_fitted", "branch_trained", "merged", "pruned", "final", "final_trained"]
            + ["final_tuned"] * 9,  # its first run and eight later lr phases
        ),
    ],
)
def test_shipped_x4_configs_parse_for_every_stage(name: str, stages: list[str]) -> None:
    """The shipped configs: known keys, and every stage's flags accepted by that stage (no run needed)."""
    config = run_pipeline.load_config(str(REPO_ROOT / "configs" / name))
    steps = run_pipeline.plan(config)
    run_pipeline.check_flags(steps)
    assert [stage for stage, _, _ in steps] == stages
    # x4_gpu is not yet run: it must not replace the submitted checkpoint before it is compared with it
    assert config["output"] == ("runs/x4_gpu/team13_prfdn.pth" if name == "x4_gpu.json" else "model_zoo/team13_prfdn.pth")


def test_shipped_x4_data_loads(tmp_path: Path) -> None:
    """The x4 config's data settings fit the real training images (T91 has images smaller than its patches)."""
    from utils.train_data import fill_data_defaults, load_data_from_args

    config = run_pipeline.load_config(str(REPO_ROOT / "configs" / "x4.json"))
    for folder in config["data"]["train_dir"]:
        if not (REPO_ROOT / folder).is_dir():
            pytest.skip(f"needs the training images at {REPO_ROOT / folder} (third-party data in ../shared, absent here)")
    args = run_pipeline.train_prfdn.parse_args(["a.pth", "b.pth", *run_pipeline.flags(config["data"])])
    args.train_dir = [str(REPO_ROOT / d) for d in args.train_dir]
    fill_data_defaults(args)
    patch = config["branch_training"]["patch_size"]
    data = load_data_from_args(args, patch_size=patch, seed=0, data_range=255.0, scale=4)
    assert data.description["train_images"] > 200 and data.description["skipped_small"]
    assert all(name.startswith("T91/") for name in data.description["skipped_small"])


def test_config_mistakes_stop_before_any_stage(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    base = json.loads((REPO_ROOT / "configs" / "tiny.json").read_text())
    base.update(work_dir=str(tmp_path / "work"))
    cases = {
        "typo in a section": ({"prune": {"ratoi": 0.5}}, "stage pruned: unrecognized arguments: --ratoi 0.5"),
        "typo in a section name": ({"prnue": {"ratio": 0.5}}, "unknown key prnue"),
        "section of the wrong type": ({"data": "folder"}, "data must be an object of flags"),
        "lr phase of a stage that does not train": ({"prune": {"then": [{"iters": 5}]}}, "prune cannot have 'then'"),
        "lr phase that does not go on": (
            {"final_tuning": {"iters": 3, "then": [{"iters": 3}]}},
            "final_tuning.then[0] needs an integer iters above the phase before it (3)",
        ),
        "lr phases not a list": ({"final_tuning": {"iters": 3, "then": {"iters": 5}}}, "final_tuning.then must be a list"),
        "lr phases without a first iters": (
            {"branch_training": {"then": [{"iters": 5}]}},
            "branch_training needs an integer iters for its first phase",
        ),
    }
    for name, (change, message) in cases.items():
        path = tmp_path / f"{name}.json"
        path.write_text(json.dumps({**base, **change}))
        assert run_pipeline.main([str(path)]) == 2, name
        assert message in capsys.readouterr().err, name
        assert not (tmp_path / "work").exists(), name  # nothing ran
    path = tmp_path / "ok.json"
    path.write_text(json.dumps(base))
    assert run_pipeline.main([str(path), "--until", "merged_trained"]) == 2
    assert "--until merged_trained: this config skips that stage" in capsys.readouterr().err
