"""Training speed of the fast paths, side by side: seconds per training iteration (forward + backward + Adam) of a
checkpoint, fp32 against channels_last and bf16 autocast + channels_last, interleaved rounds, median.

    python scripts/bench_training.py model_zoo/team13_prfdn.pth --teacher model_zoo/team00_rfdn.pth \\
        --train_dir ../shared/train/BSD200 --rounds 10 --json docs/results/training_speed_cpu.json --overwrite

Each variant trains its own copy of the model on the same batches (batch 16, LR patch 48 by default).
``--compile`` adds bf16 + channels_last with the model and the teacher under ``torch.compile`` (inductor); its
first step, which compiles, is reported apart and never timed with the others. An existing ``--json`` file is
replaced only with ``--overwrite``.
"""

from __future__ import annotations

import argparse
import copy
import statistics
import time

import torch

from training.data import check_apart_from_data, load_training_data
from training.loop import TrainSettings, _Trainer
from utils.benchmark import device_name
from utils.checkpoint import read_model_checkpoint
from utils.cli import ArgumentParser, run_command
from utils.errors import HarnessError
from utils.fileio import atomic_write_json, check_distinct, check_new_output
from utils.model_io import load_model, load_teacher

VARIANTS = {
    "fp32": {"precision": "fp32", "channels_last": False},
    "fp32+channels_last": {"precision": "fp32", "channels_last": True},
    "bf16+channels_last": {"precision": "bf16", "channels_last": True},
}
COMPILED = "bf16+channels_last+compile"


def run(args: argparse.Namespace) -> dict:
    if args.json:
        check_distinct({"--json": args.json}, {"SRC": args.src, "--teacher": args.teacher})  # never replaced
        check_apart_from_data({"--json": args.json}, args)  # nor a training image (through a link)
        check_new_output(args.json, "--json", args.overwrite)
    checkpoint = read_model_checkpoint(args.src)
    model = load_model(checkpoint, f"SRC {args.src}")
    teacher = load_teacher(args.teacher, checkpoint) if args.teacher else None
    data = load_training_data(args.train_dir, patch_size=args.patch_size, val_fraction=0, skip_small=True)
    batches = [
        tuple(torch.stack(t) for t in zip(*(data.train[i + b * args.batch_size] for i in range(args.batch_size)), strict=True))
        for b in range(args.rounds + args.warmup)
    ]
    variants = dict(VARIANTS)
    if args.compile:
        variants[COMPILED] = VARIANTS["bf16+channels_last"]
    trainers = {}
    for name, options in variants.items():
        settings = TrainSettings(
            iters=10**6,
            batch_size=args.batch_size,
            patch_size=args.patch_size,
            lr=1e-5,
            distill_weight=1.0 if teacher is not None else 0.0,
            device="cpu",
            progress=False,
            **options,
        )
        trainer = _Trainer(copy.deepcopy(model), data.train, [], settings, copy.deepcopy(teacher), None, None)
        if name == COMPILED:
            trainer.net = torch.compile(trainer.model)
            trainer.teacher = torch.compile(trainer.teacher) if trainer.teacher is not None else None
        trainers[name] = trainer
    times: dict[str, list[float]] = {name: [] for name in variants}
    first_step: dict[str, float] = {}
    for index, (lr, hr) in enumerate(batches):
        names = list(variants)
        shift = index % len(names)
        for name in names[shift:] + names[:shift]:
            start = time.perf_counter()
            trainers[name].step(lr, hr)
            if index == 0:
                first_step[name] = time.perf_counter() - start
            if index >= args.warmup:
                times[name].append(time.perf_counter() - start)
    base = statistics.median(times["fp32"])
    result = {
        "device": device_name(torch.device("cpu")),
        "torch": torch.__version__,
        "src": str(args.src),
        "batch_size": args.batch_size,
        "patch_size": args.patch_size,
        "teacher": args.teacher,
        "rounds": args.rounds,
        "warmup": args.warmup,
        "first_step_s": first_step,
        "results": [
            {"variant": n, "median_s": statistics.median(t), "ratio_to_fp32": statistics.median(t) / base, "times_s": t}
            for n, t in times.items()
        ],
    }
    for row in result["results"]:
        print(f"{row['variant']:30s} {row['median_s']:.3f} s/iteration  {row['ratio_to_fp32']:.2f}x fp32")
    if args.compile:
        print(f"{COMPILED}: first step (compiling) {first_step[COMPILED]:.1f} s")
    if args.json:
        atomic_write_json(args.json, result)
    return result


def main(argv: list[str] | None = None) -> int:
    parser = ArgumentParser(prog="bench_training.py", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("src", help="checkpoint to train (any stage)")
    parser.add_argument("--train_dir", nargs="+", required=True, help="folders of HR training images")
    parser.add_argument("--teacher", default=None, help="distil from this checkpoint (as the pipeline does)")
    parser.add_argument("--batch_size", type=int, default=16)
    parser.add_argument("--patch_size", type=int, default=48)
    parser.add_argument("--rounds", type=int, default=10, help="timed iterations per variant (default 10)")
    parser.add_argument("--warmup", type=int, default=2, help="untimed iterations per variant first (default 2)")
    parser.add_argument("--compile", action="store_true", help="add bf16 + channels_last under torch.compile")
    parser.add_argument("--json", default=None, help="write the measurements here")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing --json file")
    args = parser.parse_args(argv)

    def body() -> None:
        if args.rounds < 1 or args.warmup < 0:
            raise HarnessError("--rounds must be at least 1 and --warmup not negative")
        run(args)

    return run_command("bench_training.py", body, "nothing written")


if __name__ == "__main__":
    raise SystemExit(main())
