"""Pickling for dataclasses in modules that mypyc compiles.

A compiled class pickles through setattr, which a frozen dataclass refuses, and cannot be rebuilt
without its constructor's arguments; backtest sweeps send fills, configs and results between processes.
`register` makes pickle rebuild such a class through its `__init__` from its fields, which works the
same whether the module runs compiled or not.
"""

from __future__ import annotations

import copyreg
import dataclasses
from typing import Any

__all__ = ["register"]


def _rebuild(cls: type[Any], fields: dict[str, Any]) -> Any:
    return cls(**fields)


def _reduce(obj: Any) -> tuple[Any, tuple[type[Any], dict[str, Any]]]:
    fields = {field.name: getattr(obj, field.name) for field in dataclasses.fields(obj) if field.init}
    return _rebuild, (type(obj), fields)


def register(*classes: type[Any]) -> None:
    """Pickle each dataclass in `classes` by its init fields."""
    for cls in classes:
        copyreg.pickle(cls, _reduce)
