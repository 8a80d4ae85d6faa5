"""What the settings know of a venue, as data: its environments, its symbol rule and the names of its
credentials. Free of any SDK, so validating a config loads no venue client."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

__all__ = ["Venue"]


@dataclass(frozen=True, slots=True)
class Venue:
    """One venue a bot can trade on (`exchange.venue`), in live or paper mode."""

    name: str  # the `exchange.venue` value
    label: str  # in messages
    environments: tuple[str, ...]  # the `exchange.env` values
    default_environment: str
    symbol_pattern: str  # a full match is one of the venue's instrument names
    symbol_example: str
    credential_env: Mapping[str, str]  # credential -> the environment variable read when not configured

    def is_symbol(self, symbol: str) -> bool:
        return re.fullmatch(self.symbol_pattern, symbol) is not None
