from pathlib import Path

import pytest
import torch

from models.team00_RFDN import RFDN


def test_rfdn_upscales_by_four_any_size() -> None:
    model = RFDN().eval()
    with torch.no_grad():
        assert model(torch.rand(1, 3, 17, 23) * 255).shape == (1, 3, 68, 92)


def test_official_checkpoint_loads_strictly_weights_only(rfdn_checkpoint: Path) -> None:
    state = torch.load(rfdn_checkpoint, map_location="cpu", weights_only=True)
    model = RFDN()
    model.load_state_dict(state, strict=True)
    assert sum(v.numel() for v in state.values()) == 433_448


def test_rfdn_chain_is_rfdn_at_any_widths_and_takes_rfdn_pruned_in_place(tmp_path) -> None:
    """The control of docs/depth.md: RFDN pruned directly (Torch-Pruning, in place) is rebuilt exactly from the
    widths read off it, and travels as a self-describing checkpoint."""
    import torch_pruning as tp

    from models.chain import chain_config
    from models.registry import model_config
    from models.team13_PRFDN import RFDNChain
    from utils.checkpoint import ModelCheckpoint, read_model_checkpoint, save_model_checkpoint
    from utils.model_io import load_model

    torch.manual_seed(0)
    rfdn = RFDN(nf=16).eval()
    x = torch.rand(1, 3, 20, 24) * 255
    chain = RFDNChain(chain_config(rfdn))
    chain.load_state_dict(rfdn.state_dict())  # the official tensor names
    assert torch.equal(chain.eval()(x), rfdn(x))
    pruner = tp.pruner.MetaPruner(
        rfdn,
        torch.rand(1, 3, 32, 32) * 255,
        importance=tp.importance.MagnitudeImportance(p=2),
        pruning_ratio=0.4,
        ignored_layers=[rfdn.upsampler[0]],
        iterative_steps=2,
    )
    for _ in range(2):
        pruner.step()
    arch, config = model_config(RFDNChain(chain_config(rfdn)))
    assert arch == "rfdn_chain" and config["blocks"][0]["channels"] < 16
    save_model_checkpoint(tmp_path / "chain.pth", ModelCheckpoint(arch, config, rfdn.state_dict()))
    loaded = load_model(read_model_checkpoint(tmp_path / "chain.pth")).eval()
    assert torch.equal(loaded(x), rfdn(x))
    # the submission's one model file loads it too (the README's select_model branch)
    from models.team13_PRFDN import load_prfdn

    submitted = load_prfdn(str(tmp_path / "chain.pth"))
    assert type(submitted).__name__ == "RFDNChain" and torch.equal(submitted(x), rfdn(x))
    save_model_checkpoint(tmp_path / "other.pth", ModelCheckpoint("branch", {}, {}))
    with pytest.raises(ValueError, match=r"arch 'branch', expected 'prfdn' or 'rfdn_chain'"):
        load_prfdn(str(tmp_path / "other.pth"))
