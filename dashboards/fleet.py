"""The fleet overview: every bot's money, risk, fills, states and versions, with fleet totals."""

from __future__ import annotations

from dashboards.panels import (
    DASHED_THRESHOLDS,
    DRAWDOWN_CRITICAL,
    DRAWDOWN_WARNING,
    POSITION_NEAR_LIMIT,
    STATE_CODE,
    STATE_MAPPINGS,
    Json,
    Layout,
    dashboard,
    panel,
    series_colour,
    stat,
    state_timeline,
    table,
    target,
    thresholds,
    timeseries,
    value_mappings,
)

__all__ = ["fleet_overview"]


def fleet_overview() -> Json:
    layout = Layout()
    layout.row("Fleet totals")
    layout.add(
        stat(
            "Equity",
            [
                target("fleet:mmfleet_equity_usd:sum", "{{fleet}} {{mode}}"),
                target("fleet:mmfleet_equity_usd:sum_down", "{{fleet}} {{mode}} of it, bots down"),
            ],
            description="A bot that is down counts at its last known equity (its money is still"
            " there); 'of it, bots down' is that last known part.",
            unit="currencyUSD",
            decimals=2,
        ),
        4,
        4,
    )
    for title, expr, unit in (
        ("PnL (realized + unrealized)", "fleet:mmfleet_pnl_usd:sum", "currencyUSD"),
        ("Net position", "fleet:mmfleet_position_usd:sum", "currencyUSD"),
        ("Gross position", "fleet:mmfleet_position_usd:sum_abs", "currencyUSD"),
        ("Fills per minute", "fleet:mmfleet_fills_per_minute:rate1m", "none"),
    ):
        layout.add(stat(title, [target(expr, "{{fleet}} {{mode}}")], unit=unit, decimals=2), 4, 4)
    layout.add(
        stat(
            "Bots up and down",
            [
                target('sum by (fleet) (up{job="mmfleet-bots"})', "{{fleet}} up"),
                target("fleet:mmfleet_bots_down:count", "{{fleet}} down"),
            ],
            description="Bot workers Prometheus scrapes, and fails to scrape: the totals hold the last"
            " known PnL and positions of the bots down.",
            decimals=0,
        ),
        4,
        4,
    )

    layout.row("Equity and PnL")
    layout.add(
        timeseries(
            "Equity per bot and in total",
            [
                target("mmfleet_equity_usd", "{{bot}}"),
                target("fleet:mmfleet_equity_usd:sum", "total {{fleet}} {{mode}}"),
            ],
            unit="currencyUSD",
            overrides=[series_colour("^total .*", "white")],
        ),
        12,
        8,
    )
    layout.add(
        timeseries(
            "PnL per bot and in total",
            [
                target("mmfleet_realized_pnl_usd + mmfleet_unrealized_pnl_usd", "{{bot}}"),
                target("fleet:mmfleet_pnl_usd:sum", "total {{fleet}} {{mode}}"),
            ],
            description="Realized (average cost) plus unrealized PnL at mid.",
            unit="currencyUSD",
            overrides=[series_colour("^total .*", "white")],
        ),
        12,
        8,
    )
    layout.add(
        timeseries(
            "Drawdown from peak equity",
            [target("mmfleet_drawdown_ratio", "{{bot}}")],
            description=(
                f"Dashed lines: the alert thresholds, warning {DRAWDOWN_WARNING:.0%} and critical"
                f" {DRAWDOWN_CRITICAL:.0%} (the critical alert halts the bot)."
            ),
            unit="percentunit",
            steps=thresholds((DRAWDOWN_WARNING, "orange"), (DRAWDOWN_CRITICAL, "red")),
            custom=DASHED_THRESHOLDS,
        ),
        12,
        8,
    )
    layout.add(
        timeseries(
            "Realized, grid profit, maker rebates and funding",
            [
                target("sum by (bot) (mmfleet_realized_pnl_usd)", "{{bot}} realized"),
                target("sum by (bot) (mmfleet_grid_profit_usd)", "{{bot}} grid profit"),
                target("sum by (bot) (mmfleet_maker_rebate_usd_total)", "{{bot}} rebates"),
                target("sum by (bot) (mmfleet_funding_pnl_usd)", "{{bot}} funding"),
            ],
            unit="currencyUSD",
        ),
        12,
        8,
    )

    layout.row("Positions and limits")
    layout.add(
        timeseries(
            "Position vs limit",
            [
                target("mmfleet_position_usd", "{{bot}}"),
                target("mmfleet_max_position_usd", "{{bot}} limit"),
                target("-mmfleet_max_position_usd", "{{bot}} -limit"),
            ],
            description="Position marked at mid; dashed: +-risk.max_position_usd.",
            unit="currencyUSD",
            overrides=[
                {
                    "matcher": {"id": "byRegexp", "options": ".* -?limit$"},
                    "properties": [{"id": "custom.lineStyle", "value": {"fill": "dash", "dash": [10, 10]}}],
                }
            ],
        ),
        12,
        8,
    )
    layout.add(
        panel(
            "bargauge",
            "Position / limit",
            [target("abs(mmfleet_position_usd) / mmfleet_max_position_usd", "{{bot}}")],
            description=f"The near-limit alert fires at {POSITION_NEAR_LIMIT:.0%} held for 5 minutes.",
            unit="percentunit",
            limits=(0, 1),
            steps=thresholds((POSITION_NEAR_LIMIT, "red")),
            options={
                "orientation": "horizontal",
                "displayMode": "gradient",
                "reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False},
            },
        ),
        6,
        8,
    )
    layout.add(
        stat(
            "Circuit breaker",
            [target("mmfleet_circuit_breaker_tripped", "{{bot}}")],
            description="The max-loss breaker: tripped halts the bot until an operator starts it.",
            mappings=value_mappings({0: ("ok", "green"), 1: ("TRIPPED", "red")}),
            colour_mode="background",
        ),
        6,
        8,
    )

    layout.row("Fills and orders")
    layout.add(
        timeseries("Fills per minute", [target("bot:mmfleet_fills_per_minute:rate1m", "{{bot}}")]),
        8,
        8,
    )
    layout.add(
        timeseries(
            "Fill volume per minute",
            [target("rate(mmfleet_fill_volume_usd_total[$__rate_interval]) * 60", "{{bot}}")],
            unit="currencyUSD",
        ),
        8,
        8,
    )
    layout.add(
        timeseries("Open orders", [target("sum by (bot) (mmfleet_orders_open)", "{{bot}}")], decimals=0),
        8,
        8,
    )
    layout.add(
        timeseries(
            "Reject rate",
            [
                target(
                    "sum by (bot) (rate(mmfleet_orders_rejected_total[$__rate_interval]))"
                    " / (sum by (bot) (rate(mmfleet_orders_rejected_total[$__rate_interval]))"
                    " + sum by (bot) (rate(mmfleet_orders_placed_total[$__rate_interval])))",
                    "{{bot}}",
                )
            ],
            description="Rejected / (rejected + accepted) orders. The alert: above 10% over 5m.",
            unit="percentunit",
            steps=thresholds((0.1, "red")),
            custom=DASHED_THRESHOLDS,
        ),
        8,
        8,
    )
    layout.add(
        timeseries(
            "Rejects per minute by reason",
            [
                target(
                    "sum by (bot, reason) (rate(mmfleet_orders_rejected_total[$__rate_interval])) * 60",
                    "{{bot}} {{reason}}",
                )
            ],
        ),
        8,
        8,
    )
    layout.add(
        timeseries(
            "Exchange errors per minute",
            [
                target(
                    "sum by (bot, kind) (rate(mmfleet_exchange_errors_total[$__rate_interval])) * 60",
                    "{{bot}} {{kind}}",
                )
            ],
        ),
        8,
        8,
    )

    layout.row("Bot states and versions")
    layout.add(
        state_timeline(
            "Trading state", [target(STATE_CODE.format(sel=""), "{{bot}}")], mappings=STATE_MAPPINGS
        ),
        12,
        8,
    )
    layout.add(
        state_timeline(
            "Scrape up",
            [target('up{job="mmfleet-bots"}', "{{instance}}")],
            mappings=value_mappings({0: ("down", "red"), 1: ("up", "green")}),
        ),
        12,
        8,
    )
    layout.add(
        timeseries(
            "Market data age",
            [target("mmfleet_market_data_age_seconds", "{{bot}}")],
            description="Seconds since the last order book event; the stale alert fires above 30s.",
            unit="s",
            steps=thresholds((30, "red")),
            custom=DASHED_THRESHOLDS,
        ),
        8,
        8,
    )
    layout.add(
        table(
            "Config versions",
            [target("max by (fleet, bot, version) (mmfleet_config_info)", table=True)],
            columns=["fleet", "bot", "version"],
            description="The config version each bot applied (`file`: the fleet file as started).",
        ),
        8,
        8,
    )
    layout.add(
        table(
            "Model versions",
            [target("max by (fleet, bot, version) (mmfleet_model_info)", table=True)],
            columns=["fleet", "bot", "version"],
            description="The regime model version each bot loaded.",
        ),
        8,
        8,
    )
    return dashboard(
        "mmfleet-fleet",
        "mmfleet: fleet overview",
        "Every bot of every fleet: money, risk, fills, states and versions.",
        layout,
        [],
    )
