"""NTIRE Efficient Super-Resolution test harness (x4), compatible with the official ``test_demo.py``.

    python test_demo.py                                  # built-in data, best model whose checkpoint is present
    python test_demo.py --data_dir DATA --model_id 0     # official layouts (DIV2K / LSDIR valid, test)
    python test_demo.py --hr_dir HR [--lr_dir LR]        # any folder, mode "custom"

Writes SR images to ``save_dir/<model name>/<mode>/``, merges figures into ``results.json`` (and the table
``results.txt``) and logs to ``save_dir/test_demo.log``. Every flag is listed below; the data layouts, the
results keys and how each figure is computed: docs/cli.md.
"""

from __future__ import annotations

import argparse
import hashlib
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn as nn

from models.team00_RFDN import RFDN
from models.team13_PRFDN import MIN_INPUT_SIZE
from utils.checkpoint import check_scale, describe_mismatch, load_state, read_model_checkpoint, where_to_get
from utils.cli import ArgumentParser
from utils.datasets import SCALE, ImagePair, check_pairs, ensure_builtin_dataset, official_pairs, pair_folders
from utils.errors import HarnessError
from utils.evaluation import evaluate_mode
from utils.fileio import check_distinct, check_output_file, same_file, sha256_of
from utils.inference import TILE_MODES, check_tiling, describe_device, resolve_device
from utils.logger import get_logger
from utils.model_io import load_model
from utils.model_summary import OFFICIAL_INPUT_DIM, summarize
from utils.results import check_table_replaceable, load_results, merge_into, table_path

REPO_ROOT = Path(__file__).resolve().parent
LOG_NAME = "test_demo.log"  # in --save_dir
PRFDN_DATA_RANGE = 255.0  # the input range PRFDN's entry feeds; every PRFDN stage keeps RFDN's


@dataclass(frozen=True)
class ZooEntry:
    """A submitted model: how to load a checkpoint of it, its default checkpoint (relative to the repository),
    input range, where its checkpoint comes from, and the tile size its team asked for (None: whole images)."""

    name: str
    load: Callable[[Path], nn.Module]
    checkpoint: str
    data_range: float
    origin: str
    tile: int | None = None


class OtherModelError(HarnessError):
    """A readable checkpoint of another model of the zoo (the next model is tried when --model_id is not given)."""


def _load_rfdn(path: Path) -> nn.Module:
    checkpoint = read_model_checkpoint(path)
    if checkpoint.arch != "rfdn":
        raise OtherModelError(f"{path}: is a PRFDN {checkpoint.arch!r} checkpoint, not RFDN's; evaluate it with --model_id 13")
    return load_state(RFDN(), checkpoint.state_dict, f"{path}: checkpoint does not fit RFDN_baseline")


def _load_prfdn(path: Path) -> nn.Module:
    """A self-describing checkpoint of any PRFDN stage (branch, merged, pruned, final), with its own architecture."""
    checkpoint = read_model_checkpoint(path)
    if checkpoint.arch == "rfdn":
        raise OtherModelError(f"{path}: is a plain RFDN state dict, not a PRFDN checkpoint; evaluate it with --model_id 0")
    check_scale(checkpoint, SCALE, str(path))
    if checkpoint.data_range != PRFDN_DATA_RANGE:
        raise HarnessError(
            f"{path}: takes inputs in [0, {checkpoint.data_range:g}]; expected [0, {PRFDN_DATA_RANGE:g}], what PRFDN gets here"
        )
    return load_model(checkpoint, str(path))


MODEL_ZOO: dict[int, ZooEntry] = {
    0: ZooEntry(
        "RFDN_baseline",
        _load_rfdn,
        "model_zoo/team00_rfdn.pth",
        255.0,
        "the official NTIRE Efficient-SR challenge repository (file model_zoo/team00_rfdn.pth there)",
    ),
    13: ZooEntry(
        "PRFDN",
        _load_prfdn,
        "model_zoo/team13_prfdn.pth",
        PRFDN_DATA_RANGE,
        "this repository's PRFDN pipeline (see README: Reproducing PRFDN)",
    ),
}
# Tried in this order when --model_id is not given: the best model whose checkpoint is present.
DEFAULT_MODEL_ORDER: tuple[int, ...] = (13, 0)


def _known_models() -> str:
    return ", ".join(f"{i} ({e.name})" for i, e in sorted(MODEL_ZOO.items()))


def _missing_checkpoint(entry: ZooEntry, path: Path) -> HarnessError:
    return HarnessError(
        f"{entry.checkpoint} not found: {entry.name}'s checkpoint is not shipped here; download it from "
        f"{entry.origin} and put it at {path}, or pass --model_path"
    )


def default_model_id() -> int:
    """The first model of DEFAULT_MODEL_ORDER whose default checkpoint exists."""
    for model_id in DEFAULT_MODEL_ORDER:
        if (REPO_ROOT / MODEL_ZOO[model_id].checkpoint).is_file():
            return model_id
    fallback = MODEL_ZOO[DEFAULT_MODEL_ORDER[-1]]
    raise _missing_checkpoint(fallback, REPO_ROOT / fallback.checkpoint)


def model_id_for_checkpoint(path: Path) -> int:
    """The first model of DEFAULT_MODEL_ORDER that loads the checkpoint at ``path``.

    A file that is no checkpoint at all (unreadable, a training state) is said as such; so is what is wrong with
    a self-describing checkpoint (unknown architecture, malformed config, weights that do not fit it).
    """
    checkpoint = read_model_checkpoint(path)
    failures = []
    for model_id in DEFAULT_MODEL_ORDER:
        try:
            MODEL_ZOO[model_id].load(path)
        except OtherModelError:
            continue
        except HarnessError as err:
            failures.append(err)
            continue
        return model_id
    if failures and checkpoint.arch != "rfdn":  # it names its architecture: what keeps it from loading is the news
        raise failures[0]
    closest = _closest_plain_model(checkpoint.state_dict)
    if closest:
        raise HarnessError(f"--model_path {path}: fits none of the known models; {closest}")
    raise HarnessError(f"--model_path {path}: fits none of the known models ({_known_models()}); pass --model_id")


def _closest_plain_model(state: dict[str, torch.Tensor]) -> str | None:
    """For a plain state dict that holds most of RFDN's tensor names (the one model of the zoo saved that way):
    which model it is closest to and what keeps it from loading, as ``--model_id 0`` says; else None."""
    rfdn = RFDN()
    expected = rfdn.state_dict()
    shared = sum(name in state for name in expected)
    if shared * 2 < len(expected):
        return None
    mismatch = describe_mismatch(rfdn, state)
    return f"closest is 0 ({MODEL_ZOO[0].name}), {shared} of whose {len(expected)} tensor names it holds, but {mismatch}"


def _given_checkpoint(model_path: str | Path) -> Path:
    """``--model_path``, which must be a file."""
    path = Path(model_path)
    if path.is_dir():
        raise HarnessError(f"--model_path {path}: is a folder; expected a checkpoint file")
    if not path.is_file():
        raise HarnessError(f"--model_path {path}: checkpoint file not found{where_to_get(path)}")
    return path


def resolve_model_id(args: Any) -> int:
    """``args.model_id``, checked; if None, the model ``args.model_path`` fits, or the best one available."""
    model_id = getattr(args, "model_id", None)
    model_path = getattr(args, "model_path", None)
    if model_id is None:
        if not model_path:
            return default_model_id()
        return model_id_for_checkpoint(_given_checkpoint(model_path))
    if model_id not in MODEL_ZOO:
        raise HarnessError(f"--model_id {model_id}: unknown model; known ids: {_known_models()}")
    return model_id


def checkpoint_path(args: Any, model_id: int) -> Path:
    model_path = getattr(args, "model_path", None)
    return Path(model_path) if model_path else REPO_ROOT / MODEL_ZOO[model_id].checkpoint


def select_model(args: Any, device: torch.device) -> tuple[nn.Module, str, float, int | None]:
    """(model in eval mode on ``device``, its name, input data range, tile size) as the official harness.

    ``args`` needs only ``model_id`` and ``model_path``; a ``model_id`` of None picks the model as
    ``resolve_model_id`` does. ``args.tile``, if present and set, overrides the model's own tile size.
    """
    model_id = resolve_model_id(args)
    entry = MODEL_ZOO[model_id]
    path = checkpoint_path(args, model_id)
    if getattr(args, "model_path", None):
        _given_checkpoint(path)
    elif not path.is_file():
        raise _missing_checkpoint(entry, path)
    model = entry.load(path)
    model.eval()
    for param in model.parameters():
        param.requires_grad = False
    name = f"{model_id:02}_{entry.name}"
    if getattr(args, "model_path", None) and path.resolve() != (REPO_ROOT / entry.checkpoint).resolve():
        name += f"@{path.stem}"  # another checkpoint of the same architecture gets its own results entry
    tile = getattr(args, "tile", None)
    return model.to(device), name, entry.data_range, entry.tile if tile is None else tile


def _same_checkpoint(entry: dict[str, Any], path: Path) -> bool:
    """Whether a results entry was made from the checkpoint file ``path`` (the same file, or the same bytes); an
    entry that does not say (written before ``model_path`` was recorded) counts as the same, as it always did."""
    recorded = entry.get("model_path")
    if not isinstance(recorded, str):
        return True
    if entry.get("checkpoint_sha256") == sha256_of(path):
        return True
    return same_file(recorded, path)


def results_name(name: str, path: Path, results: dict[str, dict[str, Any]]) -> str:
    """The results key (and SR folder) of checkpoint ``path``, which ``select_model`` named ``name``
    (``<model>@<file stem>``): that name, unless ``results`` holds it for another checkpoint file (every run's
    ``final.pth`` shares a stem); then the stem with as many of its folders as make a name no other file holds
    (``13_PRFDN@run_b-final``), or, failing that, with a digest of the path."""
    if "@" not in name:
        return name
    base = name.partition("@")[0]
    resolved = path.resolve()
    parts = [*resolved.parent.parts[1:], resolved.stem]
    candidates = [f"{base}@{'-'.join(parts[-count:])}" for count in range(1, len(parts) + 1)]
    digest = hashlib.sha256(str(resolved).encode()).hexdigest()[:8]
    for candidate in [name, *candidates, f"{name}-{digest}"]:
        entry = results.get(candidate)
        if entry is None or _same_checkpoint(entry, path):
            return candidate
    raise HarnessError(f"--model_path {path}: its results entry {name} and every longer name are taken by other checkpoints")


def select_dataset(data_dir: str, mode: str) -> list[ImagePair]:
    """The image pairs of one official mode (``valid``, ``test``, ``hybrid_test``) under ``data_dir``."""
    return official_pairs(data_dir, mode)


def plan_modes(args: argparse.Namespace) -> list[tuple[str, list[ImagePair]]]:
    """Which modes to run, with their image pairs, all checked before the model is even loaded."""
    if (args.include_test or args.hybrid_test) and not args.data_dir:
        raise HarnessError("--include_test and --hybrid_test need --data_dir (the folder holding the official data)")
    if args.lr_dir and not args.hr_dir:
        raise HarnessError("--lr_dir needs --hr_dir (the HR images it is scored against)")
    if args.hybrid_test and args.include_test:
        raise HarnessError(
            "--hybrid_test runs the hybrid test set instead of valid and test, as the official harness: drop --include_test"
        )
    plan = []
    if args.hybrid_test:
        plan.append(("hybrid_test", select_dataset(args.data_dir, "hybrid_test")))
    elif args.data_dir:
        plan.append(("valid", select_dataset(args.data_dir, "valid")))
        if args.include_test:
            plan.append(("test", select_dataset(args.data_dir, "test")))
    if args.hr_dir:
        plan.append(("custom", pair_folders(args.hr_dir, args.lr_dir, SCALE)))
    if not plan:
        plan.append(("builtin", ensure_builtin_dataset()))
    return plan


def check_flags(args: argparse.Namespace) -> None:
    """The numeric flags, in range."""
    if args.tile is not None and args.tile < MIN_INPUT_SIZE:
        raise HarnessError(
            f"--tile {args.tile}: expected at least {MIN_INPUT_SIZE} (LR pixels; the smallest input the network takes)"
        )
    if args.tile_overlap < 0:
        raise HarnessError(f"--tile_overlap {args.tile_overlap}: expected 0 or more (LR pixels)")
    try:
        check_tiling(args.tile, args.tile_overlap, args.tile_mode)
    except ValueError as err:
        raise HarnessError(f"--tile / --tile_overlap / --tile_mode: {err}") from None
    if args.warmup < 0:
        raise HarnessError(f"--warmup {args.warmup}: expected 0 or more untimed passes")


def _input_files(args: argparse.Namespace, plan: list[tuple[str, list[ImagePair]]]) -> list[dict[str, Path | None]]:
    """The files a run reads, one group per image pair (each with the checkpoint), for ``check_distinct``."""
    checkpoint = {"--model_path": Path(args.model_path) if args.model_path else None}
    groups = [{**checkpoint, "HR image": pair.hr_path, "LR image": pair.lr_path} for _, pairs in plan for pair in pairs]
    return groups or [checkpoint]


def make_output_folders(args: argparse.Namespace) -> None:
    for flag, folder in (("--save_dir", Path(args.save_dir)), ("--results_json", Path(args.results_json).parent)):
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as err:
            raise HarnessError(f"{flag} {folder}: cannot create this folder ({err.strerror or err})") from None


def prepare_outputs(args: argparse.Namespace, plan: list[tuple[str, list[ImagePair]]]) -> None:
    """Check every output file can be written and is no input, so that an unusable path stops the run before
    any work; an existing results file must be valid (it is left as it is). Nothing is created here."""
    save_dir, results_json = Path(args.save_dir), Path(args.results_json)
    if same_file(save_dir, results_json):
        raise HarnessError(f"--results_json {results_json}: is the --save_dir folder; expected a file name")
    check_output_file(results_json, "--results_json")
    table = table_path(results_json)
    if same_file(results_json, table):
        raise HarnessError(
            f"--results_json {results_json}: its table goes to the same name with suffix .txt, {table}, which would replace "
            "it; give a name ending in .json"
        )
    check_output_file(table, "--results_json's table")
    check_table_replaceable(results_json, "--results_json")
    check_output_file(save_dir / LOG_NAME, "--save_dir")
    outputs = {"--results_json": results_json, "its table": table, "the log": save_dir / LOG_NAME}
    for inputs in _input_files(args, plan):
        check_distinct(outputs, inputs)
    load_results(results_json)  # a corrupt results file stops us before any work, and is left as it is


def check_sr_outputs(save_dir: Path, plan: list[tuple[str, list[ImagePair]]]) -> None:
    """SR images can be written under ``save_dir`` (``<mode>/<name>.png``), and none replaces an input image
    (e.g. --hr_dir pointing into --save_dir's own output)."""
    for mode, pairs in plan:
        for pair in pairs:
            output = {"SR image": save_dir / mode / f"{pair.name}.png"}
            check_output_file(output["SR image"], "--save_dir")  # each: a folder may stand where one goes
            check_distinct(output, {"HR image": pair.hr_path, "LR image": pair.lr_path})


def main(args: argparse.Namespace) -> dict[str, dict[str, Any]]:
    """Evaluate one model on every planned mode and merge its figures into ``args.results_json``.

    Every flag, output path, checkpoint and image is checked before the first image is processed.
    """
    check_flags(args)
    device = resolve_device(args.device)
    plan = plan_modes(args)
    prepare_outputs(args, plan)
    args.model_id = resolve_model_id(args)
    model, selected_name, data_range, tile = select_model(args, device)
    model_name = results_name(selected_name, checkpoint_path(args, args.model_id), load_results(args.results_json))
    check_sr_outputs(Path(args.save_dir) / model_name, plan)
    for _, pairs in plan:
        check_pairs(pairs, SCALE)
    make_output_folders(args)  # only once everything is checked: a refused run leaves no empty folder behind
    torch.backends.cudnn.benchmark = False
    logger = get_logger("NTIRE-EfficientSR", Path(args.save_dir) / LOG_NAME)
    if model_name != selected_name:
        taken = load_results(args.results_json)[selected_name].get("model_path")
        logger.info(f"{selected_name} is the results entry of another checkpoint ({taken}): this one is {model_name}")
    logger.info(f"{model_name} on {describe_device(device)}: {', '.join(f'{m} ({len(p)} images)' for m, p in plan)}")

    entry: dict[str, Any] = {}
    for mode, pairs in plan:
        entry.update(
            evaluate_mode(
                model,
                pairs,
                mode,
                data_range=data_range,
                device=device,
                save_dir=Path(args.save_dir) / model_name,
                logger=logger,
                scale=SCALE,
                tile=tile,
                tile_overlap=args.tile_overlap,
                tile_mode=args.tile_mode,
                ssim=args.ssim,
                warmup=args.warmup,
            )
        )
        entry[f"{mode}_data"] = str(pairs[0].hr_path.parent)

    summary = summarize(model, OFFICIAL_INPUT_DIM)
    path = checkpoint_path(args, args.model_id)
    entry.update(
        {
            "activations": summary.activations / 10**6,
            "num_conv": summary.num_conv,
            "flops": summary.flops / 10**9,
            "num_parameters": summary.num_parameters / 10**6,
            "device": describe_device(device),
            "model_path": str(path),
            "checkpoint_sha256": sha256_of(path),
        }
    )
    logger.info(f"{'#Activations':>16s} : {entry['activations']:<.4f} [M]")
    logger.info(f"{'#Conv2d':>16s} : {entry['num_conv']:<d}")
    logger.info(f"{'FLOPs':>16s} : {entry['flops']:<.4f} [G]")
    logger.info(f"{'#Params':>16s} : {entry['num_parameters']:<.4f} [M]")

    results, txt_path = merge_into(args.results_json, model_name, entry, [mode for mode, _ in plan])
    logger.info(f"results: {args.results_json} and {txt_path}")
    return results


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = ArgumentParser("NTIRE-EfficientSR", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--data_dir", default=None, type=str, help="folder with the official data layouts (default: built-in data)"
    )
    parser.add_argument("--save_dir", default="results", type=str, help="where SR images and the log go (default: results)")
    parser.add_argument(
        "--model_id", default=None, type=int, help=f"model to run; known: {_known_models()} (default: best available)"
    )
    parser.add_argument(
        "--model_path", default=None, type=str, help="evaluate this checkpoint instead of the model's default one"
    )
    parser.add_argument("--include_test", action="store_true", help="also run the test set (needs its HR images)")
    parser.add_argument(
        "--hybrid_test", action="store_true", help="run the LSDIR+DIV2K hybrid test set (NTIRE 2023) instead of valid"
    )
    parser.add_argument("--ssim", action="store_true", help="also compute SSIM, and Y-channel PSNR/SSIM (BT.601)")
    parser.add_argument("--hr_dir", default=None, type=str, help="any folder of HR images, evaluated as mode 'custom'")
    parser.add_argument(
        "--lr_dir", default=None, type=str, help="its LR images (NAMEx4.* or NAME.*); default: bicubic x4 of the HR"
    )
    parser.add_argument("--device", default=None, choices=["cpu", "cuda"], help="default: cuda when available")
    parser.add_argument("--tile", default=None, type=int, help="tiled inference with LR tiles of this size (for large images)")
    parser.add_argument("--tile_overlap", default=32, type=int, help="overlap of neighbouring tiles in LR pixels (default: 32)")
    parser.add_argument(
        "--tile_mode",
        default="average",
        choices=TILE_MODES,
        help="average: the official tiling (overlaps averaged); stitch: tiles cut at mid-overlap (default: average)",
    )
    parser.add_argument("--warmup", default=2, type=int, help="untimed passes on the first image of each mode (default: 2)")
    parser.add_argument(
        "--results_json",
        default="results.json",
        type=str,
        help="results file, merged with what it holds (default: ./results.json)",
    )
    return parser.parse_args(argv)


def cli(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        main(args)
    except (HarnessError, OSError) as err:  # OSError: a file system failure nothing above foresaw, still one line
        print(f"test_demo.py: error: {err}", file=sys.stderr)
        return 2
    except MemoryError:  # beyond the images' own out-of-memory lines (each names its image)
        print("test_demo.py: error: out of memory (try --tile N for large images)", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("test_demo.py: interrupted; results.json left as it was", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(cli())
