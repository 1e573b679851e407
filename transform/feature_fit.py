"""Stage 1b, feature fitting: teach each new SRFDB what the RFDN blocks it replaces computed.

    python -m transform.feature_fit BRANCH.pth OUT.pth --rfdn team00_rfdn.pth --train_dir D [D ...] [--iters N]

In RFDN, block ``Bk`` reads ``B(k-1)(...B1(fea_conv(x)))``; in the branch model it reads
``srfdbk(headk(x))`` instead. So ``headk -> srfdbk`` (k = 2..4) has an exact regression target: RFDN's
feature map at Bk's input. This stage fits only those new layers to those targets (L1 on the features of
training patches, Adam), with everything RFDN already trained frozen. It is cheap (RFDN runs forward only,
gradients flow through three small blocks) and gives every later stage a far better start than training the
whole branch model on the SR loss alone. Validation PSNR on the held-out images is printed before and after
(with RFDN's on the same images), and each new branch's feature L1 on them (``branch_errors``); the weights
written are the last ones (no selection). It takes the data flags of ``train_prfdn.py`` except ``--teacher``,
which is refused: the targets come from ``--rfdn``.
"""

from __future__ import annotations

import argparse
import math
import time
from collections.abc import Iterator, Sequence

import torch
import torch.nn as nn
from torch.utils.data import DataLoader

from models.branch import BranchPRFDN
from models.team00_RFDN import RFDN
from training.data import (
    DataSettings,
    PatchSampler,
    ValidationImage,
    add_data_arguments,
    check_patch_size,
    check_seed,
    fill_data_defaults,
    load_data_from_args,
)
from training.flags import FAST_PATH_TEXT, add_setting_arguments, fill_fast_path
from training.loop import TrainSettings, check_batch_size, check_precision, seed_everything, validate
from transform.common import StageCLI, read_stage_input, stage_job, write_stage_output
from utils.errors import HarnessError
from utils.image import uint2tensor4
from utils.inference import resolve_device
from utils.model_io import load_model, read_flag_checkpoint
from utils.provenance import stage_record
from utils.settings import flag, job_defaults

NEW_BRANCHES = (2, 3, 4)
# The TrainSettings that feature fitting takes (its own defaults: ``add_arguments``).
FIT_SETTINGS = ("iters", "batch_size", "patch_size", "lr", "log_every", "seed", "device", "precision", "channels_last")


@torch.no_grad()
def rfdn_block_inputs(rfdn: RFDN, x: torch.Tensor) -> dict[int, torch.Tensor]:
    """RFDN's feature map at the input of B2, B3, B4 (what srfdb2..4 stand in for)."""
    features, inputs = rfdn.fea_conv(x), {}
    for k in NEW_BRANCHES:
        features = getattr(rfdn, f"B{k - 1}")(features)
        inputs[k] = features
    return inputs


@torch.no_grad()
def branch_errors(
    model: BranchPRFDN, rfdn: RFDN, images: Sequence[ValidationImage], data_range: float, device: torch.device
) -> dict[int, float]:
    """Per new branch k, the mean L1 between srfdbk(headk(x)) and RFDN's input to Bk over whole LR images ``images``
    (the feature error the fitting lowers, measured on images it never saw); empty without images."""
    if not images:
        return {}
    model.eval()
    totals = dict.fromkeys(NEW_BRANCHES, 0.0)
    for image in images:
        losses = branch_losses(model, rfdn, uint2tensor4(image.lr, data_range).to(device))
        for k, loss in zip(NEW_BRANCHES, losses, strict=True):
            totals[k] += loss.item()
    return {k: total / len(images) for k, total in totals.items()}


def describe_errors(errors: dict[int, float]) -> str:
    return ", ".join(f"branch {k} {error:.4f}" for k, error in errors.items())


def new_layers(model: BranchPRFDN) -> list[nn.Parameter]:
    """The parameters of head2..4 and srfdb2..4; everything else is frozen."""
    params = []
    for name, param in model.named_parameters():
        trainable = name.split(".")[0] in {f"{kind}{k}" for kind in ("head", "srfdb") for k in NEW_BRANCHES}
        param.requires_grad_(trainable)
        if trainable:
            params.append(param)
    return params


def feature_loss(model: BranchPRFDN, rfdn: RFDN, lr_batch: torch.Tensor) -> torch.Tensor:
    """Mean L1 between each srfdbk(headk(x)) and RFDN's input to Bk, over k = 2..4."""
    return torch.stack(branch_losses(model, rfdn, lr_batch)).mean()


def branch_losses(model: BranchPRFDN, rfdn: RFDN, lr_batch: torch.Tensor) -> list[torch.Tensor]:
    """For k = 2..4, the mean L1 between srfdbk(headk(x)) and RFDN's input to Bk."""
    targets = rfdn_block_inputs(rfdn, lr_batch)
    return [(getattr(model, f"srfdb{k}")(getattr(model, f"head{k}")(lr_batch)) - targets[k]).abs().mean() for k in NEW_BRANCHES]


def fit_features(
    model: BranchPRFDN,
    rfdn: RFDN,
    batches: Iterator[torch.Tensor],
    iters: int,
    lr: float,
    log_every: int = 100,
    precision: str = "fp32",
    channels_last: bool = False,
) -> list[dict[str, float]]:
    """``iters`` Adam steps (cosine-decayed learning rate) on the feature loss. Returns the loss log; a loss that is
    not finite stops it (HarnessError: "training diverged", nothing written).
    ``precision="bf16"`` runs the forward passes under bfloat16 autocast (weights stay fp32); ``channels_last``
    puts both networks and the batches in that memory format (the training loop's fast path)."""
    rfdn.eval()
    if channels_last:
        model.to(memory_format=torch.channels_last)
        rfdn.to(memory_format=torch.channels_last)
    optimizer = torch.optim.Adam(new_layers(model), lr=lr)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=max(1, iters))
    model.train()
    log, started, running = [], time.time(), 0.0
    for step in range(1, iters + 1):
        batch = next(batches)
        if channels_last:
            batch = batch.contiguous(memory_format=torch.channels_last)
        with torch.autocast(batch.device.type, dtype=torch.bfloat16, enabled=precision == "bf16"):
            loss = feature_loss(model, rfdn, batch).float()
        if not math.isfinite(loss.item()):  # as the training loop stops: no unfitted or broken weights written
            raise HarnessError(f"training diverged: the feature loss is {loss.item()} at iteration {step}; lower {flag('lr')}")
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        scheduler.step()
        running += loss.item()
        if step % log_every == 0 or step == iters:
            count = log_every if step % log_every == 0 else step % log_every
            log.append({"iter": step, "feature_l1": running / count, "time": round(time.time() - started, 1)})
            print(f"  iter {step}/{iters}: feature L1 {running / count:.4f} ({log[-1]['time']:.0f} s)", flush=True)
            running = 0.0
    for param in model.parameters():
        param.requires_grad_(True)
    return log


def _lr_batches(loader: DataLoader, device: torch.device) -> Iterator[torch.Tensor]:
    for lr_batch, _ in loader:
        yield lr_batch.to(device, non_blocking=True)


def _check_arguments(job: FeatureFitJob) -> None:
    """Refuse impossible settings before any work."""
    for name in ("iters", "log_every"):
        if getattr(job, name) < 1:
            raise HarnessError(f"{flag(name)} {getattr(job, name)}: must be at least 1")
    check_batch_size(job.batch_size)
    check_patch_size(job.patch_size)
    check_seed(job.seed)
    if not 0 < job.lr < math.inf:
        raise HarnessError(f"{flag('lr')} {job.lr}: must be positive and finite")
    fill_fast_path(job)
    check_precision(job.precision)
    if not job.train_dir:
        raise HarnessError(f"{flag('train_dir')}: feature fitting needs training images (never the benchmark sets)")
    if job.teacher is not None:
        raise HarnessError(
            f"{flag('teacher')} {job.teacher}: feature fitting distils from no teacher (its targets are the features of "
            f"{flag('rfdn')}); "
            f"leave {flag('teacher')} out"
        )
    fill_data_defaults(job)


def _run(job: FeatureFitJob) -> None:
    _check_arguments(job)
    device = resolve_device(job.device)
    parent = read_stage_input(job.src, ("branch",), "feature fitting")
    model = load_model(parent, job.src)
    rfdn_checkpoint = read_flag_checkpoint(job.rfdn, flag("rfdn"))
    if rfdn_checkpoint.arch != "rfdn":
        raise HarnessError(f"{flag('rfdn')} {job.rfdn}: is a {rfdn_checkpoint.arch!r} checkpoint; expected the official RFDN")
    rfdn = load_model(rfdn_checkpoint, f"{flag('rfdn')} {job.rfdn}").eval()
    seed_everything(job.seed)
    data = load_data_from_args(job, patch_size=job.patch_size, seed=job.seed, data_range=parent.data_range, scale=parent.scale)
    loader = DataLoader(data.train, batch_size=job.batch_size, sampler=PatchSampler(0, job.iters, job.batch_size))
    model, rfdn = model.to(device), rfdn.to(device)
    before = validate(model, data.val, parent.data_range, device)  # None (stored as null) without validation images
    reference = validate(rfdn, data.val, parent.data_range, device)
    errors_before = branch_errors(model, rfdn, data.val, parent.data_range, device)
    if data.val:
        print(f"validation PSNR before: {before:.4f} dB (RFDN {reference:.4f} dB, {len(data.val)} held-out images)")
        print(f"validation feature L1 before: {describe_errors(errors_before)}")
    else:
        print("no validation images: the PSNR before and after is not measured")
    log = fit_features(
        model, rfdn, _lr_batches(loader, device), job.iters, job.lr, job.log_every, job.precision, job.channels_last
    )
    after = validate(model, data.val, parent.data_range, device)
    errors_after = branch_errors(model, rfdn, data.val, parent.data_range, device)
    if data.val:
        print(f"validation PSNR after {job.iters} iterations: {after:.4f} dB (RFDN {reference:.4f} dB)")
        print(f"validation feature L1 after: {describe_errors(errors_after)}")
    record = stage_record(
        "feature_fit",
        job.src,
        parent,
        rfdn=job.rfdn,
        iters=job.iters,
        batch_size=job.batch_size,
        patch_size=job.patch_size,
        lr=job.lr,
        seed=job.seed,
        device=device.type,
        precision=job.precision,
        channels_last=job.channels_last,
        val_psnr_before=before,
        val_psnr_after=after,
        val_psnr_rfdn=reference,
        val_feature_l1_before={str(k): v for k, v in errors_before.items()},  # per new branch, held-out images
        val_feature_l1_after={str(k): v for k, v in errors_after.items()},
        log=log,
        data=data.description,
    )
    write_stage_output(job.dst, model.cpu(), parent, record)


# One run of the stage: the official RFDN, the data settings (its ``teacher`` refused) and the training settings it
# takes, with the stage's own defaults.
FeatureFitJob = stage_job(
    "FeatureFitJob",
    own=(("rfdn", str, None),),
    parts=((DataSettings, None), (TrainSettings, FIT_SETTINGS)),
    defaults={"iters": 2000, "batch_size": 16, "patch_size": 48, "lr": 2e-4, "log_every": 100, "seed": 0},
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--rfdn", required=True, help="the official RFDN checkpoint the branch model came from")
    add_data_arguments(parser, teacher=False)  # --teacher is refused: the targets are --rfdn's features
    fit = parser.add_argument_group("fitting")
    add_setting_arguments(
        fit,
        FIT_SETTINGS,
        defaults=job_defaults(FeatureFitJob),
        default_text={"lr": "2e-4, cosine-decayed to 0", "device": "cuda when available", **FAST_PATH_TEXT},
    )


CLI = StageCLI(
    "transform.feature_fit",
    "Fit the branch model's new SRFDBs to RFDN's features (PRFDN stage 1b).",
    FeatureFitJob,
    _run,
    add_arguments,
)
parse_args, main = CLI.parse_args, CLI.main


if __name__ == "__main__":
    raise SystemExit(main())
