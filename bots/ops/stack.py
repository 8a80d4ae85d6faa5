"""The whole local stack in one terminal (`mmfleet stack up`, behind `make run`).

Started, in order, each as its own process (own session, so Ctrl-C reaches only this one, which then
stops them in a safe order):
1. a Prefect server with its embedded SQLite database in `<data_dir>/prefect/` (PREFECT_HOME);
2. `mmfleet flows serve`: the five deployments with their schedules, running their flows;
3. when installed: Prometheus (the config of infra/prometheus with this fleet's targets file, data in
   `<data_dir>/prometheus/`), Alertmanager (infra/alertmanager, data in `<data_dir>/alertmanager/`)
   and `mmfleet alerts receive`, the webhook that halts bots;
4. the fleet supervisor (`mmfleet fleet up`), in the foreground with its live table.
Ports: the conventional ones (4200, 9090, 9093, 9099) when free, else free ones the system hands out
(each printed); a port given explicitly that is taken stops `stack up` before anything starts, naming
it (exit 2). Alertmanager gets a copy of its config whose webhooks reach this stack's receiver.
Logs of the background processes go to `<data_dir>/stack/<name>.log`. Ctrl-C stops the fleet first
(every order cancelled), then the flows, the Prefect server and the monitoring.

No Prefect import here: everything is a subprocess.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import IO, Any

import yaml

from bots.errors import ConfigError
from settings import FleetSettings, load_fleet

__all__ = [
    "CONVENTIONAL_PORTS",
    "PortTakenError",
    "ResolvedPorts",
    "StackPorts",
    "alertmanager_config",
    "prometheus_config",
    "resolve_ports",
    "run_local_stack",
]

REPO = Path(__file__).resolve().parents[2]
INFRA = REPO / "infra"
_FLEET_STOP_S = 60.0
_STOP_S = 15.0
_READY_S = 180.0  # a Prefect server on a busy laptop takes a while to migrate its database


@dataclass(frozen=True, slots=True)
class StackPorts:
    """The stack's ports; None: the conventional one when free, else any free port."""

    prefect: int | None = None
    prometheus: int | None = None
    alertmanager: int | None = None
    alert_receiver: int | None = None


@dataclass(frozen=True, slots=True)
class ResolvedPorts:
    """The ports the stack runs on."""

    prefect: int
    prometheus: int
    alertmanager: int
    alert_receiver: int


CONVENTIONAL_PORTS = ResolvedPorts(prefect=4200, prometheus=9090, alertmanager=9093, alert_receiver=9099)


class PortTakenError(ConfigError):
    """A port given explicitly is in use by another process."""


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def resolve_ports(requested: StackPorts, conventional: ResolvedPorts = CONVENTIONAL_PORTS) -> ResolvedPorts:
    """Every port of the stack, free now: a requested one as given (PortTakenError naming it when in
    use), else the conventional one when free, else one the system hands out."""
    chosen: dict[str, int] = {}
    for name, default in asdict(conventional).items():
        wanted: int | None = getattr(requested, name)
        option = f"--{name.replace('_', '-')}-port"
        if wanted is not None:
            if _port_busy(wanted) or wanted in chosen.values():
                raise PortTakenError(f"port {wanted} ({option}) is taken: free it or choose another")
            chosen[name] = wanted
        elif not _port_busy(default) and default not in chosen.values():
            chosen[name] = default
        else:
            port = _free_port()
            while port in chosen.values() or port in asdict(conventional).values():
                port = _free_port()
            print(f"port {default} is taken: {name.replace('_', ' ')} on {port} instead ({option} to choose)")
            chosen[name] = port
    return ResolvedPorts(**chosen)


@dataclass
class _Child:
    name: str
    process: subprocess.Popen[bytes]
    url: str = ""
    log: IO[bytes] | None = None
    reported: bool = field(default=False)


def _port_busy(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return int(response.status) == 200
    except (urllib.error.URLError, OSError):
        return False


def _wait(check: Callable[[], bool], child: _Child, timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if check():
            return True
        if child.process.poll() is not None:
            return False
        time.sleep(0.5)
    return False


def _mmfleet(*args: str) -> list[str]:
    return [sys.executable, "-m", "bots.cli", *args]


def prometheus_config(fleet: FleetSettings, ports: ResolvedPorts) -> dict[str, Any]:
    """infra/prometheus/prometheus.yml with absolute paths: rules from infra/, targets of this fleet."""
    config: dict[str, Any] = yaml.safe_load((INFRA / "prometheus" / "prometheus.yml").read_text())
    rules_dir = INFRA / "prometheus"
    config["rule_files"] = [str(rules_dir / r) for r in config.get("rule_files", [])]
    targets = (fleet.data_dir / "fleet" / "targets.json").resolve()
    for job in config.get("scrape_configs", []):
        for sd in job.get("file_sd_configs", []):
            sd["files"] = [str(targets)]
        if job.get("job_name") == "prometheus":
            job["static_configs"] = [{"targets": [f"127.0.0.1:{ports.prometheus}"]}]
    for manager in config.get("alerting", {}).get("alertmanagers", []):
        manager["static_configs"] = [{"targets": [f"127.0.0.1:{ports.alertmanager}"]}]
    return config


def alertmanager_config(ports: ResolvedPorts) -> dict[str, Any]:
    """infra/alertmanager/alertmanager.yml with its webhooks pointed at this stack's alert receiver."""
    config: dict[str, Any] = yaml.safe_load((INFRA / "alertmanager" / "alertmanager.yml").read_text())
    conventional = f"127.0.0.1:{CONVENTIONAL_PORTS.alert_receiver}/"
    for receiver in config.get("receivers", []):
        for hook in receiver.get("webhook_configs", []):
            hook["url"] = hook["url"].replace(conventional, f"127.0.0.1:{ports.alert_receiver}/")
    return config


class _Stack:
    def __init__(self, config_path: Path, fleet: FleetSettings, ports: ResolvedPorts) -> None:
        self.config_path = config_path.resolve()
        self.fleet = fleet
        self.ports = ports
        self.data = fleet.data_dir.resolve()
        self.logs = self.data / "stack"
        self.children: list[_Child] = []
        self.stopping = False

    def start(
        self, name: str, command: list[str], env: dict[str, str] | None = None, url: str = ""
    ) -> _Child:
        self.logs.mkdir(parents=True, exist_ok=True)
        log = (self.logs / f"{name}.log").open("ab")
        process = subprocess.Popen(
            command,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env={**os.environ, **(env or {})},
            start_new_session=True,
        )
        child = _Child(name, process, url, log)
        self.children.append(child)
        return child

    def prefect_env(self) -> dict[str, str]:
        home = self.data / "prefect"
        home.mkdir(parents=True, exist_ok=True)
        return {
            "PREFECT_HOME": str(home),
            "PREFECT_API_URL": f"http://127.0.0.1:{self.ports.prefect}/api",
            "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        }

    def start_prefect(self) -> None:
        prefect = shutil.which("prefect", path=str(Path(sys.executable).parent)) or "prefect"
        command = [prefect, "server", "start", "--host", "127.0.0.1", "--port", str(self.ports.prefect)]
        child = self.start(
            "prefect-server", command, self.prefect_env(), f"http://127.0.0.1:{self.ports.prefect}"
        )
        print(f"starting the Prefect server (log {self.logs / 'prefect-server.log'}) ...", flush=True)
        if not _wait(lambda: _answers(f"{child.url}/api/health"), child, _READY_S):
            print("the Prefect server did not come up: flows are not served (see its log)")
            return
        prometheus = f"http://127.0.0.1:{self.ports.prometheus}"
        self.start(
            "flows-serve",
            _mmfleet("flows", "serve", "--config", str(self.config_path), "--prometheus-url", prometheus),
            self.prefect_env(),
        )

    def start_monitoring(self) -> None:
        prometheus = shutil.which("prometheus")
        if prometheus is None:
            print("Prometheus is not installed (`make infra-deps`): no metrics history, no alerts")
        else:
            home = self.data / "prometheus"
            home.mkdir(parents=True, exist_ok=True)
            # The targets' directory must exist for Prometheus to watch it, else it polls every 30 s.
            (self.data / "fleet").mkdir(parents=True, exist_ok=True)
            config = home / "prometheus.yml"
            config.write_text(yaml.safe_dump(prometheus_config(self.fleet, self.ports), sort_keys=False))
            self.start(
                "prometheus",
                [
                    prometheus,
                    f"--config.file={config}",
                    f"--storage.tsdb.path={home / 'tsdb'}",
                    f"--web.listen-address=127.0.0.1:{self.ports.prometheus}",
                ],
                url=f"http://127.0.0.1:{self.ports.prometheus}",
            )
        alertmanager = shutil.which("alertmanager") or shutil.which("prometheus-alertmanager")
        if alertmanager is None:
            print("Alertmanager is not installed (`make infra-deps`): alerts are not routed")
            return
        home = self.data / "alertmanager"
        home.mkdir(parents=True, exist_ok=True)
        config = home / "alertmanager.yml"
        config.write_text(yaml.safe_dump(alertmanager_config(self.ports), sort_keys=False))
        self.start(
            "alertmanager",
            [
                alertmanager,
                f"--config.file={config}",
                f"--storage.path={self.data / 'alertmanager'}",
                "--cluster.listen-address=",
                f"--web.listen-address=127.0.0.1:{self.ports.alertmanager}",
            ],
            url=f"http://127.0.0.1:{self.ports.alertmanager}",
        )
        self.start(
            "alerts-receive",
            _mmfleet(
                "alerts",
                "receive",
                "--config",
                str(self.config_path),
                "--quiet",
                "--port",
                str(self.ports.alert_receiver),
            ),
            url=f"http://127.0.0.1:{self.ports.alert_receiver}/alerts",
        )

    def print_urls(self) -> None:
        print("mmfleet local stack:")
        print(f"  Prefect UI      http://127.0.0.1:{self.ports.prefect}  (deployments: flows serve)")
        for child in self.children:
            if child.url and child.name != "prefect-server":
                print(f"  {child.name:<15} {child.url}")
        print(f"  logs            {self.logs}/")
        print("Ctrl-C stops everything (the fleet first: every order cancelled).", flush=True)

    def watch(self) -> None:
        for child in self.children:
            code = child.process.poll()
            if code is not None and not child.reported:
                child.reported = True
                print(f"{child.name} exited with code {code} (log {self.logs / child.name}.log)", flush=True)

    def stop(self) -> None:
        for child in reversed(self.children):  # the reverse of the start order
            self._stop(child)

    def _stop(self, child: _Child) -> None:
        if child.process.poll() is None:
            child.process.send_signal(signal.SIGINT if child.name == "fleet" else signal.SIGTERM)
            try:
                child.process.wait(_FLEET_STOP_S if child.name == "fleet" else _STOP_S)
            except subprocess.TimeoutExpired:
                child.process.kill()
                child.process.wait()
        if child.log is not None:
            child.log.close()


def run_local_stack(config_path: Path, *, ports: StackPorts | None = None, live: bool = False) -> int:
    """Run the stack until Ctrl-C (or the fleet stops); returns the fleet supervisor's exit code."""
    try:
        fleet = load_fleet(config_path)
    except ConfigError as exc:
        for line in exc.problems:
            print(line, file=sys.stderr)
        return ConfigError.exit_code
    live_bots = [bot.name for bot in fleet.bots if bot.exchange.mode == "live"]
    if live_bots and not live:
        print(f"{', '.join(live_bots)}: mode live needs --i-understand-live-trading", file=sys.stderr)
        return ConfigError.exit_code
    try:
        chosen = resolve_ports(ports or StackPorts())
    except PortTakenError as exc:
        print(exc, file=sys.stderr)
        return PortTakenError.exit_code
    stack = _Stack(config_path, fleet, chosen)

    def interrupted(signum: int, frame: object) -> None:
        stack.stopping = True

    previous = {sig: signal.signal(sig, interrupted) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        stack.start_prefect()
        stack.start_monitoring()
        stack.print_urls()
        fleet_command = _mmfleet("fleet", "up", "--config", str(stack.config_path))
        if live:
            fleet_command.append("--i-understand-live-trading")
        # The supervisor keeps the terminal (its live table) but not our process group's Ctrl-C.
        supervisor = subprocess.Popen(fleet_command, start_new_session=True)
        stack.children.append(_Child("fleet", supervisor))
        while not stack.stopping and supervisor.poll() is None:
            stack.watch()
            time.sleep(0.5)
        print("stopping the stack ...", flush=True)
        stack.stop()  # the fleet first, then the rest
        return supervisor.returncode if supervisor.returncode is not None else 0
    finally:
        stack.stop()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
