"""Config dataclasses from YAML mappings: unknown keys, missing fields and wrong types as one error line.

Config classes declare their fields once, TRL-style, with ``metadata={"help": ...}``; this module
reads a mapping into them and says exactly what is wrong and where::

    @dataclass(frozen=True)
    class Eval:
        suites: dict[str, Any] = field(default_factory=dict, metadata={"help": "suite -> options"})
        batch_size: int | None = field(default=None, metadata={"help": "generation batch size"})

    from_mapping(Eval, {"suites": {}, "batch_sise": 8}, "demo.yaml: eval")
    # TunegateError: demo.yaml: eval: unknown field 'batch_sise' (did you mean 'batch_size'?)
    from_mapping(Eval, {"batch_size": "8"}, "demo.yaml: eval")
    # TunegateError: demo.yaml: eval: field 'batch_size' must be int or null, got str ('8')

Nested config dataclasses (and tuples of them) are read recursively, each error naming its path
(``demo.yaml: stages[1].args``). What a type cannot say (a value from a registry, a cross-field rule)
stays with the class, in its ``__post_init__``: a TunegateError raised there is prefixed with the same path.
"""

from __future__ import annotations

import dataclasses
import difflib
import types
import typing
from typing import Any, Mapping, Sequence

from tunegate.core.errors import TunegateError


def check_keys(data: Mapping[str, Any], allowed: Sequence[str] | set[str] | frozenset[str], where: str, *,
               what: str = "field", listed: bool = False) -> None:
    """Every key of ``data`` is in ``allowed``; otherwise one error with a did-you-mean hint (and, with
    ``listed``, every allowed key, in the order given: a short list a user picks from, such as a suite's options)."""
    names = list(allowed) if listed else sorted(allowed)
    for key in data:
        if key not in allowed:
            close = difflib.get_close_matches(str(key), names, n=1)
            mean = f"did you mean '{close[0]}'?" if close else ""
            known = f"{'known' if listed else 'allowed'}: {', '.join(names)}" if listed or not close else ""
            raise TunegateError(f"{where}: unknown {what} '{key}' ({'; '.join(p for p in (mean, known) if p)})")


def help_of(cls: type, name: str) -> str:
    """The ``help`` metadata of one field of a config dataclass."""
    return next(f.metadata.get("help", "") for f in dataclasses.fields(cls) if f.name == name)


def from_mapping(cls: type, data: Any, where: str, **extra: Any) -> Any:
    """An instance of the config dataclass ``cls`` read from ``data`` (a mapping), checked field by field.

    ``extra`` fields are set by the caller (e.g. the file a config came from), never read from ``data``.
    """
    if not isinstance(data, Mapping):
        raise TunegateError(f"{where}: expected a mapping, got {type(data).__name__}")
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init and f.name not in extra}
    check_keys(data, set(fields), where)
    hints = typing.get_type_hints(cls)
    values = {}
    for name, f in fields.items():
        if name not in data:
            if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
                raise TunegateError(f"{where}: missing field '{name}' ({f.metadata.get('help', 'required')})")
            continue
        values[name] = _convert(data[name], hints[name], where, name)
    try:
        return cls(**values, **extra)
    except TunegateError as exc:  # a cross-field rule of ``__post_init__``: name where the mapping came from
        if str(exc).startswith(where):
            raise
        raise type(exc)(f"{where}: {exc}") from None


def _convert(value: Any, hint: Any, where: str, name: str) -> Any:
    """``value`` checked against the annotation ``hint`` (and converted: lists to tuples, nested configs)."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if hint is Any:
        return value
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        for option in args:
            if option is not type(None) and _matches(value, option):
                return _convert(value, option, where, name)
        raise _type_error(where, name, hint, value)
    if dataclasses.is_dataclass(hint):
        return from_mapping(hint, value, f"{where}: {name}")
    if origin is tuple or origin is list or hint in (tuple, list):
        if not isinstance(value, (list, tuple)):
            raise _type_error(where, name, hint, value)
        item = args[0] if args else Any
        out = [from_mapping(item, v, f"{where}: {name}[{i}]") if dataclasses.is_dataclass(item)
               else _convert(v, item, where, f"{name}[{i}]") for i, v in enumerate(value)]
        return tuple(out) if (origin or hint) is tuple else out
    if not _matches(value, hint):
        raise _type_error(where, name, hint, value)
    return float(value) if hint is float else value


def _matches(value: Any, hint: Any) -> bool:
    origin = typing.get_origin(hint) or hint
    if hint is Any:
        return True
    if dataclasses.is_dataclass(hint) or origin in (dict, Mapping, typing.Mapping):
        return isinstance(value, Mapping)
    if origin in (list, tuple):
        return isinstance(value, (list, tuple))
    if hint is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if isinstance(origin, type):
        return isinstance(value, origin)
    return True


def _describe(hint: Any) -> str:
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        names = [_describe(a) for a in args if a is not type(None)]
        return " or ".join(names) + (" or null" if type(None) in args else "")
    if dataclasses.is_dataclass(hint) or (origin or hint) in (dict, Mapping, typing.Mapping):
        return "a mapping"
    if (origin or hint) in (list, tuple):
        return "a list"
    return getattr(hint, "__name__", str(hint))


def _type_error(where: str, name: str, hint: Any, value: Any) -> TunegateError:
    return TunegateError(f"{where}: field '{name}' must be {_describe(hint)}, got {type(value).__name__} ({value!r})")
