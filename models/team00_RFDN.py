"""RFDN: Residual Feature Distillation Network (Liu et al., AIM 2020 Efficient SR winner).

The NTIRE Efficient-SR baseline, x4. Module names and tensor shapes match the official checkpoint
``team00_rfdn.pth`` (433,448 parameters, inputs in [0, 255]), so it loads with ``strict=True``.
Self-contained on purpose: the challenge wants one file per team in ``models/``.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

LEAKY_SLOPE = 0.05


def conv_layer(in_channels: int, out_channels: int, kernel_size: int, stride: int = 1) -> nn.Conv2d:
    """Conv2d with 'same' padding for odd kernels."""
    return nn.Conv2d(in_channels, out_channels, kernel_size, stride, padding=(kernel_size - 1) // 2)


class ESA(nn.Module):
    """Enhanced Spatial Attention: a cheap, large-receptive-field sigmoid gate over the features."""

    def __init__(self, n_feats: int) -> None:
        super().__init__()
        f = n_feats // 4
        self.conv1 = nn.Conv2d(n_feats, f, kernel_size=1)
        self.conv_f = nn.Conv2d(f, f, kernel_size=1)
        self.conv_max = nn.Conv2d(f, f, kernel_size=3, padding=1)
        self.conv2 = nn.Conv2d(f, f, kernel_size=3, stride=2, padding=0)
        self.conv3 = nn.Conv2d(f, f, kernel_size=3, padding=1)
        self.conv3_ = nn.Conv2d(f, f, kernel_size=3, padding=1)
        self.conv4 = nn.Conv2d(f, n_feats, kernel_size=1)
        self.sigmoid = nn.Sigmoid()
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        c1_ = self.conv1(x)
        c1 = self.conv2(c1_)
        v_max = F.max_pool2d(c1, kernel_size=7, stride=3)
        v_range = self.relu(self.conv_max(v_max))
        c3 = self.relu(self.conv3(v_range))
        c3 = self.conv3_(c3)
        c3 = F.interpolate(c3, (x.size(2), x.size(3)), mode="bilinear", align_corners=False)
        cf = self.conv_f(c1_)
        c4 = self.conv4(c3 + cf)
        return x * self.sigmoid(c4)


class RFDB(nn.Module):
    """Residual Feature Distillation Block: three distillation stages, c4, 1x1 fusion c5, then ESA."""

    def __init__(self, in_channels: int) -> None:
        super().__init__()
        dc = in_channels // 2
        rc = in_channels
        self.c1_d = conv_layer(in_channels, dc, 1)
        self.c1_r = conv_layer(in_channels, rc, 3)
        self.c2_d = conv_layer(rc, dc, 1)
        self.c2_r = conv_layer(rc, rc, 3)
        self.c3_d = conv_layer(rc, dc, 1)
        self.c3_r = conv_layer(rc, rc, 3)
        self.c4 = conv_layer(rc, dc, 3)
        self.act = nn.LeakyReLU(LEAKY_SLOPE, inplace=True)
        self.c5 = conv_layer(dc * 4, in_channels, 1)
        self.esa = ESA(in_channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        distilled_c1 = self.act(self.c1_d(x))
        r_c1 = self.act(self.c1_r(x) + x)
        distilled_c2 = self.act(self.c2_d(r_c1))
        r_c2 = self.act(self.c2_r(r_c1) + r_c1)
        distilled_c3 = self.act(self.c3_d(r_c2))
        r_c3 = self.act(self.c3_r(r_c2) + r_c2)
        r_c4 = self.act(self.c4(r_c3))
        out = torch.cat([distilled_c1, distilled_c2, distilled_c3, r_c4], dim=1)
        return self.esa(self.c5(out))


class RFDN(nn.Module):
    """RFDN with ``num_modules`` (fixed at 4, as in the checkpoint) RFDBs and a PixelShuffle upsampler."""

    def __init__(self, in_nc: int = 3, nf: int = 50, num_modules: int = 4, out_nc: int = 3, upscale: int = 4) -> None:
        super().__init__()
        if num_modules != 4:
            raise ValueError("RFDN has exactly 4 blocks (B1..B4), as in the official checkpoint")
        self.fea_conv = conv_layer(in_nc, nf, 3)
        self.B1 = RFDB(nf)
        self.B2 = RFDB(nf)
        self.B3 = RFDB(nf)
        self.B4 = RFDB(nf)
        self.c = nn.Sequential(conv_layer(nf * num_modules, nf, 1), nn.LeakyReLU(LEAKY_SLOPE, inplace=True))
        self.LR_conv = conv_layer(nf, nf, 3)
        self.upsampler = nn.Sequential(conv_layer(nf, out_nc * upscale**2, 3), nn.PixelShuffle(upscale))
        self.scale = upscale

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out_fea = self.fea_conv(x)
        out_b1 = self.B1(out_fea)
        out_b2 = self.B2(out_b1)
        out_b3 = self.B3(out_b2)
        out_b4 = self.B4(out_b3)
        out_b = self.c(torch.cat([out_b1, out_b2, out_b3, out_b4], dim=1))
        out_lr = self.LR_conv(out_b) + out_fea
        return self.upsampler(out_lr)
