"""The configuration reference (docs/configuration.md) is generated: it must match the models as they
are now."""

from __future__ import annotations

from pathlib import Path

from settings.reference import END_MARKER, START_MARKER, extract_section, render_reference, replace_section

REFERENCE = Path(__file__).resolve().parents[2] / "docs" / "configuration.md"


def test_reference_is_current() -> None:
    section = extract_section(REFERENCE.read_text(encoding="utf-8"))
    assert section is not None, f"docs/configuration.md lacks {START_MARKER} ... {END_MARKER}"
    assert section == render_reference(), "run: mmfleet config reference --write docs/configuration.md"


def test_every_model_and_bound_is_documented() -> None:
    text = render_reference()
    for heading in ("FleetSettings", "BotDefaults", "BotSettings", "StrategySettings", "FilterSettings"):
        assert f"### {heading}\n" in text
    assert "| `gamma` | float | `1.0` | > 0, <= 1000 | Risk aversion (A-S gamma). |" in text
    assert "| `grid_layers` | int | `7` | >= 1, <= 50 |" in text
    assert "| `min_size` | decimal \\| null | `null` | > 0, <= 1000000 |" in text


def test_replace_section_round_trip() -> None:
    document = f"# t\n\n{START_MARKER}\nstale\n{END_MARKER}\ntail\n"
    updated = replace_section(document, "fresh")
    assert extract_section(updated) == "fresh"
    assert updated.endswith(f"{END_MARKER}\ntail\n")
    assert replace_section(updated, "fresh") == updated
