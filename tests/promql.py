"""What the dashboards and rules query: every PromQL expression they hold and the metric names in it.

Shared by the unit test of the dashboards (names against a fresh `BotMetrics` exposition) and the
integration test (queries against a real Prometheus scraping a real fleet).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parent.parent
DASHBOARDS_DIR = ROOT / "dashboards"
RULES_DIR = ROOT / "infra" / "prometheus" / "rules"

# Parts of an expression that never hold a metric name: strings, label matchers, ranges, label lists.
_STRING = re.compile(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'|`[^`]*`')
_MATCHERS = re.compile(r"\{[^}]*\}")
_RANGE = re.compile(r"\[[^\]]*\]")
_LABEL_LIST = re.compile(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)")
_TOKEN = re.compile(r"(?P<number>\d[\w.]*)|(?P<name>[a-zA-Z_:][\w:]*)(?P<call>\s*\()?")
_KEYWORDS = frozenset(
    {"and", "or", "unless", "bool", "offset", "by", "without", "on", "ignoring", "group_left", "group_right"}
    | {"inf", "nan", "atan2", "start", "end"}
)
_LABEL_VALUES = re.compile(r"^label_values\((?P<metric>.+),\s*(?P<label>\w+)\)$")


def metric_names(expr: str) -> set[str]:
    """The metric (and recording rule) names an expression selects, not functions, labels or keywords."""
    text = _STRING.sub('""', expr)
    text = _MATCHERS.sub(" ", text)
    text = _RANGE.sub(" ", text)
    text = _LABEL_LIST.sub(" ", text)
    names = set()
    for token in _TOKEN.finditer(text):
        name = token["name"]
        if name and not token["call"] and name.lower() not in _KEYWORDS:
            names.add(name)
    return names


@dataclass(frozen=True)
class Query:
    """One expression and where it comes from, for messages."""

    where: str
    expr: str


def _panels(panels: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    for panel in panels:
        yield panel
        yield from _panels(panel.get("panels", []))  # a collapsed row keeps its panels inside


def dashboard_files() -> list[Path]:
    return sorted(DASHBOARDS_DIR.glob("*.json"))


def dashboard_queries(path: Path) -> list[Query]:
    """Every panel target's expression, and each query variable as the PromQL Grafana would send."""
    board = json.loads(path.read_text())
    queries = []
    for panel in _panels(board["panels"]):
        for target in panel.get("targets", []):
            where = f"{path.name}: {panel['title']!r} {target['refId']}"
            queries.append(Query(where, target["expr"]))
    for variable in board["templating"]["list"]:
        if variable["type"] == "query":
            match = _LABEL_VALUES.match(variable["query"]["query"])
            assert match, f"{path.name}: variable {variable['name']}: only label_values(metric, label)"
            expr = f"group by ({match['label']}) ({match['metric']})"
            queries.append(Query(f"{path.name}: variable ${variable['name']}", expr))
    return queries


def rule_groups(name: str) -> list[dict[str, Any]]:
    groups: list[dict[str, Any]] = yaml.safe_load((RULES_DIR / name).read_text())["groups"]
    return groups


def rule_queries() -> list[Query]:
    """The expression of every recording and alerting rule."""
    queries = []
    for file in ("recording.yml", "alerts.yml"):
        for group in rule_groups(file):
            for rule in group["rules"]:
                queries.append(Query(f"{file}: {rule.get('record') or rule['alert']}", rule["expr"]))
    return queries


def recorded_names() -> set[str]:
    return {rule["record"] for group in rule_groups("recording.yml") for rule in group["rules"]}


def all_queries() -> list[Query]:
    return [q for path in dashboard_files() for q in dashboard_queries(path)] + rule_queries()


def unknown_names(queries: list[Query], exposed: set[str]) -> dict[str, set[str]]:
    """Names neither exposed by a bot, recorded by a rule, nor Prometheus's own `up`, by query."""
    known = exposed | recorded_names() | {"up"}
    unknown = {q.where: metric_names(q.expr) - known for q in queries}
    return {where: names for where, names in unknown.items() if names}
