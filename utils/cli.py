"""The command-line parser every CLI here uses."""

from __future__ import annotations

import argparse
import re
from typing import Any, NoReturn

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
