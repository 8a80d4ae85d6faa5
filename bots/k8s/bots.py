"""One Deployment per bot of the fleet file, and the ConfigMap that carries the file to every pod.

A bot is a Deployment with one replica and the `Recreate` strategy: the old pod is gone before the new
one starts. The store's lease stays the guard against two workers (a second one exits 2 naming the
holder), so a rolling update would only crash-loop its new pod until the old one let go.
"""

from __future__ import annotations

import math
from typing import Any, Final

from bots.errors import ConfigError
from bots.k8s.names import bot_labels
from settings import BotSettings, FleetSettings

__all__ = [
    "CONFIG_DIR",
    "DATABASE_SECRET",
    "DATA_DIR",
    "FLEET_CONFIGMAP",
    "FLEET_IN_POD",
    "GRVT_SECRET_DIR",
    "METRICS_PORT",
    "Manifest",
    "bot_deployment",
    "bot_resources",
    "fleet_configmap",
    "grace_period_s",
    "grvt_secret_name",
    "mmfleet_env",
    "pod_security",
]

Manifest = dict[str, Any]

FLEET_CONFIGMAP: Final = "mmfleet-fleet"
CONFIG_DIR: Final = "/etc/mmfleet"
FLEET_IN_POD: Final = f"{CONFIG_DIR}/fleet.yaml"
DATA_DIR: Final = "/var/lib/mmfleet"  # the image's MMFLEET_DATA_DIR; the shared `mmfleet-data` claim
DATA_CLAIM: Final = "mmfleet-data"
DATABASE_SECRET: Final = "mmfleet-database"  # key `url`: the ledger's PostgreSQL URL
GRVT_SECRET_DIR: Final = "/var/run/secrets/mmfleet/grvt"
GRVT_SECRET_KEYS: Final = ("api_key", "private_key", "trading_account_id")
METRICS_PORT: Final = 9101  # every pod has its own IP, so every bot listens on the same port
RUN_AS: Final = 10001  # the image's `mmfleet` user and group (infra/docker/Dockerfile)

# Requests and limits from the fleet benchmark (bench/fleet_scale.py; figures of the last closing note,
# 5/10/20 sim bots at 10 book updates/s on 2 cores): RSS 89.5-90.1 MB per worker, and 30.4% of the
# 2-core machine for 20 bots, i.e. about 0.03 core (30m) per bot in steady state. Requests hold the
# steady state with headroom; the limits leave room for start-up (imports, ledger replay) and bursts
# (paper and live bots parse real market data), and stop a leak before it hurts the node's other bots.
BOT_REQUESTS: Final = {"cpu": "50m", "memory": "128Mi"}
BOT_LIMITS: Final = {"cpu": "500m", "memory": "256Mi"}

# Time the worker needs after SIGTERM: its stop deadline (cancelling until the exchange confirms nothing
# rests), then the last fills, the ledger flush and the HTTP server stop.
_STOP_MARGIN_S: Final = 15.0
_MIN_GRACE_S: Final = 30


def grace_period_s(bot: BotSettings) -> int:
    """terminationGracePeriodSeconds: longer than the bot's `exchange.stop_deadline_s`."""
    return max(_MIN_GRACE_S, math.ceil(bot.exchange.stop_deadline_s + _STOP_MARGIN_S))


def bot_resources() -> dict[str, dict[str, str]]:
    return {"requests": dict(BOT_REQUESTS), "limits": dict(BOT_LIMITS)}


def grvt_secret_name(name: str) -> str:
    """The Secret of one live bot's GRVT credentials (keys api_key, private_key, trading_account_id)."""
    return f"mmfleet-grvt-{name}"


def fleet_configmap(fleet_text: str, labels: dict[str, str]) -> Manifest:
    """The fleet file, verbatim: every pod mounts it at FLEET_IN_POD (a directory mount, so
    `mmfleet ctl reload-config` sees an edited file without a restart)."""
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": FLEET_CONFIGMAP, "labels": labels},
        "data": {"fleet.yaml": fleet_text},
    }


def mmfleet_env() -> list[dict[str, Any]]:
    """What every mmfleet container reads: the ledger URL from its Secret, the data directory."""
    return [
        {
            "name": "MMFLEET_DATABASE_URL",
            "valueFrom": {"secretKeyRef": {"name": DATABASE_SECRET, "key": "url"}},
        },
        {"name": "MMFLEET_DATA_DIR", "value": DATA_DIR},
    ]


def pod_security() -> tuple[Manifest, Manifest]:
    """(pod, container) security contexts: non-root, read-only root filesystem, no privileges."""
    pod = {
        "runAsNonRoot": True,
        "runAsUser": RUN_AS,
        "runAsGroup": RUN_AS,
        "fsGroup": RUN_AS,
        "seccompProfile": {"type": "RuntimeDefault"},
    }
    container = {
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": True,
        "runAsNonRoot": True,
        "capabilities": {"drop": ["ALL"]},
    }
    return pod, container


def _probe(path: str, period_s: int, failures: int) -> Manifest:
    return {
        "httpGet": {"path": path, "port": "metrics"},
        "periodSeconds": period_s,
        "timeoutSeconds": 3,
        "failureThreshold": failures,
    }


def _credentials_env(bot: BotSettings, fleet: FleetSettings) -> list[dict[str, Any]]:
    """Point the fleet's default credential files at the mounted Secret (env beats the file's defaults).

    A live bot that names its own credential files would read files nobody mounted: refuse it here.
    """
    own = [
        key
        for key in GRVT_SECRET_KEYS
        if getattr(bot.exchange.credentials, f"{key}_file")
        != getattr(fleet.defaults.exchange.credentials, f"{key}_file")
    ]
    if own:
        raise ConfigError(
            f"{bot.name}: exchange.credentials.{own[0]}_file is set for this bot; on Kubernetes every"
            f" live bot reads its Secret at {GRVT_SECRET_DIR}/<key>: remove the bot's own *_file settings"
        )
    return [
        {
            "name": f"MMFLEET_DEFAULTS__EXCHANGE__CREDENTIALS__{key.upper()}_FILE",
            "value": f"{GRVT_SECRET_DIR}/{key}",
        }
        for key in GRVT_SECRET_KEYS
    ]


def bot_deployment(
    bot: BotSettings, fleet: FleetSettings, *, name: str, fleet_label: str, image: str, allow_live: bool
) -> Manifest:
    """The Deployment of one bot, `name` being its Kubernetes name (`object_name(bot.name)`)."""
    live = bot.exchange.mode == "live"
    if live and not allow_live:
        raise ConfigError(f"{bot.name}: exchange.mode is live; render with --i-understand-live-trading")
    labels = bot_labels(name, fleet_label)
    selector = {
        k: labels[k] for k in ("app.kubernetes.io/name", "app.kubernetes.io/component", "mmfleet.io/bot")
    }
    args = ["bot", "run", "--config", FLEET_IN_POD, "--bot", bot.name]
    args += ["--metrics-host", "0.0.0.0", "--metrics-port", str(METRICS_PORT)]
    env = mmfleet_env()
    mounts: list[Manifest] = [
        {"name": "fleet", "mountPath": CONFIG_DIR, "readOnly": True},
        {"name": "data", "mountPath": DATA_DIR},
        {"name": "tmp", "mountPath": "/tmp"},
    ]
    volumes: list[Manifest] = [
        {"name": "fleet", "configMap": {"name": FLEET_CONFIGMAP}},
        {"name": "data", "persistentVolumeClaim": {"claimName": DATA_CLAIM}},
        {"name": "tmp", "emptyDir": {"sizeLimit": "64Mi"}},
    ]
    if live:
        args.append("--i-understand-live-trading")
        env += _credentials_env(bot, fleet)
        mounts.append({"name": "grvt", "mountPath": GRVT_SECRET_DIR, "readOnly": True})
        volumes.append(
            {"name": "grvt", "secret": {"secretName": grvt_secret_name(name), "defaultMode": 0o400}}
        )
    pod_context, container_context = pod_security()
    container = {
        "name": "bot",
        "image": image,
        "args": args,
        "env": env,
        "ports": [{"name": "metrics", "containerPort": METRICS_PORT, "protocol": "TCP"}],
        # Start-up (imports, ledger replay, first book) may take a while; liveness waits for it.
        "startupProbe": _probe("/healthz", 2, 60),
        "livenessProbe": _probe("/healthz", 10, 3),
        "readinessProbe": _probe("/readyz", 5, 2),
        "resources": bot_resources(),
        "securityContext": container_context,
        "volumeMounts": mounts,
    }
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {
            "name": f"bot-{name}",
            "labels": labels,
            "annotations": {"mmfleet.io/bot-name": bot.name},
        },
        "spec": {
            "replicas": 1,
            "strategy": {"type": "Recreate"},
            "revisionHistoryLimit": 3,
            "selector": {"matchLabels": selector},
            "template": {
                "metadata": {"labels": labels},
                "spec": {
                    "serviceAccountName": "mmfleet",
                    "automountServiceAccountToken": False,
                    "enableServiceLinks": False,
                    "terminationGracePeriodSeconds": grace_period_s(bot),
                    "securityContext": pod_context,
                    "containers": [container],
                    "volumes": volumes,
                },
            },
        },
    }
