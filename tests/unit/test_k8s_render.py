"""`mmfleet k8s render`: every object valid for Kubernetes and the Prometheus Operator, offline.

Built-in kinds are validated by kubernetes-validate against the OpenAPI schemas of one pinned Kubernetes
release, strictly (an unknown field is an error, as `kubectl apply --validate=strict` has it). The
operator's kinds are validated against the CRD schemas of one operator release, vendored as data in
tests/schemas/prometheus-operator-v0.93.0/, made strict the same way. The rule groups of the
PrometheusRule are handed back to promtool, with the project's own rule tests.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import yaml
from typer.testing import CliRunner

from bots.cli import app
from bots.errors import ConfigError
from bots.k8s import object_name
from bots.k8s.bots import BOT_LIMITS, BOT_REQUESTS, FLEET_IN_POD, GRVT_SECRET_DIR, grace_period_s
from bots.k8s.monitoring import ALERTS_RECEIVER, ALERTS_RECEIVER_PORT, DASHBOARD_LABEL, DATASOURCE_LABEL
from bots.k8s.names import object_names
from settings import load_fleet

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "config" / "fleet.example.yaml"
KUBERNETES_VERSION = "1.32.0"  # the schemas kubernetes-validate checks against (kubectl 1.32 here)
CRD_DIR = REPO / "tests" / "schemas" / "prometheus-operator-v0.93.0"
RULES_DIR = REPO / "infra" / "prometheus" / "rules"
RULE_TESTS = REPO / "infra" / "prometheus" / "tests"
DASHBOARDS = REPO / "dashboards"

Json = dict[str, Any]
runner = CliRunner()


@pytest.fixture(autouse=True)
def isolated(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in [n for n in os.environ if n.upper().startswith("MMFLEET_")]:
        monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)


def render(fleet_file: Path, out: Path, *extra: str) -> tuple[int, str]:
    result = runner.invoke(app, ["k8s", "render", "-c", str(fleet_file), "-o", str(out), *extra])
    return result.exit_code, result.stdout + result.stderr


def load_dir(out: Path) -> dict[str, list[Json]]:
    files = {}
    for path in sorted(out.glob("*.yaml")):
        if path.name != "kustomization.yaml":
            files[path.name] = [doc for doc in yaml.safe_load_all(path.read_text()) if doc]
    return files


def objects(files: dict[str, list[Json]]) -> Iterator[Json]:
    for docs in files.values():
        yield from docs


def find(files: dict[str, list[Json]], kind: str, name: str | None = None) -> list[Json]:
    return [o for o in objects(files) if o["kind"] == kind and name in (None, o["metadata"]["name"])]


@pytest.fixture
def rendered(tmp_path: Path) -> dict[str, list[Json]]:
    code, output = render(
        EXAMPLE, tmp_path / "k8s", "--namespace", "trading", "--image", "registry/mmfleet:1.2"
    )
    assert code == 0, output
    return load_dir(tmp_path / "k8s")


# --- the schemas ------------------------------------------------------------------------------------------


def strict(schema: Any) -> Any:
    """A CRD schema with unknown fields refused wherever the schema lists the known ones."""
    if isinstance(schema, dict):
        out = {key: strict(value) for key, value in schema.items()}
        if (
            "properties" in out
            and "additionalProperties" not in out
            and not out.get("x-kubernetes-preserve-unknown-fields")
        ):
            out["additionalProperties"] = False
        return out
    if isinstance(schema, list):
        return [strict(item) for item in schema]
    return schema


def crd_validators() -> dict[tuple[str, str], jsonschema.Draft4Validator]:
    found = {}
    for path in sorted(CRD_DIR.glob("*.json")):
        crd = json.loads(path.read_text())
        schema = strict(crd["openAPIV3Schema"])
        validator = jsonschema.Draft4Validator(schema)  # Kubernetes' structural schemas are draft 4
        found[(f"{crd['group']}/{crd['version']}", crd["kind"])] = validator
    return found


def test_every_object_is_valid_for_kubernetes_or_the_operator(rendered: dict[str, list[Json]]) -> None:
    crds = crd_validators()
    kinds = set()
    for obj in objects(rendered):
        kinds.add(obj["kind"])
        key = (obj["apiVersion"], obj["kind"])
        if key in crds:
            errors = [e.message for e in crds[key].iter_errors(obj)]
            assert not errors, f"{obj['kind']} {obj['metadata']['name']}: {errors}"
            kubernetes_validate.validate(
                {"apiVersion": "v1", "kind": "ConfigMap", "metadata": obj["metadata"]},
                KUBERNETES_VERSION,
                True,
            )  # the CRD schema leaves metadata open: check it as any object's
        else:
            kubernetes_validate.validate(obj, KUBERNETES_VERSION, strict=True)
    assert {"PodMonitor", "PrometheusRule", "AlertmanagerConfig", "Deployment", "ConfigMap"} <= kinds


def test_the_validators_refuse_what_a_cluster_would(rendered: dict[str, list[Json]]) -> None:
    """Both checks can fail: an unknown field, a wrong type."""
    crds = crd_validators()
    monitor = json.loads(json.dumps(find(rendered, "PodMonitor")[0]))
    monitor["spec"]["podMetricsEndpoints"][0]["intervall"] = "5s"
    assert list(crds[("monitoring.coreos.com/v1", "PodMonitor")].iter_errors(monitor))
    rule = json.loads(json.dumps(find(rendered, "PrometheusRule")[0]))
    rule["spec"]["groups"][0]["rules"][0]["for"] = 60
    assert list(crds[("monitoring.coreos.com/v1", "PrometheusRule")].iter_errors(rule))
    deployment = json.loads(json.dumps(find(rendered, "Deployment", "bot-btc-usdt-perp")[0]))
    deployment["spec"]["template"]["spec"]["containers"][0]["readOnlyRootFilesystem"] = True  # wrong level
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, KUBERNETES_VERSION, strict=True)


def test_everything_is_in_the_namespace_and_the_image_is_the_given_one(
    rendered: dict[str, list[Json]],
) -> None:
    for obj in objects(rendered):
        if obj["kind"] == "Namespace":
            assert obj["metadata"]["name"] == "trading"
        else:
            assert obj["metadata"]["namespace"] == "trading", obj["metadata"]["name"]
    images = {
        c["image"] for d in find(rendered, "Deployment") for c in d["spec"]["template"]["spec"]["containers"]
    }
    assert images == {"registry/mmfleet:1.2", "prefecthq/prefect:3.4.23-python3.11-kubernetes"}


def refs(node: Any, key: str) -> Iterator[Json]:
    """Every mapping under `key` anywhere in `node`."""
    if isinstance(node, dict):
        for name, value in node.items():
            if name == key and isinstance(value, dict):
                yield value
            yield from refs(value, key)
    elif isinstance(node, list):
        for item in node:
            yield from refs(item, key)


def test_every_reference_resolves_to_a_rendered_object_or_a_documented_secret(
    rendered: dict[str, list[Json]],
) -> None:
    """ConfigMaps, claims and service accounts the pods (and the flow-run Job template) name exist."""
    named = {(o["kind"], o["metadata"]["name"]) for o in objects(rendered)}
    template = json.loads(find(rendered, "ConfigMap", "mmfleet-prefect")[0]["data"]["base-job-template.json"])
    pods = [*find(rendered, "Deployment"), template["job_configuration"]["job_manifest"]]
    for config_map in [*refs(pods, "configMap"), *refs(pods, "configMapKeyRef")]:
        assert ("ConfigMap", config_map["name"]) in named, config_map
    for claim in refs(pods, "persistentVolumeClaim"):
        assert ("PersistentVolumeClaim", claim["claimName"]) in named, claim
    accounts = {d["spec"]["template"]["spec"]["serviceAccountName"] for d in find(rendered, "Deployment")}
    accounts.add(template["variables"]["properties"]["service_account_name"]["default"])
    assert {("ServiceAccount", a) for a in accounts} <= named
    secrets = {ref["name"] for ref in refs(pods, "secretKeyRef") if not ref.get("optional")}
    assert secrets == {"mmfleet-database"}, "the one Secret docs/deployment.md says to create"


# --- the bots ---------------------------------------------------------------------------------------------


def test_one_deployment_per_bot_that_runs_it_safely(rendered: dict[str, list[Json]]) -> None:
    fleet = load_fleet(EXAMPLE)
    bots = [
        d
        for d in find(rendered, "Deployment")
        if d["metadata"]["labels"]["app.kubernetes.io/component"] == "bot"
    ]
    assert len(bots) == len(fleet.bots) == 3
    config = find(rendered, "ConfigMap", "mmfleet-fleet")[0]
    assert config["data"]["fleet.yaml"] == EXAMPLE.read_text()
    for bot in fleet.bots:
        name = object_name(bot.name)
        deployment = find(rendered, "Deployment", f"bot-{name}")[0]
        spec = deployment["spec"]
        assert spec["replicas"] == 1 and spec["strategy"] == {"type": "Recreate"}
        pod = spec["template"]["spec"]
        assert spec["selector"]["matchLabels"].items() <= spec["template"]["metadata"]["labels"].items()
        (container,) = pod["containers"]
        args = container["args"]
        assert args[:2] == ["bot", "run"] and args[args.index("--bot") + 1] == bot.name
        assert args[args.index("--config") + 1] == FLEET_IN_POD
        assert "--i-understand-live-trading" not in args
        port = int(args[args.index("--metrics-port") + 1])
        assert container["ports"] == [{"name": "metrics", "containerPort": port, "protocol": "TCP"}]
        assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "metrics"}
        assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "metrics"}
        # SIGTERM: the bot's stop deadline (cancelling until nothing rests) and the flush fit in the grace
        assert pod["terminationGracePeriodSeconds"] == grace_period_s(bot) > bot.exchange.stop_deadline_s
        assert container["resources"] == {"requests": BOT_REQUESTS, "limits": BOT_LIMITS}
        assert pod["securityContext"]["runAsNonRoot"] and pod["securityContext"]["runAsUser"] != 0
        assert container["securityContext"]["readOnlyRootFilesystem"] is True
        assert container["securityContext"]["allowPrivilegeEscalation"] is False
        env = {e["name"]: e for e in container["env"]}
        assert env["MMFLEET_DATABASE_URL"]["valueFrom"]["secretKeyRef"] == {
            "name": "mmfleet-database",
            "key": "url",
        }
        volumes = {v["name"]: v for v in pod["volumes"]}
        mounts = {m["mountPath"]: volumes[m["name"]] for m in container["volumeMounts"]}
        assert mounts[str(Path(FLEET_IN_POD).parent)]["configMap"]["name"] == config["metadata"]["name"]
        data_dir = env["MMFLEET_DATA_DIR"]["value"]
        assert mounts[data_dir]["persistentVolumeClaim"]["claimName"] == "mmfleet-data"
        assert "/tmp" in mounts  # the only other writable place


def test_the_pod_environment_puts_models_on_the_shared_claim(
    rendered: dict[str, list[Json]], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The bots read models where the flow-run Jobs write them: <data_dir>/models on mmfleet-data."""
    deployment = find(rendered, "Deployment", "bot-eth-usdt-perp")[0]
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    for item in container["env"]:
        if "value" in item:
            monkeypatch.setenv(item["name"], item["value"])
    bot = load_fleet(EXAMPLE).bots[1]
    assert bot.ml.model_dir == Path("/var/lib/mmfleet/models")
    template = json.loads(find(rendered, "ConfigMap", "mmfleet-prefect")[0]["data"]["base-job-template.json"])
    job = template["job_configuration"]["job_manifest"]["spec"]["template"]["spec"]
    job_env = {e["name"]: e.get("value") for e in job["containers"][0]["env"]}
    assert job_env["MMFLEET_DATA_DIR"] == "/var/lib/mmfleet"
    claims = {v["persistentVolumeClaim"]["claimName"] for v in job["volumes"] if "persistentVolumeClaim" in v}
    assert claims == {"mmfleet-data"}


def test_adding_a_symbol_is_one_line_of_the_fleet_file(tmp_path: Path) -> None:
    fleet_file = tmp_path / "desk.yaml"
    fleet_file.write_text(EXAMPLE.read_text())
    assert render(fleet_file, tmp_path / "out")[0] == 0
    before = {p.name: p.read_text() for p in (tmp_path / "out").glob("*.yaml")}
    fleet_file.write_text(fleet_file.read_text() + "  - {symbol: BTC_USDT_Perp, name: btc_grid_2}\n")
    assert render(fleet_file, tmp_path / "out")[0] == 0
    after = {p.name: p.read_text() for p in (tmp_path / "out").glob("*.yaml")}
    assert set(after) - set(before) == {"bot-btc-grid-2.yaml"}
    changed = {name for name in before if before[name] != after[name]}
    assert changed == {"fleet-config.yaml", "kustomization.yaml"}
    assert "bot-btc-grid-2.yaml" in yaml.safe_load(after["kustomization.yaml"])["resources"]

    fleet_file.write_text(EXAMPLE.read_text())  # and taking it out again removes its file
    assert render(fleet_file, tmp_path / "out")[0] == 0
    assert not (tmp_path / "out" / "bot-btc-grid-2.yaml").exists()


@pytest.mark.parametrize(
    ("bot", "expected"),
    [("BTC_USDT_Perp", "btc-usdt-perp"), ("eth-grid_2", "eth-grid-2"), ("A" * 63, "a" * 63)],
)
def test_object_names_lowercase_and_dash(bot: str, expected: str) -> None:
    assert object_name(bot) == expected


def test_a_fleet_file_name_that_is_no_label_value_exits_2(tmp_path: Path) -> None:
    fleet_file = tmp_path / "desk#1.yaml"
    fleet_file.write_text(EXAMPLE.read_text())
    code, output = render(fleet_file, tmp_path / "out")
    assert code == 2 and "the fleet file's name 'desk#1' is not usable as a Kubernetes label value" in output
    code, output = render(EXAMPLE, tmp_path / "out", "--namespace", "Trading_Desk")
    assert code == 2 and "namespace 'Trading_Desk' is not an RFC 1123 label" in output


@pytest.mark.parametrize("bot", ["_leading", "trailing-", "A" * 64, "dot.ted", ""])
def test_names_kubernetes_would_refuse_are_config_errors(bot: str) -> None:
    with pytest.raises(ConfigError, match="Kubernetes name"):
        object_name(bot)


def test_two_bots_on_one_object_name_exit_2_naming_both(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        object_names(["BTC_grid", "btc-grid", "eth"])
    assert caught.value.problems == ("btc-grid: same Kubernetes name 'btc-grid' as bot BTC_grid; rename one",)
    fleet_file = tmp_path / "f.yaml"
    fleet_file.write_text(
        "bots:\n  - {symbol: BTC_USDT_Perp, name: Grid_A}\n  - {symbol: ETH_USDT_Perp, name: grid-a}\n"
    )
    code, output = render(fleet_file, tmp_path / "out")  # the fleet loader refuses it first
    assert code == 2 and "bots[1].name: duplicate bot name, already used by bots[0]" in output
    assert "(names are compared lowercased, with _ as -) (got 'grid-a')" in output
    assert not (tmp_path / "out").exists(), "nothing written for a fleet that cannot be rendered"


def test_a_live_bot_needs_the_flag_and_reads_its_secret_files(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fleet_file = tmp_path / "live.yaml"
    fleet_file.write_text(
        "bots:\n  - symbol: BTC_USDT_Perp\n    exchange: {mode: live}\n  - symbol: ETH_USDT_Perp\n"
    )
    code, output = render(fleet_file, tmp_path / "out")
    assert code == 2 and "BTC_USDT_Perp: exchange.mode is live" in output
    code, output = render(fleet_file, tmp_path / "out", "--i-understand-live-trading")
    assert code == 0, output
    files = load_dir(tmp_path / "out")
    live = find(files, "Deployment", "bot-btc-usdt-perp")[0]["spec"]["template"]["spec"]
    sim = find(files, "Deployment", "bot-eth-usdt-perp")[0]["spec"]["template"]["spec"]
    assert "--i-understand-live-trading" in live["containers"][0]["args"]
    assert "--i-understand-live-trading" not in sim["containers"][0]["args"]
    secrets = [v for v in live["volumes"] if "secret" in v]
    assert [v["secret"]["secretName"] for v in secrets] == ["mmfleet-grvt-btc-usdt-perp"]
    assert not [v for v in sim["volumes"] if "secret" in v]
    mount = next(m for m in live["containers"][0]["volumeMounts"] if m["name"] == secrets[0]["name"])
    assert mount["mountPath"] == GRVT_SECRET_DIR and mount["readOnly"]
    for item in live["containers"][0]["env"]:
        if "value" in item:
            monkeypatch.setenv(item["name"], item["value"])
    refs = load_fleet(fleet_file).bots[0].exchange.credentials
    for key in ("api_key", "private_key", "trading_account_id"):
        assert getattr(refs, f"{key}_file") == Path(GRVT_SECRET_DIR) / key

    fleet_file.write_text(
        "bots:\n  - symbol: BTC_USDT_Perp\n    exchange: {mode: live, credentials: {api_key_file: /x}}\n"
    )
    code, output = render(fleet_file, tmp_path / "out2", "--i-understand-live-trading")
    assert code == 2 and "exchange.credentials.api_key_file is set for this bot" in output


# --- observability ----------------------------------------------------------------------------------------


def test_the_podmonitor_scrapes_every_bot_with_the_labels_the_rules_use(
    rendered: dict[str, list[Json]],
) -> None:
    (monitor,) = find(rendered, "PodMonitor")
    selector = monitor["spec"]["selector"]["matchLabels"]
    (endpoint,) = monitor["spec"]["podMetricsEndpoints"]
    scraped = [
        d
        for d in find(rendered, "Deployment")
        if selector.items() <= d["spec"]["template"]["metadata"]["labels"].items()
    ]
    assert len(scraped) == 3
    for deployment in scraped:
        ports = {p["name"] for c in deployment["spec"]["template"]["spec"]["containers"] for p in c["ports"]}
        assert endpoint["port"] in ports
        assert deployment["spec"]["template"]["metadata"]["labels"]["mmfleet.io/fleet"] == "fleet.example"
    relabel = {r["targetLabel"]: r for r in endpoint["relabelings"]}
    assert relabel["job"]["replacement"] == "mmfleet-bots"
    assert relabel["fleet"]["sourceLabels"] == ["__meta_kubernetes_pod_label_mmfleet_io_fleet"]
    assert 'job="mmfleet-bots"' in (RULES_DIR / "alerts.yml").read_text()


def test_the_prometheus_rule_is_the_rule_files_and_promtool_agrees(
    rendered: dict[str, list[Json]], tmp_path: Path
) -> None:
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.fail("promtool is not installed (make infra-deps)")
    (rule,) = find(rendered, "PrometheusRule")
    groups = rule["spec"]["groups"]
    source = [
        g for path in sorted(RULES_DIR.glob("*.yml")) for g in yaml.safe_load(path.read_text())["groups"]
    ]
    assert groups == source
    extracted = tmp_path / "rules" / "extracted.yml"
    extracted.parent.mkdir()
    extracted.write_text(yaml.safe_dump({"groups": groups}, sort_keys=False))
    check = subprocess.run(
        [promtool, "check", "rules", str(extracted)], capture_output=True, text=True, check=False
    )
    assert check.returncode == 0, check.stdout + check.stderr
    # The project's own rule tests, run against the extracted groups instead of the source files.
    for test_file in sorted(RULE_TESTS.glob("*.yml")):
        test = yaml.safe_load(test_file.read_text())
        test["rule_files"] = [str(extracted)]
        copy = tmp_path / "rules" / test_file.name
        copy.write_text(yaml.safe_dump(test, sort_keys=False))
        result = subprocess.run(
            [promtool, "test", "rules", str(copy)], capture_output=True, text=True, check=False
        )
        assert result.returncode == 0, f"{test_file.name}:\n{result.stdout}{result.stderr}"


def _matchers(text: list[str]) -> list[Json]:
    out = []
    for m in text:
        name, value = m.split("=", 1)
        out.append({"name": name, "matchType": "=", "value": value.strip('"')})
    return out


def test_the_alertmanager_config_routes_as_alertmanager_yml_to_the_receiver_service(
    rendered: dict[str, list[Json]],
) -> None:
    source = yaml.safe_load((REPO / "infra" / "alertmanager" / "alertmanager.yml").read_text())
    (config,) = find(rendered, "AlertmanagerConfig")
    route = config["spec"]["route"]
    assert route["receiver"] == source["route"]["receiver"]
    assert route["groupBy"] == source["route"]["group_by"]
    assert [r["receiver"] for r in route["routes"]] == [r["receiver"] for r in source["route"]["routes"]]
    for ours, theirs in zip(route["routes"], source["route"]["routes"], strict=True):
        assert ours["matchers"] == _matchers(theirs["matchers"])
        assert ours.get("groupWait") == theirs.get("group_wait")
    assert [r["name"] for r in config["spec"]["receivers"]] == [r["name"] for r in source["receivers"]]
    inhibit = config["spec"]["inhibitRules"][0]
    assert inhibit["sourceMatch"] == _matchers(source["inhibit_rules"][0]["source_matchers"])
    assert inhibit["equal"] == source["inhibit_rules"][0]["equal"]

    (service,) = find(rendered, "Service", ALERTS_RECEIVER)
    (receiver,) = find(rendered, "Deployment", ALERTS_RECEIVER)
    args = receiver["spec"]["template"]["spec"]["containers"][0]["args"]
    assert args[:2] == ["alerts", "receive"] and args[args.index("--port") + 1] == str(ALERTS_RECEIVER_PORT)
    assert service["spec"]["ports"][0]["port"] == ALERTS_RECEIVER_PORT
    assert service["spec"]["selector"].items() <= receiver["spec"]["template"]["metadata"]["labels"].items()
    (policy,) = find(rendered, "NetworkPolicy", ALERTS_RECEIVER)  # only Alertmanager posts halts
    assert (
        policy["spec"]["podSelector"]["matchLabels"].items()
        <= receiver["spec"]["template"]["metadata"]["labels"].items()
    )
    (rule,) = policy["spec"]["ingress"]
    assert rule["from"][0]["podSelector"]["matchLabels"] == {"app.kubernetes.io/name": "alertmanager"}
    urls = {h["url"] for r in config["spec"]["receivers"] for h in r.get("webhookConfigs", [])}
    assert urls == {f"http://{ALERTS_RECEIVER}.trading.svc:{ALERTS_RECEIVER_PORT}/alerts"}


def test_grafana_gets_every_dashboard_and_the_datasource_they_name(rendered: dict[str, list[Json]]) -> None:
    maps = find(rendered, "ConfigMap")
    dashboards = [m for m in maps if DASHBOARD_LABEL.items() <= m["metadata"]["labels"].items()]
    shipped = {p.name: p.read_text() for p in DASHBOARDS.glob("*.json")}
    assert {k: v for m in dashboards for k, v in m["data"].items()} == shipped
    (datasources,) = [m for m in maps if DATASOURCE_LABEL.items() <= m["metadata"]["labels"].items()]
    provisioned = yaml.safe_load(next(iter(datasources["data"].values())))["datasources"]
    uids = {d["uid"] for d in provisioned}
    assert {d["url"] for d in provisioned} == {"http://prometheus-operated.monitoring.svc:9090"}

    def named(node: Any) -> Iterator[str]:
        if isinstance(node, dict):
            if isinstance(node.get("datasource"), dict) and "uid" in node["datasource"]:
                yield node["datasource"]["uid"]
            for value in node.values():
                yield from named(value)
        elif isinstance(node, list):
            for item in node:
                yield from named(item)

    used = {uid for text in shipped.values() for uid in named(json.loads(text))}
    assert used and used <= uids


class KubectlLoader(yaml.SafeLoader):
    """kubectl writes `matchType: =` bare, which PyYAML reads as YAML 1.1's `value` tag."""


def _scalar(loader: KubectlLoader, node: yaml.Node) -> str:
    return str(node.value)


KubectlLoader.add_constructor("tag:yaml.org,2002:value", _scalar)


def kubectl_output(text: str) -> list[Json]:
    return [doc for doc in yaml.load_all(text, Loader=KubectlLoader) if doc]


def test_kubectl_kustomize_builds_the_rendered_base(tmp_path: Path) -> None:
    """The kustomization beside the YAML (what overlays build on); kubectl is optional here."""
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        pytest.skip("kubectl is not installed: the plain YAML is validated above without it")
    assert render(EXAMPLE, tmp_path / "k8s")[0] == 0
    built = subprocess.run(
        [kubectl, "kustomize", str(tmp_path / "k8s")], capture_output=True, text=True, check=False
    )
    assert built.returncode == 0, built.stderr
    count = sum(len(docs) for docs in load_dir(tmp_path / "k8s").values())

    assert len(kubectl_output(built.stdout)) == count


def test_the_dev_overlay_adds_postgres_and_builds_valid_objects(tmp_path: Path) -> None:
    """infra/k8s/overlays/dev over a render in build/k8s (the layout it expects, rebuilt under tmp)."""
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        pytest.skip("kubectl is not installed: the overlay is only built with it")
    overlay = tmp_path / "infra" / "k8s" / "overlays" / "dev"
    shutil.copytree(REPO / "infra" / "k8s" / "overlays" / "dev", overlay)
    (overlay / "database.env").write_text((overlay / "database.env.example").read_text())
    assert render(EXAMPLE, tmp_path / "build" / "k8s")[0] == 0
    built = subprocess.run([kubectl, "kustomize", str(overlay)], capture_output=True, text=True, check=False)
    assert built.returncode == 0, built.stderr
    docs = kubectl_output(built.stdout)
    for obj in docs:
        if not obj["apiVersion"].startswith("monitoring.coreos.com"):
            kubernetes_validate.validate(obj, KUBERNETES_VERSION, strict=True)
    kinds = {(o["kind"], o["metadata"]["name"]): o for o in docs}
    assert ("StatefulSet", "postgres") in kinds and ("Service", "postgres") in kinds
    secret = kinds[("Secret", "mmfleet-database")]
    assert set(secret["data"]) == {"url", "password"}
    assert kinds[("PersistentVolumeClaim", "mmfleet-data")]["spec"]["accessModes"] == ["ReadWriteOnce"]
    assert ".env" in (REPO / ".gitignore").read_text() and "database.env" in (REPO / ".gitignore").read_text()
