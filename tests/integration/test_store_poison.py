"""Rows that anything could have written into the control plane: read safely, refused with a reason,
never handed out twice, on SQLite and PostgreSQL."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import text

from bots.safe_json import MAX_DEPTH, decode_json
from bots.store import Ledger
from bots.store.control import MAX_PAYLOAD_BYTES
from tests.integration.conftest import LedgerFactory

pytestmark = pytest.mark.integration

BOT = "bot-a"


def _json_param(ledger: Ledger) -> str:
    # PostgreSQL types the column: say the text is JSON. SQLite stores the text (or bytes) as text.
    return "CAST(:doc AS json)" if ledger.backend == "postgresql" else "CAST(:doc AS TEXT)"


def raw_command(ledger: Ledger, payload_text: str | bytes, *, bot: str = BOT, command: str = "stop") -> int:
    """A command row as a script, a bug or a corrupted file could leave it: no validation on the way."""
    sql = (
        "INSERT INTO commands (bot, command, payload, author, created_at_ns, status) "
        f"VALUES (:bot, :command, {_json_param(ledger)}, 'poison', :now, 'pending') RETURNING id"
    )
    with ledger.engine.begin() as connection:
        row = connection.execute(
            text(sql), {"bot": bot, "command": command, "doc": payload_text, "now": 1}
        ).one()
    return int(row[0])


def raw_config(ledger: Ledger, config_text: str, targets_text: str) -> int:
    doc = _json_param(ledger)
    sql = (
        "INSERT INTO config_versions (config, targets, author, created_at_ns) "
        f"VALUES ({doc}, {doc.replace(':doc', ':targets')}, 'poison', 1) RETURNING version"
    )
    with ledger.engine.begin() as connection:
        row = connection.execute(text(sql), {"doc": config_text, "targets": targets_text}).one()
    return int(row[0])


def deep(levels: int, leaf: str = "1") -> str:
    return '{"a": ' * levels + leaf + "}" * levels


BAD_PAYLOADS = {
    "a list": "[1]",
    "a string": '"stop"',
    "null": "null",
    "a number": "3",
    "nested 10,000 deep": deep(10_000),
    "a deep list": "[" * 5_000 + "]" * 5_000,
    "too large": json.dumps({"x": "y" * MAX_PAYLOAD_BYTES}),
    "1e400": '{"x": 1e400}',
}
SQLITE_ONLY = {"not JSON": "{stop", "empty": "", "NaN": '{"x": NaN}'}


@pytest.mark.parametrize("case", [*BAD_PAYLOADS, *SQLITE_ONLY])
def test_a_bad_command_payload_is_refused_once_with_its_reason(ledger: Ledger, case: str) -> None:
    payload = {**BAD_PAYLOADS, **SQLITE_ONLY}[case]
    if case in SQLITE_ONLY and ledger.backend == "postgresql":
        pytest.skip("PostgreSQL refuses this text in a json column itself")
    bad = raw_command(ledger, payload)
    good = ledger.enqueue_command(BOT, "start", {"why": "ok"}, author="ops")
    assert [c.id for c in ledger.pending_commands(BOT)] == [good]
    refused = ledger.command(bad)
    assert refused.status == "failed"
    assert refused.outcome is not None and refused.outcome.startswith("rejected: payload: ")
    assert refused.payload == {}  # the audit view still reads the row
    assert [c.id for c in ledger.pending_commands(BOT)] == [good]  # never handed out again
    assert [c.id for c in ledger.recent_commands()] == [good, bad]


def test_a_bad_broadcast_is_refused_by_each_bot_and_a_good_one_still_reaches_everyone(ledger: Ledger) -> None:
    bad = raw_command(ledger, "[1]", bot="*")
    good = ledger.enqueue_command("*", "start", author="ops")
    for bot in ("bot-a", "bot-b", "bot-c"):
        assert [c.id for c in ledger.pending_commands(bot)] == [good]
        assert [c.id for c in ledger.pending_commands(bot)] == [good]
    acks = ledger.command_acks(bad)
    assert sorted(a.bot for a in acks) == ["bot-a", "bot-b", "bot-c"]
    assert {a.outcome for a in acks} == {"rejected: payload: not a JSON object (got a list)"}


@pytest.mark.parametrize(
    ("config", "targets", "reason"),
    [
        ("[1]", '["bot-a"]', "config: not a JSON object (got a list)"),
        ("null", '["bot-a"]', "config: not a JSON object (got null)"),
        (deep(10_000), '["bot-a"]', "config: nested 10000 deep"),
        ('{"strategy": {}}', "7", "targets: not a list of 1 to 10000 bot names (got an integer)"),
        ('{"strategy": {}}', "[]", "targets: not a list"),
        ('{"strategy": {}}', "[1, 2]", "targets: every target is a non-empty bot name"),
        ('{"strategy": {}}', '"bot-a"', "targets: not a list"),
    ],
)
def test_a_bad_config_version_is_rejected_once_with_its_reason(
    ledger: Ledger, config: str, targets: str, reason: str
) -> None:
    good = ledger.publish_config({"strategy": {"gamma": 2.0}}, [BOT], author="flow")
    ledger.ack_config(good, BOT, "applied")
    bad = raw_config(ledger, config, targets)
    assert ledger.pending_config(BOT) is None
    (ack,) = ledger.config_acks(bad)
    assert (ack.bot, ack.status) == (BOT, "rejected")
    assert ack.reason is not None and ack.reason.startswith(reason)
    assert ledger.pending_config(BOT) is None
    applied = ledger.applied_config(BOT)
    assert applied is not None and applied.version == good  # what a restart runs with is untouched
    with pytest.raises(ValueError, match="config version"):
        ledger.config_version(bad)


def test_an_applied_version_corrupted_later_falls_back_to_the_previous_one(ledger: Ledger) -> None:
    first = ledger.publish_config({"strategy": {"gamma": 2.0}}, [BOT], author="flow")
    second = ledger.publish_config({"strategy": {"gamma": 3.0}}, [BOT], author="flow")
    ledger.ack_config(first, BOT, "applied")
    ledger.ack_config(second, BOT, "applied")
    with ledger.engine.begin() as connection:
        connection.execute(
            text(f"UPDATE config_versions SET config = {_json_param(ledger)} WHERE version = :v"),
            {"doc": "[]", "v": second},
        )
    applied = ledger.applied_config(BOT)
    assert applied is not None and applied.version == first
    assert ledger.config_acks(second)[0].status == "rejected"


# --- any payload at all ----------------------------------------------------------------------------

json_scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=30)
)
json_values = st.recursive(
    json_scalars,
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=30,
)


@st.composite
def payload_texts(draw: st.DrawFn) -> str | bytes:
    """Payload text: valid JSON of any type, deep nestings, unicode, and bytes in other encodings."""
    kind = draw(st.sampled_from(["value", "deep", "unicode", "escaped", "encoded"]))
    if kind == "encoded":
        text = json.dumps({"note": draw(st.text(min_size=1, max_size=20))}, ensure_ascii=False)
        return text.encode(draw(st.sampled_from(["utf-16", "latin-1", "utf-8-sig", "cp1252"])), "replace")
    if kind == "deep":
        levels = draw(st.integers(min_value=1, max_value=3 * MAX_DEPTH))
        return deep(levels) if draw(st.booleans()) else "[" * levels + "]" * levels
    value = draw(json_values)
    if kind == "unicode":
        return json.dumps({"note": draw(st.text(min_size=1, max_size=20)), "v": value}, ensure_ascii=False)
    return json.dumps(value, ensure_ascii=kind == "escaped")


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(payloads=st.lists(payload_texts(), min_size=1, max_size=5))
def test_any_payload_is_either_handed_out_as_an_object_or_refused(
    ledgers: LedgerFactory, payloads: list[str | bytes]
) -> None:
    ledger = ledgers.open()
    if ledger.backend == "postgresql":  # its json type refuses bytes that are not UTF-8 JSON itself
        payloads = [payload for payload in payloads if isinstance(payload, str)]
    ids = {raw_command(ledger, payload, bot="h-bot"): payload for payload in payloads}
    handed = {c.id: c.payload for c in ledger.pending_commands("h-bot")}
    for command_id, payload in ids.items():
        read = payload.decode("utf-8", "replace") if isinstance(payload, bytes) else payload
        try:
            expected = decode_json(read, max_bytes=MAX_PAYLOAD_BYTES)
        except ValueError:
            expected = None
        if isinstance(expected, dict):
            assert handed[command_id] == expected
        else:
            assert command_id not in handed
            outcome = ledger.command(command_id).outcome
            assert outcome is not None and outcome.startswith("rejected: payload: ")
    assert {c.id for c in ledger.pending_commands("h-bot")} == set(handed)  # refused ones never again
    for command_id in handed:
        ledger.ack_command(command_id, "done")
    assert ledger.pending_commands("h-bot") == []


def test_decode_json_refuses_what_json_loads_would_crash_on_or_let_through() -> None:
    with pytest.raises(ValueError, match="nested"):
        decode_json(deep(100_000), max_bytes=10**7)
    with pytest.raises(ValueError, match="out of range"):
        decode_json("1e400", max_bytes=100)
    with pytest.raises(ValueError, match="not a JSON number"):
        decode_json("[Infinity]", max_bytes=100)
    with pytest.raises(ValueError, match="not UTF-8"):
        decode_json(b"\xff\xfe{}", max_bytes=100)
    with pytest.raises(ValueError, match="more than"):
        decode_json("[" + "1," * 100 + "1]", max_bytes=100)
    assert decode_json('{"a": "[[[[{{{{\\"]"}', max_bytes=100, max_depth=1) == {"a": '[[[[{{{{"]'}
    value: Any = decode_json(deep(MAX_DEPTH), max_bytes=10_000)
    assert isinstance(value, dict)


# --- bot state ---------------------------------------------------------------------------------------


def raw_state(ledger: Ledger, bot: str, key: str, value_text: str) -> None:
    sql = (
        "INSERT INTO bot_state (bot, key, value, updated_at_ns) "
        f"VALUES (:bot, :key, {_json_param(ledger)}, 1)"
    )
    with ledger.engine.begin() as connection:
        connection.execute(text(sql), {"bot": bot, "key": key, "doc": value_text})


@pytest.mark.parametrize("stored", ['"abc"', '"NaN"', '"Infinity"', "[1]", "null", "true", deep(100)])
def test_an_unreadable_peak_equity_reads_as_none_and_the_next_point_replaces_it(
    ledger: Ledger, stored: str
) -> None:
    raw_state(ledger, BOT, "peak_equity", stored)
    assert ledger.peak_equity(BOT) is None
    assert ledger.record_equity(BOT, "BTC_USDT_Perp", Decimal("100.5")) == Decimal("100.5")
    assert ledger.peak_equity(BOT) == Decimal("100.5")


def test_a_state_row_that_is_not_json_reads_as_the_default(ledger: Ledger) -> None:
    if ledger.backend == "postgresql":
        pytest.skip("PostgreSQL refuses this text in a json column itself")
    raw_state(ledger, BOT, "trading_enabled", "{oops")
    assert ledger.get_state(BOT, "trading_enabled", True) is True


def test_bytes_that_are_not_utf8_cannot_crash_a_read_on_sqlite(ledger: Ledger) -> None:
    if ledger.backend == "postgresql":
        pytest.skip("PostgreSQL refuses invalid UTF-8 itself")
    sql = (
        "INSERT INTO commands (bot, command, payload, author, created_at_ns, status) "
        "VALUES (:bot, 'stop', CAST(:payload AS TEXT), CAST(:author AS TEXT), 1, 'pending') RETURNING id"
    )
    with ledger.engine.begin() as connection:
        bad = connection.execute(
            text(sql), {"bot": BOT, "payload": b"\xff\xfe{}", "author": b"\xc3\x28ops"}
        ).scalar_one()
    assert ledger.pending_commands(BOT) == []
    refused = ledger.command(bad)
    assert refused.outcome is not None and refused.outcome.startswith("rejected: payload: not JSON")
    assert refused.author == "\ufffd(ops"
