"""Stateless helpers: image I/O and resizing, metrics, model summary, data layouts and evaluation, checkpoints and
provenance, safe file output, the argument parser, logging."""
