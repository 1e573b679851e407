"""Logging to a file and to the console without breaking tqdm progress bars."""

from __future__ import annotations

import logging
import os
from pathlib import Path

from tqdm import tqdm


class _TqdmHandler(logging.StreamHandler):
    def emit(self, record: logging.LogRecord) -> None:
        try:
            tqdm.write(self.format(record))
        except Exception:  # logging must never crash the run
            self.handleError(record)


def get_logger(name: str, log_path: str | os.PathLike | None = None, console: bool = True) -> logging.Logger:
    """A logger writing ``time : message`` to ``log_path`` (appended) and plain messages to the console."""
    logger = logging.getLogger(name)
    logger.setLevel(logging.INFO)
    logger.propagate = False
    for handler in list(logger.handlers):
        logger.removeHandler(handler)
        handler.close()
    if log_path is not None:
        Path(log_path).parent.mkdir(parents=True, exist_ok=True)
        file_handler = logging.FileHandler(log_path, mode="a", encoding="utf-8")
        file_handler.setFormatter(logging.Formatter("%(asctime)s.%(msecs)03d : %(message)s", "%y-%m-%d %H:%M:%S"))
        logger.addHandler(file_handler)
    if console:
        stream = _TqdmHandler()
        stream.setFormatter(logging.Formatter("%(message)s"))
        logger.addHandler(stream)
    return logger
