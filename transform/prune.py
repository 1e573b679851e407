"""Stage 4, pruning: channel-prune the merged network with Torch-Pruning's dependency graph (DepGraph).

    python -m transform.prune MERGED.pth OUT.pth --ratio R [--steps S]
        [--finetune_iters K --train_dir D [D ...] [--val_fraction F | --val_dir V] [--teacher RFDN.pth] ...]
    python -m transform.prune MERGED.pth OUT.pth --target_params 317000 [--steps S] ...   # budget instead of ratio

First every concatenation becomes summed 1x1 placement convolutions (``transform.helpers``; checked exact on
a real image; the reason is measured there). Then ``S`` pruning steps remove channels (``tp.pruner.BasePruner``),
each followed by ``K`` fine-tuning iterations with the training loop of ``train_prfdn.py``
(``--finetune_iters 0``: prune only). Channels are ranked by ``--importance``: ``taylor`` (default;
first-order |weight x gradient| of the L1 loss on ``--calibration_patches`` training patches, recomputed
before every step) or ``magnitude`` (group L2 norm of the weights; needs no data). RFDN's features are large
(inputs in 0-255), so weight magnitude alone says little: pruning 30% of the merged model without
fine-tuning scores far lower by magnitude than by Taylor importance (figures in the README). The upsampler's
conv keeps its 48 output channels (PixelShuffle needs them). With ``--target_params`` / ``--target_flops`` the
steps go on (up to ``--ratio``) until the exported network fits the budget. The output is the pruning form
(``prfdn_helpers``); ``transform.export`` folds the placement convs back.

Pruning works on the dense form: a grouped merge is converted first (the output says so, with both sizes).
``--ratio`` is the share of every coupled channel group's channels that the last step removes. The input's own
size is a budget, too: the result always has fewer parameters and FLOPs than the input (once exported). A
grouped merge is about 3.4 times smaller than its dense form (zero blocks), so a small ``--ratio`` cannot get
below it (the official RFDN's grouped merge needs about 0.47). Such a ratio, or a budget that the last step at
``--ratio`` does not reach, is refused in one line before any step, writing nothing. See docs/pruning.md.
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn as nn
import torch_pruning as tp

from models.helpers import HelperPRFDN, is_helper
from models.team13_PRFDN import PRFDN
from training.data import (
    DataSettings,
    TrainData,
    add_data_arguments,
    check_data_folders,
    check_patch_size,
    check_seed,
    fill_data_defaults,
    load_data_from_args,
)
from training.flags import FAST_PATH_TEXT, add_setting_arguments, fill_fast_path
from training.loop import TrainSettings, check_batch_size, default_lr, fit
from transform.common import StageCLI, check_equivalent, read_stage_input, stage_job, write_stage_output
from transform.helpers import fold_helpers, freeze_helpers, rebuild, with_helpers
from utils.checkpoint import ModelCheckpoint
from utils.errors import HarnessError
from utils.inference import resolve_device
from utils.model_io import load_model, load_teacher
from utils.model_summary import summarize
from utils.provenance import stage_record
from utils.settings import add_flags, flag, job_defaults, setting, setting_names

# LR pixels of the tracing input. ESA needs at least 15; the traced graph, and so the pruning, does not depend on
# the size, while each trace (several per frontier plan check) costs about four times as much at 64.
EXAMPLE_SIZE = 32
# Taylor importance's patches are held in memory (HR 192x192 floats, about 0.44 MB each at --patch_size 48) and
# each pruning step runs all of them forward and backward: a typo such as 1000000000 would run for hours or
# exhaust the memory. 4096 patches (about 2 GB at 48 LR pixels) is 128 times the default.
MAX_CALIBRATION_PATCHES = 4096


def figures(model: HelperPRFDN | PRFDN) -> dict[str, float]:
    """Params (M) and FLOPs (G, 3x256x256) of the network this becomes after export (placements folded).
    Counted on a copy on the "meta" device: the same figures as a real forward pass, without its arithmetic."""
    final = fold_helpers(model) if isinstance(model, HelperPRFDN) else copy.deepcopy(model)
    summary = summarize(final.to("meta"))
    return {"params_M": summary.num_parameters / 1e6, "flops_G": summary.flops / 1e9}


def describe(values: dict[str, float]) -> str:
    return f"{values['params_M']:.4f} M params, {values['flops_G']:.2f} G FLOPs"


def within_budget(values: dict[str, float], target_params: float | None, target_flops: float | None) -> bool:
    params_ok = target_params is None or values["params_M"] * 1e6 <= target_params
    flops_ok = target_flops is None or values["flops_G"] * 1e9 <= target_flops
    return params_ok and flops_ok


def smaller(values: dict[str, float], bound: dict[str, float]) -> bool:
    """Whether ``values`` has fewer parameters and fewer FLOPs than ``bound`` (the same size is not smaller)."""
    return values["params_M"] < bound["params_M"] and values["flops_G"] < bound["flops_G"]


FINETUNE_FLAGS = ("distill_weight", "batch_size", "patch_size", "lr", "seed", "device", "amp", "precision", "channels_last")
IMPORTANCES = ("taylor", "magnitude")


def make_pruner(model: nn.Module, ratio: float, steps: int, importance: str, round_to: int | None) -> tp.pruner.BasePruner:
    """Torch-Pruning's pruner for ``model`` (a PRFDN, or RFDN's chain: ``transform.prune_chain``): ``steps`` calls of
    ``step()`` take every channel group (local ranking) linearly up to ``ratio`` of its channels, rounded down to
    multiples of ``round_to``; the upsampler's conv stays whole."""
    in_channels = next(m for m in model.modules() if isinstance(m, nn.Conv2d)).in_channels
    example = torch.rand(1, in_channels, EXAMPLE_SIZE, EXAMPLE_SIZE) * 255.0
    scores = tp.importance.GroupTaylorImportance() if importance == "taylor" else tp.importance.GroupMagnitudeImportance(p=2)
    return tp.pruner.BasePruner(
        model,
        example,
        importance=scores,
        pruning_ratio=ratio,
        iterative_steps=steps,
        ignored_layers=[model.upsampler[0]],  # PixelShuffle needs out_nc * scale^2 channels
        round_to=round_to,
    )


def figures_per_step(model: PRFDN, ratio: float, steps: int, round_to: int | None) -> list[dict[str, float]]:
    """``figures`` of ``model`` after each of ``steps`` steps up to ``ratio``, leaving ``model`` untouched.

    How many channels a step removes from a group depends only on the group's widths, never on which channels
    rank lowest, so the same schedule ranked by magnitude on a copy gives the widths (and size) of any run.
    """
    trial = copy.deepcopy(model)
    pruner = make_pruner(trial, ratio, steps, "magnitude", round_to)
    sizes = []
    for _ in range(steps):
        pruner.step()
        sizes.append(figures(trial))
    return sizes


def figures_at_ratio(model: PRFDN, ratio: float, steps: int, round_to: int | None) -> dict[str, float]:
    """``figures`` of ``model`` pruned in ``steps`` steps up to ``ratio`` (see ``figures_per_step``)."""
    return figures_per_step(model, ratio, steps, round_to)[-1]


def planned_result(
    model: HelperPRFDN,
    *,
    ratio: float,
    steps: int,
    round_to: int | None = None,
    target_params: float | None = None,
    target_flops: float | None = None,
    smaller_than: dict[str, float] | None = None,
    start: dict[str, float] | None = None,
) -> dict[str, float]:
    """The ``figures`` (and ``step``) ``prune`` will end at with these settings, without pruning ``model``;
    refused as ``prune`` would refuse them (a rounding that prunes nothing, a ratio that cannot get below the input or
    within the budget). ``start``: ``model``'s own figures where the caller has them."""
    start = figures(model) if start is None else start
    bound = start if smaller_than is None else smaller_than
    sizes = figures_per_step(model, ratio, steps, round_to)
    check_round_to(ratio, round_to, sizes[-1], start)
    _check_reachable(sizes[-1], start, bound, ratio, target_params, target_flops)
    for step, size in enumerate(sizes, start=1):
        if budget_reached(size, bound, target_params, target_flops):
            return {"step": step, **size}
    return {"step": steps, **sizes[-1]}


def budget_reached(
    values: dict[str, float], bound: dict[str, float], target_params: float | None, target_flops: float | None
) -> bool:
    """Whether a budget run (``target_params`` / ``target_flops``) stops at ``values``: within the budget and
    smaller than the input; never for a ratio run (no target)."""
    if target_params is None and target_flops is None:
        return False
    return within_budget(values, target_params, target_flops) and smaller(values, bound)


def compute_gradients(model: nn.Module, calibration: tuple[torch.Tensor, torch.Tensor], batch_size: int | None = None) -> None:
    """Gradients of the L1 loss (the mean over all calibration patches), for Taylor importance. Every parameter
    gets one (placements too: Torch-Pruning scores whole groups); nothing is updated.

    The patches go through the network ``batch_size`` at a time (None: all at once), so the activations kept for
    the backward pass are those of one batch. Each chunk's mean loss is weighted by its share of the patches, so
    the gradients accumulated over the chunks are those of the one-pass mean (up to float rounding)."""
    for param in model.parameters():
        param.requires_grad_(True)
    model.zero_grad(set_to_none=True)
    lr, hr = calibration
    total = lr.shape[0]
    step = total if batch_size is None else batch_size
    for start in range(0, total, step):
        lr_chunk, hr_chunk = lr[start : start + step], hr[start : start + step]
        ((model(lr_chunk) - hr_chunk).abs().mean() * (lr_chunk.shape[0] / total)).backward()


def prune(
    model: HelperPRFDN,
    *,
    ratio: float,
    steps: int,
    importance: str = "magnitude",
    calibration: tuple[torch.Tensor, torch.Tensor] | None = None,
    batch_size: int | None = None,
    finetune: Callable[[nn.Module, int], None] | None = None,
    target_params: float | None = None,
    target_flops: float | None = None,
    round_to: int | None = None,
    smaller_than: dict[str, float] | None = None,
) -> tuple[HelperPRFDN, list[dict[str, Any]]]:
    """Prune ``model`` in ``steps`` steps up to ``ratio`` (or until within the budget), calling
    ``finetune(model, step)`` after each step. Returns the pruned model (fresh, consistent) and a step log.
    Taylor importance takes the ``calibration`` patches ``batch_size`` at a time (``compute_gradients``).

    The result is always smaller (fewer parameters and FLOPs, once exported) than ``smaller_than``, the input's
    figures (default: ``model``'s own): a budget run stops at the first step within both, and a ratio that cannot
    get below it is refused before any step.
    """
    if importance not in IMPORTANCES:
        raise HarnessError(f"{flag('importance')} {importance}: expected one of {', '.join(IMPORTANCES)}")
    if importance == "taylor" and calibration is None:
        raise HarnessError(
            f"{flag('importance')} taylor needs calibration patches: give {flag('train_dir')}, or use {flag('importance')} "
            "magnitude"
        )
    budget = target_params is not None or target_flops is not None
    start = figures(model)
    history = [{"step": 0, **start}]
    bound = history[0] if smaller_than is None else smaller_than
    planned_result(
        model,
        ratio=ratio,
        steps=steps,
        round_to=round_to,
        target_params=target_params,
        target_flops=target_flops,
        smaller_than=bound,
        start=start,
    )  # refuses a rounding that prunes nothing and a ratio that cannot reach the bound, before any step
    pruner = make_pruner(model, ratio, steps, importance, round_to)
    history += prune_steps(
        model, pruner, steps, importance, calibration, batch_size, finetune, bound, target_params, target_flops
    )
    if not smaller(history[-1], bound) or (budget and not within_budget(history[-1], target_params, target_flops)):
        raise HarnessError(f"pruning ended at {describe(history[-1])}, outside the budget or not smaller than the input")
    return rebuild(model), history


def prune_steps(
    model: nn.Module,
    pruner: tp.pruner.BasePruner,
    steps: int,
    importance: str,
    calibration: tuple[torch.Tensor, torch.Tensor] | None,
    batch_size: int | None,
    finetune: Callable[[nn.Module, int], None] | None,
    bound: dict[str, float],
    target_params: float | None,
    target_flops: float | None,
) -> list[dict[str, Any]]:
    """Up to ``steps`` of ``pruner`` on ``model`` (a PRFDN in its pruning form, or RFDN's chain), each followed by
    ``finetune(model, step)``; a budget run stops at the first step within it and smaller than ``bound``. Each
    step's figures."""
    history = []
    for step in range(1, steps + 1):
        if importance == "taylor":
            compute_gradients(model, calibration, batch_size)
        pruner.step()
        model.zero_grad(set_to_none=True)
        freeze_helpers(model)  # the placements of the pruning form; a chain has none
        if finetune is not None:
            finetune(model, step)
        history.append({"step": step, **figures(model)})
        print(f"step {step}/{steps}: {describe(history[-1])}", flush=True)
        if budget_reached(history[-1], bound, target_params, target_flops):
            break
    return history


def check_round_to(ratio: float, round_to: int | None, at_ratio: dict[str, float], start: dict[str, float]) -> None:
    """Refuse a ``round_to`` with which the last step at ``ratio`` (``at_ratio``: its ``figures``) prunes nothing
    (ends at ``start``, the input's figures)."""
    if round_to is not None and at_ratio == start:
        raise HarnessError(
            f"{flag('round_to')} {round_to}: at {flag('ratio')} {ratio} no layer loses a whole multiple of {round_to} "
            "channels, so "
            f"nothing would be pruned; lower {flag('round_to')}"
        )


def _check_reachable(
    at_ratio: dict[str, float],
    pruning_form: dict[str, float],
    bound: dict[str, float],
    ratio: float,
    target_params: float | None,
    target_flops: float | None,
) -> None:
    """Refuse, before any step, a ratio whose last step is still not smaller than the input or not within the budget."""
    if not smaller(at_ratio, bound):
        converted = f"; pruning works on its dense form, {describe(pruning_form)}" if smaller(bound, pruning_form) else ""
        raise HarnessError(
            f"{flag('ratio')} {ratio} gives {describe(at_ratio)}, not smaller than the input ({describe(bound)}{converted}): "
            f"give a higher {flag('ratio')} (with {flag('target_params')} / {flag('target_flops')} the steps stop once "
            "within the budget)" + (f", or prune a dense merge ({flag('form', 'transform.reparam')} dense)" if converted else "")
        )
    if not within_budget(at_ratio, target_params, target_flops):
        raise HarnessError(
            f"budget not reached at {flag('ratio')} {ratio}: its last step gives {describe(at_ratio)}; raise {flag('ratio')}"
        )


def auto_importance(job: PruneJob) -> str:
    """``--importance``, ``auto`` resolved: Taylor where there are training images, else magnitude."""
    if job.importance == "auto":
        return "taylor" if job.train_dir else "magnitude"
    return job.importance


def needs_data(job: PruneJob) -> bool:
    """Whether the run reads training images: for Taylor importance or for fine-tuning."""
    return auto_importance(job) == "taylor" or job.finetune_iters > 0


def _training_data(job: PruneJob, student: ModelCheckpoint) -> TrainData | None:
    """Training patches and validation images from the data flags; None where the run needs none (``needs_data``):
    with magnitude importance and no fine-tuning, the images are not read (their folders are checked)."""
    if not needs_data(job):
        return None
    return load_data_from_args(job, patch_size=job.patch_size, seed=job.seed, data_range=student.data_range, scale=student.scale)


def _calibration(data: TrainData, count: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The first ``count`` training patches (deterministic for the seed) as (LR, HR) batches."""
    pairs = [data.train[i] for i in range(count)]
    return torch.stack([lr for lr, _ in pairs]), torch.stack([hr for _, hr in pairs])


def _finetune_settings(job: PruneJob, step: int) -> TrainSettings:
    """The training loop's settings for the fine-tuning after pruning step ``step``."""
    return TrainSettings(
        iters=job.finetune_iters,
        batch_size=job.batch_size,
        patch_size=job.patch_size,
        lr=job.lr if job.lr is not None else default_lr(HelperPRFDN.ARCH),
        distill_weight=job.distill_weight if job.teacher else 0.0,
        val_every=job.finetune_iters,
        log_every=max(1, job.finetune_iters // 10),
        seed=job.seed + step,
        device=resolve_device(job.device).type,
        amp=job.amp,
        precision=job.precision,
        channels_last=job.channels_last,
        progress=False,
    )


def _finetuner(job: PruneJob, data: TrainData | None, teacher: nn.Module | None) -> Callable[[nn.Module, int], None] | None:
    """``finetune(model, step)`` running the training loop for ``--finetune_iters`` (distilling from ``teacher``,
    the loaded ``--teacher``), or None."""
    if job.finetune_iters == 0:
        return None
    if data is None:
        raise HarnessError(f"{flag('finetune_iters')} needs {flag('train_dir')} (training images; never the benchmark sets)")

    def finetune(model: nn.Module, step: int) -> None:
        freeze_helpers(model)
        result = fit(model, data.train, data.val, _finetune_settings(job, step), teacher=teacher)
        model.load_state_dict(result.best_state_dict)
        model.to("cpu")
        psnr = "n/a (no validation images)" if result.best_psnr is None else f"{result.best_psnr:.4f} dB"
        print(f"  fine-tuned {job.finetune_iters} iterations: validation PSNR {psnr}")

    return finetune


def _check_arguments(job: PruneJob) -> None:
    """Refuse impossible settings before any work."""
    if not 0 < job.ratio < 1:
        raise HarnessError(f"{flag('ratio')} {job.ratio}: must be in (0, 1)")
    for name in ("steps", "calibration_patches", "round_to"):
        value = getattr(job, name)
        if value is not None and value < 1:
            raise HarnessError(f"{flag(name)} {value}: must be at least 1")
    if job.calibration_patches is not None and job.calibration_patches > MAX_CALIBRATION_PATCHES:
        raise HarnessError(
            f"{flag('calibration_patches')} {job.calibration_patches}: must be at most {MAX_CALIBRATION_PATCHES} (they are held "
            "in memory: 4096 patches of 48 LR pixels take about 2 GB)"
        )
    if job.batch_size is not None:
        check_batch_size(job.batch_size)
    check_patch_size(job.patch_size)
    check_seed(job.seed)
    if job.finetune_iters < 0:
        raise HarnessError(f"{flag('finetune_iters')} {job.finetune_iters}: must not be negative")
    for name in ("target_params", "target_flops"):
        value = getattr(job, name)
        if value is not None and not 0 < value < math.inf:
            raise HarnessError(f"{flag(name)} {value}: must be positive and finite")
    if job.importance not in ("auto", *IMPORTANCES):
        raise HarnessError(f"{flag('importance')} {job.importance}: expected auto, {' or '.join(IMPORTANCES)}")
    job.importance = auto_importance(job)
    if job.importance == "taylor" and not job.train_dir:
        raise HarnessError(
            f"{flag('importance')} taylor needs calibration patches: give {flag('train_dir')}, or use {flag('importance')} "
            "magnitude"
        )
    if job.finetune_iters and not job.train_dir:
        raise HarnessError(f"{flag('finetune_iters')} needs {flag('train_dir')} (training images; never the benchmark sets)")
    resolve_device(job.device)  # refuses cuda on a machine without it
    fill_fast_path(job)
    if job.finetune_iters:
        _finetune_settings(job, 1).check()
    if job.train_dir:
        fill_data_defaults(job)


def planned_from_file(job: PruneJob) -> dict[str, float]:
    """Where pruning ``job.src`` with these settings (``_check_arguments`` done) will end, without pruning it;
    refused as a run would refuse it: an input of another stage, a budget out of reach, not smaller than the input."""
    _, merged, model = _pruning_input(job.src)
    return planned_with(model, figures(merged), job)


def _pruning_input(src: str) -> tuple[ModelCheckpoint, nn.Module, HelperPRFDN]:
    """SRC's checkpoint (refused if of another stage), its network, and the form pruning works on (with the
    concatenations as 1x1 placement convolutions; SRC itself where it already has them)."""
    parent = read_stage_input(src, ("prfdn", "prfdn_helpers"), "pruning")
    merged = load_model(parent, src).eval()
    return parent, merged, merged if isinstance(merged, HelperPRFDN) else with_helpers(merged)


def planned_with(model: HelperPRFDN, bound: dict[str, float], job: PruneJob) -> dict[str, float]:
    """``planned_result`` with a run's budget flags, the input's ``figures`` being ``bound``."""
    return planned_result(
        model,
        ratio=job.ratio,
        steps=job.steps,
        round_to=job.round_to,
        target_params=job.target_params,
        target_flops=job.target_flops,
        smaller_than=bound,
    )


def recorded_arguments(job: PruneJob) -> dict[str, Any]:
    """The settings of a run (its arguments after ``_check_arguments``, without SRC, DST and ``--overwrite``), as
    its provenance records them: a pruned file can be matched to the settings that made it."""
    return {key: value for key, value in sorted(vars(job).items()) if key not in ("src", "dst", "overwrite")}


# Where a pruning ran, not what it made: a file pruned on one machine is kept by a run on another.
PLACE_SETTINGS = ("device",)
# What a pruned file's provenance recorded before it recorded every setting (``arguments``).
EARLY_RECORDED_SETTINGS = ("ratio", "steps", "finetune_iters", "round_to", "target_params", "target_flops")


def changed_settings(record: dict[str, Any], job: PruneJob) -> list[tuple[str, Any, Any]]:
    """(setting, recorded, wanted) for each setting of ``job`` (unchecked: a checked copy is compared) that the
    pruned file's provenance ``record`` has otherwise, ``device`` aside; a file made before the settings were
    recorded is compared on the budget and fine-tuning settings its record has. [] when it matches."""
    checked = dataclasses.replace(job)
    _check_arguments(checked)
    wanted = recorded_arguments(checked)
    recorded = record.get("arguments")
    if not isinstance(recorded, dict):
        recorded = {key: record.get(key) for key in EARLY_RECORDED_SETTINGS}
        wanted = {key: wanted.get(key) for key in EARLY_RECORDED_SETTINGS}
    keys = sorted((set(recorded) | set(wanted)) - set(PLACE_SETTINGS))
    return [(key, recorded.get(key), wanted.get(key)) for key in keys if recorded.get(key) != wanted.get(key)]


def describe_change(change: tuple[str, Any, Any]) -> str:
    """``lr unset (the default), the config now gives 3e-05``: one ``changed_settings`` entry for a message."""
    flag, recorded, wanted = ("unset (the default)" if value is None else value for value in change)
    return f"{flag} {recorded}, the config now gives {wanted}"


def _check_inputs(job: PruneJob, student: ModelCheckpoint) -> nn.Module | None:
    """The inputs besides SRC, before any work: the ``--teacher`` (whenever given: loaded and matched to SRC; it
    is used by the fine-tuning) and, where the run reads no training images, the data folders (there and holding
    images; not decoded). Returns the loaded teacher."""
    teacher = load_teacher(job.teacher, student) if job.teacher else None
    if job.train_dir and not needs_data(job):
        check_data_folders(job)
    return teacher


def _run(job: PruneJob) -> None:
    _check_arguments(job)
    parent, merged, model = _pruning_input(job.src)
    teacher = _check_inputs(job, parent)
    if job.train_dir and not needs_data(job):
        print("--importance magnitude without fine-tuning reads no training images: the data flags are not used")
    if model is not merged:
        check_equivalent(merged, model, "concatenations as 1x1 convolutions")
    before = figures(merged)
    grouped = merged.cfg.srfdb_groups > 1 or merged.cfg.rfdb_groups > 1
    if grouped:
        print(
            f"grouped input ({describe(before)}) converted to its dense form for pruning ({describe(figures(model))}): "
            "--ratio applies to the dense form; the result must still be smaller than the input"
        )
    data = _training_data(job, parent)
    calibration = _calibration(data, job.calibration_patches) if data is not None and job.importance == "taylor" else None
    pruned, history = prune(
        model,
        ratio=job.ratio,
        steps=job.steps,
        importance=job.importance,
        calibration=calibration,
        batch_size=job.batch_size,
        finetune=_finetuner(job, data, teacher),
        target_params=job.target_params,
        target_flops=job.target_flops,
        round_to=job.round_to,
        smaller_than=before,
    )
    after = {key: value for key, value in history[-1].items() if key != "step"}  # measured on the same weights
    print(f"before: {describe(before)} (3x256x256)")
    placements = sum(p.numel() for name, p in pruned.named_parameters() if is_helper(name))
    print(f"after:  {describe(after)} once exported (the checkpoint also holds {placements:,} placement weights, folded away)")
    record = stage_record(
        "pruned",
        job.src,
        parent,
        ratio=job.ratio,
        steps=job.steps,
        finetune_iters=job.finetune_iters,
        target_params=job.target_params,
        target_flops=job.target_flops,
        round_to=job.round_to,
        steps_done=history[-1]["step"],
        ratio_reached=job.ratio * history[-1]["step"] / job.steps,
        before=before,
        after=after,
        history=history,
        data=None if data is None else data.description,
        importance=job.importance,
        input_form="grouped" if grouped else "dense",
        arguments=recorded_arguments(job),
    )
    write_stage_output(job.dst, pruned, parent, record)


@dataclass(frozen=True)
class PruneSettings:
    """The pruning stage's own settings (its fine-tuning takes ``FINETUNE_FLAGS`` of ``TrainSettings``)."""

    ratio: float = setting(
        0.5,
        "share of each channel group to remove, in the dense form (budget mode: the most allowed); the result must be "
        "smaller than the input",
    )
    steps: int = setting(4, "pruning steps")
    target_params: float | None = setting(None, "prune until at most this many parameters")
    target_flops: float | None = setting(None, "prune until at most this many FLOPs (3x256x256)")
    round_to: int | None = setting(None, "keep channel counts multiples of this")
    importance: str = setting(
        "auto", "channel ranking (auto: taylor with --train_dir, else magnitude)", choices=("auto", *IMPORTANCES)
    )
    calibration_patches: int = setting(
        32,
        f"training patches for Taylor importance (at most {MAX_CALIBRATION_PATCHES}: they are held in memory, and each "
        "pruning step takes them through the network, --batch_size at a time)",
    )
    finetune_iters: int = setting(0, "iterations after each step (0: prune only)")


PRUNE_FLAGS = setting_names(PruneSettings)


# Knobs few prunings change: accepted, left out of --help (the pipeline config's prune section takes them too).
RARE_PRUNE_SETTINGS = ("calibration_patches", "lr_dir", "val_seed", "val_crop", "seed", "amp")


# One run of the stage (and of ``transform.prune_chain``): the pruning settings, the data settings, and the
# training settings of its fine-tuning with the stage's own defaults.
PruneJob = stage_job(
    "PruneJob",
    parts=((PruneSettings, None), (DataSettings, None), (TrainSettings, FINETUNE_FLAGS)),
    defaults={
        **{name: getattr(PruneSettings, name) for name in PRUNE_FLAGS},
        "distill_weight": 1.0,
        "batch_size": 16,
        "patch_size": 48,
        "seed": 0,
        "amp": False,
    },
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    defaults = job_defaults(PruneJob)
    add_flags(parser, PruneSettings, PRUNE_FLAGS[:-1], defaults, unlisted=RARE_PRUNE_SETTINGS)
    add_data_arguments(parser, unlisted=RARE_PRUNE_SETTINGS)
    ft = parser.add_argument_group("fine-tuning between steps (the training loop of train_prfdn.py)")
    add_flags(ft, PruneSettings, ("finetune_iters",), defaults)
    add_setting_arguments(
        ft,
        FINETUNE_FLAGS,
        defaults={name: value for name, value in defaults.items() if name in FINETUNE_FLAGS},
        default_text={
            "lr": "the factsheet's 1e-6 after re-parametrization",
            "device": "cuda when available",
            "amp": "off",
            **FAST_PATH_TEXT,
        },
        unlisted=RARE_PRUNE_SETTINGS,
    )
    parser.epilog = f"Also accepted, rarely changed: {', '.join('--' + name for name in RARE_PRUNE_SETTINGS)} (docs/cli.md)."


CLI = StageCLI("transform.prune", "Channel-prune the merged PRFDN (stage 4).", PruneJob, _run, add_arguments)
parse_args, main = CLI.parse_args, CLI.main


if __name__ == "__main__":
    raise SystemExit(main())
