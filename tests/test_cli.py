"""The shared argument parser: negative numbers in any notation are values, so the flags' own checks speak."""

from __future__ import annotations

import pytest

from utils.cli import ArgumentParser


@pytest.mark.parametrize(
    "text, value", [("-1e-4", -1e-4), ("-3", -3.0), ("-.5", -0.5), ("-2.5E+3", -2500.0), ("-inf", float("-inf"))]
)
def test_negative_numbers_are_values(text: str, value: float) -> None:
    parser = ArgumentParser()
    parser.add_argument("--lr", type=float)
    assert parser.parse_args(["--lr", text]).lr == value


def test_an_option_is_still_an_option() -> None:
    parser = ArgumentParser()
    parser.add_argument("--lr", type=float)
    parser.add_argument("-e", action="store_true")
    with pytest.raises(SystemExit):
        parser.parse_args(["--lr", "-e"])
