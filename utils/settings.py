"""One schema per setting: a dataclass field carries its help text, and from that one field come the command-line
flag, the config file's key and the stage function's argument.

``setting(default, help)`` declares a field; ``add_flags`` declares its ``--name`` flag; ``optional_section`` derives
the config section of a settings class: the same names, each ``None`` (not given: the stage's default applies, or on
a resumed training the resumed run's value).
"""

from __future__ import annotations

import argparse
import dataclasses
import types
import typing
from collections.abc import Iterable, Mapping
from typing import Any


def setting(default: Any, help: str, **flag: Any) -> Any:
    """A dataclass field that is a user setting; ``flag`` holds extra ``add_argument`` keywords (``choices``)."""
    return dataclasses.field(default=default, metadata={"help": help, "flag": flag})


def setting_names(cls: type) -> tuple[str, ...]:
    """The fields of ``cls`` that are user settings (declared with ``setting``), in declaration order."""
    return tuple(f.name for f in dataclasses.fields(cls) if "help" in f.metadata)


def help_of(cls: type, name: str) -> str:
    """The help text of setting ``name`` of ``cls``."""
    return next(f.metadata["help"] for f in dataclasses.fields(cls) if f.name == name)


def field_types(cls: type) -> dict[str, Any]:
    """Each field's type, resolved (``from __future__ import annotations`` leaves them as strings)."""
    return typing.get_type_hints(cls)


def value_type(annotation: Any) -> Any:
    """``int`` for ``int | None``, ``tuple[str, ...]`` for ``tuple[str, ...] | None``, and so on."""
    if isinstance(annotation, types.UnionType) or typing.get_origin(annotation) is typing.Union:
        return next(arg for arg in typing.get_args(annotation) if arg is not type(None))
    return annotation


def optional_section(
    cls: type, name: str, names: Iterable[str] | None = None, required: Iterable[str] = (), extra: Iterable[tuple] = ()
) -> type:
    """A frozen dataclass ``name`` with the fields ``names`` of ``cls`` (default: its settings), each of its type or
    ``None`` (not given); ``required`` ones have no default; ``extra``: further ``(name, type)`` fields, None by default."""
    kinds = field_types(cls)
    names = tuple(names or setting_names(cls))
    required = tuple(required)
    fields: list[tuple] = [(n, value_type(kinds[n])) for n in names if n in required]
    fields += [(n, value_type(kinds[n]) | None, dataclasses.field(default=None)) for n in names if n not in required]
    fields += [(n, kind | None, dataclasses.field(default=None)) for n, kind in extra]
    return dataclasses.make_dataclass(name, fields, frozen=True)


def add_flags(
    group: argparse._ActionsContainer,
    cls: type,
    names: Iterable[str] | None = None,
    defaults: Mapping[str, Any] | None = None,
    default_text: Mapping[str, str] | None = None,
    unlisted: Iterable[str] = (),
) -> None:
    """Declare the settings ``names`` of ``cls`` as ``--<name>`` flags.

    ``defaults`` gives a flag's parsed default (absent: None, "not given", so the caller fills it in);
    ``default_text`` says in the help what a flag left out means (absent: the parsed default, or the class's);
    ``unlisted`` flags are accepted but left out of ``--help`` (rare knobs a command reads from its config file).
    """
    unlisted = set(unlisted)
    defaults, default_text = defaults or {}, default_text or {}
    fields = {f.name: f for f in dataclasses.fields(cls)}
    kinds = field_types(cls)
    for name in names or setting_names(cls):
        field = fields[name]
        kind = value_type(kinds[name])
        base = field.default if field.default is not dataclasses.MISSING else None
        shown = default_text.get(name, defaults.get(name, base))
        help_text = field.metadata["help"] if shown is None else f"{field.metadata['help']} (default {shown})"
        help_text = argparse.SUPPRESS if name in unlisted else help_text
        kwargs: dict[str, Any] = {"default": defaults.get(name), "help": help_text, **field.metadata.get("flag", {})}
        if kind is bool:
            kwargs.setdefault("action", argparse.BooleanOptionalAction)
        elif typing.get_origin(kind) is tuple:
            kwargs.update(nargs="+", type=typing.get_args(kind)[0])
        elif "choices" not in kwargs:
            kwargs["type"] = kind
        group.add_argument(f"--{name}", **kwargs)
