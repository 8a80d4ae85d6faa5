"""Bounded JSON decoding for text written by someone else (store rows, model files).

`json.loads` alone accepts `NaN`, turns `1e400` into infinity, recurses once per nesting level (a
10,000-deep payload raises `RecursionError`) and reads any size. Here each of those is a
`ValueError` with a short reason, so a reader can refuse the document instead of crashing on it.
"""

from __future__ import annotations

import json
import math
import re
from typing import Any

__all__ = ["MAX_DEPTH", "decode_json", "decode_json_object", "describe_kind"]

MAX_DEPTH = 32  # the deepest config is 4 levels; 32 leaves room without letting recursion matter
_STRING = re.compile(r'"(?:[^"\\]|\\.)*"', re.DOTALL)
_BRACKET = re.compile(r"[\[\]{}]")


def _nesting(text: str) -> int:
    """The deepest bracket nesting of `text`, strings ignored; linear time, no recursion."""
    depth = deepest = 0
    for match in _BRACKET.finditer(_STRING.sub("", text)):
        if match.group() in "[{":
            depth += 1
            deepest = max(deepest, depth)
        else:
            depth -= 1
    return deepest


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"number {text[:20]} is out of range")
    return value


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


def describe_kind(value: Any) -> str:
    """'a list', 'a string', 'null'...: what a value is, never the value (it may be a secret)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    names = {dict: "an object", list: "a list", str: "a string", int: "an integer", float: "a number"}
    return names.get(type(value), f"a {type(value).__name__}")


def decode_json(raw: str | bytes, *, max_bytes: int, max_depth: int = MAX_DEPTH) -> Any:
    """`raw` decoded, or ValueError: too large, too deep, not UTF-8, not JSON, NaN or infinite numbers."""
    size = len(raw.encode() if isinstance(raw, str) else raw)
    if size > max_bytes:
        raise ValueError(f"{size} bytes, more than {max_bytes}")
    try:
        text = raw.decode("utf-8") if isinstance(raw, bytes) else raw
    except UnicodeDecodeError:
        raise ValueError("not UTF-8 text") from None
    depth = _nesting(text)
    if depth > max_depth:
        raise ValueError(f"nested {depth} deep, more than {max_depth}")
    try:
        return json.loads(text, parse_float=_finite_float, parse_constant=_no_constant)
    except json.JSONDecodeError as exc:
        raise ValueError(f"not JSON ({exc.msg} at character {exc.pos})") from None
    except RecursionError:  # pragma: no cover - the depth check above comes first
        raise ValueError("nested too deeply") from None


def decode_json_object(raw: str | bytes, *, max_bytes: int, max_depth: int = MAX_DEPTH) -> dict[str, Any]:
    """Like `decode_json`, and the top level must be an object."""
    value = decode_json(raw, max_bytes=max_bytes, max_depth=max_depth)
    if not isinstance(value, dict):
        raise ValueError(f"not a JSON object (got {describe_kind(value)})")
    return value
