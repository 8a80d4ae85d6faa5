"""Turn a bot's credential references (env var names, secret files) into the secret values.

Kept apart from the config models so that secret values exist only where a live client is built,
never in a config dump, a log line or an error message.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from pydantic import BaseModel, ConfigDict, SecretStr

from bots.errors import ConfigError
from bots.venues.registry import VENUES
from settings.models import CredentialRefs, ExchangeSettings

__all__ = ["GrvtCredentials", "credential_source", "resolve_credentials"]

_FIELDS = ("api_key", "private_key", "trading_account_id")


class GrvtCredentials(BaseModel):
    """One sub-account's secrets (the set GRVT asks for); `SecretStr` so that printing or logging them
    shows a mask."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    api_key: SecretStr
    private_key: SecretStr
    trading_account_id: SecretStr


def credential_source(refs: CredentialRefs, field: str) -> str:
    """Where `field` (api_key, private_key, trading_account_id) is read from, for a message an operator
    can act on: "file /run/secrets/key" or "environment variable GRVT_API_KEY"; never the value."""
    file: Path | None = getattr(refs, f"{field}_file")
    return f"file {file}" if file is not None else f"environment variable {getattr(refs, f'{field}_env')}"


def _read_secret_file(field: str, path: Path) -> tuple[str | None, str | None]:
    """The stripped file content, or a problem line that names the file (never its content)."""
    try:
        text = path.expanduser().read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        return None, f"{field}: secret file {path} not found"
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else type(exc).__name__
        return None, f"{field}: cannot read secret file {path}: {reason}"
    if not text:
        return None, f"{field}: secret file {path} is empty"
    return text, None


def resolve_credentials(
    exchange: ExchangeSettings, environ: Mapping[str, str] | None = None
) -> GrvtCredentials:
    """Read each secret of `exchange.credentials` from its file when one is set, else from its
    environment variable (named by the venue unless configured).

    Every missing secret is listed in one `ConfigError`, so the operator fixes them all at once.
    """
    env: Mapping[str, str] = os.environ if environ is None else environ
    refs = exchange.credentials
    values: dict[str, str] = {}
    problems: list[str] = []
    for field in _FIELDS:
        file: Path | None = getattr(refs, f"{field}_file")
        var: str = getattr(refs, f"{field}_env")  # the venue's name when not configured
        if file is not None:
            value, problem = _read_secret_file(field, file)
        else:
            value = env.get(var, "").strip() or None
            problem = None if value else f"{field}: environment variable {var} is not set or empty"
        if value is not None:
            values[field] = value
        if problem is not None:
            problems.append(problem)
    if problems:
        label = VENUES[exchange.venue].label
        raise ConfigError(f"{label} credentials missing: " + "; ".join(problems), problems)
    return GrvtCredentials(
        api_key=SecretStr(values["api_key"]),
        private_key=SecretStr(values["private_key"]),
        trading_account_id=SecretStr(values["trading_account_id"]),
    )
