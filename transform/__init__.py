"""Model-to-model stages of PRFDN: branch -> (train) -> reparam -> prune -> export, and onnx. One stage per module,
each with a CLI ``python -m transform.<stage> SRC DST``."""
