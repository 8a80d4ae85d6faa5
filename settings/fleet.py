"""The fleet: process-wide settings plus one `BotSettings` per bot, from layered sources.

Precedence, highest first: init kwargs, `MMFLEET_*` environment variables (`__` between levels),
a `.env` file in the current directory, then the YAML fleet file. Each bot in the file is deep-merged
over `defaults` before validation, so a bot lists only what differs from its siblings.
"""

from __future__ import annotations

import re
from collections.abc import Hashable, Iterator, Mapping, Sequence
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
from settings.models import (
    BotSettings,
    ExchangeSettings,
    Frozen,
    MLSettings,
    PaperSettings,
    RiskSettings,
    SimSettings,
    StrategySettings,
    check_position_holds_an_order,
)

__all__ = [
    "BotDefaults",
    "FleetSettings",
    "bot_settings",
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
_DEFAULT_DATA_DIR = Path("data")
MASK = "**********"


class BotDefaults(Frozen):
    """The sections every bot inherits; a bot's own keys are deep-merged over these."""

    exchange: ExchangeSettings = Field(default_factory=ExchangeSettings)
    strategy: StrategySettings = Field(default_factory=StrategySettings)
    risk: RiskSettings = Field(default_factory=RiskSettings)
    paper: PaperSettings = Field(default_factory=PaperSettings)
    sim: SimSettings = Field(default_factory=SimSettings)
    ml: MLSettings = Field(default_factory=MLSettings)

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
    )

    data_dir: Path = Field(
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
    bots: list[BotSettings] = Field(min_length=1, description="The bots, each deep-merged over defaults.")

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
        # Names key metrics, ledger rows and commands, so two bots may share a symbol but not a name.
        first: dict[str, int] = {}
        errors: list[InitErrorDetails] = []
        for index, bot in enumerate(bots):
            if bot.name in first:
                message = "duplicate bot name, already used by bots[{first}]"
                errors.append(
                    {
                        "type": PydanticCustomError("duplicate_name", message, {"first": first[bot.name]}),
                        "loc": (index, "name"),
                        "input": bot.name,
                    }
                )
            else:
                first[bot.name] = index
        if errors:
            raise ValidationError.from_exception_data("bots", errors)
        return bots

    def ledger_url(self) -> str:
        """The SQLAlchemy URL of the ledger (contains the password: never print or log it)."""
        if self.database_url is not None:
            return self.database_url.get_secret_value()
        return f"sqlite:///{(self.data_dir / 'ledger.db').as_posix()}"


class _StrictLoader(yaml.SafeLoader):
    """A safe loader that rejects duplicate keys: with PyYAML the last one silently wins."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Hashable, Any]:
        self.flatten_mapping(node)
        seen: set[Any] = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=True)
            if isinstance(key, Hashable) and key in seen:
                raise yaml.constructor.ConstructorError(
                    None, None, f"duplicate key {key!r}", key_node.start_mark
                )
            if isinstance(key, Hashable):
                seen.add(key)
        return super().construct_mapping(node, deep)


def _yaml_problem(path: Path, text: str, exc: yaml.YAMLError) -> str:
    mark = getattr(exc, "problem_mark", None)
    problem = getattr(exc, "problem", None) or str(exc)
    if mark is None:
        return f"{path}: invalid YAML: {problem}"
    lines = text.splitlines()
    line = lines[mark.line].strip() if mark.line < len(lines) else ""
    return f"{path}:{mark.line + 1}:{mark.column + 1}: invalid YAML: {problem} (got {line!r})"


def read_fleet_file(path: Path) -> dict[str, Any]:
    """Parse the fleet file into a mapping; every failure is a `ConfigError` naming the file."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{path}: file not found") from None
    except IsADirectoryError:
        raise ConfigError(f"{path}: is a directory, not a fleet file") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: not UTF-8 text") from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc.strerror or type(exc).__name__}") from None
    try:
        data = yaml.load(text, Loader=_StrictLoader)  # a SafeLoader subclass
    except yaml.YAMLError as exc:
        raise ConfigError(_yaml_problem(path, text, exc)) from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(
            f"{path}: the top level must be a mapping with 'defaults' and 'bots' (got {_kind(data)})"
        )
    return {str(key): value for key, value in data.items()}


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


# --- error lines -------------------------------------------------------------------------------------

_SECRET_FIELDS = frozenset({"database_url"})
_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*")
_MAX_GOT = 80


def format_loc(loc: Sequence[int | str]) -> str:
    """('bots', 0, 'strategy', 'gamma') -> 'bots[0].strategy.gamma'."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out


def _kind(value: Any) -> str:
    if isinstance(value, Mapping):
        return "a mapping"
    if isinstance(value, list | tuple):
        return "a list"
    return f"a {type(value).__name__}"


def format_value(value: Any) -> str:
    """A scalar as it would be written in the fleet file; floats exactly (shortest round-trip repr)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, SecretStr):
        return repr(MASK)
    if isinstance(value, Decimal):
        return format(value, "f")
    if isinstance(value, PurePath):
        return repr(str(value))
    if isinstance(value, str):
        return repr(value)
    if isinstance(value, list | tuple):
        return "[" + ", ".join(format_value(item) for item in value) + "]"
    if isinstance(value, Mapping):
        return "{" + ", ".join(f"{key}: {format_value(item)}" for key, item in value.items()) + "}"
    return repr(value)


def _lookup(mapping: Mapping[str, Any], dotted: str) -> tuple[bool, Any]:
    current: Any = mapping
    for part in dotted.split("."):
        if not isinstance(current, Mapping) or part not in current:
            return False, None
        current = current[part]
    return True, current


def _describe_input(error: Mapping[str, Any]) -> str:
    """The offending value for an error line: short, and never a secret."""
    if error["type"] == "missing":
        return "nothing"
    loc = error["loc"]
    value = error.get("input")
    if any(part in _SECRET_FIELDS for part in loc) or isinstance(value, SecretStr):
        return repr(MASK)
    if isinstance(value, Mapping):
        # A model-level rule ("a must be below b"): show the fields its message names.
        shown = []
        for name in dict.fromkeys(_IDENTIFIER.findall(error["msg"])):
            found, item = _lookup(value, name)
            if found and not isinstance(item, Mapping):
                shown.append(f"{name}={format_value(item)}")
        if not shown:
            shown = [f"{key}={format_value(value[key])}" for key in ("name", "symbol") if key in value]
        if shown:
            return ", ".join(shown)
        return "a mapping with keys " + ", ".join(str(key) for key in value) if value else "an empty mapping"
    text = format_value(value)
    if len(text) <= _MAX_GOT:
        return text
    if isinstance(value, list | tuple):
        return f"a list of {len(value)} items"
    return text[: _MAX_GOT - 3] + "..."


def validation_problems(exc: ValidationError) -> list[str]:
    """One line per error: `<field path>: <message> (got <bad value>)`, duplicates dropped."""
    lines: list[str] = []
    for error in exc.errors(include_url=False):
        path = format_loc(error["loc"]) or "fleet"
        message = error["msg"]
        if error["type"] == "value_error":
            message = message.removeprefix("Value error, ")
        lines.append(f"{path}: {message} (got {_describe_input(error)})")
    return list(dict.fromkeys(lines))


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
