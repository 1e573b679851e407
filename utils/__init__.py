"""Shared helpers of the harness: image I/O, resizing, metrics, model summary, data layouts, logging."""
