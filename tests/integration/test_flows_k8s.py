"""`mmfleet flows deploy`: the served deployments, registered with a Kubernetes work pool instead.

A real Prefect server (the harness) holds a work pool of type `kubernetes` made from the rendered base
job template; the command registers the five deployments there, each carrying the in-cluster fleet
file, the image and the schedules `flows serve` gives them. No worker runs here (no cluster): what a
worker would submit is checked in tests/unit/test_k8s_prefect.py.
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path
from typing import Any

import pytest
from prefect.client.orchestration import get_client
from prefect.client.schemas.actions import WorkPoolCreate
from typer.testing import CliRunner

from bots.cli import app
from bots.k8s.bots import FLEET_IN_POD
from bots.k8s.prefect import base_job_template
from flows.serve import deployments

pytestmark = pytest.mark.usefixtures("prefect_harness")  # tests/integration/conftest.py

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "config" / "fleet.example.yaml"
POOL = "mmfleet-kubernetes"


async def create_pool(template: dict[str, Any]) -> None:
    async with get_client() as client:
        await client.create_work_pool(
            WorkPoolCreate(name=POOL, type="kubernetes", base_job_template=template)
        )


async def read_deployments() -> dict[str, Any]:
    async with get_client() as client:
        found = await client.read_deployments()
        flows = {f.id: f.name for f in await client.read_flows()}
    return {f"{flows[d.flow_id]}/{d.name}": d for d in found if d.work_pool_name == POOL}


def test_flows_deploy_registers_the_served_deployments_with_the_kubernetes_pool(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    for name in [n for n in os.environ if n.startswith("MMFLEET_")]:
        monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)
    asyncio.run(create_pool(base_job_template("trading", "registry/mmfleet:1.2", "http://prom:9090")))
    result = CliRunner().invoke(
        app,
        ["flows", "deploy", "-c", str(EXAMPLE), "--work-pool", POOL, "--image", "registry/mmfleet:1.3",
         "--prometheus-url", "http://prom.research:9090"],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "5 deployments on work pool mmfleet-kubernetes" in result.output

    registered = asyncio.run(read_deployments())
    served = {f"{d.flow_name}/{d.name}": d for d in deployments(EXAMPLE)}
    assert set(registered) == set(served)
    for name, deployment in registered.items():
        assert deployment.parameters == {"config": FLEET_IN_POD}, name
        assert deployment.job_variables == {
            "image": "registry/mmfleet:1.3",
            "prometheus_url": "http://prom.research:9090",
        }, name
        crons = sorted(s.schedule.cron for s in deployment.schedules)
        assert crons == sorted(s.schedule.cron for s in served[name].schedules), name  # type: ignore[union-attr]
        assert deployment.entrypoint == served[name].entrypoint, "runs import the installed package"
        limit = deployment.global_concurrency_limit
        assert (limit.limit if limit else None) == served[name].concurrency_limit, name


def test_a_pool_that_does_not_exist_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(
        app, ["flows", "deploy", "-c", str(EXAMPLE), "--work-pool", "nowhere", "--image", "mmfleet:1"]
    )
    assert result.exit_code != 0
    assert "nowhere" in str(result.exception)
