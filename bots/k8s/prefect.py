"""The Prefect Kubernetes work pool's base job template, set up for one namespace, image and Prometheus.

infra/k8s/prefect/base-job-template.json is prefect-kubernetes 0.7.4's default template (the version
that resolves beside `prefect>=3.4.23,<3.5`; infra/k8s/prefect/README.md says how it was taken and what
we added: the fleet ConfigMap, the data claim, the ledger Secret, a non-root read-only pod). Rendering
only changes variable defaults, so a deployment's job variables still override them.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any, Final

from bots.k8s.bots import Manifest
from bots.k8s.names import common_labels

__all__ = ["JOB_TEMPLATE_FILE", "PREFECT_CONFIGMAP", "base_job_template", "prefect_configmap"]

JOB_TEMPLATE_FILE: Final = (
    Path(__file__).resolve().parents[2] / "infra" / "k8s" / "prefect" / "base-job-template.json"
)
PREFECT_CONFIGMAP: Final = "mmfleet-prefect"  # read by infra/k8s/prefect-worker.yaml


def base_job_template(namespace: str, image: str, prometheus_url: str) -> dict[str, Any]:
    """The vendored template with these defaults; everything else as the file has it."""
    template: dict[str, Any] = json.loads(JOB_TEMPLATE_FILE.read_text(encoding="utf-8"))
    variables = copy.deepcopy(template["variables"]["properties"])
    variables["namespace"]["default"] = namespace
    variables["image"]["default"] = image
    variables["prometheus_url"]["default"] = prometheus_url
    template["variables"]["properties"] = variables
    return template


def prefect_configmap(template: dict[str, Any], api_url: str, work_pool: str) -> Manifest:
    """What the Prefect worker Deployment reads: the API, its pool and the template the pool starts with."""
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": PREFECT_CONFIGMAP, "labels": common_labels("flows")},
        "data": {
            "api_url": api_url,
            "work_pool": work_pool,
            "base-job-template.json": json.dumps(template, indent=2) + "\n",
        },
    }
