"""A worker process stays lean (RSS, start time): it never imports pandas, scikit-learn or Prefect, and a
sim bot neither pyarrow (recordings), aiohttp (live venue, alert receiver) nor Alembic (an upgrade)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

_HEAVY = ("pandas", "sklearn", "prefect", "scipy", "pyarrow", "aiohttp", "alembic", "mako", "pygments")


def _loaded(code: str) -> str:
    """What of `_HEAVY` a fresh interpreter has imported after running `code`."""
    code += f"\nimport sys; print(sorted(m for m in {_HEAVY!r} if m in sys.modules))"
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120
    )
    return result.stdout.strip().splitlines()[-1]


def test_the_worker_entry_point_imports_no_heavy_library() -> None:
    assert _loaded("import bots.cli, bots.runner, bots.worker, bots.exchange.factory") == "[]"


def test_opening_a_ledger_at_the_newest_revision_imports_no_alembic(tmp_path: Path) -> None:
    path = str(tmp_path / "ledger.db")
    open_ledger = f"import bots.cli; from bots.store import Ledger; Ledger({path!r}).close()"
    assert "alembic" in _loaded(open_ledger)  # a new ledger: Alembic builds it
    assert _loaded(open_ledger) == "[]"  # what every later bot opens
