"""transform.interpolate: a network between two trainings of one network, exact at its ends; bad input refused."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from models.registry import model_config
from models.team00_RFDN import RFDN
from models.team13_PRFDN import PRFDN, PRFDNConfig
from transform import interpolate
from utils.checkpoint import ModelCheckpoint, read_model_checkpoint, save_model_checkpoint


def save(model: torch.nn.Module, path: Path) -> Path:
    arch, config = model_config(model)
    save_model_checkpoint(path, ModelCheckpoint(arch, config, model.state_dict()))
    return path


def network(seed: int, nf: int = 8) -> PRFDN:
    torch.manual_seed(seed)
    return PRFDN(PRFDNConfig.merged(nf=nf))


@pytest.fixture()
def ends(tmp_path: Path) -> tuple[Path, Path]:
    return save(network(0), tmp_path / "start.pth"), save(network(1), tmp_path / "trained.pth")


@pytest.mark.parametrize("alpha", [0.0, 0.25, 1.0])
def test_weights_are_the_blend_and_the_ends_exact(alpha: float, ends: tuple[Path, Path], tmp_path: Path) -> None:
    start, trained = ends
    out = tmp_path / "mid.pth"
    assert interpolate.main([str(start), str(out), "--toward", str(trained), "--alpha", str(alpha)]) == 0
    a, b, mid = (read_model_checkpoint(p) for p in (start, trained, out))
    assert (mid.arch, mid.config) == (a.arch, a.config)
    for name, weight in mid.state_dict.items():
        expected = (1 - alpha) * a.state_dict[name].double() + alpha * b.state_dict[name].double()
        if alpha in (0.0, 1.0):
            assert torch.equal(weight, (a if alpha == 0.0 else b).state_dict[name]), name
        else:
            assert torch.allclose(weight.double(), expected, atol=1e-6), name
    record = mid.provenance
    assert record["stage"] == "interpolated" and record["alpha"] == alpha and record["toward"] == str(trained)
    assert (record["max_abs_difference"] is None) == (alpha not in (0.0, 1.0))


def test_the_blend_is_a_network_that_loads_and_runs(ends: tuple[Path, Path], tmp_path: Path) -> None:
    """The blend rebuilds from its checkpoint alone and gives a finite x4 output."""
    start, trained = ends
    out = tmp_path / "mid.pth"
    assert interpolate.main([str(start), str(out), "--toward", str(trained)]) == 0
    from utils.model_io import load_model

    model = load_model(read_model_checkpoint(out)).eval()
    with torch.no_grad():
        y = model(torch.rand(1, 3, 16, 16) * 255)
    assert y.shape == (1, 3, 64, 64) and torch.isfinite(y).all()


def bad_case(name: str, start: Path, trained: Path, tmp_path: Path) -> tuple[list[str], str]:
    out = tmp_path / "out.pth"
    if name == "alpha above 1":
        return [str(start), str(out), "--toward", str(trained), "--alpha", "1.5"], "--alpha 1.5: must be between 0"
    if name == "alpha not a number":
        return [str(start), str(out), "--toward", str(trained), "--alpha", "nan"], "--alpha nan: must be between 0"
    if name == "other widths":
        wide = save(network(2, nf=12), tmp_path / "wide.pth")
        return [str(start), str(out), "--toward", str(wide)], f"--toward {wide}: a 'prfdn' network of other widths"
    if name == "toward missing":
        return [str(start), str(out), "--toward", str(tmp_path / "gone.pth")], f"--toward {tmp_path / 'gone.pth'}: "
    if name in ("toward without a tensor", "toward with a tensor of another shape"):
        checkpoint = read_model_checkpoint(trained)
        weights = dict(checkpoint.state_dict)
        if name == "toward without a tensor":
            del weights["head_skip.bias"]
        else:
            weights["head_skip.bias"] = weights["head_skip.bias"][:1]
        bad = tmp_path / "bad.pth"
        save_model_checkpoint(bad, ModelCheckpoint(checkpoint.arch, checkpoint.config, weights))
        return [str(start), str(out), "--toward", str(bad)], f"--toward {bad}: "
    if name == "another architecture":
        rfdn = tmp_path / "rfdn.pth"
        torch.save(RFDN().state_dict(), rfdn)
        return [str(start), str(out), "--toward", str(rfdn)], f"--toward {rfdn}: a 'rfdn' network, SRC a 'prfdn' one"
    if name == "DST is --toward":
        args = [str(start), str(trained), "--toward", str(trained), "--overwrite"]
        return args, f"DST {trained}: is the same file as --toward"
    assert name == "DST exists"
    out.write_bytes(b"a user's file")
    return [str(start), str(out), "--toward", str(trained)], f"DST {out}: exists"


@pytest.mark.parametrize(
    "case",
    [
        "alpha above 1",
        "alpha not a number",
        "other widths",
        "another architecture",
        "toward missing",
        "toward without a tensor",
        "toward with a tensor of another shape",
        "DST is --toward",
        "DST exists",
    ],
)
def test_bad_input_is_one_line_and_nothing_is_written(
    case: str, ends: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    start, trained = ends
    args, expected = bad_case(case, start, trained, tmp_path)
    before = {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()}
    assert interpolate.main(args) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and expected in err, err
    assert {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()} == before
