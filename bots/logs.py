"""Logging: JSON lines in `data/logs/<name>.log` (rotated) for machines, short lines on the console.

Only message strings and explicit `extra={"fields": {...}}` are written; settings objects are never
logged whole, and any `SecretStr` would render masked anyway.
"""

from __future__ import annotations

import json
import logging
import logging.handlers
import sys
from pathlib import Path

__all__ = ["JsonFormatter", "setup_logging"]

_MAX_BYTES = 10 * 1024 * 1024
_BACKUPS = 5


class JsonFormatter(logging.Formatter):
    """One JSON object per line: ts, level, logger, message, plus `fields` passed via `extra`."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, object] = {
            "ts": record.created,
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        fields = getattr(record, "fields", None)
        if isinstance(fields, dict):
            entry.update(fields)
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str)


def setup_logging(name: str, data_dir: Path, level: str = "INFO", console: bool = True) -> Path:
    """Configure the root logger for one process; returns the JSON log file path."""
    log_dir = data_dir / "logs"
    log_dir.mkdir(parents=True, exist_ok=True)
    path = log_dir / f"{name}.log"
    root = logging.getLogger()
    root.handlers.clear()
    root.setLevel(level)
    file_handler = logging.handlers.RotatingFileHandler(path, maxBytes=_MAX_BYTES, backupCount=_BACKUPS)
    file_handler.setFormatter(JsonFormatter())
    root.addHandler(file_handler)
    if console:
        stream = logging.StreamHandler(sys.stderr)
        stream.setFormatter(logging.Formatter(f"%(asctime)s {name} %(levelname)s %(message)s", "%H:%M:%S"))
        root.addHandler(stream)
    for noisy in ("aiohttp.access", "asyncio"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    return path
