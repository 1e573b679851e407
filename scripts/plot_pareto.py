"""Pareto plot of quality against speed: PSNR vs median runtime, marker area proportional to parameters.

    python scripts/plot_pareto.py BENCHMARK.json EVALUATION.json --out docs/pareto_cpu.png [--set mean|Set5|...]

``BENCHMARK.json`` is what ``benchmark.py`` writes; ``EVALUATION.json`` what ``scripts/report.py`` writes
(``{"models": {NAME: {"sets": {SET: {"psnr": ...}}}}}``). Models are matched by name; only the benchmark's
first variant (the official fp32) is drawn. The Pareto front (no other model both faster and better) is joined.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

from utils.cli import ArgumentParser  # noqa: E402
from utils.errors import HarnessError  # noqa: E402
from utils.fileio import atomic_write  # noqa: E402


def read_json(path: str) -> dict[str, Any]:
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError) as err:
        raise HarnessError(f"{path}: not a readable JSON file ({err})") from None


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


def main(argv: list[str] | None = None) -> int:
    parser = ArgumentParser(prog="plot_pareto.py", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("benchmark", help="benchmark.py's JSON")
    parser.add_argument("evaluation", help="scripts/report.py's evaluation JSON")
    parser.add_argument("--out", default="docs/pareto.png", help="PNG to write (default docs/pareto.png)")
    parser.add_argument("--set", default="mean", help="which test set's PSNR (default: mean over the sets)")
    args = parser.parse_args(argv)
    try:
        make_plot(read_json(args.benchmark), read_json(args.evaluation), args.out, args.set)
    except (HarnessError, OSError, KeyError) as err:
        print(f"plot_pareto.py: error: {err}", file=sys.stderr)
        return 2
    print(f"plot_pareto.py: wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
