"""The teacher's SR of each whole training image, made once before training (``--teacher_cache``).

Distillation runs the teacher on every batch: on a 2-core CPU about 30% of a step of the final network
(``scripts/bench_training.py``: 0.447 s per iteration with the RFDN teacher, 0.313 s without, bf16 +
channels_last). With the cache the teacher runs once per training image (and scale-augmented copy) and each
patch takes its target from that SR, cropped at the HR patch's place under the patch's flip / rotation.

These targets are not the per-patch ones: the teacher sees the whole image (no patch border), its input is the
whole image's bicubic x4 rather than the patch's, and a flipped patch gets the flipped SR rather than the SR of
the flipped input. Whether that costs accuracy is measured, not assumed (docs/training_speed.md). The SR is
computed in fp32 and kept as float16, 6 bytes per HR pixel of the training images.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
import torch.nn as nn
from tqdm import tqdm

from training.data import TrainImage, to_tensor
from utils.errors import HarnessError
from utils.image import modcrop
from utils.imresize import bicubic_downsample


def teacher_targets(
    images: Sequence[TrainImage],
    teacher: nn.Module,
    *,
    scale: int,
    data_range: float,
    device: torch.device,
    progress: bool = False,
) -> list[np.ndarray]:
    """The teacher's SR of each image's whole LR (its LR file, else bicubic x``scale`` of the HR), as HxWx3
    float16 in [0, data_range] units, the HR's size: cut, or padded by repeating the edge, where the HR is not a
    multiple of ``scale``."""
    was_training = teacher.training
    teacher.eval()
    targets = []
    for image in tqdm(images, desc="teacher targets", disable=not progress, leave=False):
        lr = image.lr if image.lr is not None else bicubic_downsample(modcrop(image.hr, scale), scale)
        try:
            with torch.no_grad():
                sr = teacher(to_tensor(lr, data_range)[None].to(device))[0]
        except torch.OutOfMemoryError:
            raise HarnessError(
                f"--teacher_cache: {image.path} ({lr.shape[1]}x{lr.shape[0]} LR) does not fit in {device} memory as one "
                "input; turn teacher_cache off"
            ) from None
        targets.append(_to_hr_size(sr.float().permute(1, 2, 0).cpu().numpy(), image.hr.shape[:2]))
    teacher.train(was_training)
    return targets


def _to_hr_size(sr: np.ndarray, hr_shape: tuple[int, ...]) -> np.ndarray:
    height, width = hr_shape
    sr = sr[:height, :width]
    pad = ((0, height - sr.shape[0]), (0, width - sr.shape[1]), (0, 0))
    return np.ascontiguousarray(np.pad(sr, pad, mode="edge").astype(np.float16))
