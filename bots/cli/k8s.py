"""`mmfleet k8s render`: the fleet's Kubernetes objects as plain YAML (and a kustomization) in a directory."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from bots.cli.common import fail, load_or_exit
from bots.errors import ConfigError
from bots.k8s import RenderOptions, render, write_manifests

__all__ = ["k8s_app"]

k8s_app = typer.Typer(no_args_is_help=True, help="Kubernetes: render the fleet's manifests.")
_DEFAULTS = RenderOptions()


@k8s_app.command("render")
def render_command(
    config: Annotated[Path, typer.Option("--config", "-c", help="Fleet YAML file.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Directory to write the YAML into.")] = Path(
        "build/k8s"
    ),
    namespace: Annotated[str, typer.Option(help="Namespace of every object.")] = _DEFAULTS.namespace,
    image: Annotated[
        str, typer.Option(help="The mmfleet image (infra/docker/Dockerfile), pushed where the cluster pulls.")
    ] = _DEFAULTS.image,
    prometheus_url: Annotated[
        str, typer.Option(help="Prometheus for Grafana's datasource and the rollout canary.")
    ] = _DEFAULTS.prometheus_url,
    prefect_api_url: Annotated[
        str, typer.Option(help="The Prefect API the worker polls.")
    ] = _DEFAULTS.prefect_api_url,
    work_pool: Annotated[
        str, typer.Option(help="The Prefect work pool (type kubernetes) the worker serves.")
    ] = _DEFAULTS.work_pool,
    live: Annotated[
        bool, typer.Option("--i-understand-live-trading", help="Required to render mode: live bots.")
    ] = False,
) -> None:
    """Write one file per object group into OUT and a kustomization.yaml; exit 2 naming each problem."""
    fleet = load_or_exit(config, check_host=False)  # its data_dir and database are the cluster's
    options = RenderOptions(
        namespace=namespace, image=image, prometheus_url=prometheus_url, prefect_api_url=prefect_api_url,
        work_pool=work_pool, allow_live=live,
    )  # fmt: skip
    try:
        files = render(config, fleet, options)
    except ConfigError as exc:
        fail(exc.problems)
    written = write_manifests(files, out)
    bots = sum(1 for name in files if name.startswith("bot-"))
    typer.echo(f"{len(written)} files in {out}/ ({bots} bots, namespace {namespace})")
    typer.echo(f"apply: kubectl apply -k {out}")
