"""The command-line parser every CLI here uses, and the exits every command gives (``run_command``)."""

from __future__ import annotations

import argparse
import re
import sys
from collections.abc import Callable, Mapping
from typing import Any, NoReturn

from utils.errors import HarnessError, TrainingInterruptedError

# argparse takes "-1e-4" for an option (its own pattern knows only "-1" and "-.5"), so "--lr -1e-4" would get
# "expected one argument" instead of the flag's own check; this pattern also knows exponents and "inf"/"nan".
NEGATIVE_NUMBER = re.compile(r"^-(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?$|^-(inf|infinity|nan)$", re.IGNORECASE)


class ArgumentParser(argparse.ArgumentParser):
    """``argparse.ArgumentParser`` that reads every negative number as a value, so range checks can speak, and
    reports a usage mistake in one line (flag and what was expected), as every bad input here is reported."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._negative_number_matcher = NEGATIVE_NUMBER

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")


def run_command(
    prog: str,
    body: Callable[[], int | None],
    interrupted: str,
    failures: Mapping[type[BaseException], Callable[[BaseException], str]] | None = None,
) -> int:
    """A command's body with the exits every command here gives: a ``HarnessError`` or file-system failure is one
    line and exit 2, Ctrl-C (or a training stopped by a signal) one line ``PROG: interrupted; <interrupted>`` and
    exit 130; ``failures`` maps further exception types to their one-line message (exit 2). The body's own exit
    code is returned (None: 0)."""
    failures = dict(failures or {})
    try:
        code = body()
    except (HarnessError, OSError) as err:
        print(f"{prog}: error: {err}", file=sys.stderr)
        return 2
    except (KeyboardInterrupt, TrainingInterruptedError):
        print(f"{prog}: interrupted; {interrupted}", file=sys.stderr)
        return 130
    except tuple(failures) as err:
        message = next(say for kind, say in failures.items() if isinstance(err, kind))
        print(f"{prog}: error: {message(err)}", file=sys.stderr)
        return 2
    return 0 if code is None else code
