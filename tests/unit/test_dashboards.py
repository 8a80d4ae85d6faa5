"""Dashboards as code and the monitoring files: the committed JSON is the build's output, well
formed, queries real metrics, shows the alert thresholds; the alert rules and compose variants agree."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client import CollectorRegistry, generate_latest

from bots.metrics import BotMetrics
from bots.ops.dashboard import parse_exposition
from dashboards import build
from dashboards.panels import DATASOURCE, DRAWDOWN_CRITICAL, DRAWDOWN_WARNING, POSITION_NEAR_LIMIT
from tests.promql import (
    DASHBOARDS_DIR,
    ROOT,
    all_queries,
    dashboard_files,
    metric_names,
    rule_groups,
    unknown_names,
)

PROVISIONING = ROOT / "infra" / "grafana" / "provisioning"


def boards() -> list[dict[str, Any]]:
    return [json.loads(path.read_text()) for path in dashboard_files()]


def test_committed_json_equals_a_fresh_build() -> None:
    fresh = build.build_all()
    assert sorted(fresh) == [p.name for p in dashboard_files()], "a dashboard file is missing or extra"
    for name, text in fresh.items():
        assert (DASHBOARDS_DIR / name).read_text() == text, f"{name} is stale: python -m dashboards.build"


def test_check_mode_reports_a_stale_file(tmp_path: Path) -> None:
    assert build.main(["--out", str(tmp_path)]) == 0
    assert build.main(["--check", "--out", str(tmp_path)]) == 0
    (tmp_path / "bot.json").write_text("{}\n")
    assert build.main(["--check", "--out", str(tmp_path)]) == 1


@pytest.mark.parametrize("board", boards(), ids=lambda b: b["uid"])
def test_panels_are_placed_once_on_the_grid_and_query_the_provisioned_datasource(
    board: dict[str, Any],
) -> None:
    ids = [p["id"] for p in board["panels"]]
    assert len(ids) == len(set(ids))
    cells: set[tuple[int, int]] = set()
    for panel in board["panels"]:
        grid = panel["gridPos"]
        assert grid["x"] >= 0 and grid["x"] + grid["w"] <= 24, panel["title"]
        covered = {
            (x, y)
            for x in range(grid["x"], grid["x"] + grid["w"])
            for y in range(grid["y"], grid["y"] + grid["h"])
        }
        assert not covered & cells, f"{panel['title']!r} overlaps another panel"
        cells |= covered
        if panel["type"] != "row":
            assert panel["datasource"] == DATASOURCE
            assert panel["targets"] and all(
                t["expr"] and t["datasource"] == DATASOURCE for t in panel["targets"]
            )
            assert len({t["refId"] for t in panel["targets"]}) == len(panel["targets"])
    datasources = yaml.safe_load((PROVISIONING / "datasources" / "prometheus.yml").read_text())
    assert DATASOURCE["uid"] in {d["uid"] for d in datasources["datasources"]}


def test_the_bot_dashboard_has_a_bot_variable_used_by_every_query() -> None:
    board = json.loads((DASHBOARDS_DIR / "bot.json").read_text())
    assert [v["name"] for v in board["templating"]["list"]] == ["bot"]
    for panel in board["panels"]:
        for target in panel.get("targets", []):
            assert 'bot="$bot"' in target["expr"], panel["title"]


def test_every_metric_name_exists_in_a_bots_exposition() -> None:
    """The static twin of the integration test: names against a freshly built BotMetrics, whose
    regime model then answers (the probability series exist only while one does)."""
    registry = CollectorRegistry()
    metrics = BotMetrics(registry, "b", "BTC_USDT_Perp", "sim", grid_layers=3)
    without_model = parse_exposition(generate_latest(registry).decode())
    assert "mmfleet_regime_probability" not in without_model
    assert [value for _, value in without_model["mmfleet_regime_model_loaded"]] == [0.0]
    metrics.publish_regime({"trending": 0.2, "ranging": 0.7, "volatile": 0.1}, loaded=True)
    exposed = set(parse_exposition(generate_latest(registry).decode()))
    assert unknown_names(all_queries(), exposed) == {}


def test_regime_probabilities_are_absent_without_a_model_and_the_panel_says_so() -> None:
    registry = CollectorRegistry()
    metrics = BotMetrics(registry, "b", "BTC_USDT_Perp", "sim", grid_layers=3)

    def regime_series() -> dict[str, float]:
        samples = parse_exposition(generate_latest(registry).decode())
        return {labels["regime"]: v for labels, v in samples.get("mmfleet_regime_probability", [])}

    metrics.publish_regime({"trending": 0.25, "ranging": 0.75}, loaded=True)
    assert regime_series() == {"trending": 0.25, "ranging": 0.75}
    metrics.publish_regime(None, loaded=True)  # loaded, features still warming up
    assert regime_series() == {}
    metrics.publish_regime({"volatile": 1.0}, loaded=True)
    assert regime_series() == {"volatile": 1.0}
    metrics.publish_regime(None, loaded=False)
    assert regime_series() == {}
    board = json.loads((DASHBOARDS_DIR / "bot.json").read_text())
    panels = {p["title"]: p for p in board["panels"]}
    assert panels["Regime probabilities"]["fieldConfig"]["defaults"]["noValue"] == "no model"
    mapped = panels["Regime model"]["fieldConfig"]["defaults"]["mappings"][0]["options"]
    assert (
        mapped["0"]["text"] == "no model"
        and "mmfleet_regime_model_loaded" in (panels["Regime model"]["targets"][0]["expr"])
    )


def test_the_dashboard_thresholds_are_the_alert_thresholds() -> None:
    alerts = {r["alert"]: r for g in rule_groups("alerts.yml") for r in g["rules"]}
    assert alerts["MMFleetDrawdownWarning"]["expr"] == f"mmfleet_drawdown_ratio > {DRAWDOWN_WARNING}"
    assert alerts["MMFleetDrawdownCritical"]["expr"] == f"mmfleet_drawdown_ratio > {DRAWDOWN_CRITICAL}"
    assert (
        f">= {POSITION_NEAR_LIMIT} * mmfleet_max_position_usd" in alerts["MMFleetPositionNearLimit"]["expr"]
    )
    fleet = json.loads((DASHBOARDS_DIR / "fleet-overview.json").read_text())
    drawdown = next(p for p in fleet["panels"] if p["title"] == "Drawdown from peak equity")
    steps = [s["value"] for s in drawdown["fieldConfig"]["defaults"]["thresholds"]["steps"]]
    assert steps == [None, DRAWDOWN_WARNING, DRAWDOWN_CRITICAL]
    assert drawdown["fieldConfig"]["defaults"]["custom"]["thresholdsStyle"]["mode"] == "dashed"


def test_every_alert_has_severity_summary_description_and_halts_are_marked() -> None:
    alerts = [r for g in rule_groups("alerts.yml") for r in g["rules"]]
    for rule in alerts:
        assert rule["labels"]["severity"] in {"warning", "critical"}, rule["alert"]
        assert rule["annotations"]["summary"] and rule["annotations"]["description"], rule["alert"]
    halting = {r["alert"] for r in alerts if r["labels"].get("action") == "halt"}
    assert halting == {"MMFleetDrawdownCritical", "MMFleetCircuitBreakerTripped"}


def test_grafana_provisions_the_dashboards_directory() -> None:
    providers = yaml.safe_load((PROVISIONING / "dashboards" / "mmfleet.yml").read_text())["providers"]
    assert [p["type"] for p in providers] == ["file"]
    assert providers[0]["options"]["path"].endswith("/dashboards/mmfleet")


@pytest.mark.parametrize(
    ("expr", "names"),
    [
        ('sum by (bot, le) (rate(x_bucket{bot="$bot",le=~"0.1"}[$__rate_interval]))', {"x_bucket"}),
        ("histogram_quantile(0.99, sum by (le) (rate(h_bucket[5m])))", {"h_bucket"}),
        ("a > 0.9 * b and on (bot) c offset 30m", {"a", "b", "c"}),
        ("absent(up{job='x'})", {"up"}),
        ("count by (fleet) (count by (fleet, version) (level:metric:sum))", {"level:metric:sum"}),
        ("-m1 + 1e-5 / vector(2)", {"m1"}),
    ],
)
def test_metric_names_finds_selected_series_only(expr: str, names: set[str]) -> None:
    assert metric_names(expr) == names


def test_the_compose_variants_differ_only_in_addresses() -> None:
    """prometheus.compose.yml and alertmanager.compose.yml are the one-host files with service names."""
    infra = ROOT / "infra"
    host = yaml.safe_load((infra / "alertmanager" / "alertmanager.yml").read_text())
    compose = yaml.safe_load((infra / "alertmanager" / "alertmanager.compose.yml").read_text())
    for receiver in compose["receivers"]:
        for hook in receiver.get("webhook_configs", []):
            assert hook["url"] == "http://alerts-receiver:9099/alerts"
            hook["url"] = "http://127.0.0.1:9099/alerts"
    assert compose == host

    host = yaml.safe_load((infra / "prometheus" / "prometheus.yml").read_text())
    compose = yaml.safe_load((infra / "prometheus" / "prometheus.compose.yml").read_text())
    assert (compose["global"], compose["rule_files"]) == (host["global"], host["rule_files"])
    assert [j["job_name"] for j in compose["scrape_configs"]] == [
        j["job_name"] for j in host["scrape_configs"]
    ]
