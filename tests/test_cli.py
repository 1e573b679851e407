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


def test_a_usage_mistake_is_one_line_with_exit_code_2(capsys: pytest.CaptureFixture[str]) -> None:
    parser = ArgumentParser(prog="tool")
    parser.add_argument("src")
    parser.add_argument("--steps", type=int)
    with pytest.raises(SystemExit) as stop:
        parser.parse_args(["a.pth", "--steps", "two"])
    assert stop.value.code == 2
    assert capsys.readouterr().err.splitlines() == ["tool: error: argument --steps: invalid int value: 'two' (see --help)"]
