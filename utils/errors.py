"""The exceptions the command-line tools turn into a one-line message and an exit code."""

from __future__ import annotations

from typing import Any


class HarnessError(Exception):
    """Bad input from the user (file, folder, flag, checkpoint): the message names it and what was expected."""


def first_line(err: BaseException, limit: int = 300) -> str:
    """The first line of an exception's message (its type's name when it has none), for one-line errors about
    a failure inside PyTorch, whose messages run over many lines. A first line that only announces what follows
    ("Error(s) in loading state_dict for RFDN:") gets the next line, the reason, after it."""
    lines = [line.strip() for line in str(err).strip().splitlines() if line.strip()] or [type(err).__name__]
    text = f"{lines[0]} {lines[1]}" if lines[0].endswith(":") and len(lines) > 1 else lines[0]
    return text if len(text) <= limit else text[: limit - 3] + "..."


class TrainingInterruptedError(Exception):
    """Raised by ``fit`` after a Ctrl-C / SIGTERM, once the state of the last finished iteration is saved."""

    def __init__(self, iteration: int, state: dict[str, Any]) -> None:
        super().__init__(f"interrupted after iteration {iteration}")
        self.iteration = iteration
        self.state = state
