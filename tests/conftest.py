"""Session-wide guards: never test an extension built from an older source (`make native` rebuilds);
no terminal size that nobody chose in the environment CLI subprocesses inherit."""

from __future__ import annotations

import contextlib
import os

import pytest

from bots import native


def pytest_configure(config: pytest.Config) -> None:
    if stale := native.stale():
        pytest.exit(f"compiled modules older than their source: {', '.join(stale)}; run `make native`", 2)
    # GNU readline, once imported (pytest's debugger support does), writes COLUMNS=80 and LINES into
    # the C environment, not os.environ: every `mmfleet` subprocess would see a pretend 80-column
    # terminal. Import it now, then drop what it wrote unless the person running the tests set it.
    with contextlib.suppress(ImportError):
        import readline  # noqa: F401, PLC0415
    for name in ("COLUMNS", "LINES"):
        if name not in os.environ:
            os.unsetenv(name)
