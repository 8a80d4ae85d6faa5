"""Kubernetes object names and the labels every rendered object carries.

`object_name` turns a bot name into a Kubernetes name through the settings' one derivation
(`settings.names.kubernetes_name`: lowercase, `_` -> `-`, always an RFC 1123 label for a name that
follows the bot-name rule); a name outside the rule is a ConfigError naming the bot. The fleet loader
already refuses such names and two bots on one derived name; this stays the check for callers that
come with bare names.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Final

from bots.errors import ConfigError
from settings.names import kubernetes_name

__all__ = [
    "PART_OF",
    "bot_labels",
    "common_labels",
    "dns_label",
    "label_value",
    "object_name",
    "object_names",
]

PART_OF: Final = "mmfleet"
# RFC 1123 label: what Kubernetes accepts as a name that also serves as a label value and a DNS name.
_DNS_LABEL: Final = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_LABEL_VALUE: Final = re.compile(r"^([A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?)?$")
_MAX_LABEL: Final = 63


def object_name(bot_name: str) -> str:
    """`BTC_USDT_Perp` -> `btc-usdt-perp`; a ConfigError when the bot name does not follow the rule."""
    try:
        return kubernetes_name(bot_name)
    except ValueError as exc:
        raise ConfigError(f"{bot_name}: not usable as a Kubernetes name: {exc}") from None


def dns_label(text: str, what: str) -> str:
    """`text` unchanged when it is an RFC 1123 label (a namespace, a name), else a ConfigError."""
    if len(text) > _MAX_LABEL or not _DNS_LABEL.match(text):
        raise ConfigError(f"{what} {text!r} is not an RFC 1123 label (a-z, 0-9 and '-', at most 63)")
    return text


def label_value(text: str, what: str) -> str:
    """`text` unchanged when Kubernetes accepts it as a label value, else a ConfigError naming `what`."""
    if len(text) > _MAX_LABEL or not _LABEL_VALUE.match(text):
        raise ConfigError(f"{what} {text!r} is not usable as a Kubernetes label value")
    return text


def object_names(bot_names: Iterable[str]) -> dict[str, str]:
    """Bot name -> object name for a whole fleet; two bots that meet on one name are an error."""
    names: dict[str, str] = {}
    problems: list[str] = []
    owner: dict[str, str] = {}
    for bot in bot_names:
        try:
            name = object_name(bot)
        except ConfigError as exc:
            problems.extend(exc.problems)
            continue
        if name in owner:
            problems.append(f"{bot}: same Kubernetes name {name!r} as bot {owner[name]}; rename one")
        owner.setdefault(name, bot)
        names[bot] = name
    if problems:
        raise ConfigError(f"{len(problems)} bot names do not make Kubernetes names", problems)
    return names


def common_labels(component: str) -> dict[str, str]:
    """The recommended app.kubernetes.io labels; selectors use name + component (+ bot)."""
    return {
        "app.kubernetes.io/name": PART_OF,
        "app.kubernetes.io/component": component,
        "app.kubernetes.io/part-of": PART_OF,
        "app.kubernetes.io/managed-by": "mmfleet-k8s-render",
    }


def bot_labels(name: str, fleet: str) -> dict[str, str]:
    """Labels of one bot's objects: the PodMonitor selects on component, relabels `fleet` from the pod."""
    return {**common_labels("bot"), "mmfleet.io/bot": name, "mmfleet.io/fleet": fleet}
