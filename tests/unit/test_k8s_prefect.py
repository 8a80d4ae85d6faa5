"""The Kubernetes work pool's base job template: still Prefect's, and the Job it makes is valid.

The reference is the default template Prefect 3.4.23 itself offers for `kubernetes` pools (its bundled
copy of the collection registry, what `prefect work-pool get-default-base-job-template --type kubernetes`
returns offline). The Job a worker would submit is built with Prefect's own templating and validated
against the Kubernetes schemas, like the rest of the rendered manifests.
"""

from __future__ import annotations

import json
import shlex
from pathlib import Path
from typing import Any

import kubernetes_validate
import prefect
from prefect.utilities.templating import apply_values

from bots.k8s.bots import DATA_DIR, DATABASE_SECRET, FLEET_CONFIGMAP, FLEET_IN_POD
from bots.k8s.prefect import JOB_TEMPLATE_FILE, base_job_template

KUBERNETES_VERSION = "1.32.0"
PREFECT_DEFAULTS = (
    Path(prefect.__file__).parent
    / "server"
    / "api"
    / "collections_data"
    / "views"
    / "aggregate-worker-metadata.json"
)
Json = dict[str, Any]


def prefect_default() -> Json:
    registry = json.loads(PREFECT_DEFAULTS.read_text())
    template: Json = registry["prefect-kubernetes"]["kubernetes"]["default_base_job_configuration"]
    return template


def contained(default: Any, ours: Any, path: str = "") -> list[str]:
    """Where `ours` lost or changed something of `default` (dicts may gain keys)."""
    if isinstance(default, dict) and isinstance(ours, dict):
        return [p for key, value in default.items() for p in (
            [f"{path}.{key} missing"] if key not in ours else contained(value, ours[key], f"{path}.{key}")
        )]  # fmt: skip
    if isinstance(default, list) and isinstance(ours, list) and len(default) == len(ours):
        return [
            p
            for i, (d, o) in enumerate(zip(default, ours, strict=True))
            for p in contained(d, o, f"{path}[{i}]")
        ]
    return [] if default == ours else [f"{path}: {default!r} -> {ours!r}"]


def value_kinds(schema: Json) -> set[str]:
    """The JSON types (or $refs) a variable takes, however the schema generator spelled "optional"."""
    options = schema.get("anyOf") or schema.get("allOf") or [schema]
    return {o.get("type") or o.get("$ref", "") for o in options} - {"null"}


OUR_DEFAULTS = {"namespace", "service_account_name", "finished_job_ttl"}  # infra/k8s/prefect/README.md


def test_the_template_is_prefects_default_plus_our_pod() -> None:
    default = prefect_default()
    ours = json.loads(JOB_TEMPLATE_FILE.read_text())
    theirs_vars, our_vars = default["variables"]["properties"], ours["variables"]["properties"]
    for name, schema in theirs_vars.items():
        assert value_kinds(our_vars[name]) == value_kinds(schema), name
        if name not in OUR_DEFAULTS:
            assert our_vars[name].get("default") == schema.get("default"), name
    assert set(our_vars) - set(theirs_vars) <= {"prometheus_url", "backoff_limit"}  # backoff_limit: 0.7.4's
    differences = contained(default["job_configuration"], ours["job_configuration"])
    # What we meant to change: the container's env is a list (Secrets need valueFrom); 0.7.4's backoffLimit
    # is its variable; parallelism and completions sit in the Job spec, not the pod's (README there).
    allowed = {
        ".job_manifest.spec.template.spec.containers[0].env: '{{ env }}' -> ",
        ".job_manifest.spec.backoffLimit: 0 -> '{{ backoff_limit }}'",
        ".job_manifest.spec.template.spec.parallelism missing",
        ".job_manifest.spec.template.spec.completions missing",
    }
    job_spec = ours["job_configuration"]["job_manifest"]["spec"]
    assert (job_spec["parallelism"], job_spec["completions"]) == (1, 1)
    assert [d for d in differences if not any(d.startswith(a) for a in allowed)] == []
    assert ours["job_configuration"]["env"] == "{{ env }}", "the deployment's env still reaches the Job"


def the_job(template: Json, job_variables: Json) -> Json:
    """The Job a worker submits: the pool's defaults under the deployment's variables, Prefect-templated;
    then what prefect-kubernetes does to it (its env prepended to ours, the command split into args)."""
    values = {k: v.get("default") for k, v in template["variables"]["properties"].items()}
    values.update(job_variables)
    config: Json = apply_values(template["job_configuration"], values)
    job: Json = config["job_manifest"]
    container = job["spec"]["template"]["spec"]["containers"][0]
    container["env"] = [{"name": k, "value": v} for k, v in config["env"].items()] + container["env"]
    container["args"] = shlex.split(config["command"])
    job["metadata"]["generateName"] = "retrain-regime-model-daily-"
    return job


def test_the_job_a_flow_run_gets_is_valid_and_mounts_the_fleet() -> None:
    template = base_job_template("trading", "registry/mmfleet:1.2", "http://prom.monitoring:9090")
    job = the_job(
        template,
        {
            "command": "prefect flow-run execute",
            "env": {"PREFECT_API_URL": "http://prefect-server:4200/api", "PREFECT__FLOW_RUN_ID": "1234"},
            "labels": {"prefect.io/flow-run-id": "1234"},
            "name": "retrain-regime-model-daily",
        },
    )
    kubernetes_validate.validate(job, KUBERNETES_VERSION, strict=True)
    assert job["metadata"]["namespace"] == "trading"
    pod = job["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    assert container["image"] == "registry/mmfleet:1.2"
    # The image's entrypoint is `mmfleet`: the run must start Prefect's command, not `mmfleet prefect ...`.
    dockerfile = (Path(__file__).resolve().parents[2] / "infra" / "docker" / "Dockerfile").read_text()
    assert 'ENTRYPOINT ["mmfleet"]' in dockerfile
    assert container["command"] == ["/usr/bin/env"] and container["args"][:2] == ["prefect", "flow-run"]
    env = {e["name"]: e for e in container["env"]}
    assert env["MMFLEET_DATABASE_URL"]["valueFrom"]["secretKeyRef"] == {"name": DATABASE_SECRET, "key": "url"}
    assert env["MMFLEET_PROMETHEUS_URL"]["value"] == "http://prom.monitoring:9090"
    assert env["MMFLEET_CONFIG"]["value"] == FLEET_IN_POD
    assert env["PREFECT__FLOW_RUN_ID"]["value"] == "1234"
    volumes = {v["name"]: v for v in pod["volumes"]}
    mounts = {m["mountPath"]: volumes[m["name"]] for m in container["volumeMounts"]}
    assert mounts[str(Path(FLEET_IN_POD).parent)]["configMap"]["name"] == FLEET_CONFIGMAP
    assert mounts[env["MMFLEET_DATA_DIR"]["value"]]["persistentVolumeClaim"]["claimName"] == "mmfleet-data"
    assert env["MMFLEET_DATA_DIR"]["value"] == DATA_DIR
    assert pod["securityContext"]["runAsNonRoot"] and container["securityContext"]["readOnlyRootFilesystem"]
    assert pod["automountServiceAccountToken"] is False


def test_a_deployment_can_move_its_runs_elsewhere() -> None:
    """Job variables beat the pool's defaults: another Prometheus, another namespace."""
    template = base_job_template("trading", "registry/mmfleet:1.2", "http://prom:9090")
    job = the_job(
        template,
        {"command": "prefect flow-run execute", "env": {}, "labels": {}, "name": "x",
         "prometheus_url": "http://other:9090", "namespace": "research"},
    )  # fmt: skip
    env = {e["name"]: e.get("value") for e in job["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert env["MMFLEET_PROMETHEUS_URL"] == "http://other:9090"
    assert job["metadata"]["namespace"] == "research"
