"""Render the Markdown configuration reference from the models themselves.

docs/configuration.md is generated, and a test compares it with a fresh render, so the documented
fields, defaults and bounds cannot drift from the code.
"""

from __future__ import annotations

import inspect
import types
from collections import deque
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path, PurePath
from typing import Annotated, Any, Literal, Union, get_args, get_origin

import annotated_types as at
from pydantic import BaseModel, SecretStr
from pydantic.fields import FieldInfo

from bots.errors import ConfigError
from settings.fleet import FleetSettings, format_value

__all__ = [
    "END_MARKER",
    "START_MARKER",
    "extract_section",
    "render_reference",
    "replace_section",
    "write_reference",
]

START_MARKER = "<!-- config-reference:start -->"
END_MARKER = "<!-- config-reference:end -->"

_INTRO = """\
Generated from `settings/` by `mmfleet config reference --write docs/configuration.md`; do not edit by
hand.

Sources, highest precedence first: keyword arguments in code, environment variables, a `.env` file in
the current directory, then the YAML fleet file. An environment variable is `MMFLEET_` plus the key path
in capitals with `__` between levels, e.g. `MMFLEET_DEFAULTS__STRATEGY__GAMMA=2` or
`MMFLEET_DATA_DIR=/srv/mmfleet`. Each entry of `bots` is deep-merged over `defaults` before validation.
Units are in the names: `_pct` is a fraction (0.005 = 0.5%), `_s` seconds, `_usd` US dollars."""

_TYPE_NAMES: dict[Any, str] = {
    str: "str",
    int: "int",
    float: "float",
    bool: "bool",
    Decimal: "decimal",
    Path: "path",
    SecretStr: "secret str",
    type(None): "null",
}


def _anchor(model: type[BaseModel]) -> str:
    return model.__name__.lower()


def _is_model(tp: Any) -> bool:
    return isinstance(tp, type) and issubclass(tp, BaseModel)


def _type_name(tp: Any) -> str:
    """A reader's name for a field type; models link to their section."""
    origin = get_origin(tp)
    args = get_args(tp)
    if origin is Annotated:
        return _type_name(args[0])
    if origin is Literal:
        return " \\| ".join(f"`{arg}`" for arg in args)
    if origin in (Union, types.UnionType):
        return " \\| ".join(_type_name(arg) for arg in args)
    if origin in (list, tuple):
        return f"list of {_type_name(args[0])}" if args else "list"
    if origin is dict:
        return f"map of {_type_name(args[0])} to {_type_name(args[1])}"
    if _is_model(tp):
        return f"[{tp.__name__}](#{_anchor(tp)})"
    return _TYPE_NAMES.get(tp, getattr(tp, "__name__", str(tp)))


def _number(value: Any) -> str:
    if isinstance(value, float) and value.is_integer() and abs(value) < 1e16:
        return str(int(value))
    return format_value(value)


def _constraints(field: FieldInfo) -> list[Any]:
    """Field metadata plus constraints inside an `Annotated` member of an optional type."""
    found = list(field.metadata)
    for arg in get_args(field.annotation):
        if get_origin(arg) is Annotated:
            for extra in get_args(arg)[1:]:
                found.extend(extra.metadata if isinstance(extra, FieldInfo) else [extra])
    return found


def _bounds(field: FieldInfo) -> str:
    parts: list[str] = []
    for item in _constraints(field):
        if isinstance(item, at.Gt):
            parts.append(f"> {_number(item.gt)}")
        elif isinstance(item, at.Ge):
            parts.append(f">= {_number(item.ge)}")
        elif isinstance(item, at.Lt):
            parts.append(f"< {_number(item.lt)}")
        elif isinstance(item, at.Le):
            parts.append(f"<= {_number(item.le)}")
        elif isinstance(item, at.MinLen):
            parts.append(f"length >= {item.min_length}")
        elif isinstance(item, at.MaxLen):
            parts.append(f"length <= {item.max_length}")
        elif getattr(item, "pattern", None):
            parts.append(f"matches `{item.pattern}`")
    return ", ".join(parts)


def _plain(value: Any) -> Any:
    if isinstance(value, BaseModel):
        return {key: _plain(item) for key, item in value}
    if isinstance(value, dict):
        return {key: _plain(item) for key, item in value.items()}
    return value


def _default(field: FieldInfo) -> str:
    if field.is_required():
        return "required"
    if field.default_factory is not None:
        if _is_model(field.annotation):
            return "its defaults"
        value = field.default_factory()  # type: ignore[call-arg]
    else:
        value = field.default
    if isinstance(value, str | PurePath):
        return f"`{value}`" if str(value) else '`""`'
    return f"`{format_value(_plain(value))}`"


def _cell(text: str) -> str:
    return " ".join(text.split()).replace("|", "\\|")


def _nested_models(tp: Any, path: str) -> Iterator[tuple[type[BaseModel], str]]:
    """Models reachable through a field type, with the YAML key path at which they appear."""
    if _is_model(tp):
        yield tp, path
        return
    origin = get_origin(tp)
    args = get_args(tp)
    if origin is dict and args:
        yield from _nested_models(args[1], f"{path}.<name>")
    elif origin in (list, tuple) and args:
        yield from _nested_models(args[0], f"{path}[]")
    else:
        for arg in args:
            yield from _nested_models(arg, path)


def _models_in_order() -> list[tuple[type[BaseModel], list[str]]]:
    """Every model reachable from `FleetSettings`, breadth first, with all its key paths."""
    paths: dict[type[BaseModel], list[str]] = {FleetSettings: []}
    queue: deque[tuple[type[BaseModel], str]] = deque([(FleetSettings, "")])
    while queue:
        model, prefix = queue.popleft()
        for name, field in model.model_fields.items():
            for nested, path in _nested_models(field.annotation, f"{prefix}.{name}" if prefix else name):
                paths.setdefault(nested, []).append(path)
                if path.count(".") < 12:  # the models form a tree; this only guards against a cycle
                    queue.append((nested, path))
    return list(paths.items())


def _summary(tp: Any) -> str:
    """A section field's description: the first sentence of its model's docstring."""
    if not _is_model(tp):
        return ""
    return " ".join(inspect.cleandoc(tp.__doc__ or "").split("\n\n")[0].split())


def _section(model: type[BaseModel], paths: list[str]) -> list[str]:
    lines = [f"### {model.__name__}", "", _summary(model)]
    if paths:
        lines += ["", "Keys: " + ", ".join(f"`{path}`" for path in paths)]
    lines += ["", "| field | type | default | bounds | description |", "| --- | --- | --- | --- | --- |"]
    for name, field in model.model_fields.items():
        row = [
            f"`{name}`",
            _type_name(field.annotation),
            _cell(_default(field)),
            _bounds(field),
            _cell(field.description or _summary(field.annotation)),
        ]
        lines.append("| " + " | ".join(row) + " |")
    return lines


def render_reference() -> str:
    """The whole reference as Markdown (no trailing newline), one section per model."""
    lines = [_INTRO]
    for model, paths in _models_in_order():
        lines += ["", *_section(model, paths)]
    return "\n".join(lines)


def extract_section(document: str) -> str | None:
    """The text between the reference markers, without surrounding blank lines; None without markers."""
    start = document.find(START_MARKER)
    end = document.find(END_MARKER)
    if start < 0 or end < start:
        return None
    return document[start + len(START_MARKER) : end].strip("\n")


def replace_section(document: str, reference: str) -> str:
    """`document` with the text between the markers replaced by `reference`."""
    start = document.find(START_MARKER)
    end = document.find(END_MARKER)
    if start < 0 or end < start:
        raise ConfigError(f"reference markers {START_MARKER} ... {END_MARKER} not found")
    return f"{document[: start + len(START_MARKER)]}\n{reference}\n{document[end:]}"


def write_reference(path: Path) -> bool:
    """Refresh the reference section of `path` in place; True when the file changed."""
    try:
        document = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc.strerror or type(exc).__name__}") from None
    updated = replace_section(document, render_reference())
    if updated == document:
        return False
    path.write_text(updated, encoding="utf-8")
    return True
