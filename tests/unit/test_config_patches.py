"""Any JSON object a config version can carry is applied whole or rejected with a ConfigError naming
the field: never another exception, never a half-applied or out-of-bounds setting."""

from __future__ import annotations

import math
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bots.control import merged_settings, settings_patch
from bots.errors import ConfigError
from settings.models import BotSettings

CURRENT = BotSettings.model_validate({"symbol": "BTC_USDT_Perp", "name": "bot-a"})
DUMP = CURRENT.model_dump(mode="json")
PATHS = [(section, key) for section, fields in DUMP.items() if isinstance(fields, dict) for key in fields] + [
    ("", key) for key, value in DUMP.items() if not isinstance(value, dict)
]

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False, allow_infinity=False)  # what JSON (and `bots.safe_json`) can carry
    | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=8), children, max_size=3)
    ),
    max_leaves=10,
)


@st.composite
def patches(draw: st.DrawFn) -> dict[str, Any]:
    patch: dict[str, Any] = {}
    for _ in range(draw(st.integers(min_value=1, max_value=4))):
        section, key = draw(st.sampled_from(PATHS))
        value = draw(json_values)
        if section:
            target = patch.setdefault(section, {})
            if isinstance(target, dict):
                target[key] = value
        else:
            patch[key] = value
    if draw(st.booleans()):
        patch[draw(st.text(max_size=10))] = draw(json_values)
    return patch


def _finite(value: Any) -> bool:
    if isinstance(value, dict):
        return all(_finite(item) for item in value.values())
    if isinstance(value, list | tuple):
        return all(_finite(item) for item in value)
    return not isinstance(value, float) or math.isfinite(value)


@settings(max_examples=300, deadline=None)
@given(patch=patches())
def test_any_patch_is_applied_whole_or_rejected_with_a_config_error(patch: dict[str, Any]) -> None:
    try:
        result = merged_settings(CURRENT, patch)
    except ConfigError as exc:
        assert exc.problems and all(line and "\n" not in line for line in exc.problems)
        return
    assert (result.name, result.symbol, result.exchange.mode) == ("bot-a", "BTC_USDT_Perp", "sim")
    assert _finite(result.model_dump())
    # what reload_config stores (the difference) rebuilds exactly the same settings after a restart
    assert merged_settings(CURRENT, settings_patch(DUMP, result.model_dump(mode="json"))) == result


def test_identity_cannot_change_in_a_patch() -> None:
    with pytest.raises(ConfigError, match="symbol cannot change"):
        merged_settings(CURRENT, {"symbol": "ETH_USDT_Perp"})
    with pytest.raises(ConfigError, match="name cannot change"):
        merged_settings(CURRENT, {"name": "bot-b"})


def test_settings_patch_holds_only_what_changed() -> None:
    new = BotSettings.model_validate(
        {"symbol": "BTC_USDT_Perp", "name": "bot-a", "strategy": {"gamma": 2.0}, "risk": {"max_loss_usd": 60}}
    )
    patch = settings_patch(DUMP, new.model_dump(mode="json"))
    assert patch == {"strategy": {"gamma": 2.0}, "risk": {"max_loss_usd": 60.0}}
    assert merged_settings(CURRENT, patch) == new
