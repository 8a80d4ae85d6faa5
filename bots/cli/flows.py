"""`mmfleet flows serve` (the Prefect deployments) and `mmfleet stack up` (the whole local stack).

Prefect and the flows are imported inside the commands only: a bot worker imports `bots.cli`, and must
never load Prefect (memory, start time).
"""

from __future__ import annotations

import os
from pathlib import Path, PurePosixPath
from typing import Annotated, Any

import typer

from bots.cli.common import load_or_exit
from bots.k8s.bots import FLEET_IN_POD

__all__ = ["flows_app", "stack_app"]

flows_app = typer.Typer(no_args_is_help=True, help="Prefect flows: retrain, tune, PnL reports, rollouts.")
stack_app = typer.Typer(
    no_args_is_help=True, help="The local stack: fleet, Prefect server and flows, Prometheus, Alertmanager."
)

ConfigOption = Annotated[Path, typer.Option("--config", "-c", help="Fleet YAML file.")]
PrometheusOption = Annotated[
    str | None,
    typer.Option(
        help="Prometheus the canary guards query ($MMFLEET_PROMETHEUS_URL, else http://127.0.0.1:9090)."
    ),
]


def _port(help_text: str) -> Any:
    return typer.Option(min=1, max=65535, help=help_text)


@flows_app.command("serve")
def flows_serve(config: ConfigOption, prometheus_url: PrometheusOption = None) -> None:
    """Register the five deployments (with their schedules) with the Prefect API at $PREFECT_API_URL
    and run their flows until Ctrl-C. Flows read the fleet file given here ($MMFLEET_CONFIG)."""
    load_or_exit(config)  # a bad fleet file exits 2 here, not in every scheduled run
    if prometheus_url:  # before the flows are imported: the guard's default (shown in the UI) reads it
        os.environ["MMFLEET_PROMETHEUS_URL"] = prometheus_url
    from flows.serve import serve_fleet  # noqa: PLC0415 - Prefect only in this command

    serve_fleet(config, prometheus_url)


@flows_app.command("deploy")
def flows_deploy(
    config: ConfigOption,
    work_pool: Annotated[str, typer.Option(help="An existing work pool (e.g. of type kubernetes).")],
    image: Annotated[str, typer.Option(help="The mmfleet image the runs start from, already pushed.")],
    config_in_pool: Annotated[
        str, typer.Option(help="Where the runs find the fleet file (the k8s render's ConfigMap mount).")
    ] = FLEET_IN_POD,
    prometheus_url: PrometheusOption = None,
) -> None:
    """Register the five deployments with WORK_POOL at $PREFECT_API_URL instead of serving them here: the
    pool's workers run them (on Kubernetes, as Jobs). CONFIG is checked here; the runs read CONFIG_IN_POOL."""
    load_or_exit(config, check_host=False)  # the runs use the pool's data_dir and database
    from flows.serve import deploy_to_pool  # noqa: PLC0415 - Prefect only in this command

    ids = deploy_to_pool(PurePosixPath(config_in_pool), work_pool, image, prometheus_url)
    typer.echo(f"{len(ids)} deployments on work pool {work_pool}, image {image}")


@stack_app.command("up")
def stack_up(
    config: ConfigOption,
    prefect_port: Annotated[int | None, _port("Prefect server and UI port [4200 if free].")] = None,
    prometheus_port: Annotated[int | None, _port("Prometheus port [9090 if free].")] = None,
    alertmanager_port: Annotated[int | None, _port("Alertmanager port [9093 if free].")] = None,
    alert_receiver_port: Annotated[int | None, _port("`alerts receive` webhook port [9099 if free].")] = None,
    live: Annotated[
        bool, typer.Option("--i-understand-live-trading", help="Passed to the fleet for mode: live bots.")
    ] = False,
) -> None:
    """Fleet supervisor, Prefect server (SQLite under data_dir/prefect) with the served flows, and
    Prometheus + Alertmanager + the alert receiver when installed; prints their URLs; Ctrl-C stops all.
    A port not given is the conventional one when free, else a free one; a given port that is taken
    stops here, naming it."""
    from bots.ops.stack import StackPorts, run_local_stack  # noqa: PLC0415 - subprocess plumbing only here

    ports = StackPorts(prefect_port, prometheus_port, alertmanager_port, alert_receiver_port)
    raise typer.Exit(run_local_stack(config, ports=ports, live=live))
