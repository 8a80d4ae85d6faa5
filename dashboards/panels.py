"""The small library the dashboards are written with: panels, a grid layout, the dashboard frame.

Plain functions returning plain dicts in Grafana's JSON model (schemaVersion 39). Every panel queries
the provisioned Prometheus datasource (infra/grafana/provisioning/datasources/prometheus.yml).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Final

__all__ = [
    "BOT", "DASHED_THRESHOLDS", "DATASOURCE", "DRAWDOWN_CRITICAL", "DRAWDOWN_WARNING", "POSITION_NEAR_LIMIT",
    "STATE_CODE", "STATE_MAPPINGS", "Json", "Layout", "dashboard", "panel", "query_variable", "series_colour",
    "stat", "state_timeline", "table", "target", "thresholds", "timeseries", "value_mappings",
]  # fmt: skip

Json = dict[str, Any]

DATASOURCE: Final[Json] = {"type": "prometheus", "uid": "mmfleet-prometheus"}  # provisioning's uid
# The thresholds of the alert rules (infra/prometheus/rules/alerts.yml; a unit test keeps them equal).
DRAWDOWN_WARNING: Final = 0.02  # MMFleetDrawdownWarning
DRAWDOWN_CRITICAL: Final = 0.04  # MMFleetDrawdownCritical (halts the bot)
POSITION_NEAR_LIMIT: Final = 0.9  # MMFleetPositionNearLimit: |position| / limit
GRID_WIDTH: Final = 24
BOT: Final = 'bot="$bot"'  # the per-bot dashboard's selector


def target(expr: str, legend: str = "", *, table: bool = False) -> Json:
    """One Prometheus query; `table` makes it an instant query shown as rows."""
    query: Json = {"datasource": DATASOURCE, "expr": expr, "legendFormat": legend or "__auto"}
    if table:
        query |= {"format": "table", "instant": True, "range": False}
    else:
        query |= {"range": True}
    return query


def thresholds(*steps: tuple[float, str]) -> Json:
    """Absolute thresholds: green below the first step, then each step's colour from its value."""
    return {
        "mode": "absolute",
        "steps": [{"color": "green", "value": None}, *({"color": c, "value": v} for v, c in steps)],
    }


def value_mappings(texts: dict[int, tuple[str, str]]) -> list[Json]:
    """Numbers shown as words: {0: ("active", "green"), ...}."""
    options = {
        str(v): {"text": text, "color": color, "index": i}
        for i, (v, (text, color)) in enumerate(texts.items())
    }
    return [{"type": "value", "options": options}]


def panel(
    kind: str,
    title: str,
    targets: list[Json],
    *,
    description: str = "",
    unit: str = "none",
    decimals: int | None = None,
    custom: Json | None = None,
    limits: tuple[float, float] | None = None,
    steps: Json | None = None,
    mappings: list[Json] | None = None,
    overrides: list[Json] | None = None,
    options: Json | None = None,
    no_value: str | None = None,
) -> Json:
    """A Grafana panel of any kind; `Layout.add` gives it an id and a place. `no_value`: the text
    shown when the queries return nothing (a series that is absent on purpose)."""
    defaults: Json = {"unit": unit}
    if no_value is not None:
        defaults["noValue"] = no_value
    if decimals is not None:
        defaults["decimals"] = decimals
    if limits is not None:
        defaults["min"], defaults["max"] = limits
    if steps is not None:
        defaults["thresholds"] = steps
    if mappings is not None:
        defaults["mappings"] = mappings
    if custom is not None:
        defaults["custom"] = custom
    return {
        "type": kind,
        "title": title,
        "description": description,
        "datasource": DATASOURCE,
        "targets": [{"refId": chr(ord("A") + i), **t} for i, t in enumerate(targets)],
        "fieldConfig": {"defaults": defaults, "overrides": overrides or []},
        "options": options or {},
    }


def timeseries(title: str, targets: list[Json], **kwargs: Any) -> Json:
    options: Json = {"legend": {"displayMode": "list", "placement": "bottom", "showLegend": True}}
    options |= {"tooltip": {"mode": "multi", "sort": "desc"}}
    return panel("timeseries", title, targets, options=options, **kwargs)


def stat(title: str, targets: list[Json], *, colour_mode: str = "value", **kwargs: Any) -> Json:
    options: Json = {"reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False}}
    options |= {"colorMode": colour_mode, "graphMode": "area", "textMode": "value_and_name"}
    return panel("stat", title, targets, options=options, **kwargs)


def table(title: str, targets: list[Json], *, columns: list[str], **kwargs: Any) -> Json:
    """An instant-query table keeping only `columns` (labels), in that order."""
    hidden = [
        n for n in ("Time", "Value", "__name__", "job", "instance", "symbol", "mode") if n not in columns
    ]
    organize = {
        "excludeByName": dict.fromkeys(hidden, True),
        "indexByName": {name: i for i, name in enumerate(columns)},
    }
    transformations = [{"id": "organize", "options": organize}]
    return panel("table", title, targets, **kwargs) | {"transformations": transformations}


def state_timeline(title: str, targets: list[Json], **kwargs: Any) -> Json:
    options: Json = {"showValue": "never", "mergeValues": True, "rowHeight": 0.8, "alignValue": "center"}
    options |= {"legend": {"displayMode": "list", "placement": "bottom", "showLegend": True}}
    return panel("state-timeline", title, targets, options=options, **kwargs)


def query_variable(name: str, label: str, query: str) -> Json:
    """A template variable filled from Prometheus, e.g. `label_values(metric, label)`, one value at a time."""
    return {
        "name": name,
        "label": label,
        "type": "query",
        "datasource": DATASOURCE,
        "definition": query,
        "query": {"query": query, "refId": name},
        "refresh": 2,  # on time range change
        "sort": 1,
        "multi": False,
        "includeAll": False,
        "current": {},
        "options": [],
    }


DASHED_THRESHOLDS: Final[Json] = {"thresholdsStyle": {"mode": "dashed"}}  # thresholds drawn as lines


def series_colour(regex: str, colour: str) -> Json:
    """An override: series whose name matches `regex` drawn in `colour`."""
    return {
        "matcher": {"id": "byRegexp", "options": regex},
        "properties": [{"id": "color", "value": {"mode": "fixed", "fixedColor": colour}}],
    }


# Trading state as a number: 0 active, 1 reducing, 2 halted (exactly one state series is 1 per bot).
STATE_CODE: Final = (
    'max by (bot) ((mmfleet_trading_state{{state="active"{sel}}} == 1) * 0'
    ' or (mmfleet_trading_state{{state="reducing"{sel}}} == 1) * 1'
    ' or (mmfleet_trading_state{{state="halted"{sel}}} == 1) * 2)'
)
STATE_MAPPINGS: Final = value_mappings(
    {0: ("active", "green"), 1: ("reducing", "orange"), 2: ("halted", "red")}
)


@dataclass
class Layout:
    """Places panels left to right on the 24-column grid, wrapping to a new line when one is full."""

    panels: list[Json] = field(default_factory=list)
    x: int = 0
    y: int = 0
    line_height: int = 0

    def row(self, title: str) -> None:
        self._newline()
        self.panels.append(
            self._placed({"type": "row", "title": title, "collapsed": False, "panels": []}, 24, 1)
        )
        self.y += 1

    def add(self, item: Json, width: int, height: int) -> None:
        if self.x + width > GRID_WIDTH:
            self._newline()
        self.panels.append(self._placed(item, width, height))
        self.x += width
        self.line_height = max(self.line_height, height)

    def _newline(self) -> None:
        self.y += self.line_height
        self.x = self.line_height = 0

    def _placed(self, item: Json, width: int, height: int) -> Json:
        grid = {"h": height, "w": width, "x": self.x, "y": self.y}
        return {"id": len(self.panels) + 1, "gridPos": grid, **item}


def dashboard(uid: str, title: str, description: str, layout: Layout, variables: list[Json]) -> Json:
    return {
        "uid": uid,
        "title": title,
        "description": description,
        "tags": ["mmfleet"],
        "timezone": "utc",
        "editable": False,
        "graphTooltip": 1,
        "refresh": "10s",
        "schemaVersion": 39,
        "version": 1,
        "time": {"from": "now-1h", "to": "now"},
        "annotations": {"list": []},
        "templating": {"list": variables},
        "links": [{"title": "mmfleet", "type": "dashboards", "tags": ["mmfleet"], "asDropdown": True}],
        "panels": layout.panels,
    }
