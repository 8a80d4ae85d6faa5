"""`mmfleet config check` and `config reference`: exit codes, error lines, masking, no tracebacks."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path, PurePath
from typing import Annotated, Any, get_args, get_origin

import pytest
import yaml
from pydantic import BaseModel
from sqlalchemy.engine import make_url
from typer.testing import CliRunner

from bots.cli import app
from settings import FleetSettings

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "config" / "fleet.example.yaml"
MMFLEET = Path(sys.executable).parent / "mmfleet"

runner = CliRunner()
# The test server (trust auth: the password is ignored, and must never be printed).
TEST_DATABASE_URL = (
    make_url(os.environ.get("MMFLEET_TEST_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/test"))
    .set(password="hunter2")
    .render_as_string(hide_password=False)
)
UNREACHABLE_DATABASE_URL = "postgresql://mm:hunter2@db.invalid:5432/ledger"


@pytest.fixture(autouse=True)
def isolated(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """No MMFLEET_* variables from the caller's shell, and a fresh cwd so no stray .env is read."""
    for name in list(os.environ):
        if name.upper().startswith("MMFLEET_"):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)
    return tmp_path


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "fleet.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def check(path: Path) -> tuple[int, str, str]:
    result = runner.invoke(app, ["config", "check", str(path)])
    return result.exit_code, result.stdout, result.stderr


def test_good_file_prints_effective_config(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MMFLEET_DATABASE_URL", TEST_DATABASE_URL)
    monkeypatch.setenv("MMFLEET_DEFAULTS__STRATEGY__KAPPA", "1234.5")
    code, out, err = check(EXAMPLE)
    assert code == 0, err
    assert "hunter2" not in out + err
    shown: dict[str, Any] = yaml.safe_load(out)
    assert shown["fleet"]["database_url"] == "**********"
    assert list(shown["bots"]) == ["BTC_USDT_Perp", "ETH_USDT_Perp", "SOL_USDT_Perp"]
    assert shown["bots"]["ETH_USDT_Perp"]["strategy"]["gamma"] == 2.0
    assert shown["bots"]["BTC_USDT_Perp"]["strategy"]["gamma"] == 1.0
    assert {bot["strategy"]["kappa"] for bot in shown["bots"].values()} == {1234.5}


def path_fields(model: type[BaseModel]) -> set[str]:
    """Names of every Path-valued field of `model` and the models nested in it, found from the types."""
    names: set[str] = set()
    for name, field in model.model_fields.items():
        for each in (field.annotation, *get_args(field.annotation)):
            kind = get_args(each)[0] if get_origin(each) is Annotated else each  # SafePath and the like
            if isinstance(kind, type) and issubclass(kind, PurePath):
                names.add(name)
            elif isinstance(kind, type) and issubclass(kind, BaseModel):
                names |= path_fields(kind)
    return names


def path_values(shown: Any, names: set[str]) -> Iterator[tuple[str, str]]:
    if isinstance(shown, dict):
        for key, value in shown.items():
            if key in names and value is not None:
                yield key, value
            yield from path_values(value, names)


@pytest.mark.parametrize("data_dir", ["/var/lib/mmfleet", "relative/data"])
def test_every_path_default_follows_data_dir(monkeypatch: pytest.MonkeyPatch, data_dir: str) -> None:
    """The compose and Kubernetes images set MMFLEET_DATA_DIR: models, logs and the ledger must follow it
    (a flows container writing models where the bots never look breaks retrain + hot reload)."""
    monkeypatch.setenv("MMFLEET_DATA_DIR", data_dir)
    code, out, err = check(EXAMPLE)
    assert code == 0, err
    shown = yaml.safe_load(out)
    names = path_fields(FleetSettings)
    assert {"data_dir", "model_dir", "replay_file", "api_key_file"} <= names
    found = list(path_values(shown, names))
    assert {key for key, _ in found} == {"data_dir", "model_dir"}  # the others default to unset
    assert len(found) == 1 + len(shown["bots"])
    for key, value in found:
        assert Path(value).is_relative_to(data_dir), f"{key}: {value} is not under {data_dir}"
    assert shown["fleet"]["ledger_url"] == f"sqlite:///{data_dir}/ledger.db"


def test_a_model_dir_that_is_set_is_kept(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MMFLEET_DATA_DIR", "/srv/data")
    path = write(
        tmp_path,
        "defaults: {ml: {model_dir: /shared/models}}\n"
        "bots:\n  - symbol: BTC_USDT_Perp\n  - symbol: ETH_USDT_Perp\n    ml: {model_dir: /eth/models}\n",
    )
    code, out, err = check(path)
    assert code == 0, err
    bots = yaml.safe_load(out)["bots"]
    assert bots["BTC_USDT_Perp"]["ml"]["model_dir"] == "/shared/models"
    assert bots["ETH_USDT_Perp"]["ml"]["model_dir"] == "/eth/models"


def test_numbers_are_exact(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "bots:\n  - symbol: XRP_USDT_Perp\n"
        "    instrument: {tick_size: 0.00001, lot_size: 1}\n"
        "    strategy: {gamma: 0.123456789012345, spread_pct: 0.00001}\n",
    )
    code, out, err = check(path)
    assert code == 0, err
    assert "tick_size: 0.00001\n" in out
    assert "gamma: 0.123456789012345\n" in out
    bot = yaml.safe_load(out)["bots"]["XRP_USDT_Perp"]
    assert bot["strategy"]["spread_pct"] == 0.00001
    assert bot["instrument"]["lot_size"] == 1


def test_bad_file_lists_every_error(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "defaults:\n  risk: {max_position_usd: 0}\n"
        "bots:\n"
        "  - symbol: BTC_USDT_Perp\n    strategy: {gamma: -2, grid_layers: 51}\n"
        "  - symbol: ETH_USDT_Perp\n    exchange: {mode: demo}\n    strategy: {gama: 1}\n",
    )
    code, out, err = check(path)
    assert code == 2
    assert out == ""
    assert err.splitlines() == [
        "defaults.risk.max_position_usd: Input should be greater than 0 (got 0)",
        "bots[0].strategy.grid_layers: Input should be less than or equal to 50 (got 51)",
        "bots[0].strategy.gamma: Input should be greater than 0 (got -2)",
        "bots[1].exchange.mode: Input should be 'sim', 'paper' or 'live' (got 'demo')",
        "bots[1].strategy.gama: Extra inputs are not permitted (got a value not shown)",
    ]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("- BTC_USDT_Perp\n", "top level must be a mapping"),
        ("bots: [{symbol: BTC_USDT_Perp}\n", "invalid YAML"),
        ("bots: {symbol: BTC_USDT_Perp}\n", "bots: Input should be a valid list"),
        ("bots: [BTC_USDT_Perp]\n", "bots[0]: Input should be a valid dictionary"),
        (
            "defaults: [1, 2]\nbots: [{symbol: BTC_USDT_Perp}]\n",
            "defaults: Input should be a valid dictionary",
        ),
        ("bots: [{symbol: BTC_USDT_Perp, strategy: 3}]\n", "bots[0].strategy: Input should be a valid dict"),
    ],
)
def test_odd_yaml_is_one_line_no_traceback(tmp_path: Path, text: str, expected: str) -> None:
    code, out, err = check(write(tmp_path, text))
    assert code == 2
    lines = err.splitlines()
    assert len(lines) == 1, lines
    assert expected in lines[0]
    # a field's error shows the bad value; a YAML error shows where, never the line (it may hold a secret)
    assert ("(got " in lines[0]) is (expected != "invalid YAML")
    assert "Traceback" not in out + err


def test_missing_file(tmp_path: Path) -> None:
    code, _, err = check(tmp_path / "absent.yaml")
    assert code == 2
    assert err == f"{tmp_path / 'absent.yaml'}: file not found\n"


def test_real_entry_point_in_subprocess(tmp_path: Path) -> None:
    """The installed `mmfleet` script, with a secret in the environment and a bad value in the file."""
    path = write(tmp_path, "bots:\n  - symbol: BTC_USDT_Perp\n    strategy: {spread_pct: 0.5}\n")
    env = {key: value for key, value in os.environ.items() if not key.upper().startswith("MMFLEET_")}
    env["MMFLEET_DATABASE_URL"] = TEST_DATABASE_URL
    bad = subprocess.run(
        [str(MMFLEET), "config", "check", str(path)],
        check=False,
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
    )
    assert bad.returncode == 2
    assert bad.stderr == "bots[0].strategy.spread_pct: Input should be less than 0.1 (got 0.5)\n"
    assert "Traceback" not in bad.stdout + bad.stderr
    good = subprocess.run(
        [str(MMFLEET), "config", "check", str(EXAMPLE)],
        check=False,
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
    )
    assert good.returncode == 0, good.stderr
    assert "hunter2" not in good.stdout + good.stderr
    assert "**********" in good.stdout
    env["MMFLEET_DATABASE_URL"] = UNREACHABLE_DATABASE_URL
    down = subprocess.run(
        [str(MMFLEET), "config", "check", str(EXAMPLE)],
        check=False,
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
    )
    assert down.returncode == 2
    assert down.stderr.startswith(
        "database_url: cannot reach the ledger at postgresql+psycopg://mm:***@db.invalid:5432/ledger: "
    )
    assert "hunter2" not in down.stdout + down.stderr
    assert "Traceback" not in down.stdout + down.stderr


def test_reference_prints_and_writes(tmp_path: Path) -> None:
    result = runner.invoke(app, ["config", "reference"])
    assert result.exit_code == 0
    assert "### StrategySettings" in result.stdout
    readme = tmp_path / "README.md"
    readme.write_text(
        "# x\n\n## Configuration reference\n\n<!-- config-reference:start -->\nSTALE-TEXT\n"
        "<!-- config-reference:end -->\n\n## After\n"
    )
    result = runner.invoke(app, ["config", "reference", "--write", str(readme)])
    assert result.exit_code == 0
    text = readme.read_text()
    assert "STALE-TEXT" not in text
    assert "| `gamma` |" in text
    assert text.startswith("# x\n") and text.endswith("<!-- config-reference:end -->\n\n## After\n")


def test_reference_write_without_markers_fails(tmp_path: Path) -> None:
    readme = tmp_path / "README.md"
    readme.write_text("# x\n")
    result = runner.invoke(app, ["config", "reference", "--write", str(readme)])
    assert result.exit_code == 2
    assert "markers" in result.stderr
    assert readme.read_text() == "# x\n"
