"""benchmark.py (interleaved timing), scripts/plot_pareto.py and scripts/report.py (the README results table)."""

from __future__ import annotations

import json
import os
import shutil
import signal
from pathlib import Path

import numpy as np
import pytest
import torch

from models.team00_RFDN import RFDN
from pipeline import benchmark
from pipeline import pareto as plot_pareto
from pipeline import report as report_script
from utils.benchmark import Entry, Variant, report, stats, time_interleaved
from utils.datasets import ensure_builtin_dataset
from utils.errors import HarnessError
from utils.image import imread_uint, imsave


def test_variant_parse_and_refusals() -> None:
    assert Variant.parse("fp32") == Variant()
    variant = Variant.parse("fp16+channels_last+compile")
    assert (variant.precision, variant.channels_last, variant.compile) == ("fp16", True, True)
    assert variant.name == "fp16+channels_last+compile"
    assert Variant.parse("channels_last").name == "fp32+channels_last"
    for bad in ("fp64", "fp16+fp32", "channels_last+channels_last", "", "fp16+tensorrt"):
        with pytest.raises(HarnessError, match="--variants"):
            Variant.parse(bad)
    with pytest.raises(HarnessError, match="need --device cuda"):
        Variant.parse("fp16").check_device(torch.device("cpu"))


def test_stats_on_known_times() -> None:
    values = stats([4.0, 1.0, 3.0, 2.0, 100.0])
    assert values["median_ms"] == 3.0 and values["min_ms"] == 1.0 and values["max_ms"] == 100.0
    assert values["p25_ms"] == 2.0 and values["p75_ms"] == 4.0
    assert values["mean_ms"] == pytest.approx(22.0)


def test_rounds_are_interleaved_and_rotated() -> None:
    calls: list[str] = []

    def runner(name: str):
        return lambda x: calls.append(name) or x

    entries = [Entry(n, Variant(), runner(n), torch.zeros(1)) for n in ("a", "b", "c")]
    time_interleaved(entries, torch.device("cpu"), repeats=3, warmup=1)
    assert calls == ["a", "b", "c", "a", "b", "c", "b", "c", "a", "c", "a", "b"]
    assert all(len(e.times_ms) == 3 for e in entries)
    rows = report(entries, "a")
    assert rows[0]["ratio_to_reference"] == 1.0 and {"median_ms", "p25_ms", "times_ms"} <= set(rows[1])


def test_benchmark_cli_writes_json_and_refuses_bad_input(
    tmp_path: Path, random_rfdn_checkpoint: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "bench.json"
    argv = [f"a={random_rfdn_checkpoint}", f"b={random_rfdn_checkpoint}", "--device", "cpu", "--size", "20x24"]
    assert benchmark.main([*argv, "--repeats", "2", "--warmup", "0", "--json", str(out)]) == 0
    result = json.loads(out.read_text())
    assert result["lr_size"] == [20, 24] and result["reference"] == "a" and result["device"] == "cpu"
    assert [r["model"] for r in result["results"]] == ["a", "b"]
    assert result["models"]["a"]["params"] == 433448 and result["models"]["a"]["conv2d"] == 64
    assert all(len(r["times_ms"]) == 2 and r["median_ms"] > 0 for r in result["results"])
    capsys.readouterr()
    bad = [
        ([str(tmp_path / "missing.pth")], "not found"),
        ([*argv, "--size", "20"], "expected HxW"),
        ([f"a={random_rfdn_checkpoint}", f"a={random_rfdn_checkpoint}"], "must differ"),
        ([*argv, "--reference", "zzz"], "--reference zzz"),
        ([*argv, "--variants", "fp16"], "fp16"),
    ]
    for args, message in bad:
        assert benchmark.main([*args, "--json", str(tmp_path / "bad.json")]) == 2
        assert message in capsys.readouterr().err
    assert not (tmp_path / "bad.json").exists()


def test_variants_of_one_model_do_not_share_its_weights() -> None:
    """Module.to works in place: each variant must get its own copy, in its own dtype and memory format."""
    model = RFDN()
    cpu = torch.device("cpu")
    fp32, bf16, last = (Variant.parse(v).prepare(model, cpu) for v in ("fp32", "bf16", "fp32+channels_last"))
    assert len({id(model), id(fp32), id(bf16), id(last)}) == 4
    assert model.fea_conv.weight.dtype == torch.float32 and fp32.fea_conv.weight.dtype == torch.float32
    assert bf16.fea_conv.weight.dtype == torch.bfloat16
    assert last.B1.c1_r.weight.is_contiguous(memory_format=torch.channels_last)
    assert not fp32.B1.c1_r.weight.is_contiguous(memory_format=torch.channels_last)
    x = Variant.parse("bf16").make_input(torch.rand(1, 3, 16, 16), cpu)
    assert bf16(x).dtype == torch.bfloat16


def test_benchmark_model_specs_and_compile_warmup(tmp_path: Path, random_rfdn_checkpoint: Path) -> None:
    odd = tmp_path / "lr=1e-4"
    odd.mkdir()
    shutil.copy(random_rfdn_checkpoint, odd / "final.pth")
    assert benchmark.parse_model(str(odd / "final.pth")) == ("final", odd / "final.pth")
    assert benchmark.parse_model(f"x={odd / 'final.pth'}") == ("x", odd / "final.pth")
    argv = [str(random_rfdn_checkpoint), "--device", "cpu", "--variants", "fp32+compile", "--warmup", "0"]
    with pytest.raises(HarnessError, match="time the compilation"):
        benchmark.run(benchmark.parse_args(argv))


def _bench_and_eval() -> tuple[dict, dict]:
    bench = {
        "device_name": "test cpu",
        "lr_size": [8, 8],
        "models": {"slow_good": {"params": 400}, "fast_bad": {"params": 100}, "slow_bad": {"params": 300}},
        "results": [
            {"model": "slow_good", "variant": "fp32", "median_ms": 10.0},
            {"model": "fast_bad", "variant": "fp32", "median_ms": 2.0},
            {"model": "slow_bad", "variant": "fp32", "median_ms": 12.0},
            {"model": "fast_bad", "variant": "fp16", "median_ms": 1.0},
        ],
    }
    sets = lambda p: {"A": {"psnr": p}, "B": {"psnr": p + 1}}  # noqa: E731
    evaluation = {
        "models": {"slow_good": {"sets": sets(30.0)}, "fast_bad": {"sets": sets(28.0)}, "slow_bad": {"sets": sets(27.0)}}
    }
    return bench, evaluation


def test_pareto_points_and_front(tmp_path: Path) -> None:
    bench, evaluation = _bench_and_eval()
    found = plot_pareto.points(bench, evaluation, "mean")
    assert len(found) == 3  # first variant only
    assert {p["name"]: p["psnr"] for p in found} == {"slow_good": 30.5, "fast_bad": 28.5, "slow_bad": 27.5}
    assert [p["name"] for p in plot_pareto.pareto_front(found)] == ["fast_bad", "slow_good"]
    with pytest.raises(HarnessError, match="--set C"):
        plot_pareto.points(bench, evaluation, "C")
    (tmp_path / "b.json").write_text(json.dumps(bench))
    (tmp_path / "e.json").write_text(json.dumps(evaluation))
    assert plot_pareto.main([str(tmp_path / "b.json"), str(tmp_path / "e.json"), "--out", str(tmp_path / "p.png")]) == 0
    assert (tmp_path / "p.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_report_regenerates_the_readme_table(tmp_path: Path, random_rfdn_checkpoint: Path) -> None:
    """Two checkpoints, tiny benchmark sets made from a corner of a built-in image: every number comes from a run."""
    pair = ensure_builtin_dataset()[0]
    hr, lr = imread_uint(pair.hr_path)[:96, :96], imread_uint(pair.lr_path)[:24, :24]
    bench_dir = tmp_path / "benchmark"
    for name in report_script.SETS:
        (bench_dir / name / "LR_bicubic" / "X4").mkdir(parents=True)
        (bench_dir / name / "HR").mkdir()
        imsave(hr, bench_dir / name / "HR" / pair.hr_path.name)
        imsave(lr, bench_dir / name / "LR_bicubic" / "X4" / pair.lr_path.name)
    final = tmp_path / "final.pth"
    shutil.copy(random_rfdn_checkpoint, final)
    config = {"rfdn": str(random_rfdn_checkpoint), "work_dir": str(tmp_path / "work"), "output": str(final), "data": {}}
    (tmp_path / "c.json").write_text(json.dumps(config))
    readme = tmp_path / "README.md"
    readme.write_text("intro\n<!-- results:begin -->\nold table\n<!-- results:end -->\nrest\n")
    argv = [str(tmp_path / "c.json"), "--benchmark_dir", str(bench_dir), "--out_dir", str(tmp_path / "out")]
    argv += ["--docs_dir", str(tmp_path / "docs"), "--readme", str(readme), "--repeats", "1", "--warmup", "0", "--size", "16x16"]
    assert report_script.main([*argv, "--extra", f"budget_b={tmp_path / 'none.pth'}"]) == 2  # checked before any work
    assert not (tmp_path / "out").exists()
    assert report_script.main([*argv, "--extra", f"budget_a={final}"]) == 0
    text = readme.read_text()
    assert "| budget_a |" in text and " | +0.000 / +0.000 / +0.000 / +0.000 | " in text  # RFDN's weights: no gap
    assert text.startswith("intro\n<!-- results:begin -->\n| model |") and text.endswith("<!-- results:end -->\nrest\n")
    assert "old table" not in text and "| RFDN (official) |" in text and "| final (team13_prfdn.pth) |" in text
    evaluation = json.loads((tmp_path / "out" / "evaluation.json").read_text())
    assert set(evaluation["models"]) == {"rfdn", "final", "budget_a"}
    rfdn = evaluation["models"]["rfdn"]
    assert rfdn["sets"]["Set5"] == evaluation["models"]["final"]["sets"]["Set5"]  # same weights, same scores
    assert f"{rfdn['sets']['Set14']['psnr']:.3f} / {rfdn['sets']['Set14']['psnr_y']:.3f}" in text
    assert (tmp_path / "docs" / "pareto_cpu.png").is_file() and (tmp_path / "docs" / "results.md").is_file()


def test_report_refuses_missing_sets_and_markers(
    tmp_path: Path, random_rfdn_checkpoint: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = {"rfdn": str(random_rfdn_checkpoint), "work_dir": str(tmp_path), "output": str(tmp_path / "o.pth"), "data": {}}
    (tmp_path / "c.json").write_text(json.dumps(config))
    assert report_script.main([str(tmp_path / "c.json"), "--benchmark_dir", str(tmp_path / "nowhere")]) == 2
    assert "no Set5, Set14, BSD68, Urban100_10" in capsys.readouterr().err
    assert report_script.main([str(tmp_path / "c.json"), "--size", "7", "--benchmark_dir", str(tmp_path)]) == 2
    assert "--size '7': expected HxW" in capsys.readouterr().err  # flags refused before any evaluation
    if not torch.cuda.is_available():
        assert report_script.main([str(tmp_path / "c.json"), "--device", "cuda"]) == 2
        assert "CUDA is not available" in capsys.readouterr().err
    with pytest.raises(HarnessError, match="markers"):
        report_script.replace_between_markers("no markers", "x", "README.md")


# --- checked before any work -------------------------------------------------------------------------------


def _refused(capsys: pytest.CaptureFixture[str], rc: int) -> str:
    err = capsys.readouterr().err
    assert rc == 2 and "Traceback" not in err and len(err.strip().splitlines()) == 1, err
    return err.strip()


def test_benchmark_refuses_outputs_and_checkpoints_before_timing(
    tmp_path: Path, random_rfdn_checkpoint: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(benchmark, "time_interleaved", lambda *a: pytest.fail("timed before the checks"))
    (tmp_path / "afile").write_text("x")
    ckpt = [f"a={random_rfdn_checkpoint}", "--device", "cpu", "--size", "16x16"]
    line = _refused(capsys, benchmark.main([*ckpt, "--json", str(tmp_path / "afile" / "b.json")]))
    assert f"--json {tmp_path / 'afile' / 'b.json'}: {tmp_path / 'afile'} is not a folder" in line
    line = _refused(capsys, benchmark.main([*ckpt, "--json", str(random_rfdn_checkpoint)]))
    assert f"--json {random_rfdn_checkpoint}: is the same file as model a" in line
    assert "--size 14x20: expected at least 15x15" in _refused(capsys, benchmark.main([*ckpt, "--size", "14x20"]))
    assert "--warmup -1: expected 0 or more" in _refused(capsys, benchmark.main([*ckpt, "--warmup", "-1"]))
    assert "model 'a=': expected NAME=PATH or PATH" in _refused(capsys, benchmark.main(["a=", *ckpt[1:]]))
    line = _refused(capsys, benchmark.main([f"a={tmp_path}", *ckpt[1:]]))
    assert f"{tmp_path} is a folder; expected a checkpoint file" in line


def test_benchmark_says_what_is_wrong_with_a_checkpoint(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The same one-line messages as test_demo.py: built in one place (load_model / read_model_checkpoint)."""
    from models.team13_PRFDN import PRFDNConfig
    from training.loop import STATE_FORMAT
    from utils.checkpoint import ModelCheckpoint, save_model_checkpoint

    config = {**PRFDNConfig.merged(nf=8).to_config(), "tail": -8}
    save_model_checkpoint(tmp_path / "neg.pth", ModelCheckpoint("prfdn", config, {"x": torch.zeros(1)}))
    torch.save({"format": STATE_FORMAT, "model": {}}, tmp_path / "out.state.pth")
    out = ["--json", str(tmp_path / "b.json"), "--device", "cpu"]
    assert f"{tmp_path / 'neg.pth'}: malformed prfdn config" in _refused(
        capsys, benchmark.main([str(tmp_path / "neg.pth"), *out])
    )
    line = _refused(capsys, benchmark.main([str(tmp_path / "out.state.pth"), *out]))
    assert f"out.state.pth: is a training state ({STATE_FORMAT}, for train_prfdn.py --resume)" in line
    assert f"evaluate {tmp_path / 'out.pth'} (best by validation) or {tmp_path / 'out_last.pth'} (last)" in line
    torch.save({k: v.to("meta") for k, v in RFDN().state_dict().items()}, tmp_path / "meta.pth")  # its line once stopped
    line = _refused(capsys, benchmark.main([str(tmp_path / "meta.pth"), *out]))  # at "Error(s) in loading state_dict:"
    assert "meta.pth: tensor fea_conv.weight is a meta tensor (a shape without values" in line


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda b: b["results"][0].pop("variant"), "b.json: results[0].variant is missing; expected a variant name"),
        (lambda b: b["results"][1].update(median_ms="2"), 'b.json: results[1].median_ms is "2"; expected a number'),
        (lambda b: b["results"][0].update(model="nobody"), 'b.json: results[0].model is "nobody"; expected the name of a model'),
        (
            lambda b: b["models"]["fast_bad"].pop("params"),
            "b.json: models.fast_bad.params is missing; expected a positive number",
        ),
        (lambda b: b.update(results=[]), "b.json: results is []; expected a non-empty list"),
    ],
)
def test_plot_refuses_malformed_benchmark_files(tmp_path: Path, capsys: pytest.CaptureFixture[str], change, message: str) -> None:
    bench, evaluation = _bench_and_eval()
    change(bench)
    (tmp_path / "b.json").write_text(json.dumps(bench))
    (tmp_path / "e.json").write_text(json.dumps(evaluation))
    rc = plot_pareto.main([str(tmp_path / "b.json"), str(tmp_path / "e.json"), "--out", str(tmp_path / "p.png")])
    assert message in _refused(capsys, rc) and not (tmp_path / "p.png").exists()


def test_plot_refuses_bad_evaluation_and_outputs(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bench, evaluation = _bench_and_eval()
    evaluation["models"]["slow_good"]["sets"]["A"]["psnr"] = None
    b, e = tmp_path / "b.json", tmp_path / "e.json"
    b.write_text(json.dumps(bench))
    e.write_text(json.dumps(evaluation))
    line = _refused(capsys, plot_pareto.main([str(b), str(e), "--out", str(tmp_path / "p.png")]))
    assert "e.json: models.slow_good.sets.A.psnr is null; expected a number" in line
    assert "--out p.jpg: expected a .png file name" in _refused(capsys, plot_pareto.main([str(b), str(e), "--out", "p.jpg"]))
    b.rename(tmp_path / "b.png")
    line = _refused(capsys, plot_pareto.main([str(tmp_path / "b.png"), str(e), "--out", str(tmp_path / "b.png")]))
    assert "is the same file as BENCHMARK" in line
    e.write_text("[" * 100_000 + "]" * 100_000)  # deeper than json reads: a RecursionError, once a traceback
    line = _refused(capsys, plot_pareto.main([str(tmp_path / "b.png"), str(e), "--out", str(tmp_path / "p.png")]))
    assert "e.json: not a readable JSON file (maximum recursion depth exceeded" in line


def _report_inputs(tmp_path: Path, checkpoint: Path, hr_size: int = 64) -> list[str]:
    """A config and benchmark sets of one random image each (LR 16x16); the argv of a report into tmp_path."""
    rng = np.random.default_rng(0)
    bench_dir = tmp_path / "benchmark"
    for name in report_script.SETS:
        hr = rng.integers(0, 256, (hr_size, hr_size, 3), dtype=np.uint8)
        imsave(hr, bench_dir / name / "HR" / "a.png")
        imsave(hr[::4, ::4], bench_dir / name / "LR_bicubic" / "X4" / "ax4.png")
    config = {"rfdn": str(checkpoint), "work_dir": str(tmp_path / "work"), "output": str(tmp_path / "none.pth"), "data": {}}
    (tmp_path / "c.json").write_text(json.dumps(config))
    (tmp_path / "README.md").write_text("<!-- results:begin -->\n<!-- results:end -->\n")
    argv = [str(tmp_path / "c.json"), "--benchmark_dir", str(bench_dir), "--out_dir", str(tmp_path / "out")]
    return [*argv, "--docs_dir", str(tmp_path / "docs"), "--readme", str(tmp_path / "README.md"), "--size", "16x16"]


def test_report_checks_everything_before_evaluating(
    tmp_path: Path, random_rfdn_checkpoint: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(report_script, "evaluate", lambda *a: pytest.fail("evaluated before the checks"))
    argv = _report_inputs(tmp_path, random_rfdn_checkpoint)
    gpu = {"device_name": "gpu", "lr_size": [16, 16], "reference": "rfdn", "repeats": 1, "command": "benchmark.py"}
    gpu |= {"models": {"rfdn": {"params": 1}}, "results": [{"model": "rfdn", "median_ms": 1.0}]}
    (tmp_path / "gpu.json").write_text(json.dumps(gpu))
    line = _refused(capsys, report_script.main([*argv, "--gpu_benchmark", str(tmp_path / "gpu.json")]))
    assert "gpu.json: results[0].variant is missing; expected a variant name such as fp32" in line
    gpu["results"][0]["variant"] = "fp32"
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "benchmark_cpu.json").write_text(json.dumps(gpu))
    line = _refused(capsys, report_script.main([*argv, "--gpu_benchmark", str(tmp_path / "out" / "benchmark_cpu.json")]))
    assert "benchmark_cpu.json: is the same file as --gpu_benchmark" in line
    line = _refused(capsys, report_script.main(argv))  # an earlier report's file: replaced only with --overwrite
    assert f"--out_dir {tmp_path / 'out' / 'benchmark_cpu.json'}: exists; give --overwrite to replace it" in line
    (tmp_path / "out" / "benchmark_cpu.json").unlink()
    hr_image = tmp_path / "benchmark" / "BSD68" / "HR" / "a.png"
    (tmp_path / "out" / "benchmark_cpu.json").symlink_to(hr_image)  # --overwrite would write through onto a test image
    line = _refused(capsys, report_script.main([*argv, "--overwrite"]))
    assert f"is the same file as BSD68 HR image {hr_image}" in line
    (tmp_path / "out" / "benchmark_cpu.json").unlink()
    (tmp_path / "afile").write_text("x")
    line = _refused(capsys, report_script.main([*argv, "--docs_dir", str(tmp_path / "afile")]))
    assert f"--docs_dir {tmp_path / 'afile' / 'results.md'}: {tmp_path / 'afile'} is not a folder" in line
    imsave(np.zeros((8, 8, 3), np.uint8), tmp_path / "benchmark" / "BSD68" / "LR_bicubic" / "X4" / "ax4.png")
    assert "ax4.png: LR image is 8x8; expected at least 15x15" in _refused(capsys, report_script.main(argv))
    assert "--warmup -2: expected 0 or more" in _refused(capsys, report_script.main([*argv, "--warmup", "-2"]))
    imsave(np.zeros((16, 16, 3), np.uint8), tmp_path / "benchmark" / "BSD68" / "LR_bicubic" / "X4" / "ax4.png")
    (tmp_path / "work").mkdir()
    (tmp_path / "work" / "merged.pth").write_bytes(b"garbage")  # a later row's checkpoint: refused before the first row
    assert "merged.pth: not a loadable weights-only checkpoint" in _refused(capsys, report_script.main(argv))
    line = _refused(capsys, report_script.main([*argv, "--readme", str(tmp_path / "nothing.md")]))
    assert "--readme" in line and "nothing.md: not readable" in line


def test_training_speed_script_times_every_fast_path(tmp_path: Path, random_rfdn_checkpoint: Path) -> None:
    from training import bench as bench_training
    from utils.datasets import ensure_builtin_dataset

    hr = ensure_builtin_dataset()[0].hr_path.parent
    out = tmp_path / "speed.json"
    argv = [str(random_rfdn_checkpoint), "--train_dir", str(hr), "--batch_size", "2", "--patch_size", "16"]
    assert bench_training.main([*argv, "--rounds", "2", "--warmup", "0", "--json", str(out)]) == 0
    rows = {row["variant"]: row for row in json.loads(out.read_text())["results"]}
    assert set(rows) == {"fp32", "fp32+channels_last", "bf16+channels_last"}
    assert rows["fp32"]["ratio_to_fp32"] == 1.0 and all(len(r["times_s"]) == 2 for r in rows.values())
    assert bench_training.main([*argv, "--rounds", "0"]) == 2


# --- an existing output is replaced only with --overwrite --------------------------------------------------


def test_benchmark_replaces_an_existing_json_only_with_overwrite(
    tmp_path: Path, random_rfdn_checkpoint: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "bench.json"
    out.write_text("my results\n")
    argv = [f"a={random_rfdn_checkpoint}", "--device", "cpu", "--size", "16x16", "--repeats", "1", "--warmup", "0"]
    with monkeypatch.context() as patched:
        patched.setattr(benchmark, "time_interleaved", lambda *a: pytest.fail("timed before the checks"))
        line = _refused(capsys, benchmark.main([*argv, "--json", str(out)]))
    assert f"--json {out}: exists; give --overwrite to replace it, or another path" in line
    assert out.read_text() == "my results\n"
    assert benchmark.main([*argv, "--json", str(out), "--overwrite"]) == 0
    assert json.loads(out.read_text())["results"][0]["model"] == "a"


def test_plot_replaces_an_existing_png_only_with_overwrite(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bench, evaluation = _bench_and_eval()
    (tmp_path / "b.json").write_text(json.dumps(bench))
    (tmp_path / "e.json").write_text(json.dumps(evaluation))
    out = tmp_path / "p.png"
    out.write_bytes(b"my plot")
    argv = [str(tmp_path / "b.json"), str(tmp_path / "e.json"), "--out", str(out)]
    line = _refused(capsys, plot_pareto.main(argv))
    assert f"--out {out}: exists; give --overwrite to replace it, or another path" in line
    assert out.read_bytes() == b"my plot"
    assert plot_pareto.main([*argv, "--overwrite"]) == 0
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_training_speed_replaces_an_existing_json_only_with_overwrite(
    tmp_path: Path, random_rfdn_checkpoint: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from training import bench as bench_training

    hr = ensure_builtin_dataset()[0].hr_path.parent
    out = tmp_path / "speed.json"
    out.write_text("my timings\n")
    argv = [str(random_rfdn_checkpoint), "--train_dir", str(hr), "--batch_size", "2", "--patch_size", "16"]
    argv += ["--rounds", "1", "--warmup", "0", "--json", str(out)]
    with monkeypatch.context() as patched:
        patched.setattr(bench_training, "load_training_data", lambda *a, **k: pytest.fail("read data before the checks"))
        line = _refused(capsys, bench_training.main(argv))
        assert f"--json {out}: exists; give --overwrite to replace it, or another path" in line
        assert out.read_text() == "my timings\n"
        line = _refused(capsys, bench_training.main([*argv[:-1], str(random_rfdn_checkpoint), "--overwrite"]))
        assert f"--json {random_rfdn_checkpoint}: is the same file as SRC" in line  # never replaced, even so
        (tmp_path / "link.json").symlink_to(sorted(hr.iterdir())[0])  # a link to a training image
        line = _refused(capsys, bench_training.main([*argv[:-1], str(tmp_path / "link.json"), "--overwrite"]))
        assert "is the same file as --train_dir" in line
    assert bench_training.main([*argv, "--overwrite"]) == 0
    assert {row["variant"] for row in json.loads(out.read_text())["results"]} >= {"fp32"}


def test_report_replaces_its_existing_outputs_only_with_overwrite(
    tmp_path: Path, random_rfdn_checkpoint: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    argv = [*_report_inputs(tmp_path, random_rfdn_checkpoint), "--repeats", "1", "--warmup", "0"]
    outputs = [
        ("--out_dir", tmp_path / "out" / "evaluation.json"),
        ("--out_dir", tmp_path / "out" / "benchmark_cpu.json"),
        ("--docs_dir", tmp_path / "docs" / "results.md"),
        ("--docs_dir", tmp_path / "docs" / "pareto_cpu.png"),
    ]
    for _, path in outputs:
        path.parent.mkdir(parents=True, exist_ok=True)
    with monkeypatch.context() as patched:
        patched.setattr(report_script, "evaluate", lambda *a: pytest.fail("evaluated before the checks"))
        for flag, path in outputs:  # each output on its own: every one is checked before any evaluation
            path.write_bytes(b"mine")
            line = _refused(capsys, report_script.main(argv))
            assert f"{flag} {path}: exists; give --overwrite to replace it, or another path" in line
            assert path.read_bytes() == b"mine"
            path.unlink()
    for _, path in outputs:
        path.write_bytes(b"mine")
    readme = (tmp_path / "README.md").read_text()
    assert report_script.main([*argv, "--overwrite"]) == 0
    assert all(path.read_bytes() != b"mine" for _, path in outputs)
    assert json.loads(outputs[0][1].read_text())["models"]["rfdn"]["sets"]
    assert "--overwrite`" in outputs[2][1].read_text()  # the command it records regenerates these files
    assert (tmp_path / "README.md").read_text() != readme


# --- Ctrl-C: one line, exit 130, no file half-written or mixed with an earlier run's -------------------------


def _interrupted(capsys: pytest.CaptureFixture[str], rc: int) -> str:
    """The one line of a Ctrl-C (after any progress bar of the evaluation, which ends in a carriage return)."""
    err = capsys.readouterr().err
    lines = [line for line in err.replace("\r", "\n").splitlines() if line.strip() and "img/s" not in line]
    assert rc == 130 and "Traceback" not in err and len(lines) == 1, err
    return lines[0]


def test_benchmark_ctrl_c_is_one_line_and_leaves_the_json_as_it_was(
    tmp_path: Path, random_rfdn_checkpoint: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    def ctrl_c(*args: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(benchmark, "time_interleaved", ctrl_c)
    out = tmp_path / "bench.json"
    argv = [str(random_rfdn_checkpoint), "--device", "cpu", "--size", "16x16", "--json", str(out)]
    assert _interrupted(capsys, benchmark.main(argv)) == f"benchmark.py: interrupted; {out} left as it was"
    out.write_text("an earlier run's figures")
    _interrupted(capsys, benchmark.main([*argv, "--overwrite"]))
    assert out.read_text() == "an earlier run's figures" and sorted(p.name for p in tmp_path.iterdir()) == ["bench.json"]


def test_report_ctrl_c_is_one_line_and_writes_all_its_outputs_or_none(
    tmp_path: Path, random_rfdn_checkpoint: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    argv = [*_report_inputs(tmp_path, random_rfdn_checkpoint), "--repeats", "1", "--warmup", "0"]
    readme = (tmp_path / "README.md").read_text()

    def ctrl_c(*args: object) -> None:
        raise KeyboardInterrupt

    with monkeypatch.context() as patched:
        patched.setattr(report_script, "evaluate", ctrl_c)
        line = _interrupted(capsys, report_script.main(argv))
    assert line == "report.py: interrupted before writing anything; every output left as it was"
    assert not (tmp_path / "out").exists() and not (tmp_path / "docs").exists()
    assert (tmp_path / "README.md").read_text() == readme
    make_plot = report_script.make_plot

    def ctrl_c_while_the_plot_is_made(*args: object) -> None:
        os.kill(os.getpid(), signal.SIGINT)  # as a Ctrl-C among the writes: held until the last file is written
        make_plot(*args)

    monkeypatch.setattr(report_script, "make_plot", ctrl_c_while_the_plot_is_made)
    assert _interrupted(capsys, report_script.main(argv)) == "report.py: interrupted after writing all its outputs"
    for path in ("out/evaluation.json", "out/benchmark_cpu.json", "docs/results.md", "docs/pareto_cpu.png"):
        assert (tmp_path / path).is_file(), path
    assert (tmp_path / "README.md").read_text() != readme


def test_default_models_are_found_in_the_repository_from_any_folder(
    tmp_path: Path, random_rfdn_checkpoint: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """benchmark.py without models once looked for model_zoo/ in the working directory."""
    repo = tmp_path / "repo"
    (repo / "model_zoo").mkdir(parents=True)
    shutil.copyfile(random_rfdn_checkpoint, repo / "model_zoo" / "team00_rfdn.pth")
    shutil.copyfile(random_rfdn_checkpoint, repo / "model_zoo" / "team13_prfdn.pth")
    monkeypatch.setattr(benchmark, "REPO_ROOT", repo)
    monkeypatch.chdir(tmp_path)
    argv = ["--device", "cpu", "--size", "16x16", "--repeats", "1", "--warmup", "0", "--json", "b.json"]
    assert benchmark.main(argv) == 0
    models = json.loads(Path("b.json").read_text())["models"]
    assert models["rfdn"]["path"] == str(repo / "model_zoo" / "team00_rfdn.pth")
    (repo / "model_zoo" / "team00_rfdn.pth").unlink()
    line = _refused(capsys, benchmark.main([*argv, "--overwrite"]))
    assert f"model 'rfdn=model_zoo/team00_rfdn.pth': checkpoint file {repo / 'model_zoo' / 'team00_rfdn.pth'} not found" in line
    assert line.endswith("scripts/setup.sh links it from ../shared/model_zoo when that is there)")
