"""Client order ids: in GRVT's range for API clients, carrying the store and the bot, unique across lives."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from bots.core.orders import OrderIds, Owner, bot_tag, owner_of, store_tag

API_LOW, API_HIGH = 2**63, 2**64  # GRVT: "client machines should generate ... in [2^63, 2^64 - 1]"
STORE_IDS = st.integers(0, 2**63 - 1)  # what `Ledger.store_id()` draws
NOW_MS = st.integers(1_735_689_600_000, 2_250_000_000_000)  # 2025 .. 2041: before the counter wraps


@given(STORE_IDS, st.text(min_size=1, max_size=40), NOW_MS, st.integers(1, 500))
def test_every_id_is_a_uint64_of_the_api_range_naming_its_store_and_bot(
    store: int, name: str, now_ms: int, count: int
) -> None:
    ids = OrderIds(store, bot_tag(name), now_ms)
    for _ in range(count):
        cid = ids.next()
        assert cid.isdigit() and str(int(cid)) == cid  # a plain decimal uint64, as the SDK sends it
        assert API_LOW <= int(cid) < API_HIGH
        assert owner_of(cid) == Owner(store_tag(store), bot_tag(name)) == ids.owner
        assert ids.is_ours(cid) and not ids.is_other_stores(cid)


@given(STORE_IDS, STORE_IDS, st.integers(0, 255), st.integers(0, 255), NOW_MS)
def test_an_id_of_another_store_is_told_apart_whatever_the_bot(
    mine: int, theirs: int, my_bot: int, their_bot: int, now_ms: int
) -> None:
    ours, other = OrderIds(mine, my_bot, now_ms), OrderIds(theirs, their_bot, now_ms)
    cid = other.next()
    same_store = store_tag(mine) == store_tag(theirs)
    assert ours.is_other_stores(cid) is not same_store
    assert ours.is_ours(cid) is (same_store and my_bot == their_bot)


@given(st.one_of(st.integers(0, API_LOW - 1), st.integers(API_HIGH, 2**80)).map(str) | st.text(max_size=20))
def test_ids_outside_the_api_range_belong_to_no_store(cid: str) -> None:
    """GRVT's UI picks ids below 2**63 (an order placed by hand), and anything not a uint64 is not ours:
    never another store's either, so it never halts a bot."""
    assert owner_of(cid) is None
    assert not OrderIds(1, 2, 3).is_other_stores(cid)


@given(
    STORE_IDS,
    NOW_MS,
    st.lists(st.tuples(st.integers(1, 2_000), st.floats(0.0, 1.0)), min_size=1, max_size=8),
)
def test_ids_are_unique_across_restarts_that_place_fewer_orders_than_milliseconds_pass(
    store: int, first_ms: int, lives: list[tuple[int, float]]
) -> None:
    """Each life starts at the wall clock in ms (a new process: no previous core) and places up to one
    order per millisecond until the next life starts; no id is ever issued twice."""
    seen: set[str] = set()
    now_ms = first_ms
    for gap_ms, share in lives:
        ids = OrderIds.resuming(store, 7, now_ms, None)
        for _ in range(int(gap_ms * share)):
            cid = ids.next()
            assert cid not in seen
            seen.add(cid)
        now_ms += gap_ms


@given(STORE_IDS, NOW_MS, st.lists(st.integers(0, 2_000), min_size=1, max_size=6))
def test_a_core_replaced_in_the_same_process_counts_on_past_the_previous_one(
    store: int, now_ms: int, bursts: list[int]
) -> None:
    """A restart command within one millisecond of a burst of orders: the new core starts past the old
    one's last id, however fast the old one went."""
    seen: set[str] = set()
    previous: OrderIds | None = None
    for burst in bursts:
        ids = OrderIds.resuming(store, 7, now_ms, previous)
        for _ in range(burst):
            cid = ids.next()
            assert cid not in seen
            seen.add(cid)
        previous = ids
