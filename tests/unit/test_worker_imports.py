"""A worker process stays lean: it never imports pandas, scikit-learn or Prefect (RSS, start time)."""

from __future__ import annotations

import subprocess
import sys


def test_the_worker_entry_point_imports_no_heavy_library() -> None:
    code = (
        "import sys, bots.cli, bots.runner, bots.worker, bots.exchange.factory\n"
        "print(sorted(m for m in ('pandas', 'sklearn', 'prefect', 'scipy') if m in sys.modules))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120
    )
    assert result.stdout.strip() == "[]"
