"""rollout-config: validate a config patch for every target bot, try it on one canary bot watched
through Prometheus, then roll it out to the rest in batches, or roll the canary back and fail.

Parameters: the patch as a mapping (`patch`) or a YAML file holding it (`config_file`), the target
bots (all by default), the canary (the first target by default), the batch size, the canary guard
(`CanaryGuard`: Prometheus URL, watch window, thresholds) and the fleet file (`config`, else
$MMFLEET_CONFIG).

What a bot runs with: its settings from the fleet file with its newest applied config version merged
over them (that is what a restarted worker rebuilds). So a version published here holds the bot's
previous version with the patch merged over it (cumulative), and a rollback publishes the previous
version again with the old value of every key the patch touched: at runtime the bot merges each
version over its current settings, and both paths end on the same settings as before the rollout.

Nothing is published before every target validated: one invalid value anywhere refuses the whole
rollout with every problem in the flow's failure message.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from prefect import flow, get_run_logger, task
from prefect.artifacts import create_markdown_artifact
from prefect.cache_policies import NO_CACHE

from bots.control import merged_settings
from bots.errors import ConfigError
from bots.store import Ledger
from flows.canary import (
    DEFAULT_GUARD,
    CanaryGuard,
    Health,
    PrometheusUnreachable,
    judge,
    query_health,
)
from flows.common import (
    FlowError,
    flow_author,
    is_transient,
    load_fleet_config,
    select_bots,
)
from settings import BotSettings, FleetSettings
from settings.fleet import deep_merge, read_fleet_file

__all__ = [
    "RolloutPlan",
    "RolloutRefused",
    "load_patch",
    "plan_rollout",
    "restore_values",
    "rollout_config",
]

_POLL_S = 0.25


class RolloutRefused(FlowError):  # noqa: N818 - the name is the outcome
    """The patch is invalid for at least one target: nothing was published."""


@dataclass(frozen=True, slots=True)
class Previous:
    """A bot's newest applied version (None: it runs its fleet-file settings) and that version's config."""

    version: int | None
    config: dict[str, Any]


@dataclass(frozen=True, slots=True)
class RolloutPlan:
    """Who gets what, in order: the canary, then the rest; the config each gets, and its way back."""

    canary: str
    rest: tuple[str, ...]
    new_configs: dict[str, dict[str, Any]]
    restore_configs: dict[str, dict[str, Any]]
    previous_versions: dict[str, int | None]


@task(cache_policy=NO_CACHE)
def load_patch(patch: dict[str, Any] | None, config_file: str | None) -> dict[str, Any]:
    """The patch from the parameter or from a YAML file (exactly one of them), as a mapping."""
    if (patch is None) == (config_file is None):
        raise RolloutRefused("give exactly one of `patch` (a mapping) or `config_file` (a YAML file path)")
    if config_file is not None:
        try:
            patch = read_fleet_file(Path(config_file))
        except ConfigError as exc:
            raise RolloutRefused(str(exc)) from None
    if not isinstance(patch, Mapping) or not patch:
        raise RolloutRefused("the patch is empty: nothing to roll out")
    return dict(patch)


@task(retries=3, retry_delay_seconds=[2, 5, 15], retry_condition_fn=is_transient, cache_policy=NO_CACHE)
def read_applied_configs(fleet: FleetSettings, bots: list[str]) -> dict[str, Previous]:
    """Each bot's newest applied config version from the ledger."""
    with Ledger(fleet.ledger_url()) as ledger:
        applied = {name: ledger.applied_config(name) for name in bots}
    return {
        name: Previous(None, {}) if v is None else Previous(v.version, dict(v.config))
        for name, v in applied.items()
    }


def _leaves(patch: Mapping[str, Any], prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    paths: list[tuple[str, ...]] = []
    for key, value in patch.items():
        if isinstance(value, Mapping) and value:
            paths += _leaves(value, (*prefix, key))
        else:
            paths.append((*prefix, key))
    return paths


def restore_values(old: Mapping[str, Any], patch: Mapping[str, Any]) -> dict[str, Any]:
    """For every key the patch sets, its value in `old` (a settings dump), as a patch of the same shape."""
    out: dict[str, Any] = {}
    for path in _leaves(patch):
        value: Any = old
        for part in path:
            if not isinstance(value, Mapping) or part not in value:
                break
            value = value[part]
        else:
            node = out
            for part in path[:-1]:
                node = node.setdefault(part, {})
            node[path[-1]] = value
    return out


def _validate(
    bot: BotSettings, previous: Previous, patch: Mapping[str, Any]
) -> tuple[dict[str, Any], dict[str, Any]]:
    """(new config, restore config) of one bot; ConfigError naming every bad field."""
    current = merged_settings(bot, previous.config)
    new_config = deep_merge(previous.config, patch)
    merged_settings(bot, new_config)  # what a restarted worker would build
    merged_settings(current, patch)  # what the running worker will build
    restore = deep_merge(previous.config, restore_values(current.model_dump(mode="json"), patch))
    return new_config, restore


@task(cache_policy=NO_CACHE)
def plan_rollout(
    fleet: FleetSettings,
    bots: list[str],
    canary: str | None,
    previous: dict[str, Previous],
    patch: dict[str, Any],
    batch_size: int,
) -> RolloutPlan:
    """Validate the patch for every target and order them; RolloutRefused lists every problem."""
    if batch_size < 1:
        raise RolloutRefused(f"batch_size must be at least 1, got {batch_size}")
    lead = canary or bots[0]
    if lead not in bots:
        raise RolloutRefused(f"canary {lead!r} is not among the targets {bots}")
    by_name = {b.name: b for b in fleet.bots}
    problems: dict[str, list[str]] = {}
    new_configs: dict[str, dict[str, Any]] = {}
    restore_configs: dict[str, dict[str, Any]] = {}
    for name in bots:
        try:
            new_configs[name], restore_configs[name] = _validate(by_name[name], previous[name], patch)
        except ConfigError as exc:
            for problem in exc.problems:
                problems.setdefault(problem.removeprefix("fleet: "), []).append(name)
    if problems:
        lines = [f"{problem} (bots: {', '.join(names)})" for problem, names in problems.items()]
        raise RolloutRefused("rollout refused, nothing was published: " + "; ".join(lines))
    return RolloutPlan(
        canary=lead,
        rest=tuple(name for name in bots if name != lead),
        new_configs=new_configs,
        restore_configs=restore_configs,
        previous_versions={name: previous[name].version for name in bots},
    )


@task(
    retries=3,
    retry_delay_seconds=[2, 5, 15],
    retry_condition_fn=is_transient,
    cache_policy=NO_CACHE,
    task_run_name="publish-to-{targets}",
)
def publish_version(fleet: FleetSettings, config: dict[str, Any], targets: list[str], author: str) -> int:
    """Publish a validated config version for `targets`; returns the version number."""
    with Ledger(fleet.ledger_url()) as ledger:
        return ledger.publish_config(config, targets, author=author)


@task(
    retries=3,
    retry_delay_seconds=[2, 5, 15],
    retry_condition_fn=is_transient,
    cache_policy=NO_CACHE,
    task_run_name="wait-for-acks-of-v{version}",
)
def wait_for_config_acks(
    fleet: FleetSettings, version: int, bots: list[str], timeout_s: float
) -> dict[str, str]:
    """Poll until every bot acked `version`; bot -> "applied", "rejected: reason" or "missing"."""
    deadline = time.monotonic() + timeout_s
    with Ledger(fleet.ledger_url()) as ledger:
        while True:
            acks = {a.bot: a for a in ledger.config_acks(version)}
            if set(bots) <= set(acks) or time.monotonic() >= deadline:
                break
            time.sleep(_POLL_S)
    return {
        name: "missing"
        if name not in acks
        else acks[name].status + (f": {acks[name].reason}" if acks[name].reason else "")
        for name in bots
    }


def _watch(guard: CanaryGuard, bot: str, baseline: Health, changed_at: float) -> str | None:
    """Look at the canary every `poll_s` for `watch_s`; the first breach, or None."""
    logger = get_run_logger()
    deadline = changed_at + guard.watch_s
    while True:
        since_s = max(1, int(time.monotonic() - changed_at))
        try:
            health = query_health(guard, bot, since_s)
        except PrometheusUnreachable as exc:  # a blip is waited out; nothing proves health past the watch
            logger.warning("canary %s after %d s: %s", bot, since_s, exc)
            breach: str | None = f"{exc}, so the canary cannot be watched"
        else:
            logger.info("canary %s after %d s: %s", bot, since_s, health.describe())
            breach = judge(baseline, health, guard)
            if breach is not None:
                return breach
        if time.monotonic() >= deadline:
            return breach
        time.sleep(min(guard.poll_s, max(0.0, deadline - time.monotonic())))


@task(retries=3, retry_delay_seconds=[2, 5, 15], retry_condition_fn=is_transient, cache_policy=NO_CACHE)
def roll_back_canary(
    fleet: FleetSettings, bot: str, config: dict[str, Any], author: str, timeout_s: float
) -> tuple[int, str]:
    """Publish the canary's previous config as a new version and wait for its ack: (version, ack)."""
    with Ledger(fleet.ledger_url()) as ledger:
        version = ledger.publish_config(config, [bot], author=author)
    ack = wait_for_config_acks.fn(fleet, version, [bot], timeout_s)[bot]
    return version, ack


def _groups(bots: tuple[str, ...], configs: Mapping[str, dict[str, Any]]) -> list[list[str]]:
    """Bots that get the very same config share one version."""
    groups: dict[str, list[str]] = {}
    for name in bots:
        groups.setdefault(json.dumps(configs[name], sort_keys=True), []).append(name)
    return list(groups.values())


def _summary(plan: RolloutPlan, patch: Mapping[str, Any], versions: Mapping[str, int], note: str) -> str:
    rows = "\n".join(
        f"| {name} | {plan.previous_versions[name] or 'file'} | {versions.get(name, '-')} |"
        for name in (plan.canary, *plan.rest)
    )
    shown = yaml.safe_dump(dict(patch), default_flow_style=True).strip()
    return (
        f"# rollout-config\n\n{note}\n\nPatch: `{shown}`"
        f"\n\n| bot | previous version | new version |\n|---|---|---|\n{rows}\n"
    )


@flow(name="rollout-config")
def rollout_config(
    patch: dict[str, Any] | None = None,
    config_file: str | None = None,
    bots: list[str] | None = None,
    canary: str | None = None,
    batch_size: int = 5,
    guard: CanaryGuard = DEFAULT_GUARD,
    ack_timeout_s: float = 60.0,
    config: str | None = None,
) -> dict[str, int]:
    """Validate, canary (publish, ack, watch in Prometheus), then the rest in batches; or roll back.

    Returns bot -> the config version it applied.
    """
    logger = get_run_logger()
    fleet = load_fleet_config(config)
    change = load_patch(patch, config_file)
    names = [b.name for b in select_bots(fleet, bots)]
    previous = read_applied_configs(fleet, names)
    plan = plan_rollout(fleet, names, canary, previous, change, batch_size)
    author = flow_author("rollout-config")
    lead = plan.canary

    try:
        baseline = query_health(guard, lead)
    except PrometheusUnreachable as exc:
        raise FlowError(f"{exc}: the canary {lead} cannot be watched, nothing was published") from None
    if not baseline.samples or baseline.drawdown is None:
        raise FlowError(
            f"Prometheus at {guard.prometheus_url} has no metrics of the canary {lead}: it cannot be"
            " watched, nothing was published"
        )
    logger.info("canary %s baseline: %s", lead, baseline.describe())
    version = publish_version(fleet, plan.new_configs[lead], [lead], author)
    ack = wait_for_config_acks(fleet, version, [lead], ack_timeout_s)[lead]
    if ack.startswith("rejected"):
        raise FlowError(f"canary {lead} {ack} (version {version}); nothing else was changed")
    changed_at = time.monotonic()
    breach = None if ack == "applied" else f"no ack of version {version} within {ack_timeout_s:g} s"
    if breach is None:
        breach = _watch(guard, lead, baseline, changed_at)
    if breach is not None:
        back, back_ack = roll_back_canary(fleet, lead, plan.restore_configs[lead], author, ack_timeout_s)
        message = (
            f"canary {lead} failed: {breach}; rolled back to its previous config as version {back}"
            f" ({back_ack}); no other bot was changed"
        )
        create_markdown_artifact(_summary(plan, change, {lead: back}, message), key="rollout-config")
        raise FlowError(message)

    applied = {lead: version}
    for start in range(0, len(plan.rest), batch_size):
        batch = plan.rest[start : start + batch_size]
        failed: list[str] = []
        for group in _groups(batch, plan.new_configs):
            group_version = publish_version(fleet, plan.new_configs[group[0]], group, author)
            acks = wait_for_config_acks(fleet, group_version, group, ack_timeout_s)
            for name, status in acks.items():
                if status == "applied":
                    applied[name] = group_version
                else:
                    failed.append(f"{name} {status} (version {group_version})")
        logger.info("batch %d: %s", start // batch_size + 1, ", ".join(batch))
        if failed:
            message = f"rollout stopped: {'; '.join(failed)}; applied so far: {applied}"
            create_markdown_artifact(_summary(plan, change, applied, message), key="rollout-config")
            raise FlowError(message)
    create_markdown_artifact(_summary(plan, change, applied, "Rolled out."), key="rollout-config")
    return applied
