"""Grafana dashboards as code: writes dashboards/*.json from the Python next to it.

    python -m dashboards.build           # (from the repository root) writes the JSON files
    python -m dashboards.build --check   # exits 1 when a committed file differs from a fresh build

panels.py is the small library (panels, a grid layout, the dashboard frame); fleet.py and bot.py each
build one dashboard, top to bottom. Every query uses only the metrics of bots/metrics.py and the
recording rules of infra/prometheus/rules/recording.yml; tests/integration/test_observability.py runs
every query against a real Prometheus scraping a sim fleet. Grafana loads the JSON through
infra/grafana/provisioning/.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Final

from dashboards.bot import bot_dashboard
from dashboards.fleet import fleet_overview
from dashboards.panels import Json

__all__ = ["DASHBOARDS", "build_all", "render"]

HERE: Final = Path(__file__).resolve().parent
DASHBOARDS: Final[dict[str, Callable[[], Json]]] = {
    "fleet-overview.json": fleet_overview,
    "bot.json": bot_dashboard,
}


def render(board: Json) -> str:
    """The committed form: two-space indent, keys in build order, a final newline."""
    return json.dumps(board, indent=2, ensure_ascii=False) + "\n"


def build_all() -> dict[str, str]:
    """File name -> JSON text of every dashboard."""
    return {name: render(build()) for name, build in DASHBOARDS.items()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--check", action="store_true", help="fail when a committed file is out of date")
    parser.add_argument("--out", type=Path, default=HERE, help="directory to write (default: dashboards/)")
    args = parser.parse_args(argv)
    stale = []
    for name, text in build_all().items():
        path = args.out / name
        if args.check:
            if not path.exists() or path.read_text() != text:
                stale.append(name)
        else:
            path.write_text(text)
            print(f"wrote {path}")
    if stale:
        print(f"out of date: {', '.join(stale)}; run `python dashboards/build.py`", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
