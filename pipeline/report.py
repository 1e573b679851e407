"""The README's results table, regenerated from the checkpoints of a pipeline run in one command.

    python scripts/report.py configs/x4_cpu.json --overwrite           # CPU: evaluate, time, plot, table
    python scripts/report.py configs/x4_cpu.json --gpu_benchmark results/bench_gpu.json --overwrite   # a GPU column

Rows: the official RFDN and every stage the run left in its ``work_dir`` (feature-fitted and trained branch
model, merged, pruned, final = the config's ``output``), then one row per ``--extra NAME=PATH`` (other
checkpoints, e.g. the points of a speed/quality frontier). For each: PSNR (RGB and Y, 4-pixel border), its gap
to RFDN, and SSIM on Set5, Set14, BSD68 and Urban100_10 from ``--benchmark_dir`` (the final report only:
nothing here chooses a model),
params / FLOPs / activations / Conv2d under the official counting rules (3x256x256), and the median CPU time
per DIV2K-sized image relative to RFDN, timed side by side by ``benchmark.py``'s interleaved loop.
Writes ``OUT_DIR/evaluation.json``, ``OUT_DIR/benchmark_<device>.json``, ``docs/pareto_<device>.png``,
``docs/results.md``, and replaces the table between the results markers of the README. Files already there
are replaced only with ``--overwrite`` (checked, with every other input, before anything is evaluated).
"""

from __future__ import annotations

import argparse
import logging
import sys
import tempfile
from pathlib import Path
from typing import Any

import torch

from pipeline import benchmark
from pipeline.pareto import check_benchmark, make_plot, official_rows, read_json
from pipeline.run import load_config
from utils.checkpoint import check_scale, read_model_checkpoint
from utils.cli import ArgumentParser
from utils.datasets import SCALE, ImagePair, check_pairs, pair_folders
from utils.errors import HarnessError, first_line
from utils.evaluation import evaluate_mode
from utils.fileio import atomic_write_json, atomic_write_text, check_distinct, check_new_output, interrupts_deferred
from utils.inference import resolve_device
from utils.model_io import load_model

SETS = ("Set5", "Set14", "BSD68", "Urban100_10")
BEGIN, END = "<!-- results:begin -->", "<!-- results:end -->"
# (row label, name in the JSON files, file in work_dir; None: the config's "rfdn" / "output")
ROWS = (
    ("RFDN (official)", "rfdn", None),
    ("branch, feature-fitted", "branch_fitted", "branch_fitted.pth"),
    ("branch, trained", "branch_trained", "branch_trained.pth"),
    ("merged (dense)", "merged", "merged.pth"),
    ("pruned (pruning form)", "pruned", "pruned.pth"),
    ("final (team13_prfdn.pth)", "final", None),
)


def stage_files(config: dict[str, Any], source: str = "config", extra: tuple[str, ...] = ()) -> list[tuple[str, str, Path]]:
    """(label, name, path) of every row whose checkpoint exists, then the ``--extra NAME=PATH`` rows."""
    for key in ("rfdn", "work_dir", "output"):
        if not isinstance(config[key], str) or not config[key]:
            raise HarnessError(f"{source}: {key} is {config[key]!r}; expected a path")
    work = Path(config["work_dir"])
    found = []
    for label, name, file in ROWS:
        path = Path(config["rfdn"] if name == "rfdn" else config["output"] if file is None else work / file)
        if path.is_file():
            found.append((label, name, path))
        else:
            print(f"report.py: {path} not there; row {label!r} left out")
    for spec in extra:
        name, _, path = spec.partition("=")
        taken = {n for _, n, _ in ROWS} | {n for _, n, _ in found}
        if not name.isidentifier() or not path or name in taken:
            raise HarnessError(
                f"--extra {spec}: expected NAME=PATH with a NAME of letters, digits and _ that no other row has "
                f"({', '.join(sorted(taken))})"
            )
        if not Path(path).is_file():
            raise HarnessError(f"--extra {spec}: {path} not found")
        found.append((name, name, Path(path)))
    if not any(name == "rfdn" for _, name, _ in found):
        raise HarnessError(f"{config['rfdn']}: the RFDN checkpoint (every ratio is to it) not found")
    return found


def evaluate(path: Path, benchmark_dir: Path, device: torch.device) -> dict[str, Any]:
    """PSNR / SSIM (RGB and Y) per set of one checkpoint (its complexity: benchmark.py's record)."""
    checkpoint = read_model_checkpoint(path)
    model = load_model(checkpoint, str(path)).eval().to(device)
    logger = logging.getLogger("report.evaluate")
    logger.addHandler(logging.NullHandler())
    logger.propagate = False
    sets = {}
    with tempfile.TemporaryDirectory() as save_dir:
        for name in SETS:
            pairs = set_pairs(benchmark_dir, name)
            result = evaluate_mode(
                model,
                pairs,
                name,
                data_range=checkpoint.data_range,
                device=device,
                save_dir=save_dir,
                logger=logger,
                ssim=True,
                warmup=0,  # quality only: the times in the table are benchmark.py's
            )
            sets[name] = {key: result[f"{name}_ave_{key}"] for key in ("psnr", "psnr_y", "ssim", "ssim_y")}
            print(f"  {name}: PSNR {sets[name]['psnr']:.4f} dB, Y {sets[name]['psnr_y']:.4f} dB, SSIM {sets[name]['ssim']:.4f}")
    return {"path": str(path), "arch": checkpoint.arch, "sets": sets}


def time_models(found: list[tuple[str, str, Path]], args: argparse.Namespace, out: Path) -> dict[str, Any]:
    """benchmark.py's interleaved timing of every row's checkpoint (nothing written yet)."""
    models = tuple(f"{name}={path}" for _, name, path in found)
    job = benchmark.BenchmarkJob(
        models=models,
        device=args.device,
        repeats=args.repeats,
        warmup=args.warmup,
        size=args.size,
        reference="rfdn",
        json=str(out),
        overwrite=True,  # checked with the report's other outputs, under the report's own --overwrite
    )
    flags = f"--device {args.device} --repeats {args.repeats} --warmup {args.warmup} --size {args.size} --reference rfdn"
    job.command = f"benchmark.py {' '.join(models)} {flags} --json {out}"
    result = benchmark.run(job)
    print(benchmark.format_rows(result))
    return result


def _ratio(row: dict[str, Any]) -> str:
    ratio = row.get("ratio_to_reference")
    return "no reference" if ratio is None else f"{ratio:.3f}x"


def table(found: list[tuple[str, str, Path]], evaluation: dict[str, Any], cpu: dict[str, Any], gpu: dict[str, Any] | None) -> str:
    """The markdown results table (one row per checkpoint) and the lines saying how it was measured."""
    cpu_rows, gpu_rows = official_rows(cpu), official_rows(gpu) if gpu else {}
    header = (
        ["model"]
        + [f"{s} PSNR / Y" for s in SETS]
        + ["PSNR gap to RFDN (dB)", "SSIM " + " / ".join(SETS), "params (M)", "FLOPs (G)", "activ. (M)", "Conv2d"]
    )
    gpu_label = f"GPU {gpu['results'][0]['variant']} time (x {gpu['reference']})" if gpu else "GPU time"
    header += ["CPU time (x RFDN)", gpu_label]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    rfdn_sets = evaluation["models"]["rfdn"]["sets"]
    for label, name, _ in found:
        sets, counts = evaluation["models"][name]["sets"], cpu["models"][name]
        cells = [label] + [f"{sets[s]['psnr']:.3f} / {sets[s]['psnr_y']:.3f}" for s in SETS]
        cells.append(" / ".join(f"{sets[s]['psnr'] - rfdn_sets[s]['psnr']:+.3f}" for s in SETS))
        cells.append(" / ".join(f"{sets[s]['ssim']:.4f}" for s in SETS))
        cells += [
            f"{counts['params'] / 1e6:.4f}",
            f"{counts['flops_256'] / 1e9:.2f}",
            f"{counts['activations_256'] / 1e6:.2f}",
            str(counts["conv2d"]),
        ]
        row = cpu_rows[name]
        cells.append(f"{row['median_ms']:.0f} ms ({_ratio(row)})")
        if gpu:
            g = gpu_rows.get(name)
            cells.append("-" if g is None else f"{g['median_ms']:.2f} ms ({_ratio(g)})")
        else:
            cells.append("not measured (no GPU)")
        lines.append("| " + " | ".join(cells) + " |")
    height, width = cpu["lr_size"]
    notes = [
        "",
        f"PSNR / SSIM: RGB (and Y, BT.601) with a 4-pixel border, SR rounded to uint8, on `{evaluation['benchmark_dir']}`. "
        "Complexity: official counting rules at 3x256x256 (the pruning form still holds its 1x1 placement convs; "
        "export folds them away exactly).",
        f"CPU time: median of {cpu['repeats']} interleaved rounds after {cpu['warmup']} warm-up, LR {width}x{height}, "
        f"{cpu['device_name']}, torch {cpu['torch']}, fp32: `{cpu['command']}`.",
    ]
    if gpu:
        gh, gw = gpu["lr_size"]
        notes.append(f"GPU time: {gpu['device_name']}, median of {gpu['repeats']} rounds, LR {gw}x{gh}: `{gpu['command']}`.")
    return "\n".join(lines + notes) + "\n"


def replace_between_markers(text: str, block: str, source: str) -> str:
    if BEGIN not in text or END not in text or text.index(BEGIN) > text.index(END):
        raise HarnessError(f"{source}: no {BEGIN} ... {END} markers to put the table between")
    head, rest = text.split(BEGIN, 1)
    _, tail = rest.split(END, 1)
    return f"{head}{BEGIN}\n{block}{END}{tail}"


def check_arguments(args: argparse.Namespace) -> None:
    """Every flag checked before minutes of evaluation."""
    resolve_device(args.device)
    if args.repeats < 1:
        raise HarnessError(f"--repeats {args.repeats}: expected at least 1 timed round")
    if args.warmup < 0:
        raise HarnessError(f"--warmup {args.warmup}: expected 0 or more warm-up rounds")
    benchmark.parse_size(args.size)
    benchmark_dir = Path(args.benchmark_dir)
    missing = [s for s in SETS if not (benchmark_dir / s / "HR").is_dir()]
    if missing:
        raise HarnessError(f"--benchmark_dir {benchmark_dir}: no {', '.join(missing)} (expected SET/HR and SET/LR_bicubic/X4)")
    if args.readme:
        replace_between_markers(read_readme(args.readme), "", args.readme)


def read_readme(path: str) -> str:
    try:
        return Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as err:
        reason = err.strerror if isinstance(err, OSError) and err.strerror else err
        raise HarnessError(
            f"--readme {path}: not readable ({reason}); expected the README with the results markers, or ''"
        ) from None


def output_files(args: argparse.Namespace) -> dict[str, Path]:
    """Every file a report writes, by the flag that places it."""
    out_dir, docs_dir = Path(args.out_dir), Path(args.docs_dir)
    outputs = {
        "--out_dir": out_dir / "evaluation.json",
        "--out_dir's benchmark": out_dir / f"benchmark_{args.device}.json",
        "--docs_dir": docs_dir / "results.md",
        "--docs_dir's plot": docs_dir / f"pareto_{args.device}.png",
    }
    if args.readme:
        outputs["--readme"] = Path(args.readme)
    return outputs


def check_inputs_and_outputs(args: argparse.Namespace, found: list[tuple[str, str, Path]]) -> None:
    """Every output writable, no input and (without ``--overwrite``) not there yet; every checkpoint an x4 model
    that loads; every test image readable and of the right size."""
    outputs = output_files(args)
    inputs = {"config": args.config, "--gpu_benchmark": args.gpu_benchmark, **{f"checkpoint {name}": p for _, name, p in found}}
    check_distinct(outputs, inputs)
    for flag, path in outputs.items():  # the README keeps all but its results block: no --overwrite needed
        check_new_output(path, flag.split("'")[0], args.overwrite or flag == "--readme")
    for _, _, path in found:
        load_model(check_scale(read_model_checkpoint(path), SCALE, str(path)), str(path))
    for name in SETS:
        pairs = set_pairs(Path(args.benchmark_dir), name)
        check_pairs(pairs)
        for pair in pairs:  # an output linked to a test image would replace it (--overwrite writes through links)
            check_distinct(outputs, {f"{name} HR image": pair.hr_path, f"{name} LR image": pair.lr_path})


def set_pairs(benchmark_dir: Path, name: str) -> list[ImagePair]:
    return pair_folders(benchmark_dir / name / "HR", benchmark_dir / name / "LR_bicubic" / "X4")


def run(args: argparse.Namespace, written: list[str] | None = None) -> None:
    """The report; ``written`` gets an entry once the outputs start to be written (all of them are, even on a
    Ctrl-C, which is raised after the last)."""
    written = [] if written is None else written
    config = load_config(args.config)
    check_arguments(args)
    gpu = check_benchmark(read_json(args.gpu_benchmark), args.gpu_benchmark, table=True) if args.gpu_benchmark else None
    found = stage_files(config, args.config, tuple(args.extra))
    check_inputs_and_outputs(args, found)
    outputs = output_files(args)
    device = torch.device(args.device)
    evaluation: dict[str, Any] = {"benchmark_dir": args.benchmark_dir, "config": args.config, "models": {}}
    for label, name, path in found:
        print(f"report.py: evaluating {label} ({path})")
        evaluation["models"][name] = evaluate(path, Path(args.benchmark_dir), device)
    timing = time_models(found, args, outputs["--out_dir's benchmark"])
    block = table(found, evaluation, timing, gpu)
    command = f"python scripts/report.py {args.config}" + "".join(f" --extra {spec}" for spec in args.extra)
    command += f" --gpu_benchmark {args.gpu_benchmark}" if gpu else ""
    command += " --overwrite"  # the command regenerates these files
    readme_text = replace_between_markers(read_readme(args.readme), block, args.readme) if args.readme else None
    # every measurement done: only now is anything replaced, so a failure leaves the old set whole; a Ctrl-C
    # now waits for the last of the set, so the files never mix this run's figures with an earlier run's
    with interrupts_deferred():
        written.append("its outputs")
        atomic_write_json(outputs["--out_dir"], evaluation)
        atomic_write_json(outputs["--out_dir's benchmark"], timing)
        make_plot(timing, evaluation, str(outputs["--docs_dir's plot"]))
        atomic_write_text(outputs["--docs_dir"], f"# Results\n\nRegenerate: `{command}`\n\n{block}")
        if readme_text is not None:
            atomic_write_text(outputs["--readme"], readme_text)
    print(block)


def main(argv: list[str] | None = None) -> int:
    parser = ArgumentParser(prog="report.py", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("config", help="the pipeline config whose run to report (e.g. configs/x4_cpu.json)")
    parser.add_argument(
        "--benchmark_dir",
        default="../shared/benchmark",
        help="folder with Set5/Set14/BSD68/Urban100_10 (default ../shared/benchmark)",
    )
    parser.add_argument("--extra", action="append", default=[], help="NAME=PATH: one more row, another checkpoint (repeatable)")
    parser.add_argument("--out_dir", default="docs/results", help="JSON results go here (default docs/results)")
    parser.add_argument("--docs_dir", default="docs", help="results.md and the Pareto plot go here (default docs)")
    parser.add_argument("--readme", default="README.md", help="README whose results block is replaced ('' for none)")
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu", help="evaluation and timing device (default cpu)")
    parser.add_argument("--repeats", type=int, default=10, help="timed rounds (default 10)")
    parser.add_argument("--warmup", type=int, default=2, help="warm-up rounds (default 2)")
    parser.add_argument("--size", default="339x510", help="LR HxW of the timing input (default 339x510)")
    parser.add_argument("--gpu_benchmark", default=None, help="benchmark.py JSON of a GPU run of the same models (adds a column)")
    parser.add_argument(
        "--overwrite",
        action="store_true",
        help="replace existing OUT_DIR/evaluation.json, OUT_DIR/benchmark_<device>.json, DOCS_DIR/results.md and "
        "DOCS_DIR/pareto_<device>.png (the README's results block is replaced either way)",
    )
    args = parser.parse_args(argv)
    written: list[str] = []
    try:
        run(args, written)
    except (HarnessError, OSError, KeyError, ImportError) as err:
        print(f"report.py: error: {err}", file=sys.stderr)
        return 2
    except RuntimeError as err:  # a model failing on the device (out of memory, unsupported dtype)
        print(f"report.py: error: a model failed to run: {first_line(err)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        done = "after writing all its outputs" if written else "before writing anything; every output left as it was"
        print(f"report.py: interrupted {done}", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
