"""The worker's payload-free events: what its producers put in the inbox besides public trades and
order states. Each is queued at most once at a time (a book event means "decide on the newest book")."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["BOOK", "COMMITTED", "CONTROL", "FILLS", "STOP", "TIMER", "Event"]


@dataclass(frozen=True, slots=True)
class Event:
    """A queued event without payload (the newest book, the timer, a control check)."""

    kind: str


BOOK = Event("book")
TIMER = Event("timer")
CONTROL = Event("control")
FILLS = Event("fills")  # the exchange has new fills for us (a notice on its private stream)
COMMITTED = Event("committed")  # the store thread confirmed a batch of fills
STOP = Event("stop")  # wakes an idle consumer at shutdown
