"""Session-wide guard: never test an extension built from an older source (`make native` rebuilds)."""

from __future__ import annotations

import pytest

from bots import native


def pytest_configure(config: pytest.Config) -> None:
    if stale := native.stale():
        pytest.exit(f"compiled modules older than their source: {', '.join(stale)}; run `make native`", 2)
