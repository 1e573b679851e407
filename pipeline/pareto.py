"""Pareto plot of quality against speed: PSNR vs median runtime, marker area proportional to parameters.

    python scripts/plot_pareto.py BENCHMARK.json EVALUATION.json --out docs/pareto_cpu.png [--set mean|Set5|...]

``BENCHMARK.json`` is what ``benchmark.py`` writes; ``EVALUATION.json`` what ``scripts/report.py`` writes
(``{"models": {NAME: {"sets": {SET: {"psnr": ...}}}}}``). Models are matched by name; only the benchmark's
first variant (the official fp32) is drawn. The Pareto front (no other model both faster and better) is joined.
An existing ``--out`` file is replaced only with ``--overwrite``.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from utils.cli import ArgumentParser
from utils.errors import HarnessError
from utils.fileio import atomic_write, check_distinct, check_new_output
from utils.results import is_number


def read_json(path: str) -> dict[str, Any]:
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError, RecursionError) as err:  # RecursionError: nested deeper than json can read
        raise HarnessError(f"{path}: not a readable JSON file ({err})") from None


_MISSING = object()


def _json_text(value: Any) -> str:
    return "missing" if value is _MISSING else json.dumps(value)[:60]


def _expect(ok: bool, source: str, where: str, value: Any, expected: str) -> None:
    if not ok:
        raise HarnessError(f"{source}: {where} is {_json_text(value)}; expected {expected}")


def check_benchmark(benchmark: Any, source: str, table: bool = False) -> dict[str, Any]:
    """``benchmark`` if it has what the plot reads from a benchmark.py result (with ``table``: also what
    report.py's table reads); else one line naming the file and the first field that is off."""
    what = "(as benchmark.py writes it)"
    if not isinstance(benchmark, dict):
        raise HarnessError(f"{source}: is {_json_text(benchmark)}; expected a JSON object {what}")
    rows, models = benchmark.get("results", _MISSING), benchmark.get("models", _MISSING)
    _expect(isinstance(rows, list) and bool(rows), source, "results", rows, f"a non-empty list of timings {what}")
    _expect(isinstance(models, dict), source, "models", models, f"an object of model records {what}")
    for i, row in enumerate(rows):
        _expect(isinstance(row, dict), source, f"results[{i}]", row, "an object")
        for key, ok, expected in (
            ("model", lambda v: isinstance(v, str) and v in models, "the name of a model in models"),
            ("variant", lambda v: isinstance(v, str), "a variant name such as fp32"),
            ("median_ms", is_number, "a number (ms)"),
            ("ratio_to_reference", lambda v: v is None or is_number(v), "a number or null"),
        ):
            value = row.get(key, None if key == "ratio_to_reference" else _MISSING)
            _expect(ok(value), source, f"results[{i}].{key}", value, expected)
        record = models[row["model"]]
        _expect(isinstance(record, dict), source, f"models.{row['model']}", record, "an object")
        params = record.get("params", _MISSING)
        _expect(is_number(params) and params > 0, source, f"models.{row['model']}.params", params, "a positive number")
    size = benchmark.get("lr_size", _MISSING)
    _expect(isinstance(size, list) and len(size) == 2 and all(is_number(v) for v in size), source, "lr_size", size, "[H, W]")
    fields = [("device_name", str, "a string")]
    if table:
        fields += [("reference", str, "a model name"), ("repeats", int, "a number of rounds"), ("command", str, "a string")]
    for key, kind, expected in fields:
        value = benchmark.get(key, _MISSING)
        _expect(isinstance(value, kind) and not isinstance(value, bool), source, key, value, expected)
    return benchmark


def check_evaluation(evaluation: Any, source: str) -> dict[str, Any]:
    """``evaluation`` if it is report.py's ``{"models": {NAME: {"sets": {SET: {"psnr": ...}}}}}``; else one line
    naming the file and the first field that is off."""
    if not isinstance(evaluation, dict):
        raise HarnessError(f"{source}: is {_json_text(evaluation)}; expected a JSON object (as scripts/report.py writes it)")
    models = evaluation.get("models", _MISSING)
    _expect(isinstance(models, dict), source, "models", models, "an object of evaluated models")
    for name, model in models.items():
        _expect(isinstance(model, dict), source, f"models.{name}", model, "an object")
        sets = model.get("sets", _MISSING)
        _expect(isinstance(sets, dict) and bool(sets), source, f"models.{name}.sets", sets, "an object of test sets")
        for set_name, scores in sets.items():
            _expect(isinstance(scores, dict), source, f"models.{name}.sets.{set_name}", scores, "an object")
            psnr = scores.get("psnr", _MISSING)
            _expect(is_number(psnr), source, f"models.{name}.sets.{set_name}.psnr", psnr, "a number (dB)")
    return evaluation


def psnr_of(evaluation: dict[str, Any], name: str, which: str) -> float:
    sets = evaluation["models"][name]["sets"]
    if which == "mean":
        return sum(s["psnr"] for s in sets.values()) / len(sets)
    if which not in sets:
        raise HarnessError(f"--set {which}: the evaluation has {', '.join(sets)} (or mean)")
    return float(sets[which]["psnr"])


def official_rows(benchmark: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """model -> its row in the benchmark's first variant (the official fp32 one, as benchmark.py orders them)."""
    rows = benchmark.get("results", [])
    if not rows:
        raise HarnessError("the benchmark file has no results")
    variant = rows[0]["variant"]
    return {row["model"]: row for row in rows if row["variant"] == variant}


def points(benchmark: dict[str, Any], evaluation: dict[str, Any], which: str) -> list[dict[str, Any]]:
    """(name, median ms, PSNR, params) of every benchmarked model that was also evaluated, first variant only."""
    found = [
        {
            "name": name,
            "ms": row["median_ms"],
            "psnr": psnr_of(evaluation, name, which),
            "params": benchmark["models"][name]["params"],
        }
        for name, row in official_rows(benchmark).items()
        if name in evaluation.get("models", {})
    ]
    if not found:
        raise HarnessError("no model is in both files (names must match)")
    return found


def pareto_front(found: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Points no other point beats on both runtime (lower) and PSNR (higher), by increasing runtime."""
    front, best = [], float("-inf")
    for point in sorted(found, key=lambda p: (p["ms"], -p["psnr"])):
        if point["psnr"] > best:
            front.append(point)
            best = point["psnr"]
    return front


def plot(found: list[dict[str, Any]], title: str, ylabel: str, out: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5), dpi=120)
    largest = max(p["params"] for p in found)
    for point in found:
        ax.scatter(point["ms"], point["psnr"], s=40 + 900 * point["params"] / largest, alpha=0.6)
        ax.annotate(f"{point['name']}\n{point['params'] / 1e6:.3f} M", (point["ms"], point["psnr"]), fontsize=8,
                    xytext=(6, 6), textcoords="offset points")  # fmt: skip
    front = pareto_front(found)
    ax.plot([p["ms"] for p in front], [p["psnr"] for p in front], "k--", linewidth=0.8, label="Pareto front")
    ax.set_xlabel("median runtime per image (ms)")
    ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize=9)
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    atomic_write(out, lambda tmp: fig.savefig(tmp, format="png"))
    plt.close(fig)


def make_plot(benchmark: dict[str, Any], evaluation: dict[str, Any], out: str, which: str = "mean") -> None:
    """The plot of a benchmark.py result and a report.py evaluation (both as read from their JSON)."""
    found = points(benchmark, evaluation, which)
    height, width = benchmark["lr_size"]
    title = f"{benchmark['device_name']}, {benchmark['results'][0]['variant']}, LR {width}x{height}; marker area ~ params"
    ylabel = (
        "PSNR (dB, RGB), mean of " + ", ".join(evaluation["models"][found[0]["name"]]["sets"])
        if which == "mean"
        else f"PSNR (dB, RGB), {which}"
    )
    plot(found, title, ylabel, out)


def check_plot_path(out: str | Path, flag: str, inputs: dict[str, str], overwrite: bool) -> None:
    """The plot is a PNG: ``out`` must be a writable ``.png`` path, none of the ``inputs``, and not there yet
    unless ``overwrite``."""
    if Path(out).suffix.lower() != ".png":
        raise HarnessError(f"{flag} {out}: expected a .png file name (the plot is written as PNG)")
    check_distinct({flag: out}, inputs)
    check_new_output(out, flag, overwrite)


def main(argv: list[str] | None = None) -> int:
    parser = ArgumentParser(prog="plot_pareto.py", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("benchmark", help="benchmark.py's JSON")
    parser.add_argument("evaluation", help="scripts/report.py's evaluation JSON")
    parser.add_argument("--out", default="docs/pareto.png", help="PNG to write (default docs/pareto.png)")
    parser.add_argument("--set", default="mean", help="which test set's PSNR (default: mean over the sets)")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing --out PNG")
    args = parser.parse_args(argv)
    try:
        check_plot_path(args.out, "--out", {"BENCHMARK": args.benchmark, "EVALUATION": args.evaluation}, args.overwrite)
        benchmark = check_benchmark(read_json(args.benchmark), args.benchmark)
        evaluation = check_evaluation(read_json(args.evaluation), args.evaluation)
        make_plot(benchmark, evaluation, args.out, args.set)
    except (HarnessError, OSError, KeyError) as err:
        print(f"plot_pareto.py: error: {err}", file=sys.stderr)
        return 2
    print(f"plot_pareto.py: wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
