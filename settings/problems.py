"""Error lines for a fleet file: `<field path>: <message> (got <bad value>)`, one per problem.

Pydantic echoes the input it rejects; here the value shown is short, and never a secret: nothing
under `database_url` or a `credentials` section, nothing of an unknown key (a pasted credential
lands there), no password of a URL, and odd keys quoted so that a line stays one line.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from decimal import Decimal
from pathlib import PurePath
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from pydantic import SecretStr, ValidationError

__all__ = ["MASK", "format_loc", "format_value", "validation_problems"]

MASK = "**********"

# Inputs under these keys are never shown: the database URL holds a password, and a credentials section
# is where a value gets pasted by mistake instead of a variable's or a file's name.
_SECRET_FIELDS = frozenset({"database_url", "credentials"})
_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*")
_MAX_GOT = 80


_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,63}")


def _key(key: object) -> str:
    """A mapping key for an error line: as written when it is a plain name, else quoted and cut short, so
    that a key with a newline or a megabyte of text still gives one short line."""
    text = str(key)
    return text if _KEY.fullmatch(text) else repr(text[:40] + ("..." if len(text) > 40 else ""))


def format_loc(loc: Sequence[int | str]) -> str:
    """('bots', 0, 'strategy', 'gamma') -> 'bots[0].strategy.gamma'; an odd key -> `bots[0]['a b']`."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif not _KEY.fullmatch(part):
            out += f"[{_key(part)}]"
        else:
            out += f".{part}" if out else part
    return out


def format_value(value: Any) -> str:
    """A scalar as it would be written in the fleet file; floats exactly (shortest round-trip repr)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, SecretStr):
        return repr(MASK)
    if isinstance(value, Decimal):
        return format(value, "f")
    if isinstance(value, PurePath):
        return repr(str(value))
    if isinstance(value, str):
        return repr(value)
    if isinstance(value, list | tuple):
        return "[" + ", ".join(format_value(item) for item in value) + "]"
    if isinstance(value, Mapping):
        return "{" + ", ".join(f"{_key(key)}: {format_value(item)}" for key, item in value.items()) + "}"
    return repr(value)


def _lookup(mapping: Mapping[str, Any], dotted: str) -> tuple[bool, Any]:
    current: Any = mapping
    for part in dotted.split("."):
        if not isinstance(current, Mapping) or part not in current:
            return False, None
        current = current[part]
    return True, current


def _mask_url_password(text: str) -> str:
    """`scheme://user:secret@host/...` -> `scheme://user:**********@host/...` (other text unchanged)."""
    try:
        parts = urlsplit(text)
    except ValueError:
        return MASK
    if parts.password is None:
        return text
    host = parts.netloc.rsplit("@", 1)[1]
    return urlunsplit(parts._replace(netloc=f"{parts.username}:{MASK}@{host}"))


def _describe_input(error: Mapping[str, Any]) -> str:
    """The offending value for an error line: short, and never a secret."""
    if error["type"] == "missing":
        return "nothing"
    if error["type"] == "extra_forbidden":  # an unknown key: its value could be anything, a key too
        return "a value not shown"
    loc = error["loc"]
    value = error.get("input")
    if any(part in _SECRET_FIELDS for part in loc) or isinstance(value, SecretStr):
        return repr(MASK)
    if isinstance(value, str) and "://" in value:
        value = _mask_url_password(value)
    if isinstance(value, Mapping):
        # A model-level rule ("a must be below b"): show the fields its message names.
        shown = []
        for name in dict.fromkeys(_IDENTIFIER.findall(error["msg"])):
            found, item = _lookup(value, name)
            if found and not isinstance(item, Mapping):
                shown.append(f"{name}={format_value(item)}")
        if not shown:
            shown = [f"{key}={format_value(value[key])}" for key in ("name", "symbol") if key in value]
        if shown:
            return ", ".join(shown)
        return "a mapping with keys " + ", ".join(_key(key) for key in value) if value else "an empty mapping"
    text = format_value(value)
    if len(text) <= _MAX_GOT:
        return text
    if isinstance(value, list | tuple):
        return f"a list of {len(value)} items"
    return text[: _MAX_GOT - 3] + "..."


def validation_problems(exc: ValidationError) -> list[str]:
    """One line per error: `<field path>: <message> (got <bad value>)`, duplicates dropped."""
    lines: list[str] = []
    for error in exc.errors(include_url=False):
        path = format_loc(error["loc"]) or "fleet"
        message = error["msg"]
        if error["type"] == "value_error":
            message = message.removeprefix("Value error, ")
        lines.append(f"{path}: {message} (got {_describe_input(error)})")
    return list(dict.fromkeys(lines))
