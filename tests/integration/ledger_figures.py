"""Every money figure a ledger holds, read through the Ledger's own API: what a schema migration must
leave unchanged. `tests/fixtures/ledger_baseline.json` is this function's output on
`ledger_baseline.db` as the code before Alembic read it (the baseline schema, written by real bots)."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

from bots.store import Ledger
from flows.pnl import fleet_day, report_rows, summarise_bot

BOT = "BTC_USDT_Perp"
STARTING_BALANCE = Decimal(10000)
STATE_KEYS = ("trading_enabled", "fill_cursor", "peak_equity")


def ledger_figures(ledger: Ledger) -> dict[str, Any]:
    """Fills, the replayed portfolio, position snapshots, equity, peak, the daily report's rows, the
    control plane and alerts, as text (every digit)."""
    fills = ledger.fills(BOT)
    portfolio = ledger.restore_portfolio(BOT, BOT, STARTING_BALANCE)
    equity = ledger.equity_history(BOT)
    day = dt.datetime.fromtimestamp(fills[0].ts_ns / 1e9, dt.UTC).date()
    start_ns = int(dt.datetime(day.year, day.month, day.day, tzinfo=dt.UTC).timestamp()) * 10**9
    mids = [(r.ts_ns, mid) for r in ledger.features(BOT, bot=BOT) if (mid := r.values.get("mid")) is not None]
    bot_day = summarise_bot(BOT, BOT, fills, equity, mids, start_ns, start_ns + 86_400 * 10**9)
    commands = ledger.recent_commands()
    applied = ledger.applied_config(BOT)
    return {
        "fills": [
            [str(v) for v in (f.fill_id, f.client_order_id, f.side, f.price, f.size, f.fee, f.ts_ns)]
            for f in fills
        ],
        "portfolio": {
            name: str(getattr(portfolio, name))
            for name in ("position", "cash", "realized_pnl", "grid_profit", "fees", "volume")
        },
        "latest_position_snapshot": {
            k: str(v) for k, v in (ledger.latest_position_snapshot(BOT) or {}).items()
        },
        "equity": [[p.ts_ns, str(p.equity)] for p in equity],
        "peak_equity": str(ledger.peak_equity(BOT)),
        # the report's markout columns come from fill_markouts (from the `markouts` revision on), not
        # read here: the figures of the baseline's columns, every digit
        "report": [
            {name: value for name, value in row.items() if not name.startswith("markout_")}
            for row in report_rows(day, [bot_day, fleet_day([bot_day])], exact=True)
        ],
        "orders": [
            [o.client_order_id, str(o.status), str(o.price), str(o.size), str(o.filled_size)]
            for o in ledger.latest_orders(BOT)
        ],
        "commands": [[c.id, c.command, c.author, c.status, c.outcome] for c in commands],
        "config": applied.config if applied else None,
        "alerts": [[a.fingerprint, a.status, a.command_id] for a in ledger.alerts()],
        "state": {
            key: ledger.get_state(BOT, key) for key in ("trading_enabled", "fill_cursor", "peak_equity")
        },
    }
