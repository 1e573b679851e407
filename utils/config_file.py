"""Reading a JSON config file into typed settings, every value checked, one line naming the file and key if not.

``read_json_config`` reads one JSON object (a key given twice is refused; ``{data_root}`` in its strings is replaced,
``utils.datasets.data_root``); ``read_value`` checks one value against a setting's type; ``read_settings`` reads an
object of settings of the given dataclasses (``utils.settings``) by name. The pipeline config and the training
command's ``--config`` file both read their values here, so the two speak the same types.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Sequence
from dataclasses import fields
from pathlib import Path
from typing import Any

from utils.datasets import data_root, with_data_root
from utils.errors import HarnessError, first_line
from utils.settings import field_types, setting_names, value_type


def first_duplicate(names: Sequence[str]) -> str | None:
    """The first name (in order) that occurs more than once, if any."""
    return next((name for name in names if names.count(name) > 1), None)


def read_json_config(path: str | Path, example: str) -> dict[str, Any]:
    """The config file as one JSON object, ``{data_root}`` in its strings replaced (``utils.datasets.data_root``); a
    key given twice in one object is refused (JSON keeps the last). ``example``: a config file to point to."""

    def refuse_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        twice = first_duplicate([key for key, _ in pairs])
        if twice is not None:
            raise ValueError(f"key {twice!r} is given twice in one object")
        return dict(pairs)

    try:
        config = json.loads(Path(path).read_text(encoding="utf-8"), object_pairs_hook=refuse_duplicates)
    except (OSError, ValueError, RecursionError) as err:
        raise HarnessError(f"{path}: not a readable JSON config ({first_line(err)})") from None
    if not isinstance(config, dict):
        raise HarnessError(f"{path}: expected a JSON object (see {example}), got {describe(config)}")
    root = config.get("data_root")
    if root is not None and (not isinstance(root, str) or not root):
        raise HarnessError(f"{path}: data_root: expected a folder, got {describe(root)}")
    return with_data_root(config, data_root(root))


def describe(value: Any) -> str:
    """A JSON value as the config shows it, with its kind where the text alone does not tell it."""
    if isinstance(value, bool):
        return f"{json.dumps(value)} (a boolean)"
    if isinstance(value, str):
        return f"the string {json.dumps(value)}"
    if isinstance(value, list):
        return "a list" if value else "an empty list"
    if isinstance(value, dict):
        return "an object"
    return json.dumps(value)  # null, numbers (NaN and Infinity as JSON writes them)


def is_finite(number: float) -> bool:
    """Whether ``number`` is a finite float (an integer too large for one is not: its flag would read infinity)."""
    try:
        return math.isfinite(number)
    except OverflowError:
        return False


def read_value(value: Any, kind: Any, where: str, optional: bool = False, path: bool = False) -> Any:
    """``value`` as ``kind`` (int, float, str, bool, tuple[str, ...] or tuple[float, ...]), or a HarnessError
    naming ``where``; ``path``: a string (or each string of a list) is a file or folder."""
    if kind is bool:
        ok, expected = isinstance(value, bool), "true or false"
    elif kind is int:
        ok, expected = isinstance(value, int) and not isinstance(value, bool), "an integer"
    elif kind is float:
        ok, expected = isinstance(value, int | float) and not isinstance(value, bool), "a number"
        if ok and not is_finite(value):
            ok, expected = False, "a finite number"
    elif kind is str:
        ok, expected = isinstance(value, str) and value != "", "a path" if path else "a non-empty string"
    elif kind == tuple[float, ...]:
        ok, expected = isinstance(value, list) and bool(value), "a list of numbers, e.g. [0.5, 0.75]"
        if ok:
            return tuple(read_value(item, float, f"{where}[{i}]") for i, item in enumerate(value))
    else:  # tuple[str, ...]: folders
        ok, expected = isinstance(value, list) and bool(value), 'a list of folders, e.g. ["a", "b"]'
        if ok:
            return tuple(read_value(item, str, f"{where}[{i}]", path=path) for i, item in enumerate(value))
    if not ok:
        hint = " (omit the key for the default)" if value is None and optional else ""
        raise HarnessError(f"{where}: expected {expected}, got {describe(value)}{hint}")
    if path and value.startswith("-"):
        raise HarnessError(f"{where} {value}: a path may not start with '-' (write ./{value})")
    if path and "\0" in value:
        raise HarnessError(f"{where}: a path may not hold a NUL character")
    return value  # an integer stays one where a number goes


def read_settings(
    options: dict[str, Any], classes: Iterable[type], where: str, paths: Iterable[str] = (), ignore: Iterable[str] = ()
) -> dict[str, Any]:
    """The settings of ``options`` (an object of settings of ``classes``, by name; ``_`` keys are comments, ``ignore``
    keys are read elsewhere), each read as its field's type, numbers as floats where the field is one (``paths``: the
    names that are files or folders)."""
    kinds: dict[str, Any] = {}
    choices: dict[str, Any] = {}
    for cls in classes:
        hints = field_types(cls)
        kinds.update({name: value_type(hints[name]) for name in setting_names(cls)})
        choices.update({f.name: f.metadata["flag"]["choices"] for f in fields(cls) if "choices" in f.metadata.get("flag", {})})
    paths, ignore = set(paths), set(ignore)
    values = {}
    for key, value in options.items():
        if key.startswith("_") or key in ignore:
            continue
        if key not in kinds:
            raise HarnessError(f"{where}: unknown setting {key}; expected one of {', '.join(kinds)}")
        values[key] = read_value(value, kinds[key], f"{where}: {key}", optional=True, path=key in paths)
        if kinds[key] is float:  # as a flag gives it: 2 is 2.0
            values[key] = float(values[key])
        elif kinds[key] == tuple[float, ...]:
            values[key] = tuple(float(item) for item in values[key])
        if key in choices and values[key] not in choices[key]:
            raise HarnessError(f"{where}: {key}: expected one of {', '.join(map(str, choices[key]))}, got {describe(value)}")
    return values
