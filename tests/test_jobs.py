"""Every command parses into its job class, and the pipeline builds the same job from its config."""

from __future__ import annotations

import dataclasses

import pytest

from pipeline.config import config_keys
from training import run as train_prfdn
from training.loop import TrainSettings
from transform import branch, export, feature_fit, onnx, prune, prune_chain, reparam
from utils.errors import HarnessError
from utils.settings import flag, job_class, named_as, with_values

STAGES = (branch, reparam, export, onnx, prune, prune_chain)


@pytest.mark.parametrize("stage", STAGES, ids=lambda module: module.CLI.prog)
def test_a_stage_command_line_with_no_flags_is_its_job_with_the_defaults(stage: object) -> None:
    cli = stage.CLI  # type: ignore[attr-defined]
    parsed = cli.parse_args(["in.pth", "out.pth"])
    assert isinstance(parsed, cli.job)
    assert parsed == cli.job_for("in.pth", "out.pth")


def test_feature_fit_and_training_parse_into_their_jobs() -> None:
    fit = feature_fit.parse_args(["in.pth", "out.pth", "--rfdn", "r.pth", "--train_dir", "d"])
    assert fit == feature_fit.CLI.job_for("in.pth", "out.pth", {"rfdn": "r.pth", "train_dir": ("d",)})
    job = train_prfdn.parse_args(["in.pth", "out.pth", "--lr", "3e-4", "--train_dir", "d"])
    assert isinstance(job, train_prfdn.TrainJob)
    assert (job.lr, job.train_dir, job.iters) == (3e-4, ["d"], None)  # not given: None, the stage's default applies


def test_a_flag_given_is_the_job_setting_of_that_name() -> None:
    job = prune.parse_args(["in.pth", "out.pth", "--ratio", "0.3", "--finetune_iters", "7", "--batch_size", "2"])
    assert (job.ratio, job.finetune_iters, job.batch_size, job.steps) == (0.3, 7, 2, 4)


def test_a_setting_of_another_stage_is_refused_in_one_line() -> None:
    with pytest.raises(HarnessError, match=r"^form: not a setting of transform\.prune$"):
        prune.CLI.job_for("in.pth", "out.pth", {"form": "dense"})


def test_with_values_leaves_the_job_it_copies_unchanged() -> None:
    start = prune.CLI.job_for("in.pth", "out.pth")
    changed = with_values(start, {"ratio": 0.25, "train_dir": ("a", "b")}, "transform.prune")
    assert (start.ratio, start.train_dir) == (0.5, None)
    assert (changed.ratio, changed.train_dir) == (0.25, ["a", "b"])  # as the parser gives a list


def test_a_job_class_refuses_a_setting_named_twice_and_a_default_of_no_field() -> None:
    @dataclasses.dataclass
    class Settings:
        lr: float = dataclasses.field(default=1.0, metadata={"help": "rate"})

    with pytest.raises(ValueError, match="lr is given twice"):
        job_class("Twice", (("lr", float, None),), ((Settings, None),))
    with pytest.raises(ValueError, match="defaults for no field: momentum"):
        job_class("Stray", (), ((Settings, None),), defaults={"momentum": 0.9})


def test_benchmark_parses_into_its_job() -> None:
    from pipeline import benchmark

    assert benchmark.parse_args([]) == benchmark.BenchmarkJob()
    job = benchmark.parse_args(["a=x.pth", "--device", "cpu", "--variants", "fp32", "bf16", "--repeats", "3"])
    assert (job.models, job.device, job.variants, job.repeats, job.warmup) == (["a=x.pth"], "cpu", ["fp32", "bf16"], 3, 3)


def test_score_groups_parses_into_its_job() -> None:
    from pipeline import groups

    job = groups.parse_args(["a.pth", "b.pth", "--val_dir", "v", "--reference", "0", "--x8"])
    assert isinstance(job, groups.GroupsJob)
    assert (job.checkpoints, job.val_dir, job.reference, job.x8, job.train_dir) == (["a.pth", "b.pth"], "v", 0, True, None)


def test_a_job_pickles_to_a_worker_process() -> None:
    import pickle

    for job in (prune.CLI.job_for("a.pth", "b.pth", {"ratio": 0.3}), train_prfdn.TrainJob(src="a.pth", out="b.pth")):
        assert pickle.loads(pickle.dumps(job)) == job


def test_a_check_names_a_setting_as_the_user_gave_it() -> None:
    settings = TrainSettings(schedule="cosine", min_lr=1e-3, lr=1e-4)
    with pytest.raises(HarnessError, match=r"^--min_lr 0.001: must not exceed --lr 0.0001"):
        settings.check()
    with named_as(config_keys("final_tuning")), pytest.raises(HarnessError) as refused:
        settings.check()
    assert str(refused.value).startswith("final_tuning.min_lr 0.001: must not exceed final_tuning.lr 0.0001")
    with named_as(config_keys("prune")):
        assert (flag("val_fraction"), flag("rfdn"), flag("form", "transform.reparam")) == (
            "data.val_fraction",
            "rfdn",
            "reparam.form",
        )
    assert (flag("lr"), flag("form", "transform.reparam")) == ("--lr", "transform.reparam --form")
