"""The venues a config may name (`exchange.venue`); a new venue adds its `config.Venue` here."""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

from bots.venues.base import Venue
from bots.venues.grvt.config import GRVT

__all__ = ["DEFAULT_VENUE", "VENUES"]

VENUES: Mapping[str, Venue] = MappingProxyType({GRVT.name: GRVT})
DEFAULT_VENUE = GRVT.name  # what fleet files and stored config versions written before `venue` mean
