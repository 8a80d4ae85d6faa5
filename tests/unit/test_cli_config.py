"""`mmfleet config check` and `config reference`: exit codes, error lines, masking, no tracebacks."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from sqlalchemy.engine import make_url
from typer.testing import CliRunner

from bots.cli import app

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
