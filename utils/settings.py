"""One schema per setting: a dataclass field carries its help text, and from that one field come the command-line
flag, the config file's key and the stage function's argument.

``setting(default, help)`` declares a field; ``add_flags`` declares its ``--name`` flag; ``optional_section`` derives
the config section of a settings class: the same names, each ``None`` (not given: the stage's default applies, or on
a resumed training the resumed run's value). A check's message names a setting with ``flag(name)``: ``--name`` from a
command line, the config file's key where the config reader checks its settings under ``named_as``.
"""

from __future__ import annotations

import argparse
import contextlib
import contextvars
import dataclasses
import sys
import types
import typing
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any

from utils.errors import HarnessError

Naming = Callable[[str, "str | None"], str]


def command_line_name(name: str, command: str | None = None) -> str:
    """``--name``; with ``command``, a setting of another command: ``transform.reparam --form``."""
    return f"--{name}" if command is None else f"{command} --{name}"


_naming: contextvars.ContextVar[Naming] = contextvars.ContextVar("naming", default=command_line_name)


def flag(name: str, command: str | None = None) -> str:
    """Setting ``name`` as the user gave it: ``--name`` on a command line, or as ``named_as`` says (a config key)."""
    return _naming.get()(name, command)


@contextlib.contextmanager
def named_as(naming: Naming) -> Iterator[None]:
    """Within it, ``flag`` names settings by ``naming(name, command)`` (``command``: another command's setting)."""
    token = _naming.set(naming)
    try:
        yield
    finally:
        _naming.reset(token)


def setting(default: Any, help: str, **argument: Any) -> Any:
    """A dataclass field that is a user setting; ``argument`` holds extra ``add_argument`` keywords (``choices``)."""
    return dataclasses.field(default=default, metadata={"help": help, "flag": argument})


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


def job_class(
    name: str,
    own: Iterable[tuple[str, Any, Any]],
    parts: Iterable[tuple[type, Iterable[str] | None]],
    defaults: Mapping[str, Any] | None = None,
    doc: str = "",
    module: str | None = None,
) -> type:
    """The dataclass ``name`` of what one run of a command takes, built from the settings' own schemas.

    ``own``: the command's fields of its own, ``(name, type, default)`` (paths, ``overwrite``); then, for each
    ``(cls, names)`` of ``parts``, the settings ``names`` of ``cls`` (default: all), each of its type or None, with
    the command's default from ``defaults`` (absent: None, not given). A command's parser declares the same names
    (``add_flags`` with ``job_defaults``), so ``cls(**vars(parsed))`` is its job; the pipeline builds the same job
    from its config. Not frozen: a stage resolves defaults that depend on other settings (the device, the data) in
    place, before any work. ``module``: where the class is bound to ``name`` (default: the caller's module), so that
    its instances pickle (to a worker process)."""
    defaults = defaults or {}
    fields: list[tuple] = [(n, kind, dataclasses.field(default=default)) for n, kind, default in own]
    seen = {n for n, _, _ in own}
    for cls, names in parts:
        kinds = field_types(cls)
        for setting_name in names or setting_names(cls):
            if setting_name in seen:
                raise ValueError(f"{name}: {setting_name} is given twice")
            seen.add(setting_name)
            kind = value_type(kinds[setting_name]) | None
            fields.append((setting_name, kind, dataclasses.field(default=defaults.get(setting_name))))
    unknown = set(defaults) - seen
    if unknown:
        raise ValueError(f"{name}: defaults for no field: {', '.join(sorted(unknown))}")
    job = dataclasses.make_dataclass(name, fields)
    job.__module__ = module or sys._getframe(1).f_globals["__name__"]
    job.__doc__ = doc or f"What one run of a command takes (``utils.settings.job_class``): {', '.join(sorted(seen))}."
    return job


def job_defaults(job: type) -> dict[str, Any]:
    """The fields of ``job`` (a ``job_class``) with a default other than None: the parsed defaults of their flags
    (``add_flags``' ``defaults``; None is a flag not given)."""
    return {f.name: f.default for f in dataclasses.fields(job) if f.default is not None}


def with_values(job: Any, values: Mapping[str, Any], what: str) -> Any:
    """A copy of ``job`` with ``values`` (by setting name) over it; a name that is not one of its settings is
    refused in one line (``what`` names the stage)."""
    known = {f.name for f in dataclasses.fields(job)}
    unknown = [key for key in values if key not in known]
    if unknown:
        raise HarnessError(f"{', '.join(unknown)}: not a setting of {what}")
    return dataclasses.replace(job, **{k: list(v) if isinstance(v, tuple) else v for k, v in values.items()})
