import torch
import torch.nn as nn

from models.team00_RFDN import RFDN
from utils.model_summary import _summarize, count_parameters, structure_key, summarize


def test_hand_counted_network() -> None:
    act = nn.LeakyReLU(0.1)
    model = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), act, nn.Conv2d(8, 4, 1, groups=2), act, nn.PixelShuffle(2))
    s = summarize(model, (3, 16, 16))
    pixels = 16 * 16
    assert s.flops == 3 * 3 * 3 * 8 * pixels + 8 * pixels + (8 * 4 // 2) * pixels + 4 * pixels
    assert s.activations == 8 * pixels + 4 * pixels
    assert s.num_conv == 2
    assert s.num_parameters == count_parameters(model) == (3 * 9 * 8 + 8) + (4 * 4 + 4)


def test_official_rules_for_other_layers() -> None:
    """BatchNorm2d x2 when affine; upsampling, pooling and Conv1d count 0; transposed conv per output position;
    Linear as batch * input.shape[1] * output.shape[1]; only Conv2d/ConvTranspose2d count as activations."""
    model = nn.Sequential(
        nn.Conv2d(2, 4, 3, stride=2, padding=1),  # 8x8 -> 4x4
        nn.BatchNorm2d(4),
        nn.Upsample(scale_factor=2),  # 4x4 -> 8x8
        nn.MaxPool2d(2),  # -> 4x4
        nn.ConvTranspose2d(4, 2, 2, stride=2),  # -> 8x8
        nn.Flatten(2),  # (1, 2, 64)
        nn.Conv1d(2, 3, 1),  # (1, 3, 64)
        nn.Linear(64, 5),  # (1, 3, 5)
    )
    s = summarize(model, (2, 8, 8))
    conv = 9 * 2 * 4 * 16
    batchnorm = 2 * 4 * 16
    transposed = 2 * 2 * 4 * 2 * 64  # per output position
    linear = 1 * 3 * 3  # batch * input.shape[1] * output.shape[1], as the official hook computes it
    assert s.flops == conv + batchnorm + transposed + linear
    assert s.activations == 4 * 16 + 2 * 64
    assert s.num_conv == 2


def test_rfdn_reproduces_the_official_figures() -> None:
    """Official NTIRE figures for RFDN at 3x256x256: 0.433 M params, 27.10 G FLOPs, 112.03 M activations, 64 convs."""
    model = RFDN()
    model.train()
    s = summarize(model)
    assert round(s.num_parameters / 1e6, 3) == 0.433 and s.num_parameters == 433_448
    assert round(s.flops / 1e9, 2) == 27.10
    assert round(s.activations / 1e6, 2) == 112.03
    assert s.num_conv == 64
    assert model.training  # mode restored


class _ValueDependent(nn.Module):
    """A forward that needs real values (``.item()``), which the shape-only ``meta`` pass cannot give."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.conv(x)
        return self.conv.weight.new_zeros(1) + y if y.mean().item() == y.mean().item() else y


def test_a_value_dependent_forward_is_counted_by_a_real_pass_and_the_model_is_untouched() -> None:
    model = _ValueDependent().train()
    weight = model.conv.weight.detach().clone()
    s = summarize(model, (3, 8, 8))
    assert (s.flops, s.activations, s.num_conv) == (3 * 3 * 3 * 4 * 64, 4 * 64, 1)
    assert model.training and model.conv.weight.device.type == "cpu" and torch.equal(model.conv.weight, weight)


def test_hooks_of_the_model_see_one_real_pass_and_lazy_modules_are_counted() -> None:
    seen: list[torch.device] = []
    hooked = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1))
    hooked.register_forward_hook(lambda module, inputs, output: seen.append(output.device))
    assert summarize(hooked, (3, 8, 8)).num_conv == 1 and seen == [torch.device("cpu")]
    lazy = nn.Sequential(nn.LazyConv2d(4, 3, padding=1))  # no weights until a real pass
    s = summarize(lazy, (3, 8, 8))
    assert (s.flops, s.num_parameters) == (3 * 3 * 3 * 4 * 64, 3 * 9 * 4 + 4)


def test_a_network_counted_again_by_its_structure_gives_the_same_figures() -> None:
    """Summaries are kept by structure: other weights share one, another stride or width does not."""
    torch.manual_seed(0)
    first, second = nn.Conv2d(3, 8, 3, padding=1), nn.Conv2d(3, 8, 3, padding=1)
    strided = nn.Conv2d(3, 8, 3, padding=1, stride=2)  # the same weight shape, a quarter of the positions
    wider = nn.Conv2d(3, 16, 3, padding=1)
    assert structure_key(first) == structure_key(second) != structure_key(strided)
    assert summarize(first, (3, 16, 16)) == summarize(second, (3, 16, 16))
    assert summarize(strided, (3, 16, 16)).flops * 4 == summarize(first, (3, 16, 16)).flops
    assert summarize(wider, (3, 16, 16)).flops == 2 * summarize(first, (3, 16, 16)).flops
    assert summarize(first, (3, 8, 8)).flops * 4 == summarize(first, (3, 16, 16)).flops  # per input size
    rfdn = RFDN()
    assert summarize(rfdn, (3, 32, 32)) == summarize(RFDN(), (3, 32, 32)) == _summarize(rfdn, (3, 32, 32))
