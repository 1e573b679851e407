"""The submitted checkpoint model_zoo/team13_prfdn.pth: safe to load, within the budgets, traceable, and the
committed results (docs/results/evaluation.json) really are its scores."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from models.team13_PRFDN import NETWORKS
from utils.checkpoint import read_model_checkpoint
from utils.model_io import load_model
from utils.model_summary import summarize

REPO_ROOT = Path(__file__).resolve().parents[1]
SUBMISSION = REPO_ROOT / "model_zoo" / "team13_prfdn.pth"
RFDN_FLOPS = 27.1026e9


def test_submission_loads_safely_and_fits_the_budgets() -> None:
    raw = torch.load(SUBMISSION, map_location="cpu", weights_only=True)
    assert raw["format"] == "prfdn-checkpoint/1" and raw["arch"] in NETWORKS and raw["scale"] == 4
    model = load_model(read_model_checkpoint(SUBMISSION))
    assert type(model) is NETWORKS[raw["arch"]]  # a network of the model file: no placement (helper) convs left
    summary = summarize(model)
    assert summary.num_parameters <= 317_000
    assert summary.flops < RFDN_FLOPS
    out = model.eval()(torch.rand(1, 3, 20, 24) * 255)
    assert out.shape == (1, 3, 80, 96) and torch.isfinite(out).all()


# Each network's way back to the official RFDN, latest stage first: trainings after the stages that made it
LINEAGES = {
    "prfdn": ["final", "pruned", "merged", "train", "feature_fit", "branch"],  # branched, merged, pruned
    "rfdn_chain": ["prune_chain"],  # RFDN pruned directly (with training between its steps)
}


def stages_back_to_rfdn(record: dict, arch: str) -> list[str]:
    """The stages of a provenance chain, latest first, each checked: trainings and blends of two trainings
    (``transform.interpolate``, whose other end must go back the same way), then the stages that made the network."""
    chain, stages = record, []
    while chain:
        stages.append(chain["stage"])
        if chain["stage"] == "interpolated":
            stages_back_to_rfdn(chain["toward_provenance"], arch)
        chain = chain.get("parent_provenance")
    made = LINEAGES[arch]
    after = stages[: len(stages) - len(made)]
    assert stages[len(after) :] == made and "train" in after, stages
    assert set(after) <= {"train", "interpolated"}, stages
    return stages


def test_submission_provenance_goes_back_to_rfdn_through_every_stage() -> None:
    checkpoint = read_model_checkpoint(SUBMISSION)
    stages_back_to_rfdn(checkpoint.provenance, checkpoint.arch)


def test_committed_results_are_the_submission_scores(benchmark_dir: Path) -> None:
    """Re-measure Set5 and compare with what docs/results/evaluation.json (the README table) says about the
    submission: a stale table, or one made from another checkpoint, fails here."""
    from utils.datasets import load_pair, pair_folders
    from utils.image import tensor2uint, uint2tensor4
    from utils.metrics import calculate_psnr

    evaluation = json.loads((REPO_ROOT / "docs" / "results" / "evaluation.json").read_text())
    recorded = evaluation["models"]["final"]
    assert Path(recorded["path"]).name == SUBMISSION.name
    model = load_model(read_model_checkpoint(SUBMISSION)).eval()
    pairs = pair_folders(benchmark_dir / "Set5" / "HR", benchmark_dir / "Set5" / "LR_bicubic" / "X4")
    scores = []
    with torch.no_grad():
        for pair in pairs:
            lr, hr = load_pair(pair)
            scores.append(calculate_psnr(tensor2uint(model(uint2tensor4(lr, 255.0)), 255.0), hr, border=4))
    # 1e-4 dB: a few uint8 pixels rounded the other way by another CPU thread count's float sums; another checkpoint
    # or a stale table is off by far more
    assert sum(scores) / len(scores) == pytest.approx(recorded["sets"]["Set5"]["psnr"], abs=1e-4)


OFFICIAL_SELECT_MODEL = """
def select_model(args, device):
    model_id = args.model_id
    if model_id == 0:
        raise AssertionError("not this branch")
{branch}
    else:
        raise NotImplementedError(f"Model {{model_id}} is not implemented.")
    model.eval()
    tile = None
    for k, v in model.named_parameters():
        v.requires_grad = False
    model = model.to(device)
    return model, name, data_range, tile
"""


def readme_select_model_branch() -> str:
    """The ```python block of the README's 'Submitting to the organizers' section, as it stands."""
    text = (REPO_ROOT / "README.md").read_text(encoding="utf-8")
    section = text.split("## Submitting to the organizers", 1)[1]
    block = section.split("```python\n", 1)[1].split("```", 1)[0]
    assert block.lstrip().startswith("elif model_id == 13:")
    return block.rstrip("\n")


def test_readme_branch_for_the_official_select_model_loads_the_submission(monkeypatch: pytest.MonkeyPatch) -> None:
    import types

    import test_demo

    branch = readme_select_model_branch()
    imports = {line.split()[1] for line in branch.splitlines() if line.strip().startswith(("import ", "from "))}
    assert imports <= {"torch", "models.team13_PRFDN"}
    namespace = {"torch": torch, "os": __import__("os")}  # what the official harness imports at its top
    exec(OFFICIAL_SELECT_MODEL.format(branch=branch), namespace)
    monkeypatch.chdir(REPO_ROOT)  # the official harness runs from its repository root
    model, name, data_range, tile = namespace["select_model"](types.SimpleNamespace(model_id=13), torch.device("cpu"))
    ours, our_name, our_range, our_tile = test_demo.select_model(
        types.SimpleNamespace(model_id=13, model_path=None), torch.device("cpu")
    )
    assert (name, data_range, tile) == (our_name, our_range, our_tile) == ("13_PRFDN", 255.0, None)
    assert not any(p.requires_grad for p in model.parameters())
    x = torch.rand(1, 3, 24, 20) * 255
    with torch.no_grad():
        assert torch.equal(model(x), ours(x))
