"""ONNX export (transform.onnx): dynamic sizes, checked with onnxruntime, refusals that write nothing."""

from __future__ import annotations

import importlib.util
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest
import torch

from transform import onnx as onnx_stage
from utils.checkpoint import read_model_checkpoint
from utils.model_io import load_model

REPO_ROOT = Path(__file__).resolve().parents[1]
SUBMISSION = REPO_ROOT / "model_zoo" / "team13_prfdn.pth"
MISSING = [name for name in onnx_stage.ONNX_PACKAGES if importlib.util.find_spec(name) is None]
needs_onnx = pytest.mark.skipif(bool(MISSING), reason=f"needs {', '.join(MISSING)} (pip install -r requirements-onnx.txt)")


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if MISSING:
        pytest.skip(f"needs {', '.join(MISSING)} (pip install -r requirements-onnx.txt)")
    out = tmp_path_factory.mktemp("onnx") / "prfdn.onnx"
    assert onnx_stage.main([str(SUBMISSION), str(out)]) == 0
    return out


@needs_onnx
def test_export_matches_pytorch_at_other_sizes_and_batches(exported: Path) -> None:
    import onnx

    checkpoint = read_model_checkpoint(SUBMISSION)
    model = load_model(checkpoint).eval()
    noise = torch.Generator().manual_seed(0)  # the same inputs in every run, whatever ran before in the process
    for shape in [(1, 3, 15, 15), (2, 3, 37, 22)]:
        lr = torch.rand(*shape, generator=noise) * 255
        assert onnx_stage.onnx_max_difference(model, exported, lr) <= 2e-3  # random noise is harder than photos
    props = {p.key: p.value for p in onnx.load(str(exported)).metadata_props}
    assert props["arch"] == checkpoint.arch and props["scale"] == "4" and props["data_range"] == "255"
    assert props["opset"] == str(onnx_stage.OPSET) and len(props["source_sha256"]) == 64


def reuse_export(exported: Path) -> Callable[..., None]:
    """An exporter that copies the module's one real export (each export takes seconds)."""
    return lambda model, path, opset=onnx_stage.OPSET: shutil.copyfile(exported, path)


@needs_onnx
def test_a_difference_over_the_tolerance_writes_nothing(
    exported: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(onnx_stage, "export_onnx", reuse_export(exported))
    monkeypatch.setattr(onnx_stage, "onnx_max_difference", lambda model, path: 0.5)
    out = tmp_path / "bad.onnx"
    assert onnx_stage.main([str(SUBMISSION), str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "differs from PyTorch by 0.5" in err[0] and "nothing written" in err[0]
    assert list(tmp_path.iterdir()) == []


@needs_onnx
def test_an_opset_the_exporter_cannot_write_is_refused_before_any_export(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def no_export(*args: object) -> None:
        raise AssertionError("exported")

    monkeypatch.setattr(onnx_stage, "export_onnx", no_export)
    newest = onnx_stage.newest_opset()
    for opset in (17, newest + 1, 99):
        assert onnx_stage.main([str(SUBMISSION), str(tmp_path / "m.onnx"), "--opset", str(opset)]) == 2
        err = capsys.readouterr().err
        assert err == (
            f"transform.onnx: error: --opset {opset}: expected 18 (the exporter's first) to {newest} (the newest the "
            "installed onnx package knows)\n"
        )
    assert list(tmp_path.iterdir()) == []


@needs_onnx
def test_an_export_in_another_opset_than_asked_writes_nothing(
    exported: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """The exporter falls back to its own opset where it cannot convert (it said "opset 99" and wrote 18): refused."""
    monkeypatch.setattr(onnx_stage, "export_onnx", reuse_export(exported))  # written in opset 18
    assert onnx_stage.main([str(SUBMISSION), str(tmp_path / "m.onnx"), "--opset", "19"]) == 2
    err = capsys.readouterr().err
    assert err == f"transform.onnx: error: SRC {SUBMISSION}: the exporter wrote opset 18, not --opset 19; nothing written\n"
    assert list(tmp_path.iterdir()) == []


def test_missing_packages_are_named_in_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(onnx_stage, "missing_onnx_packages", lambda: ["onnxruntime"])
    assert onnx_stage.main([str(SUBMISSION), str(tmp_path / "m.onnx")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["transform.onnx: error: ONNX export needs onnxruntime: pip install -r requirements-onnx.txt"]
    assert list(tmp_path.iterdir()) == []


@needs_onnx
def test_benchmark_times_onnxruntime_beside_pytorch(exported: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from pipeline import benchmark

    monkeypatch.setattr(benchmark, "export_onnx", reuse_export(exported))  # the same network as SUBMISSION

    out = tmp_path / "bench.json"
    argv = [f"prfdn={SUBMISSION}", "--device", "cpu", "--variants", "fp32", "onnxruntime", "--size", "24x20"]
    result = benchmark.run(benchmark.parse_args([*argv, "--repeats", "2", "--warmup", "1", "--json", str(out)]))
    rows = {row["variant"]: row for row in result["results"]}
    assert set(rows) == {"fp32", "onnxruntime"} and all(len(r["times_ms"]) == 2 for r in rows.values())
    assert rows["onnxruntime"]["ratio_to_reference"] == 1.0  # compared with the reference in the same variant


def test_onnxruntime_variant_is_alone_and_on_the_cpu() -> None:
    from utils.benchmark import Variant
    from utils.errors import HarnessError

    assert Variant.parse("onnxruntime").name == "onnxruntime"
    with pytest.raises(HarnessError, match="--variants"):
        Variant.parse("onnxruntime+channels_last")
    with pytest.raises(HarnessError, match="CPU only"):
        Variant.parse("onnxruntime").check_device(torch.device("cuda"))


@needs_onnx
def test_a_deeper_cuts_final_network_exports_too(tmp_path: Path) -> None:
    """The final network of transform.branch --variant deep3 (SRFDBs of three stages), pruned and exported, to ONNX."""
    from models.branch import BranchPRFDN
    from models.registry import model_config
    from transform.helpers import fold_helpers, with_helpers
    from transform.prune import prune
    from transform.reparam import merge_branches
    from utils.checkpoint import ModelCheckpoint, save_model_checkpoint

    torch.manual_seed(0)
    branch = BranchPRFDN(nf=8, srfdb_stages=3)
    for param in branch.parameters():
        param.data.uniform_(-0.08, 0.08)
    pruned, _ = prune(with_helpers(merge_branches(branch, "dense")), ratio=0.3, steps=1)
    final = fold_helpers(pruned).eval()
    arch, config = model_config(final)
    src = tmp_path / "deep3.pth"
    save_model_checkpoint(src, ModelCheckpoint(arch, config, final.state_dict()))
    assert onnx_stage.main([str(src), str(tmp_path / "deep3.onnx")]) == 0
    assert onnx_stage.onnx_max_difference(final, tmp_path / "deep3.onnx", torch.rand(1, 3, 19, 23) * 255) <= 2e-3
