from pathlib import Path

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
