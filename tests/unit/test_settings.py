"""Fleet loading: source precedence, defaults merging, bounds with field paths, credentials."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
import yaml

from bots.errors import (
    ConfigError,
    ExchangeError,
    FleetError,
    RateLimited,
    Rejected,
    RejectReason,
    Timeout,
    TransientExchangeError,
    Unavailable,
)
from settings import (
    BotSettings,
    CredentialRefs,
    ExchangeSettings,
    FleetSettings,
    GrvtCredentials,
    bot_settings,
    load_fleet,
    resolve_credentials,
)
from settings.fleet import deep_merge

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "config" / "fleet.example.yaml"


@pytest.fixture(autouse=True)
def isolated(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """No MMFLEET_* variables from the caller's shell, and a fresh cwd so no stray .env is read."""
    for name in list(os.environ):
        if name.upper().startswith("MMFLEET_"):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)
    return tmp_path


def write_fleet(tmp_path: Path, data: Any, name: str = "fleet.yaml") -> Path:
    path = tmp_path / name
    path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    return path


def base_fleet() -> dict[str, Any]:
    return {
        "defaults": {"strategy": {"gamma": 1.5, "kappa": 800.0}, "risk": {"max_position_usd": 4000.0}},
        "bots": [{"symbol": "BTC_USDT_Perp"}, {"symbol": "ETH_USDT_Perp", "strategy": {"gamma": 2.0}}],
    }


def problems_of(path: Path) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        load_fleet(path)
    return list(caught.value.problems)


# --- precedence ---------------------------------------------------------------------------------------


def test_env_beats_dotenv_beats_yaml(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = write_fleet(tmp_path, base_fleet())
    assert load_fleet(path).bots[0].strategy.kappa == 800.0

    (tmp_path / ".env").write_text("MMFLEET_DEFAULTS__STRATEGY__KAPPA=900\nMMFLEET_LOG_LEVEL=debug\n")
    fleet = load_fleet(path)
    assert fleet.bots[0].strategy.kappa == 900.0
    assert fleet.log_level == "DEBUG"

    monkeypatch.setenv("MMFLEET_DEFAULTS__STRATEGY__KAPPA", "950")
    monkeypatch.setenv("MMFLEET_DATA_DIR", "/srv/x")
    fleet = load_fleet(path)
    assert fleet.bots[0].strategy.kappa == 950.0
    assert fleet.bots[1].strategy.kappa == 950.0  # env defaults reach every bot
    assert fleet.data_dir == Path("/srv/x")
    assert fleet.ledger_url() == "sqlite:////srv/x/ledger.db"
    # The rest of the YAML defaults survive a partial env override (sources are deep-merged).
    assert fleet.bots[0].strategy.gamma == 1.5
    assert fleet.bots[0].risk.max_position_usd == 4000.0


def test_bot_override_beats_env_default(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MMFLEET_DEFAULTS__STRATEGY__GAMMA", "3")
    fleet = load_fleet(write_fleet(tmp_path, base_fleet()))
    assert fleet.bots[0].strategy.gamma == 3.0
    assert fleet.bots[1].strategy.gamma == 2.0


def test_init_kwargs_beat_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MMFLEET_DATA_DIR", "/from/env")
    monkeypatch.setenv("MMFLEET_BOTS", '[{"symbol": "SOL_USDT_Perp"}]')
    assert FleetSettings().bots[0].symbol == "SOL_USDT_Perp"
    fleet = FleetSettings(data_dir=Path("/from/kwargs"), bots=[{"symbol": "BTC_USDT_Perp"}])
    assert fleet.data_dir == Path("/from/kwargs")
    assert [bot.symbol for bot in fleet.bots] == ["BTC_USDT_Perp"]


def test_unrelated_variables_are_ignored(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MMFLEET_TEST_DATABASE_URL", "postgresql://u:pw@localhost/test")
    (tmp_path / ".env").write_text(
        "MMFLEET_TEST_DATABASE_URL=postgresql://u:pw@localhost/test\nGRVT_API_KEY=abc\nOTHER=1\n"
    )
    fleet = load_fleet(write_fleet(tmp_path, base_fleet()))
    assert fleet.database_url is None
    assert fleet.ledger_url() == "sqlite:///data/ledger.db"


def test_database_url_is_secret(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    url = "postgresql+psycopg://mm:hunter2@db:5432/ledger"
    monkeypatch.setenv("MMFLEET_DATABASE_URL", url)
    fleet = load_fleet(write_fleet(tmp_path, base_fleet()))
    assert fleet.ledger_url() == url
    assert "hunter2" not in repr(fleet)
    assert "hunter2" not in str(fleet.model_dump())


# --- defaults merging -----------------------------------------------------------------------------------


def test_bot_override_is_deep_merged_over_defaults(tmp_path: Path) -> None:
    data = base_fleet()
    data["defaults"]["strategy"]["filters"] = {"rsi_oversold": 25.0, "rsi_overbought": 75.0}
    data["bots"].append(
        {"symbol": "SOL_USDT_Perp", "name": "sol-wide", "strategy": {"filters": {"rsi_overbought": 80.0}}}
    )
    fleet = load_fleet(write_fleet(tmp_path, data))
    btc, eth, sol = fleet.bots
    assert (btc.strategy.gamma, btc.strategy.kappa) == (1.5, 800.0)
    assert (eth.strategy.gamma, eth.strategy.kappa) == (2.0, 800.0)  # only gamma overridden
    assert eth.strategy.grid_layers == 7  # built-in default untouched
    assert eth.risk.max_position_usd == 4000.0  # other sections inherited
    assert (sol.strategy.filters.rsi_oversold, sol.strategy.filters.rsi_overbought) == (25.0, 80.0)
    assert sol.name == "sol-wide"
    assert btc.name == "BTC_USDT_Perp"
    assert bot_settings(fleet, "sol-wide") is sol
    assert bot_settings(fleet, "SOL_USDT_Perp") is sol
    with pytest.raises(ConfigError, match="no such bot"):
        bot_settings(fleet, "DOGE_USDT_Perp")


def test_empty_sections_inherit(tmp_path: Path) -> None:
    path = tmp_path / "fleet.yaml"
    path.write_text("defaults:\nbots:\n  - symbol: BTC_USDT_Perp\n    strategy:\n")
    assert load_fleet(path).bots[0].strategy.gamma == 1.0


def test_deep_merge_does_not_mutate() -> None:
    base = {"a": {"b": 1, "c": 2}}
    assert deep_merge(base, {"a": {"b": 3}}) == {"a": {"b": 3, "c": 2}}
    assert base == {"a": {"b": 1, "c": 2}}


def test_bot_symbol_ambiguous(tmp_path: Path) -> None:
    data = {"bots": [{"symbol": "BTC_USDT_Perp", "name": "a"}, {"symbol": "BTC_USDT_Perp", "name": "b"}]}
    fleet = load_fleet(write_fleet(tmp_path, data))
    with pytest.raises(ConfigError, match="several bots"):
        bot_settings(fleet, "BTC_USDT_Perp")


# --- bounds: every rejection names the field path and the bad value -------------------------------------


def _set(data: dict[str, Any], dotted: str, value: Any) -> None:
    parts = dotted.split(".")
    node: Any = data
    for part in parts[:-1]:
        node = node[int(part)] if isinstance(node, list) else node.setdefault(part, {})
    node[parts[-1]] = value


BAD_VALUES = [
    ("bots.0.strategy.gamma", 0, "bots[0].strategy.gamma", "0"),
    ("bots.0.strategy.gamma", -1.5, "bots[0].strategy.gamma", "-1.5"),
    ("bots.1.strategy.kappa", 0, "bots[1].strategy.kappa", "0"),
    ("bots.0.strategy.spread_pct", 0.1, "bots[0].strategy.spread_pct", "0.1"),
    ("bots.0.strategy.spread_pct", 0, "bots[0].strategy.spread_pct", "0"),
    ("bots.0.strategy.grid_layers", 0, "bots[0].strategy.grid_layers", "0"),
    ("bots.0.strategy.grid_layers", 51, "bots[0].strategy.grid_layers", "51"),
    ("bots.0.strategy.order_size_usd", 0, "bots[0].strategy.order_size_usd", "0"),
    ("bots.0.strategy.order_size_usd", -10.0, "bots[0].strategy.order_size_usd", "-10.0"),
    ("bots.0.risk.max_position_usd", 0, "bots[0].risk.max_position_usd", "0"),
    ("bots.0.risk.max_drawdown_pct", 1, "bots[0].risk.max_drawdown_pct", "1"),
    ("bots.0.strategy.gama", 2, "bots[0].strategy.gama", "a value not shown"),
    ("bots.0.exchange.mode", "demo", "bots[0].exchange.mode", "'demo'"),
    ("bots.0.strategy.trend_strategy", "macd", "bots[0].strategy.trend_strategy", "'macd'"),
    (
        "bots.0.strategy.filters.rsi_oversold",
        70.0,
        "bots[0].strategy.filters",
        "rsi_oversold=70.0, rsi_overbought=70.0",
    ),
    ("bots.0.strategy.boost_offsets_pct", [0.2], "bots[0].strategy.boost_offsets_pct", "[0.2]"),
    (
        "bots.0.strategy.order_size_usd",
        5000.5,
        "bots[0]",
        "risk.max_position_usd=4000.0, strategy.order_size_usd=5000.5",
    ),
    ("bots.0.symbol", "btc", "bots[0].symbol", "'btc'"),
    ("bots.0.symbol", "BTC_USDT", "bots[0].symbol", "'BTC_USDT'"),  # not a GRVT perpetual's name
    ("bots.0.exchange.venue", "kraken", "bots[0].exchange.venue", "'kraken'"),
    ("bots.0.exchange.env", "mainnet", "bots[0].exchange.env", "'mainnet'"),  # not one of GRVT's
    ("bots.0.paper.touch_fill_probability", 1.5, "bots[0].paper.touch_fill_probability", "1.5"),
    ("defaults.strategy.gamma", 0, "defaults.strategy.gamma", "0"),
    ("defaults.risk.max_position_usd", -1, "defaults.risk.max_position_usd", "-1"),
    ("defaults.risk.max_position_usd", 100.0, "defaults", "risk.max_position_usd=100.0"),
    (
        "defaults.exchange.credentials.api_key",
        "x",
        "defaults.exchange.credentials.api_key",
        "a value not shown",
    ),
    (
        "bots.0.exchange.credentials.api_key_env",
        "sk-123 456",
        "bots[0].exchange.credentials.api_key_env",
        "'**********'",
    ),
    ("metrics_base_port", 80, "metrics_base_port", "80"),
    ("log_level", "TRACE", "log_level", "'TRACE'"),
    ("colour", "blue", "colour", "a value not shown"),
]


@pytest.mark.parametrize(("key", "value", "path", "got"), BAD_VALUES)
def test_bad_value_is_rejected_with_its_path(
    tmp_path: Path, key: str, value: Any, path: str, got: str
) -> None:
    data = base_fleet()
    _set(data, key, value)
    problems = problems_of(write_fleet(tmp_path, data))
    assert len(problems) == 1, problems
    assert problems[0].startswith(f"{path}: "), problems
    assert problems[0].endswith(f"(got {got})"), problems


def test_bad_default_reported_once_not_per_bot(tmp_path: Path) -> None:
    data = base_fleet()
    data["defaults"]["strategy"]["gamma"] = -1
    data["bots"].append({"symbol": "SOL_USDT_Perp"})
    assert problems_of(write_fleet(tmp_path, data)) == [
        "defaults.strategy.gamma: Input should be greater than 0 (got -1)"
    ]


def test_bad_default_from_env_reported_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MMFLEET_DEFAULTS__STRATEGY__GRID_LAYERS", "51")
    problems = problems_of(write_fleet(tmp_path, base_fleet()))
    assert problems == ["defaults.strategy.grid_layers: Input should be less than or equal to 50 (got '51')"]


def test_every_error_listed(tmp_path: Path) -> None:
    data = base_fleet()
    data["bots"][0]["strategy"] = {"gamma": 0, "kappa": 0}
    data["bots"][1]["exchange"] = {"mode": "demo"}
    problems = problems_of(write_fleet(tmp_path, data))
    assert sorted(line.split(":")[0] for line in problems) == [
        "bots[0].strategy.gamma",
        "bots[0].strategy.kappa",
        "bots[1].exchange.mode",
    ]


def test_duplicate_bot_names(tmp_path: Path) -> None:
    data = {"bots": [{"symbol": "BTC_USDT_Perp"}, {"symbol": "ETH_USDT_Perp", "name": "BTC_USDT_Perp"}]}
    problems = problems_of(write_fleet(tmp_path, data))
    assert problems == ["bots[1].name: duplicate bot name, already used by bots[0] (got 'BTC_USDT_Perp')"]


def test_no_bots(tmp_path: Path) -> None:
    assert problems_of(write_fleet(tmp_path, {"bots": []}))[0].startswith("bots: ")
    assert problems_of(write_fleet(tmp_path, {"defaults": {}})) == ["bots: Field required (got nothing)"]


def test_secret_value_never_echoed(tmp_path: Path) -> None:
    data = base_fleet()
    data["database_url"] = {"url": "postgresql://mm:hunter2@db/ledger"}  # wrong type, still secret
    problems = problems_of(write_fleet(tmp_path, data))
    assert problems == ["database_url: Input should be a valid string (got '**********')"]


# --- file-level errors ----------------------------------------------------------------------------------


def test_missing_file(tmp_path: Path) -> None:
    assert problems_of(tmp_path / "nope.yaml") == [f"{tmp_path / 'nope.yaml'}: file not found"]


def test_yaml_syntax_error(tmp_path: Path) -> None:
    path = tmp_path / "fleet.yaml"
    path.write_text("defaults:\n  strategy:\n    gamma: : 2\n")
    (line,) = problems_of(path)
    assert line.startswith(f"{path}:3:")
    assert "invalid YAML" in line


def test_duplicate_yaml_key(tmp_path: Path) -> None:
    path = tmp_path / "fleet.yaml"
    path.write_text("bots: []\nbots: [{symbol: BTC_USDT_Perp}]\n")
    (line,) = problems_of(path)
    assert "duplicate key 'bots'" in line


@pytest.mark.parametrize("text", ["- a\n- b\n", "42\n", "just a string\n"])
def test_top_level_must_be_mapping(tmp_path: Path, text: str) -> None:
    path = tmp_path / "fleet.yaml"
    path.write_text(text)
    (line,) = problems_of(path)
    assert "top level must be a mapping" in line


def test_example_file_validates() -> None:
    fleet = load_fleet(EXAMPLE)
    assert [bot.name for bot in fleet.bots] == ["BTC_USDT_Perp", "ETH_USDT_Perp", "SOL_USDT_Perp"]
    assert {bot.exchange.mode for bot in fleet.bots} == {"sim"}
    assert bot_settings(fleet, "ETH_USDT_Perp").strategy.gamma == 2.0
    assert bot_settings(fleet, "BTC_USDT_Perp").strategy.gamma == 1.0


# --- venue ----------------------------------------------------------------------------------------------


def test_venue_is_grvt_by_default_and_supplies_env_and_credential_names() -> None:
    exchange = ExchangeSettings(mode="live")
    assert (exchange.venue, exchange.env) == ("grvt", "testnet")
    refs = exchange.credentials
    assert (refs.api_key_env, refs.private_key_env, refs.trading_account_id_env) == (
        "GRVT_API_KEY",
        "GRVT_PRIVATE_KEY",
        "GRVT_TRADING_ACCOUNT_ID",
    )
    own = ExchangeSettings(env="prod", credentials=CredentialRefs(api_key_env="BOT2_KEY"))
    assert own.env == "prod"
    assert (own.credentials.api_key_env, own.credentials.private_key_env) == ("BOT2_KEY", "GRVT_PRIVATE_KEY")


def test_a_config_stored_before_venue_existed_loads_unchanged() -> None:
    """Fleet files and stored config versions from before `exchange.venue` mean GRVT, as they did."""
    current = BotSettings(symbol="BTC_USDT_Perp", exchange=ExchangeSettings(mode="paper"))
    stored = current.model_dump(mode="json")
    del stored["exchange"]["venue"]
    assert BotSettings.model_validate(stored) == current
    assert BotSettings.model_validate(current.model_dump(mode="json")) == current


# --- credentials ----------------------------------------------------------------------------------------

SECRETS = {
    "GRVT_API_KEY": "key-s3cr3t",
    "GRVT_PRIVATE_KEY": "0xpriv-s3cr3t",
    "GRVT_TRADING_ACCOUNT_ID": "acct-9",
}


def test_credentials_from_env() -> None:
    creds = resolve_credentials(ExchangeSettings(), SECRETS)
    assert isinstance(creds, GrvtCredentials)
    assert creds.api_key.get_secret_value() == "key-s3cr3t"
    assert creds.private_key.get_secret_value() == "0xpriv-s3cr3t"
    assert creds.trading_account_id.get_secret_value() == "acct-9"
    assert "s3cr3t" not in repr(creds)
    assert "s3cr3t" not in str(creds)


def test_credentials_from_process_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in SECRETS.items():
        monkeypatch.setenv(f"BOT2_{name}", value)
    refs = CredentialRefs(
        api_key_env="BOT2_GRVT_API_KEY",
        private_key_env="BOT2_GRVT_PRIVATE_KEY",
        trading_account_id_env="BOT2_GRVT_TRADING_ACCOUNT_ID",
    )
    assert (
        resolve_credentials(ExchangeSettings(credentials=refs)).trading_account_id.get_secret_value()
        == "acct-9"
    )


def test_credential_file_wins_over_env(tmp_path: Path) -> None:
    key_file = tmp_path / "api_key"
    key_file.write_text("from-file\n")
    creds = resolve_credentials(ExchangeSettings(credentials=CredentialRefs(api_key_file=key_file)), SECRETS)
    assert creds.api_key.get_secret_value() == "from-file"
    assert creds.private_key.get_secret_value() == "0xpriv-s3cr3t"


def test_missing_credential_names_variable_not_secret() -> None:
    env = {key: value for key, value in SECRETS.items() if key != "GRVT_PRIVATE_KEY"}
    with pytest.raises(ConfigError) as caught:
        resolve_credentials(ExchangeSettings(), env)
    text = str(caught.value) + "\n".join(caught.value.problems)
    assert "GRVT_PRIVATE_KEY" in text
    assert caught.value.problems == (
        "private_key: environment variable GRVT_PRIVATE_KEY is not set or empty",
    )
    assert all(secret not in text for secret in SECRETS.values())


def test_missing_credential_file_names_file(tmp_path: Path) -> None:
    missing = tmp_path / "absent"
    empty = tmp_path / "empty"
    empty.write_text("\n")
    refs = CredentialRefs(private_key_file=missing, trading_account_id_file=empty)
    with pytest.raises(ConfigError) as caught:
        resolve_credentials(ExchangeSettings(credentials=refs), SECRETS)
    assert caught.value.problems == (
        f"private_key: secret file {missing} not found",
        f"trading_account_id: secret file {empty} is empty",
    )
    assert all(secret not in str(caught.value) for secret in SECRETS.values())


# --- error tree -----------------------------------------------------------------------------------------


def test_error_tree() -> None:
    assert issubclass(ConfigError, FleetError)
    assert issubclass(Unavailable, TransientExchangeError)
    assert issubclass(Timeout, TransientExchangeError)
    assert issubclass(RateLimited, TransientExchangeError)
    assert issubclass(TransientExchangeError, ExchangeError)
    assert issubclass(Rejected, ExchangeError)
    assert not issubclass(Rejected, TransientExchangeError)
    limited = RateLimited(2.5)
    assert (limited.retry_after_s, limited.status) == (2.5, 429)
    rejected = Rejected(RejectReason.POST_ONLY_WOULD_CROSS, status=400)
    assert (rejected.reason, rejected.status) == ("post_only_would_cross", 400)
    assert "post_only_would_cross" in rejected.message
    down = Unavailable("gateway down", status=503)
    assert (down.message, down.status) == ("gateway down", 503)
    assert ConfigError("bad").problems == ("bad",)
