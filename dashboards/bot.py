"""One bot, chosen with the `bot` variable: quotes, model, regime, inventory, latency, orders, markouts."""

from __future__ import annotations

from dashboards.panels import (
    BOT,
    DRAWDOWN_CRITICAL,
    DRAWDOWN_WARNING,
    STATE_CODE,
    STATE_MAPPINGS,
    Json,
    Layout,
    dashboard,
    query_variable,
    series_colour,
    stat,
    state_timeline,
    table,
    target,
    thresholds,
    timeseries,
    value_mappings,
)

__all__ = ["bot_dashboard"]


def bot_dashboard() -> Json:
    layout = Layout()
    layout.row("$bot")
    for title, expr, unit in (
        ("Equity", f"mmfleet_equity_usd{{{BOT}}}", "currencyUSD"),
        ("PnL", f"mmfleet_realized_pnl_usd{{{BOT}}} + mmfleet_unrealized_pnl_usd{{{BOT}}}", "currencyUSD"),
        ("Position", f"mmfleet_position_usd{{{BOT}}}", "currencyUSD"),
    ):
        layout.add(stat(title, [target(expr, title)], unit=unit, decimals=2), 4, 4)
    layout.add(
        stat(
            "Drawdown",
            [target(f"mmfleet_drawdown_ratio{{{BOT}}}", "drawdown")],
            unit="percentunit",
            decimals=2,
            steps=thresholds((DRAWDOWN_WARNING, "orange"), (DRAWDOWN_CRITICAL, "red")),
        ),
        4,
        4,
    )
    layout.add(
        stat(
            "Trading state",
            [target(STATE_CODE.format(sel=f",{BOT}"), "state")],
            mappings=STATE_MAPPINGS,
            colour_mode="background",
        ),
        4,
        4,
    )
    layout.add(
        table(
            "Versions",
            [
                target(f"max by (version) (mmfleet_config_info{{{BOT}}})", table=True),
                target(f"max by (version) (mmfleet_model_info{{{BOT}}})", table=True),
            ],
            columns=["version"],
            description="First row: config version; second: regime model version.",
            options={"showHeader": False},
        )
        | {"transformations": [{"id": "merge", "options": {}}]},
        4,
        4,
    )

    layout.row("Quotes")
    layout.add(
        timeseries(
            "Mid, reservation price and quotes",
            [
                target(f"mmfleet_mid_price{{{BOT}}}", "mid"),
                target(f"mmfleet_reservation_price{{{BOT}}}", "reservation"),
                target(f"mmfleet_quote_price{{{BOT}}}", "{{side}} {{kind}} {{layer}}"),
            ],
            description="Quotes per side, kind (grid, boost) and layer; gaps where a level is not quoted.",
            unit="none",
            overrides=[
                series_colour("^mid$", "white"),
                series_colour("^reservation$", "yellow"),
                series_colour("^buy .*", "green"),
                series_colour("^sell .*", "red"),
            ],
        ),
        16,
        10,
    )
    layout.add(
        timeseries(
            "Spread",
            [
                target(f"mmfleet_optimal_spread{{{BOT}}}", "quoted spread"),
                target(f"mmfleet_model_spread{{{BOT}}}", "model spread"),
            ],
            description=(
                "The total spread quoted and the model's (A-S or GLFT) before the strategy.spread_pct"
                " floor, fraction of mid: where they differ, the floor decides."
            ),
            unit="percentunit",
        ),
        8,
        10,
    )

    layout.row("Model")
    layout.add(
        timeseries(
            "Sigma",
            [target(f"mmfleet_volatility{{{BOT}}}", "sigma")],
            description="Std of log returns per sqrt(second).",
        ),
        6,
        8,
    )
    layout.add(timeseries("Gamma", [target(f"mmfleet_gamma{{{BOT}}}", "gamma")]), 6, 8)
    layout.add(
        timeseries(
            "Kappa",
            [target(f"mmfleet_kappa{{{BOT}}}", "kappa")],
            description="In use: configured, fitted from recent trades (kappa: auto), blended by regime.",
        ),
        6,
        8,
    )
    layout.add(
        timeseries(
            "Regime probabilities",
            [target(f"mmfleet_regime_probability{{{BOT}}}", "{{regime}}")],
            description="The smoothed posterior the gamma/kappa blend uses; no series without a model.",
            unit="percentunit",
            limits=(0, 1),
            custom={"stacking": {"mode": "normal", "group": "A"}, "fillOpacity": 40},
            no_value="no model",
        ),
        6,
        8,
    )
    layout.add(
        stat(
            "Regime model",
            [target(f"mmfleet_regime_model_loaded{{{BOT}}}", "regime model")],
            description="Whether a usable regime model is loaded (ml.regime_enabled, not too old).",
            mappings=value_mappings({0: ("no model", "text"), 1: ("loaded", "green")}),
            colour_mode="background",
        ),
        6,
        5,
    )
    layout.add(
        state_timeline(
            "Spread floor",
            [target(f"mmfleet_spread_floor_binding{{{BOT}}}", "spread floor")],
            description="Orange while strategy.spread_pct, not the model, sets the quoted spread.",
            mappings=value_mappings({0: ("model decides", "green"), 1: ("floor binds", "orange")}),
        ),
        9,
        5,
    )
    layout.add(
        state_timeline(
            "Intensity fit",
            [target(f"mmfleet_intensity_fitted{{{BOT}}}", "kappa/A")],
            description="Blue while kappa/A come from the fit of recent trades (auto); else as configured.",
            mappings=value_mappings({0: ("configured or fallback", "text"), 1: ("fitted", "blue")}),
        ),
        9,
        5,
    )

    layout.row("Inventory and risk")
    layout.add(
        state_timeline(
            "Signal latch",
            [target(f"mmfleet_signal_latched{{{BOT}}}", "{{side}}")],
            description="A regime signal latched on this side until RSI confirms the reversal.",
            mappings=value_mappings({0: ("off", "transparent"), 1: ("latched", "purple")}),
        ),
        8,
        8,
    )
    layout.add(
        timeseries(
            "Inventory",
            [
                target(f"mmfleet_position_usd{{{BOT}}}", "position"),
                target(f"mmfleet_max_position_usd{{{BOT}}}", "limit"),
                target(f"-mmfleet_max_position_usd{{{BOT}}}", "-limit"),
            ],
            unit="currencyUSD",
            overrides=[series_colour("limit$", "red")],
        ),
        8,
        8,
    )
    layout.add(
        timeseries(
            "Position in base currency",
            [target(f"mmfleet_position_base{{{BOT}}}", "position")],
            description="Negative when short.",
        ),
        8,
        8,
    )

    layout.row("Execution")
    layout.add(
        timeseries(
            "Tick-to-quote latency",
            [
                target(
                    f"histogram_quantile({q}, sum by (le) "
                    f"(rate(mmfleet_tick_to_quote_seconds_bucket{{{BOT}}}[$__rate_interval])))",
                    f"p{round(q * 100)}",
                )
                for q in (0.5, 0.9, 0.99)
            ],
            description="Book event in to desired orders out, quantiles of the histogram.",
            unit="s",
        ),
        8,
        8,
    )
    layout.add(
        timeseries(
            "Orders per minute",
            [
                target(f"rate(mmfleet_orders_placed_total{{{BOT}}}[$__rate_interval]) * 60", "placed"),
                target(f"rate(mmfleet_orders_cancelled_total{{{BOT}}}[$__rate_interval]) * 60", "cancelled"),
                target(
                    f"sum by (reason) (rate(mmfleet_orders_rejected_total{{{BOT}}}[$__rate_interval])) * 60",
                    "rejected {{reason}}",
                ),
            ],
        ),
        8,
        8,
    )
    layout.add(
        timeseries(
            "Fills per minute and open orders",
            [
                target(f"rate(mmfleet_fills_total{{{BOT}}}[$__rate_interval]) * 60", "fills {{side}}"),
                target(f"mmfleet_orders_open{{{BOT}}}", "open {{side}}"),
            ],
        ),
        8,
        8,
    )
    layout.add(
        timeseries(
            "PnL breakdown",
            [
                target(f"mmfleet_realized_pnl_usd{{{BOT}}}", "realized"),
                target(f"mmfleet_unrealized_pnl_usd{{{BOT}}}", "unrealized"),
                target(f"mmfleet_grid_profit_usd{{{BOT}}}", "grid profit"),
                target(f"mmfleet_maker_rebate_usd_total{{{BOT}}}", "maker rebates"),
                target(f"mmfleet_funding_pnl_usd{{{BOT}}}", "funding"),
                target(f"mmfleet_peak_equity_usd{{{BOT}}} - mmfleet_equity_usd{{{BOT}}}", "below peak"),
            ],
            unit="currencyUSD",
        ),
        12,
        8,
    )
    layout.add(
        timeseries(
            "Market data age and exchange errors",
            [
                target(f"mmfleet_market_data_age_seconds{{{BOT}}}", "market data age (s)"),
                target(
                    f"sum by (kind) (rate(mmfleet_exchange_errors_total{{{BOT}}}[$__rate_interval])) * 60",
                    "errors/min {{kind}}",
                ),
            ],
        ),
        12,
        8,
    )

    layout.row("Markouts")
    layout.add(
        timeseries(
            "Median markout by horizon (bps)",
            [
                target(
                    "histogram_quantile(0.5, sum by (le, horizon) "
                    f"(rate(mmfleet_fill_markout_bps_bucket{{{BOT}}}[$__rate_interval])))",
                    "{{horizon}}",
                )
            ],
            description="The mid 1 s, 10 s and 60 s after each fill against its price, signed for us: "
            "negative when the mid went against us (adverse selection).",
        ),
        12,
        8,
    )
    layout.add(
        timeseries(
            "Markout PnL by horizon",
            [target(f"sum by (horizon) (mmfleet_markout_pnl_usd{{{BOT}}})", "{{horizon}}")],
            description="The fills' markouts summed since the bot started: what they earned marked at the "
            "mid 1 s, 10 s, 60 s on, before rebates and fees.",
            unit="currencyUSD",
        ),
        12,
        8,
    )
    return dashboard(
        "mmfleet-bot",
        "mmfleet: bot",
        "One bot: quotes, model parameters, regime, inventory, latency, orders and markouts.",
        layout,
        [query_variable("bot", "Bot", "label_values(mmfleet_equity_usd, bot)")],
    )
