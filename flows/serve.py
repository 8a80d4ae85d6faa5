"""The deployments of the five flows, served by one process: `mmfleet flows serve --config FLEET`.

| deployment                                          | schedule (UTC)      |
|-----------------------------------------------------|---------------------|
| retrain-regime-model/retrain-regime-gmm-daily-0030utc | every day at 00:30 |
| tune-parameters/tune-gamma-kappa-hourly-at-15        | every hour at :15   |
| daily-pnl-report/pnl-report-daily-0005utc            | every day at 00:05  |
| rollout-config/rollout-config-canary-on-demand       | none: run from the UI or `prefect deployment run` |
| fleet-control/fleet-command-on-demand                | none                |

The UI lists deployments by name alone, so each name says what it does and when, and no two are alike.

Each deployment carries the fleet file as its `config` parameter (and the process sets
$MMFLEET_CONFIG), so a run from the UI needs only the flow's own parameters. `--prometheus-url` sets
$MMFLEET_PROMETHEUS_URL, the default Prometheus of every canary guard (a guard given in full from the
UI still finds it). The Prefect API is $PREFECT_API_URL (`mmfleet stack up` points it at its server).

`deploy_to_pool` registers the same five deployments with a work pool instead (`mmfleet flows deploy`):
a Kubernetes pool's worker then starts each run as a Job of the mmfleet image, from the pool's base job
template (infra/k8s/prefect/base-job-template.json), and the `config` parameter is the fleet file's path
inside that Job.
"""

from __future__ import annotations

import os
from pathlib import Path, PurePath
from typing import Any
from uuid import UUID

from prefect import deploy, serve
from prefect.deployments.runner import RunnerDeployment
from prefect.schedules import Cron
from prefect.types.entrypoint import EntrypointType

from flows.canary import PROMETHEUS_URL_ENV
from flows.common import CONFIG_ENV
from flows.fleet_control import fleet_control
from flows.pnl_report import daily_pnl_report
from flows.retrain import retrain_regime_model
from flows.rollout import rollout_config
from flows.tune import tune_parameters

__all__ = [
    "DEPLOYMENT_NAMES",
    "REPORT_CRON",
    "RETRAIN_CRON",
    "TUNE_CRON",
    "deploy_to_pool",
    "deployments",
    "serve_fleet",
]

RETRAIN_CRON = "30 0 * * *"
TUNE_CRON = "15 * * * *"
REPORT_CRON = "5 0 * * *"
_TAGS = ["mmfleet"]
# flow name -> deployment name
DEPLOYMENT_NAMES = {
    "retrain-regime-model": "retrain-regime-gmm-daily-0030utc",
    "tune-parameters": "tune-gamma-kappa-hourly-at-15",
    "daily-pnl-report": "pnl-report-daily-0005utc",
    "rollout-config": "rollout-config-canary-on-demand",
    "fleet-control": "fleet-command-on-demand",
}


def deployments(config: PurePath, job_variables: dict[str, Any] | None = None) -> list[RunnerDeployment]:
    """The five deployments for the fleet file `config` (a path where the flow runs will read it)."""
    base: dict[str, Any] = {"config": str(config)}
    module = EntrypointType.MODULE_PATH  # importable from any working directory: the package is installed
    common: dict[str, Any] = {"tags": _TAGS, "entrypoint_type": module, "job_variables": job_variables}
    made = [
        retrain_regime_model.to_deployment(
            name=DEPLOYMENT_NAMES["retrain-regime-model"],
            schedules=[Cron(RETRAIN_CRON, timezone="UTC")],
            parameters=base,
            **common,
            description="Fit the regime GMM on recent features; publish it when not worse on the holdout.",
        ),
        tune_parameters.to_deployment(
            name=DEPLOYMENT_NAMES["tune-parameters"],
            schedules=[Cron(TUNE_CRON, timezone="UTC")],
            concurrency_limit=1,  # an hour's tuning never overlaps the next one's
            parameters=base,
            **common,
            description="Adaptive gamma/kappa per bot; accepted proposals go out through rollout-config.",
        ),
        daily_pnl_report.to_deployment(
            name=DEPLOYMENT_NAMES["daily-pnl-report"],
            schedules=[Cron(REPORT_CRON, timezone="UTC")],
            parameters=base,
            **common,
            description="Yesterday's PnL per bot and fleet: HTML, PNG plots, CSV under data_dir/reports.",
        ),
        rollout_config.to_deployment(
            name=DEPLOYMENT_NAMES["rollout-config"],
            concurrency_limit=1,  # one rollout at a time: two canaries would judge each other's changes
            parameters=base,
            **common,
            description="Validate a config patch, canary it under Prometheus' eye, then batches or rollback.",
        ),
        fleet_control.to_deployment(
            name=DEPLOYMENT_NAMES["fleet-control"],
            parameters=base,
            **common,
            description="start / stop / stop_close / restart / shutdown one bot or all, and their acks.",
        ),
    ]
    # `to_deployment` is sync outside an event loop; its signature also admits the async form.
    if not all(isinstance(d, RunnerDeployment) for d in made):
        raise TypeError("deployments() must be called outside a running event loop")
    return [d for d in made if isinstance(d, RunnerDeployment)]


def serve_fleet(config: Path, prometheus_url: str | None = None) -> None:
    """Register the deployments with the Prefect API and run their flows until interrupted."""
    path = config.resolve()
    os.environ[CONFIG_ENV] = str(path)
    if prometheus_url:
        os.environ[PROMETHEUS_URL_ENV] = prometheus_url
    serve(*deployments(path))


def deploy_to_pool(
    config_in_pool: PurePath, work_pool: str, image: str, prometheus_url: str | None = None
) -> list[UUID]:
    """Register the deployments with `work_pool` (it must exist), each run in `image` as it is (no build
    or push here: CI builds infra/docker/Dockerfile). `prometheus_url` overrides the pool's default."""
    variables = {"prometheus_url": prometheus_url} if prometheus_url else None
    made = deployments(config_in_pool, job_variables=variables)
    ids: object = deploy(
        *made, work_pool_name=work_pool, image=image, build=False, push=False, print_next_steps_message=False
    )
    # `deploy` is sync outside an event loop; its signature also admits the async form.
    if not isinstance(ids, list):
        raise TypeError("deploy_to_pool() must be called outside a running event loop")
    if len(ids) != len(made):
        raise RuntimeError(
            f"{len(made) - len(ids)} of {len(made)} deployments were not registered (see above)"
        )
    return [UUID(str(i)) for i in ids]
