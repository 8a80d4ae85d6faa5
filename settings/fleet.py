"""The fleet: process-wide settings plus one `BotSettings` per bot, from layered sources.

Precedence, highest first: init kwargs, `MMFLEET_*` environment variables (`__` between levels),
a `.env` file in the current directory, then the YAML fleet file. Each bot in the file is deep-merged
over `defaults` before validation, so a bot lists only what differs from its siblings.

The file is read as untrusted text (`settings.fleet_file`: size, alias expansion and depth bounded);
error lines name the field and never carry a raw line of the file, a credential, or the value of an
unknown key (`settings.problems`).
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from decimal import Decimal
from pathlib import Path, PurePath
from typing import Any, Literal

import yaml
from pydantic import Field, SecretStr, ValidationError, ValidationInfo, field_validator, model_validator
from pydantic.fields import FieldInfo
from pydantic_core import InitErrorDetails, PydanticCustomError
from pydantic_settings import (
    BaseSettings,
    DotEnvSettingsSource,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    SettingsError,
)

from bots.errors import ConfigError
from settings.fleet_file import read_fleet_file
from settings.models import (
    BotSettings,
    ExchangeSettings,
    Frozen,
    MLSettings,
    PaperSettings,
    RiskSettings,
    SafePath,
    SimSettings,
    StoreSettings,
    StrategySettings,
    check_position_holds_an_order,
)
from settings.names import kubernetes_name
from settings.problems import MASK, format_loc, format_value, validation_problems

__all__ = [
    "BotDefaults",
    "FleetSettings",
    "bot_settings",
    "check_data_dir",
    "deep_merge",
    "effective_config",
    "format_effective_config",
    "format_loc",
    "format_value",
    "load_fleet",
    "read_fleet_file",
    "validation_problems",
]

LogLevel = Literal["DEBUG", "INFO", "WARNING", "ERROR"]
MAX_BOTS = 1000
_DEFAULT_DATA_DIR = Path("data")


class BotDefaults(Frozen):
    """The sections every bot inherits; a bot's own keys are deep-merged over these."""

    exchange: ExchangeSettings = Field(default_factory=ExchangeSettings)
    strategy: StrategySettings = Field(default_factory=StrategySettings)
    risk: RiskSettings = Field(default_factory=RiskSettings)
    paper: PaperSettings = Field(default_factory=PaperSettings)
    sim: SimSettings = Field(default_factory=SimSettings)
    ml: MLSettings = Field(default_factory=MLSettings)
    store: StoreSettings = Field(default_factory=StoreSettings)

    @model_validator(mode="after")
    def _position_holds_an_order(self) -> BotDefaults:
        # Same rule as BotSettings, checked here so a bad default is reported once, not once per bot.
        check_position_holds_an_order(self.risk, self.strategy)
        return self


def deep_merge(base: Mapping[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    """`override` over `base`, recursing into mappings; a None over a mapping (an empty YAML key) is no-op."""
    merged = dict(base)
    for key, value in override.items():
        current = merged.get(key)
        if isinstance(current, Mapping) and isinstance(value, Mapping):
            merged[key] = deep_merge(current, value)
        elif not (value is None and isinstance(current, Mapping)):
            merged[key] = value
    return merged


# The parsed fleet file for the `FleetSettings()` being built; a context variable because pydantic-settings
# builds its sources in a classmethod, with no way to pass per-call arguments to them.
_FLEET_FILE_DATA: ContextVar[Mapping[str, Any] | None] = ContextVar("fleet_file_data", default=None)


@contextmanager
def _fleet_file(data: Mapping[str, Any]) -> Iterator[None]:
    token = _FLEET_FILE_DATA.set(data)
    try:
        yield
    finally:
        _FLEET_FILE_DATA.reset(token)


class _FleetFileSource(PydanticBaseSettingsSource):
    """Lowest-precedence source: the YAML fleet file that `load_fleet` parsed."""

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        data = _FLEET_FILE_DATA.get() or {}
        return data.get(field_name), field_name, False

    def __call__(self) -> dict[str, Any]:
        return dict(_FLEET_FILE_DATA.get() or {})


class _KnownFieldsDotEnvSource(DotEnvSettingsSource):
    """A `.env` source that ignores lines for other programs (GRVT_API_KEY, MMFLEET_TEST_*).

    With extra="forbid" the stock source turns every unknown `.env` line into a validation error,
    and that error would echo the line's value, which may be a secret.
    """

    def __call__(self) -> dict[str, Any]:
        known = self.settings_cls.model_fields
        return {key: value for key, value in super().__call__().items() if key in known}


class FleetSettings(BaseSettings):
    """Everything one `mmfleet` process needs: where its data lives and the bots it runs."""

    model_config = SettingsConfigDict(
        frozen=True,
        extra="forbid",
        validate_default=True,
        env_prefix="MMFLEET_",
        env_nested_delimiter="__",
        env_file=".env",
        env_file_encoding="utf-8",
        allow_inf_nan=False,
    )

    data_dir: SafePath = Field(
        default=_DEFAULT_DATA_DIR,
        description="Ledger, logs, models and reports live here; every path default is under it.",
    )
    database_url: SecretStr | None = Field(
        default=None, description="SQLAlchemy URL of the ledger; SQLite at data_dir/ledger.db when unset."
    )
    metrics_base_port: int = Field(
        default=9101, ge=1024, le=65535, description="Prometheus port of the first bot; later bots count up."
    )
    log_level: LogLevel = Field(default="INFO", description="DEBUG, INFO, WARNING or ERROR.")
    defaults: BotDefaults = Field(default_factory=BotDefaults, description="Sections every bot inherits.")
    bots: list[BotSettings] = Field(
        min_length=1, max_length=MAX_BOTS, description="The bots, each deep-merged over defaults."
    )

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        """init > environment > .env > fleet file; no secrets directory."""
        if isinstance(dotenv_settings, DotEnvSettingsSource):
            dotenv: PydanticBaseSettingsSource = _KnownFieldsDotEnvSource(
                settings_cls,
                env_file=dotenv_settings.env_file,
                env_file_encoding=dotenv_settings.env_file_encoding,
            )
        else:
            dotenv = dotenv_settings
        return init_settings, env_settings, dotenv, _FleetFileSource(settings_cls)

    @field_validator("database_url")
    @classmethod
    def _not_blank(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and not value.get_secret_value().strip():
            raise ValueError("is empty: leave it unset for the SQLite file data_dir/ledger.db")
        return value

    @field_validator("log_level", mode="before")
    @classmethod
    def _upper_level(cls, value: Any) -> Any:
        return value.upper() if isinstance(value, str) else value

    @field_validator("defaults", mode="before")
    @classmethod
    def _empty_defaults(cls, value: Any) -> Any:
        return {} if value is None else value

    @field_validator("bots", mode="before")
    @classmethod
    def _merge_defaults(cls, value: Any, info: ValidationInfo) -> Any:
        # Merge over the *validated* defaults: when they are invalid (already reported under
        # `defaults.`), bots fall back to the built-in defaults instead of repeating that error per bot.
        if not isinstance(value, list | tuple):
            return value
        defaults = info.data.get("defaults")
        base = defaults.model_dump() if isinstance(defaults, BotDefaults) else {}
        if not (isinstance(defaults, BotDefaults) and "model_dir" in defaults.ml.model_fields_set):
            # Path defaults live under data_dir (a relative data_dir stays relative to the working dir).
            data_dir = info.data.get("data_dir", _DEFAULT_DATA_DIR)
            base = deep_merge(base, {"ml": {"model_dir": Path(data_dir) / "models"}})
        return [deep_merge(base, bot) if isinstance(bot, Mapping) else bot for bot in value]

    @field_validator("bots")
    @classmethod
    def _unique_names(cls, bots: list[BotSettings]) -> list[BotSettings]:
        # Names key metrics, ledger rows, commands and Kubernetes objects, so two bots may share a
        # symbol but not a name, nor the Kubernetes name derived from it.
        first: dict[str, int] = {}
        errors: list[InitErrorDetails] = []
        for index, bot in enumerate(bots):
            key = kubernetes_name(bot.name)
            if key in first:
                message = "duplicate bot name, already used by bots[{first}]"
                if bots[first[key]].name != bot.name:
                    message += " (names are compared lowercased, with _ as -)"
                errors.append(
                    {
                        "type": PydanticCustomError("duplicate_name", message, {"first": first[key]}),
                        "loc": (index, "name"),
                        "input": bot.name,
                    }
                )
            else:
                first[key] = index
        if errors:
            raise ValidationError.from_exception_data("bots", errors)
        return bots

    @model_validator(mode="after")
    def _ports_fit(self) -> FleetSettings:
        if self.metrics_base_port + len(self.bots) - 1 > 65535:
            raise ValueError("metrics_base_port leaves no port for the last bots (one port per bot)")
        return self

    def ledger_url(self) -> str:
        """The SQLAlchemy URL of the ledger (contains the password: never print or log it)."""
        if self.database_url is not None:
            return self.database_url.get_secret_value()
        return f"sqlite:///{(self.data_dir / 'ledger.db').as_posix()}"


def load_fleet(path: Path) -> FleetSettings:
    """The fleet from `path` under env and `.env` overrides; a `ConfigError` lists every problem."""
    data = read_fleet_file(path)
    try:
        with _fleet_file(data):
            return FleetSettings()
    except ValidationError as exc:
        problems = validation_problems(exc)
    except SettingsError as exc:
        problems = [f"environment: {exc}"]
    raise ConfigError(f"{path}: invalid fleet configuration ({len(problems)} problems)", problems)


def check_data_dir(path: Path) -> None:
    """ConfigError unless `path` is a directory this process can write, or one it can create (its
    nearest existing ancestor is a writable directory). A check of this host, so it is not part of
    the model: `k8s render` validates a fleet whose data_dir exists only in the pods."""
    existing = path
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        where = "is" if existing == path else f"would be under {str(existing)!r}, which is"
        raise ConfigError(f"data_dir: {str(path)!r} {where} not a directory")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise ConfigError(f"data_dir: {str(path)!r}: {str(existing)!r} is not writable")


def bot_settings(fleet: FleetSettings, name_or_symbol: str) -> BotSettings:
    """The bot with this name, else the only bot on this symbol."""
    for bot in fleet.bots:
        if bot.name == name_or_symbol:
            return bot
    on_symbol = [bot for bot in fleet.bots if bot.symbol == name_or_symbol]
    if len(on_symbol) == 1:
        return on_symbol[0]
    names = ", ".join(bot.name for bot in fleet.bots)
    if on_symbol:
        raise ConfigError(f"{name_or_symbol}: several bots trade this symbol; pick one of: {names}")
    raise ConfigError(f"{name_or_symbol}: no such bot; known: {names}")


# --- effective config --------------------------------------------------------------------------------


class _ConfigDumper(yaml.SafeDumper):
    """YAML out with exact numbers, masked secrets and paths as plain strings."""

    def ignore_aliases(self, data: Any) -> bool:
        return True  # bots share default objects; anchors would make the output unreadable


def _represent_decimal(dumper: yaml.SafeDumper, value: Decimal) -> yaml.ScalarNode:
    text = format(value, "f")
    tag = "tag:yaml.org,2002:float" if "." in text else "tag:yaml.org,2002:int"
    return dumper.represent_scalar(tag, text)


def _represent_secret(dumper: yaml.SafeDumper, value: SecretStr) -> yaml.ScalarNode:
    return dumper.represent_str(MASK)


def _represent_path(dumper: yaml.SafeDumper, value: PurePath) -> yaml.ScalarNode:
    return dumper.represent_str(str(value))


def _represent_tuple(dumper: yaml.SafeDumper, value: tuple[Any, ...]) -> yaml.SequenceNode:
    return dumper.represent_list(list(value))


_ConfigDumper.add_representer(Decimal, _represent_decimal)
_ConfigDumper.add_representer(SecretStr, _represent_secret)
_ConfigDumper.add_multi_representer(PurePath, _represent_path)
_ConfigDumper.add_representer(tuple, _represent_tuple)


def effective_config(fleet: FleetSettings) -> dict[str, Any]:
    """What each bot will actually run with (defaults merged, env applied), secrets still wrapped."""
    process = {
        "data_dir": fleet.data_dir,
        "database_url": fleet.database_url,
        "ledger_url": fleet.ledger_url() if fleet.database_url is None else fleet.database_url,
        "metrics_base_port": fleet.metrics_base_port,
        "log_level": fleet.log_level,
    }
    return {"fleet": process, "bots": {bot.name: bot.model_dump() for bot in fleet.bots}}


def format_effective_config(fleet: FleetSettings) -> str:
    """The effective config as YAML: numbers exact, every `SecretStr` shown as `**********`."""
    return yaml.dump(
        effective_config(fleet), Dumper=_ConfigDumper, sort_keys=False, default_flow_style=False, width=100
    )
