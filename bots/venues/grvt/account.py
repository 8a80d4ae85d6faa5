"""GRVT's private streams of one sub-account and symbol: our fills and our orders' states, as the SDK's
trade-data websocket delivers them (`fill` and `order`, selector `<sub_account_id>-<instrument>`).

Why a module of its own: it holds what arrived and whether it can be trusted, apart from the REST
calls. A stream has gaps: a message sent while the websocket was down is never sent again, and the
SDK reconnects with a fresh subscription. So the adapter trusts streamed fills only from one REST
fill-history read onwards, read after the current connection's subscription was acknowledged
(`live`): what happened before that read is in the history, what happens after it is on the stream,
and the two are joined by fill id. A new connection (`connections` grows) or a fill message that
cannot be read (`gap`) ends that trust until the next history read.

The `position` stream is not subscribed: reconciliation reads the position over REST between two
fill reads that agree, so that it includes exactly the fills returned; a streamed position has no such
anchor.
"""

from __future__ import annotations

import logging
from typing import Any

from pysdk.grvt_ccxt_env import GrvtWSEndpointType

from bots.errors import ExchangeError
from bots.exchange.base import Fill, OrderUpdate
from bots.venues.grvt.client import _SdkClient
from bots.venues.grvt.data import _Fanout
from bots.venues.grvt.parse import parse_fill, parse_order

__all__ = ["_AccountFeed"]

log = logging.getLogger("mmfleet.grvt")

TRADE_DATA = GrvtWSEndpointType.TRADE_DATA
_STREAMS = ("fill", "order")
_MAX_EVENTS = 100_000  # per reader; past it the oldest are dropped and a reconciliation is due


class _AccountFeed:
    """Fills and order states of one symbol from the trade-data websocket: fills kept until `take()`,
    both fanned out as events (a reader that falls behind drops the oldest events, counted in
    `events.dropped`: the adapter then asks for a reconciliation)."""

    def __init__(self, client: _SdkClient, symbol: str) -> None:
        self.client = client
        self.symbol = symbol
        self.connections = 0  # trade-data connections so far: a new one may have missed messages
        self.events: _Fanout[OrderUpdate | Fill] = _Fanout(_MAX_EVENTS)
        self._fills: list[Fill] = []
        self._gap = False

    async def subscribe(self) -> None:
        params = {"instrument": self.symbol}
        await self.client.subscribe(stream="fill", callback=self._on_fill, params=params)
        await self.client.subscribe(stream="order", callback=self._on_order, params=params)

    def on_connected(self) -> None:
        self.connections += 1

    @property
    def live(self) -> bool:
        """Connected, with both subscriptions acknowledged on this connection."""
        client = self.client
        return client.is_connection_open(TRADE_DATA) and all(
            client.is_stream_subscribed(TRADE_DATA, stream) for stream in _STREAMS
        )

    @property
    def gap(self) -> bool:
        """A fill message could not be read: a fill may be missing from what the stream delivered."""
        return self._gap

    def take(self) -> list[Fill]:
        """The streamed fills not taken yet, in arrival order."""
        fills, self._fills = self._fills, []
        return fills

    def history_read(self) -> None:
        """A history read is starting: it covers every gap seen so far."""
        self._gap = False

    async def _on_fill(self, message: dict[str, Any]) -> None:
        try:
            fill = parse_fill(message["feed"])
        except (ExchangeError, KeyError, TypeError, AttributeError):
            self._gap = True
            log.warning("malformed GRVT fill message: fills come from history until the next read",
                        extra={"fields": {"symbol": self.symbol}})  # fmt: skip
            return
        if fill.symbol == self.symbol:
            self._fills.append(fill)
            self.events.publish(fill)

    async def _on_order(self, message: dict[str, Any]) -> None:
        try:
            update = parse_order(message["feed"])
        except (ExchangeError, KeyError, TypeError, AttributeError):
            log.warning("malformed GRVT order message dropped", extra={"fields": {"symbol": self.symbol}})
            return
        if update.symbol == self.symbol:
            self.events.publish(update)

    def close(self) -> None:
        self.events.close()
