"""Fine-tuning loop shared by the PRFDN stages: ``fit`` trains any SR module on ``TrainPatches`` and keeps the
best weights by validation PSNR.

- Loss: L1 to HR, plus ``distill_weight`` x L1 to a teacher's SR; ``loss="l2"`` uses the mean squared error
  for both instead (PSNR is a function of the MSE, so a short L2 phase at the end tunes for it). Adam over
  trainable parameters only (frozen helper layers stay frozen). Learning rate: ``lr``, lowered once to
  ``lr_after_plateau`` by ``torch.optim.lr_scheduler.ReduceLROnPlateau`` when more than ``plateau_patience``
  validations in a row bring no new best PSNR (no-op when ``lr_after_plateau >= lr``).
- Optional weight EMA (``ema_decay`` > 0, ``torch.optim.swa_utils.AveragedModel``): validation, the best and
  the last weights are then those of the exponential moving average of the trained weights, which smooths out
  the noise of the last steps. Turned on when resuming a run, it starts from the weights there.
- Validation PSNR as the harness scores it: SR clamped and rounded to uint8, RGB, 4-pixel border, averaged.
- Exact resume: ``training_state`` holds model, best weights, optimizer, scheduler, AMP scaler, iteration and
  every RNG state; the data sampler is counter-based (see ``training.data``), so its state is the iteration.
  On CPU, training N iterations equals training K, saving, resuming in a new object or process, training N-K,
  bit for bit. The state loads with ``torch.load(weights_only=True)``. Resuming with another ``lr``,
  ``lr_after_plateau`` or ``plateau_patience`` starts a new learning-rate phase at the new ``lr`` (the rest
  continues exactly). Resuming with another ``loss`` does too, and also starts Adam's moments afresh: the
  MSE's gradients differ in scale from the L1's by about the typical error (far larger on 0-255 data, far
  smaller on 0-1), and second moments kept from the old loss (decay 0.999) would mis-size the steps for
  thousands of iterations.
- First Ctrl-C (SIGINT) or SIGTERM: the current iteration finishes, the state is handed to ``save_state`` and
  ``TrainingInterruptedError`` is raised; a second Ctrl-C interrupts at once.
- Under ``torchrun`` (WORLD_SIZE > 1, see ``init_distributed``): DistributedDataParallel, each rank draws its
  slice of every global batch (``batch_size`` per rank), rank 0 validates and writes, the others follow.
"""

from __future__ import annotations

import contextlib
import copy
import json
import math
import os
import random
import signal
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
import torch.nn as nn
import torch.nn.functional as F
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn
from torch.utils.data import DataLoader
from tqdm import tqdm

from models.ensemble import SelfEnsemble
from models.team00_RFDN import RFDN
from training.data import PatchSampler, TrainPatches, ValidationImage, check_patch_size, check_seed
from training.teacher_targets import teacher_targets
from utils.checkpoint import TRAINING_STATE_FORMAT, check_training_state, describe_mismatch
from utils.errors import HarnessError, TrainingInterruptedError
from utils.fileio import atomic_write_text
from utils.image import tensor2uint, uint2tensor4
from utils.inference import cpu_has_native_bf16
from utils.metrics import calculate_psnr
from utils.settings import flag, setting

STATE_FORMAT = TRAINING_STATE_FORMAT
PSNR_BORDER = 4

LogFn = Callable[[dict[str, Any]], None]
PRECISIONS = ("fp32", "bf16")
DEVICES = ("cpu", "cuda")
SCHEDULES = ("plateau", "cosine")
SELECTIONS = ("mean", "worst_gap")
MAX_ITERS = 10**9  # the bound of a run limited by --minutes only
LOSS_TERMS = 4  # total, to HR, distillation to the teacher's SR, feature distillation
PIXEL_LOSSES: dict[str, Callable[[torch.Tensor, torch.Tensor], torch.Tensor]] = {"l1": F.l1_loss, "l2": F.mse_loss}


# Factsheet recipe: Adam at 1e-5 for the branch model (5e-6 once the loss stops falling), 1e-6 after
# re-parametrization (and so for the pruned networks too).
DEFAULT_LR = {"branch": 1e-5, "prfdn": 1e-6, "prfdn_helpers": 1e-6}
FALLBACK_LR = 1e-5


def check_precision(precision: str) -> None:
    """Refuse a training precision other than fp32 and bf16."""
    if precision not in PRECISIONS:
        raise HarnessError(f"{flag('precision')} {precision}: must be one of {', '.join(PRECISIONS)}")


def fast_path_default(device: str) -> tuple[str, bool]:
    """(precision, channels_last) where the flags are not given: bf16 autocast + channels_last on a CPU with
    native bf16 (0.40x to 0.42x of fp32's time per training iteration, held-out PSNR within 0.01 dB; see
    docs/training_speed.md), fp32 elsewhere (CUDA, and CPUs that would emulate bf16: not measured)."""
    return ("bf16", True) if device == "cpu" and cpu_has_native_bf16() else ("fp32", False)


def default_lr(arch: str) -> float:
    """The stage's learning rate from the factsheet: 1e-5 for ``branch``, 1e-6 for ``prfdn``/``prfdn_helpers``."""
    return DEFAULT_LR.get(arch, FALLBACK_LR)


# Upper bounds of the counts, generous so that no real use is refused: a typo (an extra digit or three) gets one
# line instead of minutes of work or an exhausted memory.
MAX_BATCH_SIZE = 4096  # patches per iteration and process; SR training uses 16 to a few hundred
MAX_NUM_WORKERS = max(64, 4 * (os.cpu_count() or 1))  # DataLoader processes: 64 anywhere, more on larger machines


def check_batch_size(batch_size: int, name: str = "batch_size") -> None:
    """Refuse a batch size below 1 or above ``MAX_BATCH_SIZE``."""
    if batch_size < 1:
        raise HarnessError(f"{flag(name)} {batch_size}: must be at least 1")
    if batch_size > MAX_BATCH_SIZE:
        raise HarnessError(f"{flag(name)} {batch_size}: must be at most {MAX_BATCH_SIZE} (patches per iteration and process)")


def check_num_workers(num_workers: int, name: str = "num_workers") -> None:
    """Refuse a negative worker count or one above ``MAX_NUM_WORKERS``."""
    if num_workers < 0:
        raise HarnessError(f"{flag(name)} {num_workers}: must not be negative")
    if num_workers > MAX_NUM_WORKERS:
        raise HarnessError(f"{flag(name)} {num_workers}: must be at most {MAX_NUM_WORKERS} (DataLoader worker processes)")


@dataclass
class TrainSettings:
    """Every knob of ``fit``. ``batch_size`` is per process (per GPU under torchrun)."""

    iters: int = setting(10000, "total iterations")
    batch_size: int = setting(16, f"patches per iteration and process (at most {MAX_BATCH_SIZE})")
    patch_size: int = setting(48, "LR patch size in pixels")
    lr: float = setting(1e-5, "learning rate")
    lr_after_plateau: float = setting(5e-6, "learning rate once validation stalls")
    plateau_patience: int = setting(5, "validations without improvement tolerated")  # ReduceLROnPlateau's rule
    distill_weight: float = setting(0.0, "weight of the loss to the --teacher's SR")
    feature_distill: float = setting(
        0.0,
        "weight of the loss between the branch model's four block outputs and the official RFDN --teacher's B1..B4 "
        "outputs (branch model only)",
    )
    loss: str = setting(
        "l1",
        "to HR and to the teacher: l1 or l2, the mean squared error (on --resume: new lr phase, fresh Adam)",
        choices=list(PIXEL_LOSSES),
    )
    val_every: int = setting(500, "validate every N iterations")
    log_every: int = setting(100, "log line every N iterations")
    seed: int = setting(0, "seed of the patch stream and RNGs")
    device: str = setting("cpu", "cpu or cuda", choices=DEVICES)
    amp: bool = setting(False, "float16 autocast on CUDA")  # with a GradScaler
    precision: str = setting(
        "fp32", "fp32, or bf16: the forward pass under bfloat16 autocast, fp32 weights (CPU or CUDA)", choices=list(PRECISIONS)
    )
    channels_last: bool = setting(False, "model and batches in channels_last memory format (faster convolutions on many CPUs)")
    num_workers: int = setting(0, f"DataLoader worker processes (at most {MAX_NUM_WORKERS}: the larger of 64 and 4 per CPU core)")
    grad_clip: float | None = setting(None, "clip the gradient norm to this")  # None: no clipping
    ema_decay: float = setting(0.0, "validate and save an EMA of the weights with this decay per iteration, e.g. 0.999 (0: off)")
    teacher_cache: bool = setting(
        False,
        "run the --teacher once on each whole training image before training and crop its SR with each patch, instead "
        "of on every batch (6 bytes per HR pixel of memory; see docs/training_speed.md)",
    )
    teacher_x8: bool = setting(
        False,
        "distil from the --teacher's x8 self-ensemble (its SR of the 8 flips / rotations, averaged: 8 passes per input; "
        "with --teacher_cache made once per image); --select worst_gap still measures the plain teacher",
    )
    schedule: str = setting(
        "plateau",
        "learning-rate schedule: plateau (lr, lowered once to lr_after_plateau when validation stalls) or cosine (a "
        "cycle: linear warm-up to lr, then a cosine down to min_lr at the end of iters or of --minutes)",
        choices=SCHEDULES,
    )
    warmup: int = setting(100, "cosine: iterations of linear warm-up from 0 to lr")
    min_lr: float = setting(1e-6, "cosine: the learning rate at the end of the cycle")
    minutes: float | None = setting(
        None, "end training after this many minutes of training time (the cosine spans them; iters is then a bound)"
    )
    snapshot_minutes: float | None = setting(
        None, "also write the weights (EMA when on) to OUT_snapshot.pth every this many minutes, at a log line"
    )
    select: str = setting(
        "mean",
        "how the best weights are chosen: mean (validation PSNR over all images) or worst_gap (the validation group "
        "furthest below the --teacher, e.g. the official RFDN, whose PSNR per group is measured once at the start)",
        choices=SELECTIONS,
    )
    select_against: str | None = setting(
        None,
        "with --select worst_gap: measure each validation group against this checkpoint instead of the --teacher, e.g. "
        "the weights in use, so the weights kept are those furthest above them on their weakest group",
    )
    validate_at_start: bool = True  # score the starting weights: the best can then be "no change"
    progress: bool = True  # tqdm bar on rank 0

    def check(self) -> None:
        """Refuse settings out of range (one line naming the flag), before any work."""
        for name in ("iters", "val_every", "log_every"):
            if getattr(self, name) < 1:
                raise HarnessError(f"{flag(name)} {getattr(self, name)}: must be at least 1")
        check_batch_size(self.batch_size)
        check_patch_size(self.patch_size)
        for name in ("lr", "lr_after_plateau"):
            if not 0 < getattr(self, name) < math.inf:
                raise HarnessError(f"{flag(name)} {getattr(self, name)}: must be positive and finite")
        if self.plateau_patience < 0:
            raise HarnessError(f"{flag('plateau_patience')} {self.plateau_patience}: must not be negative")
        check_num_workers(self.num_workers)
        for name in ("distill_weight", "feature_distill"):
            if not 0 <= getattr(self, name) < math.inf:
                raise HarnessError(f"{flag(name)} {getattr(self, name)}: must be at least 0 and finite")
        check_seed(self.seed)
        if self.grad_clip is not None and not 0 < self.grad_clip < math.inf:
            raise HarnessError(f"{flag('grad_clip')} {self.grad_clip}: must be positive and finite")
        if self.loss not in PIXEL_LOSSES:
            raise HarnessError(f"{flag('loss')} {self.loss}: must be one of {', '.join(PIXEL_LOSSES)}")
        check_precision(self.precision)
        if self.precision == "bf16" and self.amp:
            raise HarnessError(f"{flag('amp')} (float16) and {flag('precision')} bf16: give one of them")
        if not 0.0 <= self.ema_decay < 1.0:
            raise HarnessError(f"{flag('ema_decay')} {self.ema_decay}: must be at least 0 (off) and below 1")
        if self.select not in SELECTIONS:
            raise HarnessError(f"{flag('select')} {self.select}: must be one of {', '.join(SELECTIONS)}")
        if self.select_against is not None and self.select != "worst_gap":
            raise HarnessError(f"{flag('select_against')}: only with {flag('select')} worst_gap (not {self.select})")
        if self.schedule not in SCHEDULES:
            raise HarnessError(f"{flag('schedule')} {self.schedule}: must be one of {', '.join(SCHEDULES)}")
        if self.warmup < 0:
            raise HarnessError(f"{flag('warmup')} {self.warmup}: must not be negative")
        if not 0 < self.min_lr < math.inf:
            raise HarnessError(f"{flag('min_lr')} {self.min_lr}: must be positive and finite")
        if self.schedule == "cosine" and self.min_lr > self.lr:
            raise HarnessError(
                f"{flag('min_lr')} {self.min_lr:g}: must not exceed {flag('lr')} {self.lr:g} (the cosine falls to it)"
            )
        for name in ("minutes", "snapshot_minutes"):
            value = getattr(self, name)
            if value is not None and not 0 < value < math.inf:
                raise HarnessError(f"{flag(name)} {value}: must be positive and finite")
        if self.schedule == "cosine" and self.minutes is None and self.warmup >= self.iters:
            raise HarnessError(
                f"{flag('warmup')} {self.warmup}: must be below {flag('iters')} {self.iters} (the cosine falls from "
                f"{flag('lr')} after the warm-up; "
                "this one would never reach it)"
            )
        if self.snapshot_minutes is not None and self.minutes is not None and self.snapshot_minutes >= self.minutes:
            raise HarnessError(
                f"{flag('snapshot_minutes')} {self.snapshot_minutes:g}: must be below {flag('minutes')} {self.minutes:g} "
                "(no snapshot would "
                "be written before the run ends; OUT_last.pth holds its end weights)"
            )

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> TrainSettings:
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in values.items() if k in known})


@dataclass
class FitResult:
    iterations: int
    best_psnr: float | None  # None without validation images (best = last)
    best_iteration: int
    initial_psnr: float | None
    best_state_dict: dict[str, torch.Tensor]
    last_state_dict: dict[str, torch.Tensor]
    state: dict[str, Any]  # resumable training state at the end
    history: list[dict[str, Any]] = field(default_factory=list)


class JsonlLog:
    """Appends one JSON object per line to ``path`` (kept across resumes; records carry their iteration)."""

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)

    def __call__(self, record: dict[str, Any]) -> None:
        try:
            with open(self.path, "a", encoding="utf-8") as f:
                f.write(json.dumps(record) + "\n")
        except OSError as err:  # a full disk: the line cut off there is dropped by the next --resume (truncate_log)
            raise OSError(err.errno, f"cannot write {self.path}: {err.strerror or err}") from None


def read_log_lines(path: str | os.PathLike) -> list[str]:
    """The lines of the JSON-lines log ``path`` ([] where there is none), or a one-line HarnessError naming it
    when it is not UTF-8 text (not a log ``JsonlLog`` wrote, or damaged), so nothing is read wrongly or replaced."""
    path = Path(path)
    if not path.is_file():
        return []
    data = path.read_bytes()
    try:
        return data.decode("utf-8").splitlines()
    except UnicodeDecodeError as err:
        raise HarnessError(
            f"{path}: log is not UTF-8 text (byte {data[err.start]:#04x} at offset {err.start}); expected the JSON lines "
            "train_prfdn.py writes: move the file away to continue with a new log"
        ) from None


def truncate_log(path: str | os.PathLike, iteration: int) -> int:
    """Keep only the records of ``path`` up to ``iteration`` (where a resumed run goes on), atomically.

    A run killed after its last saved state has logged iterations the resumed run logs again; a line cut off
    by the kill is no record either. Returns how many lines were dropped (0: the file is left as it is).
    A log that is not UTF-8 text is refused (``read_log_lines``), left as it is."""
    path = Path(path)
    kept, dropped = [], 0
    for line in read_log_lines(path):
        try:
            record = json.loads(line)
            keep = isinstance(record, dict) and int(record["iter"]) <= iteration
        except (ValueError, KeyError, TypeError, OverflowError, RecursionError):  # 1e400 is inf: no int
            keep = False
        if keep:
            kept.append(line + "\n")
        else:
            dropped += 1
    if dropped:
        atomic_write_text(path, "".join(kept))
    return dropped


# --- distributed --------------------------------------------------------------------------------------------


def distributed_active() -> bool:
    """Whether this process has joined a process group (torchrun with WORLD_SIZE > 1)."""
    return dist.is_available() and dist.is_initialized()


def world() -> tuple[int, int]:
    """(rank, world size) of this process; (0, 1) without an initialised process group."""
    if distributed_active():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def init_distributed(device: str) -> torch.device:
    """Join the process group when launched by torchrun with WORLD_SIZE > 1 (nccl on CUDA, gloo on CPU).

    Returns this process's device (``cuda:LOCAL_RANK`` on CUDA)."""
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1 or distributed_active():
        return torch.device(device)
    if device == "cuda":
        local_rank = int(os.environ.get("LOCAL_RANK", "0"))
        torch.cuda.set_device(local_rank)
        dist.init_process_group("nccl")
        return torch.device("cuda", local_rank)
    dist.init_process_group("gloo")
    return torch.device(device)


def _collective_device(device: torch.device) -> torch.device:
    return device if dist.get_backend() == "nccl" else torch.device("cpu")


# --- RNG and training state -----------------------------------------------------------------------------------


def rng_state() -> dict[str, Any]:
    """Python, NumPy, torch CPU (and CUDA) generator states as tensors and plain lists (weights-only safe)."""
    py_version, py_internal, py_gauss = random.getstate()
    np_kind, np_keys, np_pos, np_has_gauss, np_gauss = np.random.get_state()
    state: dict[str, Any] = {
        "python": [py_version, list(py_internal), py_gauss],
        "numpy": [np_kind, torch.from_numpy(np_keys.astype(np.int64)), int(np_pos), int(np_has_gauss), float(np_gauss)],
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    kind, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((kind, keys.numpy().astype(np.uint32), pos, has_gauss, cached))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def _cpu_state_dict(model: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}


def check_state(state: Any, model: nn.Module, source: str = "training state") -> dict[str, Any]:
    """``state`` if it is a training state of ``model``'s structure, else a one-line HarnessError."""
    check_training_state(state, source)
    mismatch = describe_mismatch(model, state["model"])
    if mismatch:
        raise HarnessError(f"{source}: saved from another model: {mismatch}")
    return state


# --- the loop -----------------------------------------------------------------------------------------------


@contextlib.contextmanager
def _stop_requests() -> Iterator[list[bool]]:
    """A flag set by the first SIGINT/SIGTERM (a second SIGINT raises KeyboardInterrupt at once)."""
    flag = [False]
    if threading.current_thread() is not threading.main_thread():
        yield flag
        return

    def handler(signum: int, frame: Any) -> None:
        if flag[0] and signum == signal.SIGINT:
            raise KeyboardInterrupt
        flag[0] = True

    previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield flag
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


def psnr_scores(model: nn.Module, images: Sequence[ValidationImage], data_range: float, device: torch.device) -> list[float]:
    """PSNR (dB) of each of ``images``: whole images, SR clamped and rounded to uint8, RGB, 4-pixel border. An
    output with NaN or infinite values scores NaN (rounded, it would be black pixels and a figure for them): a
    training that diverged says so at its next record, on every rank; ``pipeline.groups`` names the image."""
    was_training = model.training
    model.eval()
    scores = []
    with torch.no_grad():
        for image in images:
            sr = model(uint2tensor4(image.lr, data_range).to(device))
            if not bool(torch.isfinite(sr).all()):
                scores.append(float("nan"))
                continue
            scores.append(calculate_psnr(tensor2uint(sr, data_range), image.hr, border=PSNR_BORDER))
    model.train(was_training)
    return scores


def group_means(images: Sequence[ValidationImage], scores: Sequence[float]) -> dict[str, float]:
    """Mean PSNR per validation group (``held_out``, ``val_dir``), in the order the groups first appear."""
    groups: dict[str, list[float]] = {}
    for image, score in zip(images, scores, strict=True):
        groups.setdefault(image.group, []).append(score)
    return {group: float(np.mean(values)) for group, values in groups.items()}


def validate(model: nn.Module, images: Sequence[ValidationImage], data_range: float, device: torch.device) -> float | None:
    """Mean PSNR (dB) over ``images`` (see ``psnr_scores``); None without images."""
    if not images:
        return None
    return float(np.mean(psnr_scores(model, images, data_range, device)))


def check_teacher_cache(settings: TrainSettings, has_teacher: bool) -> None:
    """``--teacher_cache`` needs a teacher to distil from, and cannot serve feature distillation (which compares
    the teacher's block outputs on each patch); nor can ``--teacher_x8``, which also needs a teacher to distil from
    (without one it would change nothing)."""
    if settings.teacher_x8 and (not has_teacher or settings.distill_weight <= 0):
        raise HarnessError(
            f"{flag('teacher_x8')}: no teacher's SR to ensemble; it needs a {flag('teacher')} and {flag('distill_weight')} "
            "above 0 (or turn "
            "teacher_x8 off)"
        )
    if settings.teacher_x8 and settings.feature_distill > 0:
        raise HarnessError(f"{flag('teacher_x8')}: feature distillation pairs the plain teacher's block outputs; give one")
    if not settings.teacher_cache:
        return
    if not has_teacher or settings.distill_weight <= 0:
        raise HarnessError(
            f"{flag('teacher_cache')}: nothing to cache; it needs a {flag('teacher')} and {flag('distill_weight')} above 0 "
            "(or turn teacher_cache off)"
        )
    if settings.feature_distill > 0:
        raise HarnessError(
            f"{flag('teacher_cache')}: feature distillation needs the teacher's block outputs on each patch; turn "
            "teacher_cache off "
            f"or give {flag('feature_distill')} 0"
        )


def check_feature_distill(model: nn.Module, teacher: nn.Module | None) -> None:
    """Feature distillation pairs the branch model's four block outputs with the official RFDN's B1..B4."""
    if not getattr(model, "HAS_BLOCK_FEATURES", False) or not isinstance(teacher, RFDN):
        raise HarnessError(
            f"{flag('feature_distill')} > 0 needs a branch-model SRC and the official RFDN as {flag('teacher')} (their "
            "B1..B4 outputs are paired)"
        )


def rfdn_with_features(rfdn: RFDN, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """RFDN's SR and the outputs of its blocks B1..B4 (the maps it concatenates before ``c``), in one pass."""
    features, outputs = rfdn.fea_conv(x), []
    block = features
    for k in range(1, 5):
        block = getattr(rfdn, f"B{k}")(block)
        outputs.append(block)
    low = rfdn.LR_conv(rfdn.c(torch.cat(outputs, dim=1))) + features
    return rfdn.upsampler(low), outputs


def _make_scheduler(
    optimizer: torch.optim.Optimizer, settings: TrainSettings
) -> torch.optim.lr_scheduler.ReduceLROnPlateau | None:
    if settings.schedule != "plateau" or settings.lr_after_plateau >= settings.lr:
        return None
    return torch.optim.lr_scheduler.ReduceLROnPlateau(
        optimizer,
        mode="max",
        factor=settings.lr_after_plateau / settings.lr,
        patience=settings.plateau_patience,
        threshold=0.0,
        threshold_mode="abs",
        min_lr=settings.lr_after_plateau,
        eps=0.0,
    )


# The settings that one learning-rate schedule reads and the other does not: given with the other, they would do nothing.
SCHEDULE_SETTINGS = {"warmup": "cosine", "min_lr": "cosine", "lr_after_plateau": "plateau", "plateau_patience": "plateau"}


def check_schedule_settings(schedule: str, given: Iterable[str]) -> None:
    """Refuse a setting ``given`` (by its flag, or its config key) that ``schedule`` does not read."""
    for name in given:
        needs = SCHEDULE_SETTINGS.get(name)
        if needs is not None and needs != schedule:
            raise HarnessError(
                f"{flag(name)}: only with {flag('schedule')} {needs} (the {schedule} schedule does not read it, so it would "
                "do nothing)"
            )


LR_SCHEDULE_KEYS = ("lr", "lr_after_plateau", "plateau_patience", "schedule", "warmup", "min_lr", "minutes")


def cosine_lr(settings: TrainSettings, iteration: int, seconds: float) -> float:
    """The cycle's learning rate for ``iteration`` (0-based) after ``seconds`` of training: a linear warm-up over
    ``warmup`` iterations, then a cosine from ``lr`` to ``min_lr`` over the rest of ``iters``, or of ``minutes``."""
    if iteration < settings.warmup:
        return settings.lr * (iteration + 1) / settings.warmup
    if settings.minutes is not None:
        progress = seconds / (60.0 * settings.minutes)
    else:
        progress = (iteration - settings.warmup) / max(1, settings.iters - settings.warmup)
    progress = min(1.0, max(0.0, progress))
    return settings.min_lr + (settings.lr - settings.min_lr) * 0.5 * (1.0 + math.cos(math.pi * progress))


def loss_changed(saved: dict[str, Any], settings: TrainSettings) -> bool:
    """Whether ``settings`` give a resumed run another loss (states written before ``loss`` existed used L1)."""
    return saved.get("loss", TrainSettings.loss) != settings.loss


def starts_new_lr_phase(saved: dict[str, Any], settings: TrainSettings) -> bool:
    """Whether ``settings`` give a resumed run (its saved settings) another learning-rate schedule or loss."""
    return loss_changed(saved, settings) or any(saved.get(name) != getattr(settings, name) for name in LR_SCHEDULE_KEYS)


class _Trainer:
    """The state of one ``fit`` call; split from ``fit`` to keep each step small."""

    def __init__(
        self,
        model: nn.Module,
        train_set: TrainPatches,
        val_set: Sequence[ValidationImage] | None,
        settings: TrainSettings,
        teacher: nn.Module | None,
        log: LogFn | None,
        save_state: Callable[[dict[str, Any]], None] | None,
        save_snapshot: Callable[[dict[str, torch.Tensor], int], None] | None = None,
        reference: nn.Module | None = None,
    ) -> None:
        settings.check()
        if train_set.patch_size != settings.patch_size:
            raise ValueError(f"train_set has patch size {train_set.patch_size}, settings {settings.patch_size}")
        if settings.distill_weight > 0 and teacher is None:
            raise HarnessError(f"{flag('distill_weight')} > 0 needs a {flag('teacher')}")
        if settings.select_against is not None and reference is None:
            raise HarnessError(f"{flag('select_against')} {settings.select_against}: give fit() its network as reference")
        if reference is not None and settings.select != "worst_gap":
            raise HarnessError(f"{flag('select_against')}: only with {flag('select')} worst_gap (not {settings.select})")
        if settings.select == "worst_gap" and teacher is None and reference is None:
            raise HarnessError(
                f"{flag('select')} worst_gap needs a {flag('teacher')} (the reference each validation group is measured against)"
            )
        if settings.feature_distill > 0:
            check_feature_distill(model, teacher)
        check_teacher_cache(settings, teacher is not None)
        self.settings, self.train_set, self.val_set = settings, train_set, list(val_set or [])
        self.log, self.save_state, self.save_snapshot = log, save_state, save_snapshot
        self.rank, self.world_size = world()
        self.device = torch.device(settings.device)
        if self.device.type == "cuda" and self.device.index is None and self.world_size > 1:
            self.device = torch.device("cuda", torch.cuda.current_device())
        self.data_range = train_set.data_range
        self.model = model.to(self.device).train()
        if reference is None and settings.select == "worst_gap":
            reference = teacher
        self.reference = reference.to(self.device).eval() if reference is not None else None
        if teacher is not None and settings.teacher_x8:
            teacher = SelfEnsemble(teacher)
        self.teacher = None
        if teacher is not None and (settings.distill_weight > 0 or settings.feature_distill > 0):
            self.teacher = teacher.to(self.device).eval()
            for p in self.teacher.parameters():
                p.requires_grad_(False)
        self.reference_groups: dict[str, float] = {}  # the reference's PSNR per validation group (worst_gap)
        self.distilling = self.teacher is not None and settings.distill_weight > 0
        if self.teacher is not None and settings.teacher_cache:  # the targets come with the patches from now on
            targets = teacher_targets(
                train_set.images,
                self.teacher,
                scale=train_set.scale,
                data_range=train_set.data_range,
                device=self.device,
                progress=settings.progress and world()[0] == 0,
            )
            self.train_set, self.teacher = train_set.with_targets(targets), None
        self.params = [p for p in self.model.parameters() if p.requires_grad]
        if not self.params:
            raise HarnessError("the model has no trainable parameters")
        self.optimizer = torch.optim.Adam(self.params, lr=settings.lr)
        self.scheduler = _make_scheduler(self.optimizer, settings)
        self.amp = settings.amp and self.device.type == "cuda"
        self.scaler = torch.amp.GradScaler("cuda", enabled=self.amp)
        self.autocast_dtype = torch.float16 if self.amp else torch.bfloat16 if settings.precision == "bf16" else None
        if settings.channels_last:
            self.model.to(memory_format=torch.channels_last)
            if self.teacher is not None:
                self.teacher.to(memory_format=torch.channels_last)
        self.net: nn.Module = self.model
        if self.world_size > 1:
            ids = [self.device.index] if self.device.type == "cuda" else None
            self.net = nn.parallel.DistributedDataParallel(self.model, device_ids=ids)
        self.ema = self._make_ema()
        self.iteration = 0
        self.best_psnr: float | None = None  # mean validation PSNR of the best weights
        self.best_score: float | None = None  # what chose them: the mean PSNR, or the worst group's gap (--select)
        self.best_iteration = 0
        self.initial_psnr: float | None = None
        self.best_state = _cpu_state_dict(self.evaluated)
        self.loss_sums = [0.0] * LOSS_TERMS  # total, to HR, distillation, feature distillation; since the last log line
        self.loss_count = 0
        self.val_groups: dict[str, float] = {}  # each validation group's mean PSNR at the last validation
        self.score = 0.0  # the selection figure at the last validation (--select)
        self.elapsed = 0.0
        self.started = time.perf_counter()  # of this process's part of the run (``run`` sets it again)
        self.now = 0.0  # training seconds at the last step (all ranks agree): the time-based schedule's clock
        self.last_snapshot = 0.0
        self.history: list[dict[str, Any]] = []

    def _make_ema(self) -> AveragedModel | None:
        """The EMA of the model's weights (a copy of it now; buffers follow the model, they are not averaged)."""
        if self.settings.ema_decay <= 0:
            return None
        return AveragedModel(self.model, multi_avg_fn=get_ema_multi_avg_fn(self.settings.ema_decay))

    @property
    def evaluated(self) -> nn.Module:
        """What is validated and saved: the EMA weights when on, else the trained ones."""
        return self.model if self.ema is None else self.ema.module

    # --- state ---

    def state(self) -> dict[str, Any]:
        return {
            "format": STATE_FORMAT,
            "iteration": self.iteration,
            "settings": asdict(self.settings),
            "model": _cpu_state_dict(self.model),
            "best_model": self.best_state,
            "best_psnr": self.best_psnr,
            "best_score": self.best_score,
            "best_iteration": self.best_iteration,
            "initial_psnr": self.initial_psnr,
            "optimizer": self.optimizer.state_dict(),
            "scheduler": None if self.scheduler is None else self.scheduler.state_dict(),
            "scaler": self.scaler.state_dict(),
            "ema": None if self.ema is None else _cpu_state_dict(self.ema),
            "rng": rng_state(),
            "sampler": {"seed": self.train_set.seed, "position": self.iteration},
            "loss_sums": list(self.loss_sums),
            "loss_count": self.loss_count,
            "elapsed": self.elapsed,
        }

    def restore(self, state: dict[str, Any]) -> None:
        check_state(state, self.model)
        if state["sampler"]["seed"] != self.train_set.seed:
            raise HarnessError(f"training state: data seed {state['sampler']['seed']}, this run {self.train_set.seed}")
        self.model.load_state_dict(state["model"])
        if self.ema is not None:  # a run that had no EMA yet starts one from the weights it reached
            self.ema = self._make_ema()
            if state.get("ema"):
                self.ema.load_state_dict(state["ema"])
        self.best_state = {k: v.clone() for k, v in state["best_model"].items()}
        self.iteration = int(state["iteration"])
        self.best_psnr, self.best_iteration = state["best_psnr"], int(state["best_iteration"])
        self.best_score = state.get("best_score", self.best_psnr)
        self.initial_psnr = state["initial_psnr"]
        if not loss_changed(state["settings"], self.settings):  # another loss starts Adam's moments afresh (docstring)
            self.optimizer.load_state_dict(state["optimizer"])
        if starts_new_lr_phase(state["settings"], self.settings):
            # --lr/--lr_after_plateau/--plateau_patience (or --loss) given anew on resume: a new learning-rate
            # phase (the optimizer's state would otherwise put the old lr back and the scheduler its old rule);
            # the new rule counts validations without a new best of the whole run
            for group in self.optimizer.param_groups:
                group["lr"] = self.settings.lr
            if self.scheduler is not None and self.best_score is not None:
                self.scheduler.best = self.best_score
        elif self.scheduler is not None and state["scheduler"] is not None:
            self.scheduler.load_state_dict(state["scheduler"])
        if state.get("scaler"):
            self.scaler.load_state_dict(state["scaler"])
        sums = list(state["loss_sums"])
        self.loss_sums, self.loss_count = sums + [0.0] * (LOSS_TERMS - len(sums)), int(state["loss_count"])
        self.elapsed = float(state["elapsed"])
        set_rng_state(state["rng"])

    # --- steps ---

    def loader(self) -> DataLoader:
        sampler = PatchSampler(self.iteration, self.settings.iters, self.settings.batch_size, self.rank, self.world_size)
        return DataLoader(
            self.train_set,
            batch_size=self.settings.batch_size,
            sampler=sampler,
            num_workers=self.settings.num_workers,
            pin_memory=self.device.type == "cuda",
            generator=torch.Generator(),  # DataLoader draws a worker base seed: keep it off the global RNG
            persistent_workers=False,
        )

    def step(self, lr_batch: torch.Tensor, hr_batch: torch.Tensor, target_batch: torch.Tensor | None = None) -> None:
        """One iteration; ``target_batch``: the teacher's SR of the patches, made beforehand (``--teacher_cache``)."""
        if self.settings.schedule == "cosine":
            for group in self.optimizer.param_groups:
                group["lr"] = cosine_lr(self.settings, self.iteration, self.now)
        lr_batch = lr_batch.to(self.device, non_blocking=True)
        hr_batch = hr_batch.to(self.device, non_blocking=True)
        if self.settings.channels_last:
            lr_batch = lr_batch.contiguous(memory_format=torch.channels_last)
        features = self.settings.feature_distill > 0
        with torch.autocast(self.device.type, dtype=self.autocast_dtype, enabled=self.autocast_dtype is not None):
            sr, maps = self.net(lr_batch, with_features=True) if features else (self.net(lr_batch), [])
            target, target_maps = None, []
            if target_batch is not None:
                target = target_batch.to(self.device, non_blocking=True)
            elif self.teacher is not None:
                with torch.no_grad():
                    target, target_maps = rfdn_with_features(self.teacher, lr_batch) if features else (self.teacher(lr_batch), [])
        sr = sr.float()
        pixel_loss = PIXEL_LOSSES[self.settings.loss]
        to_hr = pixel_loss(sr, hr_batch)
        zero = torch.zeros((), device=sr.device)
        distill = pixel_loss(sr, target.float()) if target is not None else zero
        loss = to_hr + self.settings.distill_weight * distill if target is not None else to_hr
        feature = zero
        if features:
            feature = torch.stack([pixel_loss(m.float(), t.float()) for m, t in zip(maps, target_maps, strict=True)]).mean()
        loss = loss + self.settings.feature_distill * feature
        self.optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(loss).backward()
        if self.settings.grad_clip is not None:
            self.scaler.unscale_(self.optimizer)
            torch.nn.utils.clip_grad_norm_(self.params, self.settings.grad_clip)
        self.scaler.step(self.optimizer)
        self.scaler.update()
        if self.ema is not None:
            self.ema.update_parameters(self.model)
        for i, value in enumerate((loss, to_hr, distill, feature)):
            self.loss_sums[i] += float(value.detach())
        self.loss_count += 1

    def run_validation(self) -> float | None:
        """Rank 0 scores the images; every rank gets the figure, so all schedulers and bests stay in step."""
        if not self.val_set:
            return None
        psnr = score = 0.0
        if self.rank == 0:
            scores = psnr_scores(self.evaluated, self.val_set, self.data_range, self.device)
            psnr = score = float(np.mean(scores))
            self.val_groups = group_means(self.val_set, scores)
            if self.reference is not None:
                score = self.worst_gap()
        if self.world_size > 1:
            figure = torch.tensor([psnr, score], dtype=torch.float64, device=_collective_device(self.device))
            dist.broadcast(figure, 0)
            psnr, score = (float(v) for v in figure.tolist())
        self.score = score
        if self.best_score is None or score > self.best_score:
            self.best_psnr, self.best_score, self.best_iteration = psnr, score, self.iteration
            self.best_state = _cpu_state_dict(self.evaluated)
        if self.scheduler is not None:
            self.scheduler.step(score)
        return psnr

    def worst_gap(self) -> float:
        """The lowest of the validation groups' PSNR minus the reference's on the same group (``--select worst_gap``;
        the reference, the teacher or ``--select_against``, is scored once, at the first validation of this process)."""
        if not self.reference_groups:
            reference_scores = psnr_scores(self.reference, self.val_set, self.data_range, self.device)
            self.reference_groups = group_means(self.val_set, reference_scores)
        return min(self.val_groups[group] - self.reference_groups[group] for group in self.val_groups)

    def record(self, psnr: float | None, started: float) -> dict[str, Any]:
        sums = self.loss_sums
        if self.world_size > 1:
            reduced = torch.tensor([*sums, self.loss_count], dtype=torch.float64, device=_collective_device(self.device))
            dist.all_reduce(reduced)
            sums, count = reduced[:LOSS_TERMS].tolist(), reduced[LOSS_TERMS].item()
        else:
            count = self.loss_count
        record: dict[str, Any] = {"iter": self.iteration, "lr": self.optimizer.param_groups[0]["lr"]}
        if count:
            if not math.isfinite(sums[0]):
                raise HarnessError(f"training diverged: the loss is {sums[0]} at iteration {self.iteration}; lower {flag('lr')}")
            record["loss"] = sums[0] / count
            record[self.settings.loss] = sums[1] / count  # the loss to HR, under its name ("l1" or "l2")
            if self.distilling:
                record["distill"] = sums[2] / count
            if self.settings.feature_distill > 0:
                record["feature"] = sums[3] / count
        if psnr is not None:
            record.update(val_psnr=psnr, best_psnr=self.best_psnr, best_iter=self.best_iteration)
            if self.val_groups:
                record["val_groups"] = dict(self.val_groups)
            if self.reference is not None:
                record.update(val_worst_gap=self.score, best_worst_gap=self.best_score, reference_groups=self.reference_groups)
        record["time"] = round(self.elapsed + time.perf_counter() - started, 3)
        self.loss_sums, self.loss_count = [0.0] * LOSS_TERMS, 0
        return record

    def emit(self, record: dict[str, Any]) -> None:
        self.history.append(record)
        if self.rank == 0 and self.log is not None:
            self.log(record)

    def seconds(self) -> float:
        """Training seconds so far; under torchrun rank 0's, so every rank follows the same time-based schedule."""
        now = self.elapsed + time.perf_counter() - self.started
        if self.world_size > 1 and self.settings.minutes is not None:
            figure = torch.tensor([now], dtype=torch.float64, device=_collective_device(self.device))
            dist.broadcast(figure, 0)
            now = float(figure.item())
        return now

    def finished(self) -> bool:
        """The run's end: its ``iters``, or its ``minutes`` of training time."""
        return self.iteration >= self.settings.iters or (
            self.settings.minutes is not None and self.now >= 60.0 * self.settings.minutes
        )

    def snapshot(self) -> None:
        """The weights to ``save_snapshot`` once ``snapshot_minutes`` have passed since the last one (rank 0)."""
        every = self.settings.snapshot_minutes
        if every is None or self.save_snapshot is None or self.rank != 0 or self.now - self.last_snapshot < 60.0 * every:
            return
        self.save_snapshot(_cpu_state_dict(self.evaluated), self.iteration)
        self.last_snapshot = self.now

    def stop_requested(self, flag: list[bool]) -> bool:
        if self.world_size == 1:
            return flag[0]
        vote = torch.tensor([1.0 if flag[0] else 0.0], device=_collective_device(self.device))
        dist.all_reduce(vote, op=dist.ReduceOp.MAX)
        return bool(vote.item() > 0)

    def run(self) -> FitResult:
        s = self.settings
        started = self.started = time.perf_counter()
        self.now = self.last_snapshot = self.elapsed
        if self.iteration == 0 and s.validate_at_start and self.val_set:
            self.initial_psnr = self.run_validation()
            self.emit(self.record(self.initial_psnr, started))
        bar = tqdm(total=s.iters, initial=self.iteration, disable=not (s.progress and self.rank == 0), desc="train", leave=False)
        with _stop_requests() as flag:
            # a resumed run whose --minutes are spent trains no further (as one at its --iters), writes its outputs
            for batch in [] if self.finished() else self.loader():
                self.step(*batch)
                self.iteration += 1
                self.now = self.seconds()
                bar.update(1)
                done = self.finished()
                validating = self.iteration % s.val_every == 0 or done
                if validating or self.iteration % s.log_every == 0:
                    psnr = self.run_validation() if validating else None
                    record = self.record(psnr, started)
                    bar.set_postfix({k: f"{v:.4g}" for k, v in record.items() if k in ("loss", "val_psnr")})
                    self.emit(record)
                    self.snapshot()
                    if validating and self.save_state is not None and self.rank == 0 and not done:
                        self.save_state(self.state_at(started))
                if done:
                    break
                if self.stop_requested(flag):
                    bar.close()
                    state = self.state_at(started)
                    if self.save_state is not None and self.rank == 0:
                        self.save_state(state)
                    raise TrainingInterruptedError(self.iteration, state)
        bar.close()
        self.elapsed += time.perf_counter() - started
        if not self.val_set:
            self.best_state, self.best_iteration = _cpu_state_dict(self.evaluated), self.iteration
        state = self.state()
        return FitResult(
            iterations=self.iteration,
            best_psnr=self.best_psnr,
            best_iteration=self.best_iteration,
            initial_psnr=self.initial_psnr,
            best_state_dict=self.best_state,
            last_state_dict=_cpu_state_dict(self.evaluated),
            state=state,
            history=self.history,
        )

    def state_at(self, started: float) -> dict[str, Any]:
        """The state with the time spent so far (``elapsed`` is only added to at the end of ``run``)."""
        state = self.state()
        state["elapsed"] = self.elapsed + time.perf_counter() - started
        return state


def fit(
    model: nn.Module,
    train_set: TrainPatches,
    val_set: Sequence[ValidationImage] | None,
    settings: TrainSettings,
    teacher: nn.Module | None = None,
    state: dict[str, Any] | None = None,
    log: LogFn | None = None,
    save_state: Callable[[dict[str, Any]], None] | None = None,
    save_snapshot: Callable[[dict[str, torch.Tensor], int], None] | None = None,
    reference: nn.Module | None = None,
) -> FitResult:
    """Train ``model`` in place for ``settings.iters`` iterations in all, or ``settings.minutes`` of training time
    (continuing ``state`` if given).

    ``model`` ends with the last weights; ``FitResult.best_state_dict`` holds the best by validation PSNR
    (the starting weights count when ``validate_at_start``; without validation images best = last). With
    ``ema_decay`` > 0, validation, best and ``last_state_dict`` are the EMA weights.
    ``log`` gets one dict per log interval / validation (rank 0). ``save_state`` gets the resumable state at
    every validation and on interruption (rank 0); ``save_snapshot`` the evaluated weights and the iteration every
    ``snapshot_minutes``. ``reference``: what ``select`` worst_gap measures each validation group against (default
    the teacher). Raises ``TrainingInterruptedError`` after a Ctrl-C / SIGTERM.
    """
    trainer = _Trainer(model, train_set, val_set, copy.copy(settings), teacher, log, save_state, save_snapshot, reference)
    if state is not None:
        trainer.restore(state)
    else:
        seed_everything(settings.seed)
    return trainer.run()
