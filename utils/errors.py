"""The exceptions the command-line tools turn into a one-line message and an exit code."""

from __future__ import annotations

from typing import Any


class HarnessError(Exception):
    """Bad input from the user (file, folder, flag, checkpoint): the message names it and what was expected."""


def first_line(err: BaseException, limit: int = 200) -> str:
    """The first line of an exception's message (its type's name when it has none), for one-line errors about
    a failure inside PyTorch, whose messages run over many lines."""
    return (str(err).strip().splitlines() or [type(err).__name__])[0][:limit]


class TrainingInterruptedError(Exception):
    """Raised by ``fit`` after a Ctrl-C / SIGTERM, once the state of the last finished iteration is saved."""

    def __init__(self, iteration: int, state: dict[str, Any]) -> None:
        super().__init__(f"interrupted after iteration {iteration}")
        self.iteration = iteration
        self.state = state
