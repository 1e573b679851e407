"""Model-to-model stages of PRFDN: branch -> (train) -> reparam -> prune -> export. One stage per module,
each with a CLI ``python -m transform.<stage> SRC DST``."""
