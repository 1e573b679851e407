"""``results.json`` (merged across runs, written atomically) and the ``results.txt`` table."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from utils.errors import HarnessError
from utils.fileio import atomic_write_json, atomic_write_text


def load_results(path: str | os.PathLike) -> dict[str, dict[str, Any]]:
    """What an earlier run wrote, or {} if the file is absent. A corrupt file is an error, never overwritten."""
    path = Path(path)
    if not path.exists():
        return {}
    try:
        results = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as err:
        raise HarnessError(f"{path}: existing results file is not readable JSON ({err}); move it away") from None
    if not isinstance(results, dict):
        raise HarnessError(f"{path}: existing results file is not a JSON object of model entries; move it away")
    return results


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
    """Write ``results.json`` and ``results.txt`` beside it, each atomically; returns the txt path."""
    json_path = Path(json_path)
    txt_path = json_path.with_suffix(".txt")
    atomic_write_json(json_path, results)
    atomic_write_text(txt_path, format_table(results))
    return txt_path
