"""Prometheus Operator and Grafana-sidecar objects, generated from the files compose and `make run` use.

One source of truth each: the PrometheusRule holds the groups of infra/prometheus/rules/*.yml as they
are; the AlertmanagerConfig is infra/alertmanager/alertmanager.yml's routes, receivers and inhibit rules
in the operator's spelling, with the webhook pointed at the alert receiver's Service; the dashboards are
the generated JSON of dashboards/, and the datasource is infra/grafana's, with its uid.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Final
from urllib.parse import urlsplit, urlunsplit

import yaml

from bots.errors import ConfigError
from bots.k8s.bots import Manifest
from bots.k8s.names import common_labels

__all__ = [
    "ALERTS_RECEIVER",
    "ALERTS_RECEIVER_PORT",
    "alertmanager_config",
    "dashboard_configmaps",
    "datasource_configmap",
    "parse_matcher",
    "prometheus_rule",
]

REPO: Final = Path(__file__).resolve().parents[2]
RULES_DIR: Final = REPO / "infra" / "prometheus" / "rules"
ALERTMANAGER_FILE: Final = REPO / "infra" / "alertmanager" / "alertmanager.yml"
DASHBOARDS_DIR: Final = REPO / "dashboards"
DATASOURCE_FILE: Final = REPO / "infra" / "grafana" / "provisioning" / "datasources" / "prometheus.yml"
ALERTS_RECEIVER: Final = "mmfleet-alerts-receiver"  # infra/k8s/alerts-receiver.yaml's Service
ALERTS_RECEIVER_PORT: Final = 9099
# The Grafana sidecar's default labels (kube-prometheus-stack, grafana's chart): it loads every
# ConfigMap that carries them.
DASHBOARD_LABEL: Final = {"grafana_dashboard": "1"}
DATASOURCE_LABEL: Final = {"grafana_datasource": "1"}
_MATCHER: Final = re.compile(r'^\s*([A-Za-z_][A-Za-z0-9_]*)\s*(=~|!~|!=|=)\s*"((?:[^"\\]|\\.)*)"\s*$')


def _yaml_file(path: Path) -> dict[str, Any]:
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping")
    return data


def prometheus_rule(rules_dir: Path = RULES_DIR) -> Manifest:
    """Every group of the rule files, in file order; the rules themselves unchanged."""
    groups: list[Any] = []
    for path in sorted(rules_dir.glob("*.yml")):
        groups += _yaml_file(path).get("groups") or []
    return {
        "apiVersion": "monitoring.coreos.com/v1",
        "kind": "PrometheusRule",
        "metadata": {"name": "mmfleet", "labels": common_labels("monitoring")},
        "spec": {"groups": groups},
    }


def parse_matcher(text: str) -> dict[str, str]:
    """`severity="critical"` -> {name, matchType, value}, the operator's matcher object."""
    found = _MATCHER.match(text)
    if found is None:
        raise ConfigError(f'{ALERTMANAGER_FILE}: matcher {text!r} is not name<op>"value"')
    name, op, value = found.groups()
    return {"name": name, "matchType": op, "value": value.replace('\\"', '"')}


_ROUTE_KEYS: Final = {
    "receiver": "receiver",
    "group_by": "groupBy",
    "group_wait": "groupWait",
    "group_interval": "groupInterval",
    "repeat_interval": "repeatInterval",
    "continue": "continue",
}


def _route(route: dict[str, Any]) -> Manifest:
    unknown = set(route) - set(_ROUTE_KEYS) - {"matchers", "routes"}
    if unknown:
        raise ConfigError(
            f"{ALERTMANAGER_FILE}: route keys {sorted(unknown)} have no AlertmanagerConfig form here"
        )
    out: Manifest = {_ROUTE_KEYS[key]: value for key, value in route.items() if key in _ROUTE_KEYS}
    if "matchers" in route:
        out["matchers"] = [parse_matcher(m) for m in route["matchers"]]
    if "routes" in route:
        out["routes"] = [_route(child) for child in route["routes"]]
    return out


def _receiver_url(url: str, namespace: str) -> str:
    """The placeholder http://127.0.0.1:9099/alerts, as the alert receiver's Service in `namespace`."""
    parts = urlsplit(url)
    if parts.port != ALERTS_RECEIVER_PORT:
        raise ConfigError(f"{ALERTMANAGER_FILE}: webhook {url} is not the alert receiver's port")
    host = f"{ALERTS_RECEIVER}.{namespace}.svc:{ALERTS_RECEIVER_PORT}"
    return urlunsplit((parts.scheme, host, parts.path, parts.query, parts.fragment))


def _receiver(receiver: dict[str, Any], namespace: str) -> Manifest:
    unknown = set(receiver) - {"name", "webhook_configs"}
    if unknown:
        raise ConfigError(f"{ALERTMANAGER_FILE}: receiver kinds {sorted(unknown)} are not rendered yet")
    out: Manifest = {"name": receiver["name"]}
    hooks = receiver.get("webhook_configs") or []
    if hooks:
        out["webhookConfigs"] = [
            {"url": _receiver_url(hook["url"], namespace), "sendResolved": hook.get("send_resolved", True)}
            for hook in hooks
        ]
    return out


def alertmanager_config(namespace: str, source: Path = ALERTMANAGER_FILE) -> Manifest:
    """alertmanager.yml as an AlertmanagerConfig. The operator adds a `namespace` matcher to its route:
    the Prometheus must label our alerts with it (docs/deployment.md: enforcedNamespaceLabel)."""
    config = _yaml_file(source)
    inhibit = [
        {
            "sourceMatch": [parse_matcher(m) for m in rule.get("source_matchers", [])],
            "targetMatch": [parse_matcher(m) for m in rule.get("target_matchers", [])],
            "equal": rule.get("equal", []),
        }
        for rule in config.get("inhibit_rules") or []
    ]
    spec: Manifest = {
        "route": _route(config["route"]),
        "receivers": [_receiver(r, namespace) for r in config["receivers"]],
    }
    if inhibit:
        spec["inhibitRules"] = inhibit
    return {
        "apiVersion": "monitoring.coreos.com/v1alpha1",
        "kind": "AlertmanagerConfig",
        "metadata": {"name": "mmfleet", "labels": common_labels("monitoring")},
        "spec": spec,
    }


def dashboard_configmaps(dashboards_dir: Path = DASHBOARDS_DIR) -> list[Manifest]:
    """One ConfigMap per generated dashboard JSON, labelled for the Grafana sidecar."""
    maps = []
    for path in sorted(dashboards_dir.glob("*.json")):
        maps.append(
            {
                "apiVersion": "v1",
                "kind": "ConfigMap",
                "metadata": {
                    "name": f"mmfleet-dashboard-{path.stem}",
                    "labels": {**common_labels("dashboards"), **DASHBOARD_LABEL},
                    "annotations": {"grafana_folder": "mmfleet"},  # the sidecar's folderAnnotation
                },
                "data": {path.name: path.read_text(encoding="utf-8")},
            }
        )
    return maps


def datasource_configmap(prometheus_url: str, source: Path = DATASOURCE_FILE) -> Manifest:
    """infra/grafana's datasource (uid mmfleet-prometheus, which every panel names) at `prometheus_url`."""
    provisioning = _yaml_file(source)
    for datasource in provisioning["datasources"]:
        if datasource["type"] == "prometheus":
            datasource["url"] = prometheus_url
            datasource["isDefault"] = False  # the cluster's Grafana has its own default
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {
            "name": "mmfleet-grafana-datasource",
            "labels": {**common_labels("dashboards"), **DATASOURCE_LABEL},
        },
        "data": {"mmfleet-datasource.yaml": yaml.safe_dump(provisioning, sort_keys=False)},
    }
