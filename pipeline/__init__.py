"""The orchestration above the stages: the pipeline run and its config, the frontier, the ablations, the
benchmark and the results report."""
