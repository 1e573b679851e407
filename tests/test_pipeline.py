"""The one end-to-end command, on its tiny configuration (configs/tiny.json)."""

from __future__ import annotations

import dataclasses
import json
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from models.team00_RFDN import RFDN
from pipeline import config as pipeline_config
from pipeline import run as run_pipeline
from utils import provenance as provenance_module
from utils.checkpoint import read_model_checkpoint, save_model_checkpoint, weights_sha256
from utils.datasets import ensure_builtin_dataset
from utils.model_io import load_model

REPO_ROOT = Path(__file__).resolve().parents[1]


def write_tiny_config(folder: Path, rfdn: Path, **changes: object) -> Path:
    """configs/tiny.json with its outputs in ``folder`` (and random RFDN weights where ../shared is absent)."""
    config = json.loads((REPO_ROOT / "configs" / "tiny.json").read_text())
    config.update(rfdn=str(rfdn), work_dir=str(folder / "work"), output=str(folder / "team13_prfdn.pth"), **changes)
    config["data"]["train_dir"] = [str(ensure_builtin_dataset()[0].hr_path.parent)]
    path = folder / "tiny.json"
    path.write_text(json.dumps(config))
    return path


@pytest.fixture
def tiny_config(tmp_path: Path, any_rfdn_checkpoint: Path) -> Path:
    return write_tiny_config(tmp_path, any_rfdn_checkpoint)


LATER_PHASE = {"iters": 3, "lr": 1e-5}  # the finished run's final tuning goes on at another lr


@pytest.fixture(scope="module")
def finished_tiny_run(tmp_path_factory: pytest.TempPathFactory, any_rfdn_checkpoint: Path) -> Path:
    """One run of every stage of the tiny config, its final tuning with a later lr phase; tests work on copies."""
    folder = tmp_path_factory.mktemp("finished")
    final_tuning = {**json.loads((REPO_ROOT / "configs" / "tiny.json").read_text())["final_tuning"], "then": [LATER_PHASE]}
    config = write_tiny_config(folder, any_rfdn_checkpoint, final_tuning=final_tuning)
    assert run_pipeline.main([str(config)]) == 0
    return folder


@pytest.fixture
def tiny_run(finished_tiny_run: Path, tmp_path: Path, any_rfdn_checkpoint: Path) -> Path:
    """The config of a copy of the finished tiny run, in tmp_path."""
    shutil.copytree(finished_tiny_run / "work", tmp_path / "work")
    shutil.copy2(finished_tiny_run / "team13_prfdn.pth", tmp_path / "team13_prfdn.pth")
    config = json.loads((finished_tiny_run / "tiny.json").read_text())
    return write_tiny_config(tmp_path, any_rfdn_checkpoint, final_tuning=config["final_tuning"])


def test_tiny_pipeline_runs_every_stage_and_continues(tiny_run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    tiny_config = tiny_run
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
    assert capsys.readouterr().out.count("exists, skipped") == 9  # with the later lr phase
    (work / "pruned.pth").unlink()  # one stage redone to the same weights: what was made from them still holds
    assert run_pipeline.main([str(tiny_config)]) == 0
    assert "final.pth exists, skipped" in capsys.readouterr().out
    pruned = read_model_checkpoint(work / "pruned.pth")  # redone to other weights: what was made from the old
    pruned.state_dict = {name: tensor + 1 if tensor.is_floating_point() else tensor for name, tensor in pruned.state_dict.items()}
    save_model_checkpoint(work / "pruned.pth", pruned)  # is refused, not chained
    assert run_pipeline.main([str(tiny_config)]) == 2
    assert "final.pth exists but was made from another" in capsys.readouterr().err

    # a machine that holds only the merged network (e.g. a fresh GPU machine) starts at pruning
    for path in work.iterdir():
        if path.name != "merged.pth":
            path.unlink()
    assert run_pipeline.main([str(tiny_config), "--from", "pruned", "--until", "final"]) == 0
    assert sorted(p.name for p in work.glob("*.pth")) == ["final.pth", "merged.pth", "pruned.pth"]
    (work / "merged.pth").unlink()
    assert run_pipeline.main([str(tiny_config), "--from", "pruned", "--force"]) == 2
    assert "--from pruned: its input" in capsys.readouterr().err
    assert run_pipeline.main([str(tiny_config), "--from", "final", "--until", "pruned"]) == 2
    assert "--until pruned comes before --from final" in capsys.readouterr().err


def test_a_fresh_clone_rebuilds_training_outputs_from_their_states_and_goes_on(
    tiny_run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A work folder that keeps training states and logs but not the weights written beside them (a clone of a
    run that commits only those): each finished training writes its output again (with a new time and commit),
    and the next training's state still resumes from it."""
    work = tmp_path / "work"
    before = read_model_checkpoint(work / "final_trained.pth")
    for name in ("final_trained.pth", "final_trained_last.pth", "final_tuned.pth", "final_tuned_last.pth"):
        (work / name).unlink()
    (tmp_path / "team13_prfdn.pth").unlink()  # the output: not kept either
    monkeypatch.setattr(provenance_module, "git_commit", lambda: "f" * 40)  # a later commit writes them
    capsys.readouterr()
    assert run_pipeline.main([str(tiny_run)]) == 0
    rebuilt = read_model_checkpoint(work / "final_trained.pth")
    assert rebuilt.provenance["git_commit"] == "f" * 40 != before.provenance["git_commit"]
    assert weights_sha256(rebuilt) == weights_sha256(before)
    tuned = read_model_checkpoint(work / "final_tuned.pth")
    assert tuned.provenance["parent_weights_sha256"] == weights_sha256(rebuilt)
    assert "continues training of another SRC" not in capsys.readouterr().err


def test_a_stage_ended_by_its_minutes_is_done(tiny_run: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A training bounded by its time ends short of its iters; run again, it is skipped, not resumed (it has no time
    left)."""
    config = json.loads(tiny_run.read_text())
    config["final_tuning"] = {**config["final_tuning"], "iters": 10_000, "minutes": 0.0005, "then": []}
    config["final_tuning"].pop("then")
    tiny_run.write_text(json.dumps(config))
    assert run_pipeline.main([str(tiny_run), "--force", "--from", "final_tuned"]) == 0
    work = Path(config["work_dir"])
    state = run_pipeline.train_prfdn.read_state(work / "final_tuned.state.pth")
    assert state["iteration"] < 10_000 and state["elapsed"] >= 0.03
    capsys.readouterr()
    assert run_pipeline.main([str(tiny_run)]) == 0
    assert f"== final_tuned: {work / 'final_tuned.pth'} exists, skipped" in capsys.readouterr().out
    assert run_pipeline.train_prfdn.read_state(work / "final_tuned.state.pth")["iteration"] == state["iteration"]


def test_a_kept_pruning_made_with_other_settings_is_refused_before_any_stage(
    tiny_run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = json.loads(tiny_run.read_text())
    work = tmp_path / "work"
    before = sorted((path.name, path.stat().st_mtime_ns) for path in work.iterdir())
    config["prune"]["lr"] = 3e-5  # a fine-tuning setting changed after the run pruned
    tiny_run.write_text(json.dumps(config))
    capsys.readouterr()
    assert run_pipeline.main([str(tiny_run)]) == 2
    err = capsys.readouterr().err
    assert f"stage pruned: {work / 'pruned.pth'} was pruned with lr unset (the default), the config now gives 3e-05" in err
    assert "redo it with --force --from pruned" in err
    assert sorted((path.name, path.stat().st_mtime_ns) for path in work.iterdir()) == before  # nothing written

    del config["prune"]["lr"]
    del config["prune"]["device"]  # where it runs (cpu there), not what it makes: the kept pruning still holds
    tiny_run.write_text(json.dumps(config))
    assert run_pipeline.main([str(tiny_run)]) == 0
    assert "== pruned: " + str(work / "pruned.pth") + " exists, skipped" in capsys.readouterr().out


def test_save_next_then_from_continues_on_a_fresh_machine(
    tiny_run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    tiny_config = tiny_run
    config = json.loads(tiny_config.read_text())
    work = Path(config["work_dir"])
    for path in [*work.glob("final_t*"), Path(config["output"])]:  # the run as it stood after the stage final
        path.unlink()
    assert run_pipeline.main([str(tiny_config), "--until", "final"]) == 0
    assert "== final_trained" not in capsys.readouterr().out
    assert run_pipeline.main([str(tiny_config), "--save_next", str(tmp_path / "out1")]) == 0
    assert sorted(p.name for p in (tmp_path / "out1").iterdir()) == ["final.pth"]
    assert "go on with --from final_trained" in capsys.readouterr().out

    # final_trained interrupted after its state was saved: the state and log travel with the input
    assert run_pipeline.main([str(tiny_config), "--until", "final_trained"]) == 0
    assert not (work / "final_tuned.pth").exists()  # --until stops there
    (work / "final_trained.pth").unlink()
    assert run_pipeline.main([str(tiny_config), "--save_next", str(tmp_path / "out2")]) == 0
    copied = sorted(p.name for p in (tmp_path / "out2").iterdir())
    assert copied == ["final.pth", "final_trained.log.jsonl", "final_trained.state.pth"]

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
    assert run_pipeline.main([str(tmp_path / "fresh.json"), "--save_next", str(tmp_path / "out3")]) == 0  # same copies
    (tmp_path / "out3" / "fresh_out.pth").write_bytes(b"a user's file of that name")  # another file: kept
    assert run_pipeline.main([str(tmp_path / "fresh.json"), "--save_next", str(tmp_path / "out3")]) == 2
    assert "fresh_out.pth exists and is not a copy of" in capsys.readouterr().err
    assert (tmp_path / "out3" / "fresh_out.pth").read_bytes() == b"a user's file of that name"


def test_an_output_that_the_run_did_not_make_is_replaced_only_on_request(
    tiny_run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The submitted checkpoint at ``output`` (another run's) is kept unless --replace_output; the run's own
    earlier result is replaced as the run goes on."""
    config = json.loads(tiny_run.read_text())
    output, work = Path(config["output"]), Path(config["work_dir"])
    # its own result, from a work folder copied here (the provenance names the original folder): replaced
    assert run_pipeline.main([str(tiny_run), "--from", "final_tuned", "--force"]) == 0
    assert output.read_bytes() == (work / "final_tuned.pth").read_bytes()
    shutil.copyfile(config["rfdn"], output)  # another network there, e.g. a checkpoint to submit
    kept = output.read_bytes()
    capsys.readouterr()
    assert run_pipeline.main([str(tiny_run), "--from", "final_tuned", "--force"]) == 2
    err = capsys.readouterr().err
    assert f"output {output}: exists, not made by a pipeline stage, not from this run's work_dir {work}" in err
    assert "give --replace_output to replace it" in err and output.read_bytes() == kept
    odd = read_model_checkpoint(work / "final.pth")
    odd.provenance = {"parent": ["not", "a path"], "parent_sha256": ["not", "a hash"]}  # hand-edited: still one line
    save_model_checkpoint(output, odd)
    assert run_pipeline.main([str(tiny_run), "--from", "final_tuned", "--force"]) == 2
    assert "exists, not made by a pipeline stage" in capsys.readouterr().err
    assert run_pipeline.main([str(tiny_run), "--until", "final_tuned"]) == 0  # writes no output
    assert run_pipeline.main([str(tiny_run), "--replace_output"]) == 0
    assert output.read_bytes() == (work / "final_tuned.pth").read_bytes()


def test_two_runs_on_one_output_never_both_write_it(tiny_run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Runs of two work folders with one output, started together: the second is refused while the first holds the
    output, and one whose checks passed before the other wrote the output is refused once it holds it."""
    from utils.fileio import exclusive_run

    output = Path(json.loads(tiny_run.read_text())["output"])
    kept = output.read_bytes()
    with exclusive_run(output, "output"):  # another run (another work_dir) is writing it
        assert run_pipeline.main([str(tiny_run)]) == 2
    err = capsys.readouterr().err
    assert err == f"run_pipeline.py: error: output {output}: another run is using it now; wait for it to end\n"
    assert output.read_bytes() == kept
    checked = run_pipeline.check_pending

    def checks_then_the_other_run_ends(*args: object, **kwargs: object) -> object:
        pending = checked(*args, **kwargs)
        shutil.copyfile(json.loads(tiny_run.read_text())["rfdn"], output)  # the other run wrote its result meanwhile
        return pending

    run_pipeline.check_pending = checks_then_the_other_run_ends  # type: ignore[assignment]
    try:
        assert run_pipeline.main([str(tiny_run)]) == 2
    finally:
        run_pipeline.check_pending = checked  # type: ignore[assignment]
    assert "exists, not made by a pipeline stage, not from this run's work_dir" in capsys.readouterr().err
    assert output.read_bytes() == Path(json.loads(tiny_run.read_text())["rfdn"]).read_bytes()  # the other run's, kept
    assert not (output.parent / f".{output.name}.lock").exists()


def test_later_lr_phases_continue_the_same_run(tiny_run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    tiny_config = tiny_run
    config = json.loads(tiny_config.read_text())
    assert config["final_tuning"]["then"] == [LATER_PHASE]
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
    copied = sorted(p.name for p in (tmp_path / "next").iterdir())
    assert copied == ["final_trained.pth", "final_tuned.log.jsonl", "final_tuned.pth", "final_tuned.state.pth"]
    fresh = {**config, "work_dir": str(tmp_path / "fresh"), "output": str(tmp_path / "fresh_out.pth")}
    (tmp_path / "fresh.json").write_text(json.dumps(fresh))
    shutil.copytree(tmp_path / "next", tmp_path / "fresh")
    assert run_pipeline.main([str(tmp_path / "fresh.json"), "--from", "final_tuned", "--until", "final_tuned"]) == 0
    out = capsys.readouterr().out
    assert out.count("exists, skipped") == 2 and "--iters 4" in out and "--resume" in out
    assert run_pipeline.train_prfdn.read_state(tmp_path / "fresh" / "final_tuned.state.pth")["iteration"] == 4


def test_a_resumed_stage_whose_data_changed_is_refused_before_any_stage(
    tiny_run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = json.loads(tiny_run.read_text())
    work = Path(config["work_dir"])
    config["final_tuning"]["then"].append({"iters": 4})  # the final tuning goes on: it resumes its run
    tiny_run.write_text(json.dumps(config))
    state = torch.load(work / "final_tuned.state.pth", weights_only=True)
    name = next(iter(state["run"]["data_images"]["train"]))
    state["run"]["data_images"]["train"].pop(name)  # as if that image was added to the folder since
    torch.save(state, work / "final_tuned.state.pth")
    before = files_under(tmp_path)
    assert run_pipeline.main([str(tiny_run)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("run_pipeline.py: error: stage final_tuned: --resume: the data folders changed since ")
    assert f"1 image added ({name})" in err and "give --accept_data_change" in err and "(of run_pipeline.py)" in err
    assert files_under(tmp_path) == before
    assert run_pipeline.main([str(tiny_run), "--accept_data_change"]) == 0
    assert f"--resume with changed data folders: 1 image added ({name})" in capsys.readouterr().err
    assert run_pipeline.train_prfdn.read_state(work / "final_tuned.state.pth")["iteration"] == 4


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
    assert "data.train_dir[0]" in err and "empty: training folder holds no images" in err
    assert not (tmp_path / "w").exists()  # refused before the first stage


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
        (
            "x4_cpu_structured.json",
            ["branch", "branch_fitted", "branch_trained", "merged", "pruned", "final", "final_trained", "final_tuned"],
        ),
    ],
)
def test_shipped_x4_configs_parse_for_every_stage(name: str, stages: list[str]) -> None:
    """The shipped configs: known keys, and every stage's flags accepted by that stage (no run needed)."""
    config = run_pipeline.parse_config(str(REPO_ROOT / "configs" / name))  # also runs every stage's parser and checks
    steps = run_pipeline.plan(config)
    assert [step.stage for step in steps] == stages
    for step in steps:  # each stage gets its own arguments, with its output in the work folder
        assert step.dst == Path(config.work_dir) / f"{step.stage}.pth" and step.job.src == str(step.src)
    # runs not yet compared with the submitted checkpoint must not replace it
    candidates = {
        "x4.json": "runs/x4/team13_prfdn.pth",
        "x4_gpu.json": "runs/x4_gpu/team13_prfdn.pth",
        "x4_cpu_structured.json": "runs/x4_cpu_structured/prfdn_candidate.pth",
    }
    assert config.output == candidates.get(name, "model_zoo/team13_prfdn.pth")
    assert run_pipeline.load_config(str(REPO_ROOT / "configs" / name))["output"] == config.output  # scripts/report.py's view
    for point in config.frontier:  # each point's own budget only
        assert point.prune.target_params is None and point.prune.target_flops is not None


def test_shipped_x4_data_loads(tmp_path: Path) -> None:
    """The x4 config's data settings fit the real training images: T91, the folder with images smaller than the
    config's patches, loads with them (its small images left out, the rest kept)."""
    from training.data import fill_data_defaults, load_data_from_args
    from utils.settings import with_values

    config = run_pipeline.load_config(str(REPO_ROOT / "configs" / "x4.json"))
    t91 = next(REPO_ROOT / folder for folder in config["data"]["train_dir"] if Path(folder).name == "T91")
    if not t91.is_dir():
        pytest.skip(f"needs the training images at {t91} (third-party data in ../shared, absent here)")
    job = run_pipeline.train_prfdn.TrainJob(src="a.pth", out="b.pth")
    job = with_values(job, {**config["data"], "train_dir": [str(t91)]}, "data")
    fill_data_defaults(job)
    patch = config["branch_training"]["patch_size"]
    data = load_data_from_args(job, patch_size=patch, seed=0, data_range=255.0, scale=4)
    assert data.description["train_images"] > 30 and data.description["skipped_small"]
    assert all(name.startswith("T91/") for name in data.description["skipped_small"])


def test_config_mistakes_stop_before_any_stage(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    base = json.loads((REPO_ROOT / "configs" / "tiny.json").read_text())
    base.update(work_dir=str(tmp_path / "work"))
    cases = {
        "typo in a section": ({"prune": {"ratoi": 0.5}}, "prune: unknown key ratoi; expected one of ratio, steps,"),
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


# --- bad input is refused before any work: one line, exit code 2, every file as it was ----------------------------


def files_under(folder: Path) -> dict[str, bytes | None]:
    """Every path under ``folder`` with its content (None for a folder)."""
    return {str(p): None if p.is_dir() else p.read_bytes() for p in sorted(folder.rglob("*"))}


def refused(tmp_path: Path, capsys: pytest.CaptureFixture[str], config: dict | str, *args: str) -> str:
    """Run the pipeline on ``config``, which must be refused before any work; the one line of stderr."""
    path = tmp_path / "config.json"
    path.write_text(config if isinstance(config, str) else json.dumps(config))
    before = files_under(tmp_path)
    assert run_pipeline.main([str(path), *args]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err, err
    assert files_under(tmp_path) == before  # nothing written, nothing replaced
    return err


@pytest.fixture
def quick_config(tiny_config: Path) -> dict:
    """configs/tiny.json with its inputs and outputs in tmp_path, as a dict to spoil."""
    return json.loads(tiny_config.read_text())


def with_values(config: dict, section: str, values: dict) -> dict:
    return {**config, section: {**config.get(section, {}), **values}}


@pytest.mark.parametrize(
    "stage_file",
    ["final.pth", "final_tuned.state.pth", "branch_trained.log.jsonl", "final_trained_last.pth", "merged_trained.pth"],
)
def test_output_naming_a_stage_file_is_refused(
    quick_config: dict, tmp_path: Path, capsys: pytest.CaptureFixture[str], stage_file: str
) -> None:
    """It would replace the run's own file (merged_trained.pth: of a stage this config skips), and every later run
    would refuse the work folder."""
    work = Path(quick_config["work_dir"])
    err = refused(tmp_path, capsys, {**quick_config, "output": str(work / stage_file)})
    assert f"output {work / stage_file}: is the same file as the stage file {stage_file}" in err


@pytest.mark.parametrize("input_name", ["rfdn", "teacher", "config"])
def test_output_naming_an_input_is_refused(
    quick_config: dict, tmp_path: Path, capsys: pytest.CaptureFixture[str], input_name: str
) -> None:
    teacher = tmp_path / "teacher.pth"
    shutil.copyfile(quick_config["rfdn"], teacher)
    config = with_values(quick_config, "data", {"teacher": str(teacher)})
    output = {"rfdn": config["rfdn"], "teacher": str(teacher), "config": str(tmp_path / "config.json")}[input_name]
    err = refused(tmp_path, capsys, {**config, "output": output})
    assert f"output {output}: is the same file as" in err and "which is read, never replaced" in err


@pytest.mark.parametrize("key", ["rfdn", "work_dir", "output"])
@pytest.mark.parametrize(
    "value, got", [(None, "null"), (["a.pth"], "a list"), (5, "5"), (True, "true (a boolean)"), ("", 'the string ""')]
)
def test_paths_of_the_wrong_type_are_refused(
    quick_config: dict, tmp_path: Path, capsys: pytest.CaptureFixture[str], key: str, value: object, got: str
) -> None:
    err = refused(tmp_path, capsys, {**quick_config, key: value})
    assert f"config.json: {key}: expected a path, got {got}" in err


def test_a_loop_of_links_for_a_data_folder_is_one_line(
    quick_config: dict, tmp_path: Path, tmp_path_factory: pytest.TempPathFactory, capsys: pytest.CaptureFixture[str]
) -> None:
    loop = tmp_path_factory.mktemp("links") / "loop"
    loop.symlink_to(loop)
    err = refused(tmp_path, capsys, with_values(quick_config, "data", {"val_dir": str(loop)}))
    assert f"data.val_dir {loop}: is a loop of symbolic links; expected a folder of validation images" in err


@pytest.mark.parametrize(
    "section, values, message",
    [
        ("final_training", {"iters": -1}, "final_training.iters -1: must be at least 0 (0 skips the stage)"),
        ("branch_training", {"iters": 0}, "branch_training.iters 0: must be at least 1"),
        ("branch_training", {"lr": -1e-4}, "branch_training.lr -0.0001: must be positive"),
        ("final_tuning", {"then": [{"iters": 5, "lr": -1}]}, "final_tuning.then[0].lr -1.0: must be positive"),
        ("prune", {"ratio": 1.5}, "prune.ratio 1.5: must be in (0, 1)"),
        ("prune", {"lr": 0}, "prune.lr 0.0: must be positive"),
        ("feature_fit", {"patch_size": 8}, "feature_fit.patch_size 8: must be at least 15"),
        ("final_training", {"patch_size": 14}, "final_training.patch_size 14: must be at least 15"),
        ("prune", {"patch_size": 12}, "prune.patch_size 12: must be at least 15"),
        # a rounding that prunes nothing, a ratio a grouped merge's dense form cannot get below it with: refused before
        # any stage, not after the four before the pruning
        ("prune", {"round_to": 512}, "prune.round_to 512: at prune.ratio 0.3 no layer loses a whole multiple of 512"),
        ("reparam", {"form": "grouped"}, "prune.ratio 0.3 gives 0.9655 M params, 59.49 G FLOPs, not smaller than the input"),
        ("reparam", {"form": "grouped"}, "give a higher prune.ratio (with prune.target_params / prune.target_flops the"),
        ("reparam", {"form": "grouped"}, "or prune a dense merge (reparam.form dense)"),
        # the data check made before any stage: a scale_aug factor that would add no copy
        ("data", {"scale_aug": [0.05]}, "data.scale_aug 0.05: no training image downscaled by it holds one 96x96 HR patch"),
        ("branch_training", {"batch_size": 0}, "branch_training.batch_size 0: must be at least 1"),
        ("final_tuning", {"ema_decay": 1}, "final_tuning.ema_decay 1.0: must be at least 0 (off) and below 1"),
        ("final_training", {"teacher_cache": True}, "final_training.teacher_cache: nothing to cache; it needs a data.teacher"),
        ("data", {"val_fraction": 1}, "data.val_fraction 1: must be in [0, 1)"),
        ("data", {"mix": [1, 1]}, "data.mix: give one weight per training folder (data.train_dir, then data.extra_train_dir: 1)"),
        ("branch_training", {"seed": -1}, "branch_training.seed -1: must not be negative"),
        ("branch_training", {"distill_weight": 1}, "branch_training.distill_weight 1: needs data.teacher"),
        ("final_tuning", {"min_lr": 1e-6}, "final_tuning.min_lr: only with final_tuning.schedule cosine"),
        ("final_training", {"schedule": "cosine", "warmup": 5}, "final_training.warmup 5: must be below final_training.iters 1"),
        ("final_training", {"teacher_x8": True}, "final_training.teacher_x8: no teacher's SR to ensemble"),
        ("data", {"flat_threshold": 300}, "data.flat_threshold 300: must be at least 0 (0: off) and below 255"),
    ],
)
def test_values_out_of_range_are_refused_before_any_stage(
    quick_config: dict, tmp_path: Path, capsys: pytest.CaptureFixture[str], section: str, values: dict, message: str
) -> None:
    err = refused(tmp_path, capsys, with_values(quick_config, section, values))
    assert message in err


def test_select_needs_validation_images_and_stays_the_runs_in_later_phases(
    quick_config: dict, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = with_values(quick_config, "data", {"teacher": quick_config["rfdn"], "val_fraction": 0})
    err = refused(tmp_path, capsys, with_values(config, "final_training", {"select": "worst_gap"}))
    assert "final_training.select worst_gap: needs validation images (data.val_dir, or data.val_fraction above 0)" in err
    config = with_values(quick_config, "data", {"teacher": quick_config["rfdn"]})
    later = {"then": [{"iters": 3, "select": "worst_gap"}]}
    err = refused(tmp_path, capsys, with_values(config, "final_tuning", later))
    assert "final_tuning.then[0].select worst_gap: a later phase continues the run, which chooses its best weights by mean" in err


def test_outputs_that_cannot_be_written_are_refused_before_any_stage(
    quick_config: dict, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    a_file = tmp_path / "notes.txt"  # root writes anywhere: a path under a regular file cannot be written
    a_file.write_text("mine")
    cases = {
        "output under a file": ({"output": str(a_file / "out.pth")}, f"output {a_file / 'out.pth'}: {a_file} is not a folder"),
        "output a folder": ({"output": str(tmp_path)}, f"output {tmp_path}: is a folder"),
        "output a file not a checkpoint": ({"output": str(a_file)}, "exists and is not a model checkpoint"),
        "work_dir a file": ({"work_dir": str(a_file)}, f"work_dir {a_file}: is a file; expected a folder"),
        "work_dir under a file": ({"work_dir": str(a_file / "w")}, f"{a_file} is not a folder"),
    }
    for name, (change, message) in cases.items():
        assert message in refused(tmp_path, capsys, {**quick_config, **change}), name
    # --save_next copies the next stage's input (here the RFDN): its folder is checked first
    for folder, message in (
        (a_file / "next", f"{a_file} is not a folder"),
        (Path(quick_config["work_dir"]), "is the work_dir"),
        (Path(quick_config["rfdn"]).parent, f"holds {quick_config['rfdn']} itself"),
    ):
        assert message in refused(tmp_path, capsys, quick_config, "--save_next", str(folder)), folder


def test_malformed_configs_are_refused_with_the_key(
    quick_config: dict, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    text = json.dumps(quick_config)
    cases: dict[str, tuple[dict | str, str]] = {
        "not JSON": ("{", "not a readable JSON config"),
        "JSON nested too deep": ("[" * 100_000 + "]" * 100_000, "not a readable JSON config (maximum recursion depth"),
        "a JSON list": ("[]", "expected a JSON object (see configs/x4.json), got an empty list"),
        "a key twice": (text[:-1] + ', "output": "x.pth"}', "key 'output' is given twice in one object"),
        "NaN": (with_values(quick_config, "prune", {"ratio": float("nan")}), "prune.ratio: expected a finite number, got NaN"),
        "Infinity": (
            with_values(quick_config, "branch_training", {"lr": float("inf")}),
            "expected a finite number, got Infinity",
        ),
        "a number too large for a float": (
            with_values(quick_config, "final_tuning", {"lr": 10**400}),
            "final_tuning.lr: expected a finite number, got 1000",
        ),
        "true for a number": (with_values(quick_config, "prune", {"steps": True}), "prune.steps: expected an integer, got true"),
        "a string for a number": (
            with_values(quick_config, "prune", {"ratio": "0.5"}),
            'prune.ratio: expected a number, got the string "0.5"',
        ),
        "a fraction for an integer": (
            with_values(quick_config, "final_training", {"iters": 2.5}),
            "expected an integer, got 2.5",
        ),
        "null": (
            with_values(quick_config, "final_tuning", {"lr": None}),
            "final_tuning.lr: expected a number, got null (omit the key",
        ),
        "a string for a list": (
            with_values(quick_config, "data", {"train_dir": "x"}),
            "data.train_dir: expected a list of folders",
        ),
        "a data flag in a stage's section": (
            with_values(quick_config, "prune", {"val_fraction": 0.1}),
            "prune.val_fraction: a data flag",
        ),
        "an unknown key in a phase": (
            with_values(quick_config, "final_tuning", {"then": [{"iters": 5, "lrr": 1e-5}]}),
            "final_tuning.then[0]: unknown key lrr; expected one of iters, batch_size",
        ),
        "a choice the stage does not have": (
            with_values(quick_config, "reparam", {"form": "sparse"}),
            "argument reparam.form: invalid choice: 'sparse'",
        ),
        "an optional stage without iters": ({**quick_config, "final_training": {"lr": 1e-4}}, "final_training lacks iters"),
        "phases of a skipped stage": (
            with_values(quick_config, "final_tuning", {"iters": 0, "then": [{"iters": 5}]}),
            "final_tuning.iters 0 skips the stage, so its 'then' phases would never run",
        ),
        "feature distillation after the merge": (
            with_values(quick_config, "final_training", {"feature_distill": 1.0}),
            "final_training.feature_distill 1: only in branch_training",
        ),
        "a scale augmentation factor that upscales": (
            with_values(quick_config, "data", {"scale_aug": [0.5, 1.5]}),
            "data.scale_aug 1.5: each factor must be between 0 and 1",
        ),
        "scale augmentation factors that are not numbers": (
            with_values(quick_config, "data", {"scale_aug": ["half"]}),
            "data.scale_aug[0]: expected a number",
        ),
        "a path that reads as a flag": (
            with_values(quick_config, "data", {"teacher": "-t.pth"}),
            "data.teacher -t.pth: a path may not",
        ),
        "a missing training folder": (
            with_values(quick_config, "data", {"train_dir": [str(tmp_path / "nowhere")]}),
            f"data.train_dir[0] {tmp_path / 'nowhere'}: folder not found",
        ),
        "a missing teacher": (
            with_values(quick_config, "data", {"teacher": str(tmp_path / "t.pth")}),
            f"data.teacher {tmp_path / 't.pth'}: checkpoint file not found",
        ),
    }
    for name, (config, message) in cases.items():
        assert message in refused(tmp_path, capsys, config), name


def test_an_unknown_stage_gets_one_line(tiny_config: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as stop:
        run_pipeline.main([str(tiny_config), "--from", "prunned"])
    assert stop.value.code == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "argument --from: invalid choice: 'prunned'" in err


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_a_cuda_stage_without_cuda_is_refused_before_any_stage(
    quick_config: dict, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    err = refused(tmp_path, capsys, with_values(quick_config, "final_tuning", {"device": "cuda"}))
    assert "stage final_tuned: --device cuda: CUDA is not available" in err


def test_config_sections_know_every_flag_of_their_stage() -> None:
    """The typed sections and the stages' parsers name the same flags (a new flag must reach the config)."""
    import dataclasses

    from pipeline import config as pipeline_config
    from training.data import DATA_FLAGS

    def names(cls: type) -> set[str]:
        return {f.name for f in dataclasses.fields(cls)}

    def flags_of(parse_args: object, argv: list[str], own: set[str]) -> set[str]:
        return set(vars(parse_args(argv))) - own - set(DATA_FLAGS)  # type: ignore[operator]

    assert names(pipeline_config.DataSection) == set(DATA_FLAGS)
    fit = flags_of(run_pipeline.feature_fit.parse_args, ["a", "b", "--rfdn", "r"], {"src", "dst", "rfdn", "overwrite"})
    assert names(pipeline_config.FeatureFitSection) == fit
    assert names(pipeline_config.TrainingPhase) - {"extra_train_dir"} == flags_of(  # a data flag a section may add
        run_pipeline.train_prfdn.parse_args,
        ["a", "b"],
        # the pipeline sets these (accept_data_change: its own flag); its sections are what --config would give
        {"src", "out", "resume", "overwrite", "accept_data_change", "config"},
    )
    assert names(pipeline_config.BranchSection) == flags_of(  # --verbose: the pipeline prints the summary line only
        run_pipeline.branch.parse_args, ["a", "b"], {"src", "dst", "overwrite", "verbose"}
    )
    assert names(pipeline_config.ReparamSection) == flags_of(
        run_pipeline.reparam.parse_args, ["a", "b"], {"src", "dst", "overwrite"}
    )
    assert names(pipeline_config.PruneSection) == flags_of(run_pipeline.prune.parse_args, ["a", "b"], {"src", "dst", "overwrite"})


def test_an_interrupted_stage_stops_the_pipeline_with_130(
    quick_config: dict, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Ctrl-C in a stage is no failure to fix: the pipeline exits 130 and says to run it again."""

    def interrupted(args: object) -> None:
        raise KeyboardInterrupt  # Ctrl-C inside the stage

    monkeypatch.setattr(run_pipeline.branch, "CLI", dataclasses.replace(run_pipeline.branch.CLI, run=interrupted))
    (tmp_path / "config.json").write_text(json.dumps(quick_config))
    assert run_pipeline.main([str(tmp_path / "config.json")]) == 130
    assert "interrupted; run the same command again to continue" in capsys.readouterr().err


def test_a_full_disk_in_a_stage_is_one_line_and_leaves_its_file_whole(
    tiny_run: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    work = Path(json.loads(tiny_run.read_text())["work_dir"])
    kept = (work / "final.pth").read_bytes()

    def full_disk(*args: object, **kwargs: object) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(torch, "save", full_disk)
    assert run_pipeline.main([str(tiny_run), "--force", "--from", "final", "--until", "final"]) == 2
    err = capsys.readouterr().err
    assert err == f"run_pipeline.py: error: [Errno 28] cannot write {work / 'final.pth'}: No space left on device\n"
    assert (work / "final.pth").read_bytes() == kept


def parameter_count(path: Path) -> int:
    return sum(tensor.numel() for tensor in read_model_checkpoint(path).state_dict.values())


def test_frontier_points_prune_the_merged_network_to_their_budgets(
    tiny_run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from pipeline import frontier as run_frontier

    config = json.loads(tiny_run.read_text())
    quick = {"importance": "magnitude", "finetune_iters": 0}  # the run's Taylor ranking and fine-tuning are tested above
    config["frontier"] = [
        {"name": "half", "prune": {"ratio": 0.5, **quick}},  # the run's final training (1 iteration)
        {"name": "most", "prune": {"ratio": 0.7, **quick}, "final_training": {"iters": 2, "then": [{"iters": 3, "lr": 1e-5}]}},
    ]
    tiny_run.write_text(json.dumps(config))
    capsys.readouterr()
    assert run_frontier.main([str(tiny_run)]) == 0
    out = capsys.readouterr().out
    points = tmp_path / "work" / "frontier"
    half, most = points / "half" / "final_trained.pth", points / "most" / "final_trained.pth"
    assert f"--extra half={half} --extra most={most}" in out
    assert parameter_count(most) < parameter_count(half) < parameter_count(tmp_path / "work" / "final.pth")
    state = run_pipeline.train_prfdn.read_state(points / "most" / "final_trained.state.pth")
    assert state["iteration"] == 3 and state["settings"]["lr"] == 1e-5
    chain = read_model_checkpoint(half).provenance["parent_provenance"]["parent_provenance"]
    assert chain["stage"] == "pruned" and chain["parent"] == str(tmp_path / "work" / "merged.pth")

    assert run_frontier.main([str(tiny_run), "--only", "half"]) == 0  # done: every stage skipped
    assert capsys.readouterr().out.count("exists, skipped") == 3
    assert run_frontier.main([str(tiny_run), "--only", "third"]) == 2
    assert "--only third: no such point" in capsys.readouterr().err
    missing = tmp_path / "missing"
    config["frontier"][1]["final_training"]["then"][0]["extra_train_dir"] = [str(missing)]
    tiny_run.write_text(json.dumps(config))
    assert run_frontier.main([str(tiny_run), "--only", "most", "--force"]) == 2  # refused before any work
    assert f"frontier[1].final_training.then[0].extra_train_dir[0] {missing}: folder not found" in capsys.readouterr().err
    del config["frontier"][1]["final_training"]["then"][0]["extra_train_dir"]
    (tmp_path / "teacher.pth").write_bytes(b"not a checkpoint")  # read as the run reads it: before any work
    tiny_run.write_text(json.dumps({**config, "data": {**config["data"], "teacher": str(tmp_path / "teacher.pth")}}))
    assert run_frontier.main([str(tiny_run), "--only", "most", "--force"]) == 2
    assert f"data.teacher {tmp_path / 'teacher.pth'}" in capsys.readouterr().err

    config["frontier"][0]["prune"]["ratio"] = 0.6  # the budget changed after the point was pruned
    tiny_run.write_text(json.dumps(config))
    assert run_frontier.main([str(tiny_run)]) == 2
    assert "half/pruned.pth: pruned with ratio 0.5, the config now gives 0.6; redo the point with --force --only half" in (
        capsys.readouterr().err
    )
    config["frontier"][0]["prune"]["ratio"] = 0.3  # the run's own pruning (ratio 0.3, one step): the same widths
    tiny_run.write_text(json.dumps(config))
    before = sorted((path, path.stat().st_mtime_ns) for path in (points / "half").iterdir())
    assert run_frontier.main([str(tiny_run), "--only", "half", "--force"]) == 2
    assert "frontier[0] (half): its pruning ends at step 1 with" in capsys.readouterr().err
    assert sorted((path, path.stat().st_mtime_ns) for path in (points / "half").iterdir()) == before  # nothing written
    config["frontier"][0]["prune"]["round_to"] = 512  # a rounding that prunes nothing: refused in the point's keys
    tiny_run.write_text(json.dumps(config))
    assert run_frontier.main([str(tiny_run), "--only", "half", "--force"]) == 2
    assert "frontier[0].prune.round_to 512: at frontier[0].prune.ratio 0.3 no layer loses" in capsys.readouterr().err
    del config["frontier"][0]["prune"]["round_to"]
    tiny_run.write_text(json.dumps(config))

    (tmp_path / "work" / "merged.pth").unlink()
    assert run_frontier.main([str(tiny_run), "--only", "half", "--force"]) == 2  # refused before any work
    err = capsys.readouterr().err
    assert "merged.pth: the run's merged network is not there or not finished" in err and "--until merged)" in err


def test_point_names_that_report_rows_take_are_the_report_rows() -> None:
    from pipeline import report

    assert set(pipeline_config.REPORT_ROW_NAMES) == {name for _, name, _ in report.ROWS}


def test_a_point_takes_its_own_budget_and_training_over_the_runs() -> None:
    run_prune = pipeline_config.PruneSection(ratio=0.8, steps=8, target_params=317000, finetune_iters=100)
    ratio_only = pipeline_config.read_point_prune({"ratio": 0.5}, run_prune, "p")
    assert (ratio_only.ratio, ratio_only.target_params, ratio_only.steps, ratio_only.finetune_iters) == (0.5, None, 8, 100)
    flops = pipeline_config.read_point_prune({"target_flops": 16e9}, run_prune, "p")
    assert (flops.ratio, flops.target_params, flops.target_flops) == (0.8, None, 16e9)
    run_training = pipeline_config.read_training({"iters": 40000, "lr": 2e-4, "then": [{"iters": 60000, "lr": 5e-5}]}, "t")
    point = pipeline_config.read_point_training({"iters": 20000}, run_training, "p")
    assert (point.first.iters, point.first.lr, point.then) == (20000, 2e-4, ())  # the run's later phases stay its own


@pytest.mark.parametrize(
    "frontier, message",
    [
        ({"name": "a"}, "frontier must be a list of objects"),
        ([{"name": "a", "prune": {"steps": 2}}], "frontier[0].prune: give the point's budget"),
        ([{"name": "a", "prune": {"ratio": 0.5}}, {"name": "a", "prune": {"ratio": 0.6}}], "frontier[1].name 'a': taken"),
        ([{"name": "0.6x", "prune": {"ratio": 0.5}}], "frontier[0].name '0.6x': expected letters"),
        ([{"name": "a", "prune": {"ratio": 1.5}}], "frontier[0].prune.ratio 1.5: must be in (0, 1)"),
        ([{"name": "a", "prune": {"ratio": 0.5}, "final_training": {"lr": -1}}], "frontier[0].final_training.lr"),
        ([{"name": "a", "prune": {"ratio": 0.5}, "budget": 1}], "frontier[0]: unknown key budget"),
        ([{"name": "pruned", "prune": {"ratio": 0.5}}], "frontier[0].name 'pruned': taken"),
    ],
)
def test_frontier_mistakes_are_refused_with_the_key(
    tiny_config: Path, frontier: object, message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    from pipeline import frontier as run_frontier

    config = json.loads(tiny_config.read_text())
    config["frontier"] = frontier
    tiny_config.write_text(json.dumps(config))
    assert run_frontier.main([str(tiny_config)]) == 2
    assert message in capsys.readouterr().err
    assert run_pipeline.main([str(tiny_config)]) == 2  # the pipeline reads the same config
    assert not (tiny_config.parent / "work").exists()


def test_run_from_ablation_finishes_the_pipeline_from_the_runs_weights(
    finished_tiny_run: Path,
    tmp_path: Path,
    any_rfdn_checkpoint: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from pipeline import ablations as run_ablations
    from pipeline import from_ablation as run_from_ablation

    (tmp_path / "pipe").mkdir()
    pipe = str(write_tiny_config(tmp_path / "pipe", any_rfdn_checkpoint, frontier=[{"name": "half", "prune": {"ratio": 0.5}}]))
    target = tmp_path / "pipe" / "work" / "branch_trained.pth"
    hr_dir = str(ensure_builtin_dataset()[0].hr_path.parent)
    common = ["--train_dir", hr_dir, "--val_fraction", "0.2", "--iters", "2", "--batch_size", "2", "--patch_size", "16"]
    common += ["--device", "cpu", "--no_progress"]
    runs = [{"name": "short", "flags": []}, {"name": "longer", "flags": ["--iters", "3"]}]
    runs.append({"name": "elsewhere", "flags": ["--extra_train_dir", str(tmp_path / "missing")]})  # not RUN: not checked
    ablations = tmp_path / "ablations.json"
    src = finished_tiny_run / "work" / "branch_fitted.pth"
    config = {"src": str(src), "work_dir": str(tmp_path / "abl"), "common": common, "runs": runs}
    ablations.write_text(json.dumps(config))
    argv = [str(ablations), "longer", pipe]

    assert run_ablations.main([str(ablations)]) == 2  # all runs: run elsewhere's folder is checked, before any trains
    assert f"runs elsewhere: --extra_train_dir {tmp_path / 'missing'}" in capsys.readouterr().err
    assert run_from_ablation.main([str(ablations), "other", pipe]) == 2
    assert "RUN other: not a run of" in capsys.readouterr().err
    target.parent.mkdir()
    target.write_bytes(b"a user's file")  # refused before anything trains, and kept
    assert run_from_ablation.main(argv) == 2
    assert "branch_trained.pth exists and is not a finished run's weights" in capsys.readouterr().err
    assert target.read_bytes() == b"a user's file" and not (tmp_path / "abl").exists()
    target.unlink()
    (target.parent / "merged.pth").write_bytes(b"another branch model's merge")
    assert run_from_ablation.main(argv) == 2
    assert "merged.pth: exists, from another branch model" in capsys.readouterr().err
    (target.parent / "merged.pth").unlink()
    clash = {**json.loads(Path(pipe).read_text()), "output": str(tmp_path / "abl" / "longer.pth")}
    (tmp_path / "clash.json").write_text(json.dumps(clash))  # the pipeline's output would replace the run's weights
    assert run_from_ablation.main([str(ablations), "longer", str(tmp_path / "clash.json")]) == 2
    assert "longer.pth" in capsys.readouterr().err
    (tmp_path / "merged_src.json").write_text(json.dumps({**config, "src": str(finished_tiny_run / "work" / "merged.pth")}))
    assert run_from_ablation.main([str(tmp_path / "merged_src.json"), "longer", pipe]) == 2
    assert "not a branch model" in capsys.readouterr().err and not (tmp_path / "abl").exists()

    stopped = [130]  # the training stopped (SIGTERM): nothing is copied, the stop's exit code is passed on
    monkeypatch.setattr(run_from_ablation.run_ablations, "main", lambda args: stopped[0])
    assert run_from_ablation.main(argv) == 130 and not target.exists()
    monkeypatch.undo()

    assert run_from_ablation.main([*argv, "--until", "branch"]) == 2  # a stage before the branch model's weights
    assert "--until branch comes before --from merged" in capsys.readouterr().err and not target.exists()
    frontier_calls: list[list[str]] = []
    monkeypatch.setattr(run_from_ablation.run_frontier, "main", lambda args: frontier_calls.append(args) or 0)
    assert run_from_ablation.main([*argv, "--until", "merged"]) == 0  # stops there: no pruning, no frontier
    assert (target.parent / "merged.pth").is_file() and not (target.parent / "pruned.pth").exists() and not frontier_calls
    assert run_from_ablation.main(argv) == 0
    assert target.read_bytes() == (tmp_path / "abl" / "longer.pth").read_bytes() and frontier_calls == [[pipe]]
    assert not (tmp_path / "abl" / "short.log.jsonl").exists()  # only RUN trains
    stages, chain = [], read_model_checkpoint(tmp_path / "pipe" / "team13_prfdn.pth").provenance
    while chain:
        stages.append(chain["stage"])
        chain = chain.get("parent_provenance")
    assert stages == ["train", "train", "final", "pruned", "merged", "train", "feature_fit", "branch"]
    capsys.readouterr()
    assert run_from_ablation.main(argv) == 0  # done: nothing trains or is copied again
    out = capsys.readouterr().out
    assert "copied" not in out and "longer: done (3 iterations)" in out and "merged.pth exists, skipped" in out


def test_a_training_section_or_phase_gives_its_own_training_folders(
    tiny_run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """E.g. line art in the final tuning only: a section's ``extra_train_dir`` replaces the data section's."""
    config = json.loads(tiny_run.read_text())
    work = Path(config["work_dir"])
    before = read_model_checkpoint(work / "final_tuned.pth").provenance["data"]
    kept = (work / "final_tuned.pth").read_bytes()
    missing, original = tmp_path / "missing", config["final_tuning"]
    for section, key in (
        ({"extra_train_dir": [str(missing)]}, "final_tuning"),
        ({"then": [{"iters": 3}, {"iters": 4, "extra_train_dir": [str(missing)]}]}, "final_tuning.then[1]"),
    ):
        config["final_tuning"] = {**original, "then": [], **section}
        tiny_run.write_text(json.dumps(config))
        assert run_pipeline.main([str(tiny_run), "--from", "final_tuned", "--force"]) == 2  # refused before any work
        assert f"{key}.extra_train_dir[0] {missing}: folder not found" in capsys.readouterr().err  # the config's key
        assert (work / "final_tuned.pth").read_bytes() == kept

    drawings = tmp_path / "drawings"
    drawings.mkdir()
    lines = np.full((128, 128, 3), 255, np.uint8)
    lines[::8] = 0  # black lines on white
    cv2.imwrite(str(drawings / "lines.png"), lines)
    config["final_tuning"] = {**original, "then": [], "extra_train_dir": [str(drawings)]}
    tiny_run.write_text(json.dumps(config))
    assert run_pipeline.main([str(tiny_run), "--from", "final_tuned", "--force"]) == 0
    data = read_model_checkpoint(work / "final_tuned.pth").provenance["data"]
    assert data["extra_train_dirs"] == [str(drawings)] and data["train_images"] == before["train_images"] + 1
    assert read_model_checkpoint(work / "final_trained.pth").provenance["data"]["extra_train_dirs"] == []

    # a later phase of the same run with other data: the resume says so, the patches come from the new data
    first = {key: value for key, value in config["final_tuning"].items() if key != "extra_train_dir"}
    config["final_tuning"] = {**first, "then": [{"iters": 2, "extra_train_dir": [str(drawings)]}]}
    tiny_run.write_text(json.dumps(config))
    capsys.readouterr()
    assert run_pipeline.main([str(tiny_run), "--from", "final_tuned", "--force"]) == 0
    assert f"--resume with other data (--extra_train_dir ['{drawings}'])" in capsys.readouterr().err
    assert read_model_checkpoint(work / "final_tuned.pth").provenance["data"]["extra_train_dirs"] == [str(drawings)]


def test_training_data_a_later_stage_cannot_use_is_refused_before_the_first_stage(
    quick_config: dict, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The pruning's patch is larger than the training images: refused before the branch stage, not after
    the stages before the pruning have run (the loader's own check, made up front)."""
    err = refused(tmp_path, capsys, with_values(quick_config, "prune", {"patch_size": 200}))
    assert "stage pruned: " in err and "smaller than the 800x800 HR patch (prune.patch_size 200" in err
    assert "lower prune.patch_size, give data.skip_small to leave such images out" in err  # in the config's words
    assert not Path(quick_config["work_dir"]).exists()
    refused(tmp_path, capsys, with_values(quick_config, "prune", {"patch_size": 200, "importance": "magnitude"}))
    # by magnitude, without fine-tuning, the pruning reads no images: nothing to refuse there
    config = with_values(quick_config, "prune", {"patch_size": 200, "importance": "magnitude", "finetune_iters": 0})
    (tmp_path / "config.json").write_text(json.dumps(config))
    parsed = run_pipeline.parse_config(str(tmp_path / "config.json"))
    pending = run_pipeline.check_pending(parsed, run_pipeline.plan(parsed))  # raises nothing
    assert "pruned" in [step.stage for step in pending]
    # a training section without patch_size: train_prfdn.py's default (48) is the one checked
    config["final_training"] = {key: value for key, value in config["final_training"].items() if key != "patch_size"}
    (tmp_path / "config.json").write_text(json.dumps(config))
    parsed = run_pipeline.parse_config(str(tmp_path / "config.json"))
    assert "final_trained" in [step.stage for step in run_pipeline.check_pending(parsed, run_pipeline.plan(parsed))]


def test_config_paths_are_written_once_against_the_data_root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """``{data_root}`` in a config's paths is its ``data_root`` key (default ../shared), or PRFDN_DATA_ROOT over both."""
    from pipeline import config as pipeline_config
    from utils.errors import HarnessError

    monkeypatch.delenv("PRFDN_DATA_ROOT", raising=False)
    raw = {
        "rfdn": "{data_root}/model_zoo/team00_rfdn.pth",
        "work_dir": "runs/x",
        "output": "runs/x/out.pth",
        "data": {"train_dir": ["{data_root}/train/BSD200", "data/free/clipart_train"]},
    }
    path = tmp_path / "config.json"
    path.write_text(json.dumps(raw))
    config = pipeline_config.parse_config(path)
    assert config.rfdn == "../shared/model_zoo/team00_rfdn.pth"
    assert config.data.train_dir == ("../shared/train/BSD200", "data/free/clipart_train")
    path.write_text(json.dumps({**raw, "data_root": ".gpu_data"}))
    assert pipeline_config.parse_config(path).data.train_dir[0] == ".gpu_data/train/BSD200"
    monkeypatch.setenv("PRFDN_DATA_ROOT", "/srv/data")
    assert pipeline_config.parse_config(path).rfdn == "/srv/data/model_zoo/team00_rfdn.pth"
    path.write_text(json.dumps({**raw, "data_root": 3}))
    with pytest.raises(HarnessError, match=r"data_root: expected a folder, got 3"):
        pipeline_config.parse_config(path)


@pytest.mark.parametrize("variant", ["seed", "deep3"])
def test_merged_structure_is_what_the_configs_cut_merges_to(variant: str, tmp_path: Path, any_rfdn_checkpoint: Path) -> None:
    """The network the pruning plan is checked on before any stage runs has the widths the cut's merge will have."""
    from models.team00_RFDN import RFDN
    from transform.branch import branch_from_rfdn
    from transform.reparam import merge_branches

    config = pipeline_config.parse_config(write_tiny_config(tmp_path, any_rfdn_checkpoint, branch={"variant": variant}))
    form = config.reparam_job("a.pth", "b.pth").form
    merged, _ = branch_from_rfdn(RFDN().state_dict(), variant=variant)
    assert pipeline_config.merged_structure(config).cfg == merge_branches(merged, form).cfg
