"""Stage 5, export: fold the pruning helpers back so the final network carries no layer that exists only
for pruning, check it is exact, and write the final checkpoint.

    python -m transform.export PRUNED.pth model_zoo/team13_prfdn.pth

Placement convs before ``c5`` fold into ``c5``; the join placements become a concatenation (plus a channel
gather where pruning dropped or reordered channels). See ``transform.helpers``. The result is a ``prfdn``
network (``models/team13_PRFDN.py``), checked against the pruned model on a real image (<= 1e-3, 0-255 units).
"""

from __future__ import annotations

from models.helpers import is_helper
from transform.common import StageCLI, check_equivalent, read_stage_input, stage_job, write_stage_output
from transform.helpers import fold_helpers
from utils.model_io import load_model
from utils.model_summary import summarize
from utils.provenance import stage_record


def _run(job: ExportJob) -> None:
    parent = read_stage_input(job.src, ("prfdn_helpers",), "export")
    pruned = load_model(parent, job.src).eval()
    final = fold_helpers(pruned).eval()
    leftovers = [name for name, _ in final.named_modules() if is_helper(name)]
    assert not leftovers, leftovers
    difference = check_equivalent(pruned, final, f"export of {job.src}")
    summary = summarize(final)
    print(
        f"final: {summary.num_parameters / 1e6:.4f} M params, {summary.flops / 1e9:.2f} G FLOPs, "
        f"{summary.activations / 1e6:.2f} M activations, {summary.num_conv} Conv2d (3x256x256)"
    )
    join = final.cfg.join
    record = stage_record(
        "final",
        job.src,
        parent,
        max_abs_difference=difference,
        join="concatenation" if join is None else f"gather of {len(join)} channels",
    )
    write_stage_output(job.dst, final, parent, record)


ExportJob = stage_job("ExportJob")
CLI = StageCLI("transform.export", "Fold the pruning helpers back; write the final network (stage 5).", ExportJob, _run)
parse_args, main = CLI.parse_args, CLI.main


if __name__ == "__main__":
    raise SystemExit(main())
