"""Fleet files as a careless person, a script or an attacker could write them: each is valid or refused
with exit 2 naming the field, and no message carries a credential or a raw line of the file."""

from __future__ import annotations

import logging
import math
import os
import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from bots.cli import app
from bots.errors import ConfigError
from bots.logs import setup_logging
from settings import load_fleet
from settings.fleet_file import MAX_FILE_BYTES, MAX_YAML_DEPTH
from settings.names import BOT_NAME_PATTERN, check_bot_name, kubernetes_name

runner = CliRunner()
SECRET = "sk-live-0123456789abcdef"
DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")


@pytest.fixture(autouse=True)
def isolated(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    for name in list(os.environ):
        if name.upper().startswith("MMFLEET_"):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)
    return tmp_path


def base(tmp_path: Path) -> dict[str, Any]:
    return {"data_dir": str(tmp_path / "data"), "bots": [{"symbol": "BTC_USDT_Perp"}]}


def write(tmp_path: Path, data: Any) -> Path:
    path = tmp_path / "fleet.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    return path


def problems(path: Path) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        load_fleet(path)
    return list(caught.value.problems)


def cli(*args: str) -> tuple[int, str]:
    result = runner.invoke(app, list(args))
    return result.exit_code, result.stdout + result.stderr


# --- names --------------------------------------------------------------------------------------------

TRAVERSALS = ["/abs", "../../x", "a/b", "..", ".", "x\x00y", "x" * 300, "-x", "x_", "x.log", "a b", "é"]


@pytest.mark.parametrize("name", TRAVERSALS)
def test_a_bot_name_is_never_a_path(tmp_path: Path, name: str) -> None:
    """Path traversal: the name becomes data_dir/logs/<name>.log, so a name that is not the rule is
    refused by `config check` and `bot run` with exit 2 before anything is written anywhere."""
    work = tmp_path / "work"
    work.mkdir()
    data = base(work)
    data["bots"][0]["name"] = name
    path = write(work, data)
    before = set(tmp_path.rglob("*"))
    for args in (["config", "check", str(path)], ["bot", "run", "-c", str(path), "--bot", name]):
        code, output = cli(*args)
        assert code == 2, output
        assert output.startswith("bots[0].name: a bot name is 1 to 63 characters"), output
        assert "Traceback" not in output
    assert set(tmp_path.rglob("*")) == before  # no log file, no data directory, nothing
    assert not Path("/abs.log").exists()


@given(st.from_regex(BOT_NAME_PATTERN, fullmatch=True))
def test_every_valid_name_derives_a_valid_kubernetes_name(name: str) -> None:
    assert check_bot_name(name) == name
    derived = kubernetes_name(name)
    assert DNS_LABEL.fullmatch(derived), derived
    assert kubernetes_name(derived) == derived  # a derived name is itself a valid bot name


@given(st.text(max_size=80))
def test_a_name_outside_the_rule_is_refused_and_never_holds_a_path_separator(name: str) -> None:
    try:
        check_bot_name(name)
    except ValueError:
        return
    assert re.fullmatch(BOT_NAME_PATTERN, name)
    assert not {"/", "\\", ".", "\x00"} & set(name)


def test_the_log_of_a_valid_name_stays_in_the_data_dir(tmp_path: Path) -> None:
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    try:
        log = setup_logging("Bot_1-a", tmp_path / "data", console=False)
    finally:
        for handler in root.handlers:
            handler.close()
        root.handlers[:] = handlers
        root.setLevel(level)
    assert log == tmp_path / "data" / "logs" / "Bot_1-a.log"
    assert [p.name for p in (tmp_path / "data" / "logs").iterdir()] == ["Bot_1-a.log"]


def test_names_equal_once_derived_for_kubernetes_cannot_share_a_fleet(tmp_path: Path) -> None:
    data = base(tmp_path)
    data["bots"] = [
        {"symbol": "BTC_USDT_Perp", "name": "BTC_x"},
        {"symbol": "BTC_USDT_Perp", "name": "btc-x"},
    ]
    assert problems(write(tmp_path, data)) == [
        "bots[1].name: duplicate bot name, already used by bots[0] (names are compared lowercased,"
        " with _ as -) (got 'btc-x')"
    ]


# --- numbers, URLs, paths, pairs ------------------------------------------------------------------------

REFUSED = [
    ("sim", "start_price", math.inf, "bots[0].sim.start_price"),
    ("sim", "start_price", 1e30, "bots[0].sim.start_price"),
    ("sim", "start_price", math.nan, "bots[0].sim.start_price"),
    ("paper", "starting_balance_usd", "1e999999", "bots[0].paper.starting_balance_usd"),
    ("paper", "starting_balance_usd", "NaN", "bots[0].paper.starting_balance_usd"),
    ("ml", "max_model_age_s", math.inf, "bots[0].ml.max_model_age_s"),
    ("sim", "seed", 1e40, "bots[0].sim.seed"),
    ("sim", "seed", -1, "bots[0].sim.seed"),
    ("exchange", "base_url", "ftp://grvt.example", "bots[0].exchange.base_url"),
    ("exchange", "base_url", "not a url", "bots[0].exchange.base_url"),
    ("exchange", "base_url", "http://host:99999", "bots[0].exchange.base_url"),
    ("exchange", "base_url", "javascript:alert(1)", "bots[0].exchange.base_url"),
    ("sim", "replay_file", "a\x00b.csv", "bots[0].sim.replay_file"),
    ("ml", "model_dir", "m\x00", "bots[0].ml.model_dir"),
    ("instrument", "tick_size", "1e-30", "bots[0].instrument.tick_size"),
]


@pytest.mark.parametrize(("section", "key", "value", "field"), REFUSED)
def test_a_value_that_would_break_the_market_or_the_ledger_is_refused(
    tmp_path: Path, section: str, key: str, value: Any, field: str
) -> None:
    data = base(tmp_path)
    bot = data["bots"][0]
    bot[section] = {key: value} if section != "instrument" else {"tick_size": value, "lot_size": "0.001"}
    (line,) = problems(write(tmp_path, data))
    assert line.startswith(f"{field}: "), line


@pytest.mark.parametrize(
    "tuner",
    [
        {"gamma_max": math.inf},
        {"gamma_min": 5.0, "gamma_max": 1.0},
        {"kappa_min": math.nan},
        {"kappa_min": 2000.0, "kappa_max": 1000.0},
    ],
)
def test_tuner_bounds_are_finite_and_ordered(tmp_path: Path, tuner: dict[str, float]) -> None:
    data = base(tmp_path)
    data["defaults"] = {"ml": {"tuner": tuner}}
    (line,) = problems(write(tmp_path, data))
    assert line.startswith("defaults.ml.tuner"), line


def test_a_url_with_credentials_is_refused_without_showing_the_password(tmp_path: Path) -> None:
    data = base(tmp_path)
    data["bots"][0]["exchange"] = {"base_url": f"https://me:{SECRET}@grvt.example"}
    (line,) = problems(write(tmp_path, data))
    assert line.startswith("bots[0].exchange.base_url: credentials do not go in the URL")
    assert SECRET not in line and "**********" in line


def test_data_dir_must_be_a_writable_directory(tmp_path: Path) -> None:
    """Checked by the commands that run the fleet on this host (not by the model: `k8s render`
    validates a fleet whose data_dir exists only in the pods)."""
    (tmp_path / "a-file").write_text("x")
    for data_dir, message in [
        (tmp_path / "a-file", "is not a directory"),
        (tmp_path / "a-file" / "under", "which is not a directory"),
    ]:
        data = base(tmp_path)
        data["data_dir"] = str(data_dir)
        path = write(tmp_path, data)
        assert load_fleet(path).data_dir == data_dir
        for args in (
            ["config", "check", str(path)],
            ["bot", "run", "-c", str(path), "--bot", "BTC_USDT_Perp"],
        ):
            code, output = cli(*args)
            assert code == 2 and output.startswith(f"data_dir: {str(data_dir)!r} ") and message in output, (
                output
            )
        code, output = cli("k8s", "render", "-c", str(path), "-o", str(tmp_path / "k8s"))
        assert code == 0, output
    data = base(tmp_path)
    data["data_dir"] = str(tmp_path / "not" / "yet")  # created later under a writable parent: fine
    code, output = cli("config", "check", str(write(tmp_path, data)))
    assert code == 0, output
    assert not (tmp_path / "not").exists()  # and checking created nothing


def test_a_nul_byte_in_the_database_url_is_a_config_problem(tmp_path: Path) -> None:
    data = base(tmp_path)
    data["database_url"] = f"sqlite:///{tmp_path}/led\x00ger.db"
    code, output = cli("config", "check", str(write(tmp_path, data)))
    assert (code, output) == (2, "database_url: a database name or SQLite path cannot contain a NUL byte\n")


@pytest.mark.parametrize("url", ["", "  "])
def test_an_empty_database_url_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, url: str) -> None:
    monkeypatch.setenv("MMFLEET_DATABASE_URL", url)
    assert problems(write(tmp_path, base(tmp_path))) == [
        "database_url: is empty: leave it unset for the SQLite file data_dir/ledger.db (got '**********')"
    ]


def test_too_many_bots_for_the_metrics_ports(tmp_path: Path) -> None:
    data = base(tmp_path)
    data["metrics_base_port"] = 65535
    data["bots"] = [{"symbol": "BTC_USDT_Perp", "name": f"b{i}"} for i in range(2)]
    (line,) = problems(write(tmp_path, data))
    assert line.startswith("fleet: metrics_base_port leaves no port"), line


@pytest.mark.parametrize(
    ("url", "code"),
    [
        ("mysql://mm:hunter2@db/ledger", 2),
        ("postgresql://mm:hunter2@db:notaport/ledger", 2),
        ("postgresql://mm:hunter2@127.0.0.1:1/ledger", 3),
    ],
)
def test_a_database_that_cannot_be_used_stops_bot_run_before_any_order(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, url: str, code: int
) -> None:
    """A bad URL is configuration (exit 2); a server that does not answer may come back (exit 3, the
    supervisor retries); `config check` says 2 for both. Never the password, never a traceback."""
    monkeypatch.setenv("MMFLEET_DATABASE_URL", url)
    path = write(tmp_path, base(tmp_path))
    run_code, output = cli("bot", "run", "-c", str(path), "--bot", "BTC_USDT_Perp")
    check_code, check_output = cli("config", "check", str(path))
    assert (run_code, check_code) == (code, 2), output
    for text in (output, check_output):
        assert text.startswith("database_url: ")
        assert "hunter2" not in text and "Traceback" not in text
    assert not (tmp_path / "data").exists()


# --- the YAML itself ---------------------------------------------------------------------------------------

ALIAS_BOMB = "\n".join(
    ["a: &a [x, x, x, x, x, x, x, x, x]"]
    + [f"{chr(98 + i)}: &{chr(98 + i)} [{', '.join([f'*{chr(97 + i)}'] * 9)}]" for i in range(8)]
    + ["bots: [{symbol: BTC_USDT_Perp}]"]
)


def test_an_alias_bomb_is_refused_at_once(tmp_path: Path) -> None:
    path = tmp_path / "fleet.yaml"
    path.write_text(ALIAS_BOMB)
    assert len(ALIAS_BOMB) < 600
    assert problems(path) == [f"{path}: refused: its aliases expand to more than 100000 values (alias bomb?)"]


def test_anchors_that_stay_small_are_fine(tmp_path: Path) -> None:
    path = tmp_path / "fleet.yaml"
    path.write_text(
        f"data_dir: {tmp_path / 'data'}\n"
        "common: &common {strategy: {gamma: 2.0}}\n"
        "bots:\n  - {<<: *common, symbol: BTC_USDT_Perp}\n  - {<<: *common, symbol: ETH_USDT_Perp}\n"
    )
    with pytest.raises(ConfigError) as caught:  # `common` is not a setting, but it parsed
        load_fleet(path)
    assert caught.value.problems == ("common: Extra inputs are not permitted (got a value not shown)",)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("a: &a [*a]\n", "refused: an alias refers to a node that contains it"),
        (
            "bots: " + "[" * 5000 + "]" * 5000 + "\n",
            f"refused: nested more than {MAX_YAML_DEPTH} levels deep",
        ),
        ("bots: " + "[" * 40 + "]" * 40 + "\n", f"refused: nested more than {MAX_YAML_DEPTH} levels deep"),
        ("# " + "x" * MAX_FILE_BYTES + "\n", f"larger than {MAX_FILE_BYTES} bytes"),
    ],
)
def test_recursive_deep_or_huge_yaml_is_refused(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "fleet.yaml"
    path.write_text(text)
    (line,) = problems(path)
    assert line.startswith(f"{path}: ") and message in line, line


def test_a_yaml_error_says_where_but_never_shows_the_line(tmp_path: Path) -> None:
    path = tmp_path / "fleet.yaml"
    path.write_text(f"bots:\n  - symbol: BTC_USDT_Perp\n    api_key: {SECRET}: oops\n")
    (line,) = problems(path)
    assert line.startswith(f"{path}:3:") and "invalid YAML" in line
    assert SECRET not in line


def test_a_credential_pasted_where_it_does_not_belong_is_never_echoed(tmp_path: Path) -> None:
    data = base(tmp_path)
    data["bots"][0]["api_key"] = SECRET
    data["bots"][0]["exchange"] = {"credentials": {"api_key_env": SECRET + " ", "private_key": SECRET}}
    lines = problems(write(tmp_path, data))
    assert len(lines) == 3
    assert not [line for line in lines if SECRET in line]


# --- any fleet file at all --------------------------------------------------------------------------------

LEAVES = [
    ("strategy", "gamma"), ("strategy", "kappa"), ("strategy", "grid_layers"), ("strategy", "spread_pct"),
    ("strategy", "boost_offsets_pct"), ("strategy", "trend_strategy"), ("risk", "max_position_usd"),
    ("risk", "max_drawdown_pct"), ("sim", "start_price"), ("sim", "seed"), ("sim", "speed"),
    ("sim", "replay_file"), ("paper", "starting_balance_usd"), ("paper", "touch_fill_probability"),
    ("ml", "max_model_age_s"), ("ml", "model_dir"), ("ml", "tuner"), ("ml", "regime_params"),
    ("exchange", "base_url"), ("exchange", "mode"), ("exchange", "request_timeout_s"),
    ("instrument", "tick_size"), ("", "name"), ("", "symbol"),
]  # fmt: skip
TOP = ["data_dir", "metrics_base_port", "log_level", "database_url"]

scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**80), max_value=2**80)
    | st.floats()  # NaN, infinities, subnormals, huge
    | st.sampled_from(["1e999999", "-0", "NaN", "inf", "0x10", "../../etc", "/abs", "", "\x00"])
    | st.text(max_size=40)
)
values = st.recursive(
    scalars,
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=6), children, max_size=3)
    ),
    max_leaves=12,
)


def nested(depth: int) -> Any:
    value: Any = 1
    for _ in range(depth):
        value = [value]
    return value


@st.composite
def fleet_documents(draw: st.DrawFn, data_dir: str) -> dict[str, Any]:
    """A valid fleet with a few of its values replaced by anything (types, bounds, depth, unicode), and
    maybe a credential pasted under an unknown key or into the credentials section."""
    doc: dict[str, Any] = {"data_dir": data_dir, "bots": [{"symbol": "BTC_USDT_Perp"}]}
    for _ in range(draw(st.integers(min_value=1, max_value=3))):
        where = draw(st.sampled_from(["bot", "defaults", "top"]))
        value = draw(values | st.integers(min_value=0, max_value=60).map(nested))
        if where == "top":
            doc[draw(st.sampled_from(TOP))] = value
            continue
        section, key = draw(st.sampled_from(LEAVES))
        target = doc["bots"][0] if where == "bot" else doc.setdefault("defaults", {})
        if section:
            target = target.setdefault(section, {}) if isinstance(target.get(section, {}), dict) else target
        target[key] = value
    if draw(st.booleans()):
        section = draw(st.sampled_from(["", "strategy", "credentials"]))
        bot = doc["bots"][0]
        if section == "credentials":
            bot.setdefault("exchange", {})["credentials"] = {
                draw(st.sampled_from(["api_key", "api_key_env"])): SECRET
            }
        elif section:
            bot.setdefault(section, {})[draw(st.sampled_from(["token", "api_secret"]))] = SECRET
        else:
            bot["private_key"] = SECRET
    return doc


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data(), encoding=st.sampled_from(["utf-8", "utf-16", "latin-1"]), unicode=st.booleans())
def test_any_fleet_file_is_valid_or_refused_with_field_lines_and_no_secret(
    tmp_path: Path, data: st.DataObject, encoding: str, unicode: bool
) -> None:
    doc = data.draw(fleet_documents(str(tmp_path / "data")))
    path = tmp_path / "fleet.yaml"
    text = yaml.safe_dump(doc, sort_keys=False, allow_unicode=unicode)
    try:
        path.write_bytes(text.encode(encoding))
    except UnicodeEncodeError:
        path.write_bytes(text.encode("utf-8"))
    code, output = cli("config", "check", str(path))  # the command: exit 0 or 2, never a traceback
    assert SECRET not in output and "Traceback" not in output
    try:
        fleet = load_fleet(path)
    except ConfigError as exc:
        assert code == 2
        assert exc.problems and all(isinstance(line, str) and line for line in exc.problems)
        assert not [line for line in exc.problems if SECRET in line]
        assert not [line for line in exc.problems if "\n" in line]
        return
    assert code in (0, 2)  # 2: the file is fine, the database it names is not
    for bot in fleet.bots:  # accepted: every number finite, every name the rule
        check_bot_name(bot.name)
        for number in _numbers(bot.model_dump()):
            assert math.isfinite(number), bot.model_dump()
    assert SECRET not in text  # a pasted credential is never accepted


def _numbers(value: Any) -> list[float]:
    if isinstance(value, dict):
        return [n for item in value.values() for n in _numbers(item)]
    if isinstance(value, list | tuple):
        return [n for item in value for n in _numbers(item)]
    if isinstance(value, int | float) and not isinstance(value, bool):
        return [float(value)]
    return []
