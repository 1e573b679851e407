"""``results.json`` (merged across runs, written atomically) and the ``results.txt`` table."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from utils.errors import HarnessError
from utils.fileio import atomic_write_json, atomic_write_text, folder_lock, write_target

# figures the table reads: they must be numbers in every entry of an existing file
FIGURE_KEYS = ("num_parameters", "flops", "activations", "num_conv")
FIGURE_SUFFIXES = ("_ave_psnr", "_ave_ssim", "_ave_psnr_y", "_ave_ssim_y", "_ave_runtime", "_memory")


def _json_kind(value: Any) -> str:
    if isinstance(value, bool) or value is None:
        return json.dumps(value)
    kinds = ((dict, "an object"), (list, "a list"), (str, "a string"), ((int, float), "a number"))
    return next((f"{kind} ({json.dumps(value)[:40]})" for types, kind in kinds if isinstance(value, types)), type(value).__name__)


def is_number(value: Any) -> bool:
    """Whether a JSON value is a number (``true`` and ``false`` are not, though Python counts them as ints)."""
    return isinstance(value, int | float) and not isinstance(value, bool)


# What this harness writes nests 3 levels (file, entry, a list of figures); far deeper would fail to be written
# back (json.dumps recurses once per level) after the run's work.
MAX_RESULTS_NESTING = 32


def _deepest(value: Any, limit: int) -> int:
    """How deep ``value``'s lists and objects nest, counted up to ``limit + 1`` (walked without recursion)."""
    stack, deepest = [(value, 1)], 0
    while stack and deepest <= limit:
        item, depth = stack.pop()
        children = item.values() if isinstance(item, dict) else item if isinstance(item, list) else None
        if children is not None:
            deepest = max(deepest, depth)
            stack.extend((child, depth + 1) for child in children)
    return deepest


def check_results(results: Any, path: str | os.PathLike) -> dict[str, dict[str, Any]]:
    """``results`` if it is what this harness writes: an object of model entries, each an object whose
    figures (PSNR, SSIM, runtime, memory, complexity) are numbers; else a one-line error naming the entry."""
    advice = "fix it or move the file away (it is left as it is)"
    if not isinstance(results, dict):
        raise HarnessError(f"{path}: existing results file is not a JSON object of model entries; move it away")
    for name, entry in results.items():
        if not isinstance(entry, dict):
            raise HarnessError(f"{path}: entry {name!r} is {_json_kind(entry)}; expected an object of figures; {advice}")
        if _deepest(entry, MAX_RESULTS_NESTING) >= MAX_RESULTS_NESTING:
            raise HarnessError(
                f"{path}: entry {name!r} nests lists or objects {MAX_RESULTS_NESTING} levels deep or more; expected "
                f"figures (a few levels); {advice}"
            )
        for key, value in entry.items():
            if (key in FIGURE_KEYS or key.endswith(FIGURE_SUFFIXES)) and not is_number(value):
                raise HarnessError(f"{path}: {name!r} has {key} = {_json_kind(value)}; expected a number; {advice}")
    return results


def load_results(path: str | os.PathLike) -> dict[str, dict[str, Any]]:
    """What an earlier run wrote, or {} if the file is absent. A corrupt or malformed file is an error, never
    overwritten."""
    path = Path(path)
    if not path.exists():
        return {}
    try:
        results = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError, RecursionError) as err:  # RecursionError: nested deeper than json can read
        raise HarnessError(f"{path}: existing results file is not readable JSON ({err}); move it away") from None
    return check_results(results, path)


def merge_results(
    results: dict[str, dict[str, Any]], model_name: str, entry: dict[str, Any], modes: list[str]
) -> dict[str, dict[str, Any]]:
    """Put ``entry`` into ``model_name``'s entry: other models, and modes not run now, are kept; every
    earlier key of a re-run mode (``<mode>_...``) is dropped, so no stale figure outlives its run."""
    previous = {k: v for k, v in results.get(model_name, {}).items() if not k.startswith(tuple(f"{m}_" for m in modes))}
    return {**results, model_name: {**previous, **entry}}


def modes_of(entry: dict[str, Any]) -> list[str]:
    return [k[: -len("_ave_psnr")] for k in entry if k.endswith("_ave_psnr")]


def format_table(results: dict[str, dict[str, Any]]) -> str:
    """One row per model and evaluated mode, with the official harness's columns plus the device."""
    fmt = "{:32s}\t{:12s}\t{:>9s}\t{:>9s}\t{:>13s}\t{:>10s}\t{:>9s}\t{:>8s}\t{:>10s}\t{:>5s}\t{:s}\n"
    header = ("Model", "Mode", "PSNR", "SSIM", "Time [ms]", "Params [M]", "FLOPs [G]", "Acts [M]", "Mem [M]", "Conv", "Device")
    text = fmt.format(*header)
    for name, entry in results.items():
        for mode in modes_of(entry):
            ssim = entry.get(f"{mode}_ave_ssim")
            text += fmt.format(
                name,
                mode,
                f"{entry[f'{mode}_ave_psnr']:.2f}",
                "-" if ssim is None else f"{ssim:.4f}",
                f"{entry.get(f'{mode}_ave_runtime', float('nan')):.2f}",
                f"{entry.get('num_parameters', float('nan')):.3f}",
                f"{entry.get('flops', float('nan')):.2f}",
                f"{entry.get('activations', float('nan')):.2f}",
                f"{entry.get(f'{mode}_memory', float('nan')):.2f}",
                str(entry.get("num_conv", "-")),
                str(entry.get("device", "-")),
            )
    return text


def write_results(json_path: str | os.PathLike, results: dict[str, dict[str, Any]]) -> Path:
    """Write ``results.json`` and ``results.txt`` beside it, each atomically; returns the txt path. The table
    is made first, so nothing is written if it cannot be."""
    json_path = Path(json_path)
    txt_path = table_path(json_path)
    table = format_table(results)
    atomic_write_json(json_path, results)
    atomic_write_text(txt_path, table)
    return txt_path


def table_path(json_path: str | os.PathLike) -> Path:
    """Where the table of ``json_path`` goes: beside it, with the suffix ``.txt``."""
    return Path(json_path).with_suffix(".txt")


def check_table_replaceable(json_path: str | os.PathLike, flag: str) -> None:
    """Refuse a file at the table's place that is not a results table (a user's own notes.txt, say): the table
    is rewritten on every run, so only a table written here may stand there."""
    table = table_path(json_path)
    if not table.is_file():
        return
    header = format_table({})
    try:
        with table.open("r", encoding="utf-8", errors="replace", newline="") as file:
            first_line = file.readline(len(header) + 1)
    except OSError as err:
        raise HarnessError(f"{flag} {json_path}: its table {table} cannot be read ({err.strerror})") from None
    if first_line.rstrip("\r\n") != header.rstrip("\n"):  # line ends as a text-mode write (or an editor) left them
        raise HarnessError(
            f"{flag} {json_path}: its table goes to {table}, which exists and is not a results table; "
            "move that file away or give another --results_json"
        )


def merge_into(
    json_path: str | os.PathLike, model_name: str, entry: dict[str, Any], modes: list[str]
) -> tuple[dict[str, dict[str, Any]], Path]:
    """Merge ``entry`` into the results file (see ``merge_results``) and rewrite it and its table, under a lock
    of the file's folder, so runs finishing at the same time each keep their entry. Returns (results, txt path)."""
    folder = write_target(json_path).parent  # a symlink's target may lie in a folder not made yet
    folder.mkdir(parents=True, exist_ok=True)
    with folder_lock(folder):
        results = merge_results(load_results(json_path), model_name, entry, modes)
        return results, write_results(json_path, results)
