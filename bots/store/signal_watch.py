"""Sleeping until the SQLite control signal file changes, so that a store thread need not wake up to look.

Each wake-up of a mostly idle thread costs more CPU than what it then does (the kernel's wake-up path,
cold caches): a store thread that looked at the signal file four times a second spent more on that
than on its commits. Linux inotify (through `inotify_simple`) makes the file readable as a descriptor
the thread sleeps on with the rest (`select()`). Where inotify is missing or its per-user limit of
instances is reached, `SignalWatch.open` answers None and the thread looks at the file every tick.
"""

from __future__ import annotations

import os
from pathlib import Path

from inotify_simple import INotify, flags

__all__ = ["SignalWatch"]

_EVENTS = flags.MODIFY | flags.ATTRIB | flags.MOVE_SELF | flags.DELETE_SELF


class SignalWatch:
    """An inotify watch on one file; `fileno()` turns readable when the file changes."""

    def __init__(self, inotify: INotify, path: Path) -> None:
        self._inotify = inotify
        self._path = path
        self._watch()

    @classmethod
    def open(cls, path: Path) -> SignalWatch | None:
        """A watch on `path` (created empty if missing), or None where inotify is not available."""
        try:
            inotify = INotify(nonblocking=True)
        except OSError:  # no inotify here, or the per-user limit of instances is reached
            return None
        try:
            return cls(inotify, path)
        except OSError:
            inotify.close()
            return None

    def fileno(self) -> int:
        return int(self._inotify.fileno())

    def changed(self) -> bool:
        """Whether the file changed since the last call (reads what is queued, without waiting)."""
        events = self._inotify.read(timeout=0)
        if any(event.mask & flags.IGNORED for event in events):  # the file was replaced: watch the new one
            self._watch()
        return bool(events)

    def close(self) -> None:
        self._inotify.close()

    def _watch(self) -> None:
        self._path.touch(exist_ok=True)
        self._inotify.add_watch(os.fsencode(self._path), _EVENTS)
