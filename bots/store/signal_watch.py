"""Sleeping until the SQLite control signal file changes, so that a store thread need not wake up to look.

Each wake-up of a mostly idle thread costs more CPU than what it then does (the kernel's wake-up path,
cold caches): a store thread that looked at the signal file four times a second spent more on that
than on its commits. Linux inotify (through libc: the standard library has no binding) makes the file
readable as a descriptor the thread sleeps on with the rest (`select()`). Where inotify is missing,
`SignalWatch.open` answers None and the thread looks at the file every tick instead.
"""

from __future__ import annotations

import ctypes
import os
import struct
from pathlib import Path
from typing import Any

__all__ = ["SignalWatch"]

_IN_MODIFY = 0x002
_IN_ATTRIB = 0x004
_IN_MOVE_SELF = 0x800
_IN_DELETE_SELF = 0x400
_IN_IGNORED = 0x8000  # the watch is gone (the file was deleted or replaced): watch the new one
_EVENTS = _IN_MODIFY | _IN_ATTRIB | _IN_MOVE_SELF | _IN_DELETE_SELF
_HEADER = struct.Struct("iIII")  # struct inotify_event: wd, mask, cookie, len (then len bytes of name)


class SignalWatch:
    """An inotify watch on one file; `fileno()` turns readable when the file changes."""

    def __init__(self, fd: int, add_watch: Any, path: Path) -> None:
        self._fd = fd
        self._add_watch = add_watch
        self._path = path
        self._watch()

    @classmethod
    def open(cls, path: Path) -> SignalWatch | None:
        """A watch on `path` (created empty if missing), or None where inotify is not available."""
        try:
            libc = ctypes.CDLL(None, use_errno=True)  # this process's symbols: libc's among them
            init, add_watch = libc.inotify_init1, libc.inotify_add_watch
        except (OSError, AttributeError):
            return None
        add_watch.argtypes = (ctypes.c_int, ctypes.c_char_p, ctypes.c_uint32)
        fd = init(os.O_NONBLOCK | os.O_CLOEXEC)
        if fd < 0:
            return None
        try:
            return cls(fd, add_watch, path)
        except OSError:
            os.close(fd)
            return None

    def fileno(self) -> int:
        return self._fd

    def changed(self) -> bool:
        """Whether the file changed since the last call (reads what is queued, without waiting)."""
        changed = gone = False
        while True:
            try:
                data = os.read(self._fd, 64 * 1024)
            except BlockingIOError:
                break
            offset = 0
            while offset < len(data):
                _, mask, _, name_len = _HEADER.unpack_from(data, offset)
                offset += _HEADER.size + name_len
                changed = True
                gone = gone or bool(mask & _IN_IGNORED)
        if gone:
            self._watch()
        return changed

    def close(self) -> None:
        os.close(self._fd)

    def _watch(self) -> None:
        self._path.touch(exist_ok=True)
        if self._add_watch(self._fd, os.fsencode(self._path), _EVENTS) < 0:
            error = ctypes.get_errno()
            raise OSError(error, os.strerror(error), str(self._path))
