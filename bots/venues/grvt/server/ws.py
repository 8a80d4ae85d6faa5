"""The local exchange's websockets (`/ws` and `/ws/full`, the same on both): GRVT's streams and its
JSON-RPC, as `pysdk.grvt_ccxt_ws.GrvtCcxtWS` speaks them.

Subscribe either way, on either path:
- legacy `{"request_id", "stream": "v1.book.s", "feed": [selectors], "method": "subscribe", "is_full"}`,
  answered `{"request_id", "stream", "subs", "unsubs", "num_snapshots", "first_sequence_number",
  "latest_sequence_number"}`;
- JSON-RPC `{"jsonrpc": "2.0", "method": "subscribe", "params": {"stream", "selectors"}, "id"}`, answered
  `{"jsonrpc", "method", "result": {...the same...}, "id"}`.
Feeds: `{"stream", "selector", "sequence_number", "prev_sequence_number", "feed"}` with the stream and
selector exactly as subscribed (the SDK keys its callbacks by them); numbers count per subscription
from 0. Streams: `book.s` (`INSTR@rate-depth`, a snapshot per market step), `book.d` (`INSTR@rate`: a
snapshot, then changed levels with size "0" for a level gone), `mini.s/d`, `ticker.s/d` (`INSTR@rate`,
full objects), `trade` (`INSTR@limit`), and with a login cookie and `X-Grvt-Account-Id` header: `order`,
`state`, `position`, `fill` (selector `SUB`, `SUB-INSTR` or `SUB-KIND-BASE-QUOTE`). The rate is not
honoured: market streams publish once per market step. JSON-RPC `v1/<endpoint>` (e.g. `v1/create_order`)
runs the REST handler and answers `{"jsonrpc", "method", "result": <REST body>, "id"}` or `"error":
{"code", "message"}`.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from aiohttp import WSCloseCode, WSMsgType, web

from bots.venues.grvt.server.accounts import Session
from bots.venues.grvt.server.exchange import SimExchange
from bots.venues.grvt.server.faults import Faults
from bots.venues.grvt.server.instruments import Instrument, ticker_payload
from bots.venues.grvt.server.wire import GrvtApiError

__all__ = ["WsHub"]

MARKET_STREAMS = ("book.s", "book.d", "mini.s", "mini.d", "ticker.s", "ticker.d", "trade")
PRIVATE_STREAMS = ("order", "state", "position", "fill")
_SNAPSHOT_STREAMS = ("book.s", "book.d", "mini.s", "mini.d", "ticker.s", "ticker.d")


@dataclass(eq=False)
class _Sub:
    conn: _Connection
    stream: str  # as the client sent it, e.g. "v1.book.s"
    selector: str
    kind: str  # without the version, e.g. "book.s"
    instrument: str | None = None
    depth: int = 10
    sub_account: str | None = None
    kind_filter: str | None = None
    base: str | None = None
    quote: str | None = None
    seq: int = -1
    levels: dict[str, dict[str, str]] = field(default_factory=dict)  # book.d: price -> size per side

    def message(self, feed: dict[str, Any]) -> None:
        self.seq += 1
        self.conn.send(
            {
                "stream": self.stream,
                "selector": self.selector,
                "sequence_number": str(self.seq),
                "prev_sequence_number": str(max(self.seq - 1, 0)),
                "feed": feed,
            }
        )

    def wants(self, instrument: Instrument) -> bool:
        if self.instrument is not None:
            return self.instrument == instrument.name
        return (
            (self.kind_filter is None or self.kind_filter == "PERPETUAL")
            and (self.base is None or self.base == instrument.base)
            and (self.quote is None or self.quote == instrument.quote)
        )


class _Connection:
    def __init__(self, ws: web.WebSocketResponse, token: str | None, account_header: str | None) -> None:
        self.ws = ws
        self.token, self.account_header = token, account_header
        self.queue: asyncio.Queue[str] = asyncio.Queue()
        self.subs: dict[tuple[str, str], _Sub] = {}

    def send(self, message: Mapping[str, Any]) -> None:
        self.queue.put_nowait(json.dumps(message))

    async def write(self) -> None:
        while True:
            text = await self.queue.get()
            if self.ws.closed:
                return
            try:
                await self.ws.send_str(text)
            except (ConnectionError, RuntimeError):  # the client went away mid-send
                return


class WsHub:
    """Websocket connections, their subscriptions, and the `ExchangeListener` that feeds them."""

    def __init__(self, exchange: SimExchange, faults: Faults) -> None:
        self.exchange = exchange
        self.faults = faults
        self.connections: set[_Connection] = set()
        self.connections_total = 0  # every connection accepted since start (a reconnect adds one)
        self._subs: dict[str, list[_Sub]] = {k: [] for k in (*MARKET_STREAMS, *PRIVATE_STREAMS)}

    # -- connections ------------------------------------------------------------------------------
    async def handle(self, request: web.Request) -> web.StreamResponse:
        if self.faults.websockets_refused():
            return web.json_response(GrvtApiError(1009).body(), status=503)
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        conn = _Connection(ws, request.cookies.get("gravity"), request.headers.get("X-Grvt-Account-Id"))
        self.connections.add(conn)
        self.connections_total += 1
        writer = asyncio.create_task(conn.write())
        try:
            async for msg in ws:
                if msg.type == WSMsgType.TEXT:
                    await self._on_text(conn, msg.data)
                elif msg.type == WSMsgType.ERROR:
                    break
        finally:
            self.connections.discard(conn)
            for sub in conn.subs.values():
                self._subs[sub.kind].remove(sub)
            writer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await writer
        return ws

    async def close_all(self) -> None:
        """Drop every connection (the `drop_websockets` fault)."""
        for conn in list(self.connections):
            await conn.ws.close(code=WSCloseCode.SERVICE_RESTART, message=b"dropped by the simulator")

    def _session(self, conn: _Connection) -> Session | None:
        now_s = self.exchange.clock() / 1e9
        return self.exchange.accounts.session(conn.token, conn.account_header, now_s)

    # -- requests ---------------------------------------------------------------------------------
    async def _on_text(self, conn: _Connection, text: str) -> None:
        try:
            message = json.loads(text)
        except ValueError:
            conn.send(GrvtApiError(1003).body())
            return
        if not isinstance(message, dict):
            conn.send(GrvtApiError(1003).body())
        elif "jsonrpc" in message:
            await self._on_rpc(conn, message)
        else:
            self._on_legacy(conn, message)

    def _on_legacy(self, conn: _Connection, message: dict[str, Any]) -> None:
        request_id = message.get("request_id")
        try:
            stream, feed = message.get("stream"), message.get("feed")
            if not isinstance(stream, str) or not isinstance(feed, list):
                raise GrvtApiError(1003, "stream and feed are required")
            if message.get("method") == "unsubscribe":
                reply = self._unsubscribe(conn, stream, feed)
            elif message.get("method") == "subscribe":
                reply = self._subscribe(conn, stream, feed)
            else:
                raise GrvtApiError(1003, "method must be subscribe or unsubscribe")
        except GrvtApiError as exc:
            conn.send(({"request_id": request_id} if request_id is not None else {}) | exc.body())
            return
        conn.send(({"request_id": request_id} if request_id is not None else {}) | reply)
        self._snapshots(conn, stream, reply.get("subs", []))

    async def _on_rpc(self, conn: _Connection, message: dict[str, Any]) -> None:
        method, params, rpc_id = message.get("method"), message.get("params") or {}, message.get("id")
        head = {"jsonrpc": "2.0", "method": method}
        try:
            if not isinstance(method, str) or not isinstance(params, dict):
                raise GrvtApiError(1003, "method and params are required")
            if method in ("subscribe", "unsubscribe"):
                stream, selectors = params.get("stream"), params.get("selectors")
                if not isinstance(stream, str) or not isinstance(selectors, list):
                    raise GrvtApiError(1003, "params.stream and params.selectors are required")
                if method == "subscribe":
                    result = self._subscribe(conn, stream, selectors)
                else:
                    result = self._unsubscribe(conn, stream, selectors)
                conn.send(head | {"result": result, "id": rpc_id})
                if method == "subscribe":
                    self._snapshots(conn, stream, result["subs"])
                return
            if self.faults.latency_s:
                await asyncio.sleep(self.faults.latency_s)
            name = method.split("/", 1)[1] if method.startswith("v1/") else method
            result = self.exchange.call(name, self._session(conn), params)
        except GrvtApiError as exc:
            conn.send(head | {"error": {"code": exc.code, "message": exc.message}, "id": rpc_id})
            return
        conn.send(head | {"result": result, "id": rpc_id})

    # -- subscriptions ----------------------------------------------------------------------------
    def _subscribe(self, conn: _Connection, stream: str, selectors: list[Any]) -> dict[str, Any]:
        kind = stream.split(".", 1)[1] if stream.startswith("v1.") else stream
        if kind not in self._subs:
            raise GrvtApiError(1004, f"stream {stream} is not served by the simulator")
        subs = [self._parse(conn, stream, kind, str(selector)) for selector in selectors]
        for sub in subs:
            old = conn.subs.pop((stream, sub.selector), None)
            if old is not None:
                self._subs[kind].remove(old)
            conn.subs[(stream, sub.selector)] = sub
            self._subs[kind].append(sub)
        snapshots = 1 if kind in _SNAPSHOT_STREAMS else 0
        return {
            "stream": stream,
            "subs": [sub.selector for sub in subs],
            "unsubs": [],
            "num_snapshots": [snapshots] * len(subs),
            "first_sequence_number": ["0"] * len(subs),
            "latest_sequence_number": ["0"] * len(subs),
        }

    def _unsubscribe(self, conn: _Connection, stream: str, selectors: list[Any]) -> dict[str, Any]:
        gone = []
        for selector in map(str, selectors):
            sub = conn.subs.pop((stream, selector), None)
            if sub is not None:
                self._subs[sub.kind].remove(sub)
                gone.append(selector)
        return {"stream": stream, "subs": [], "unsubs": gone}

    def _parse(self, conn: _Connection, stream: str, kind: str, selector: str) -> _Sub:
        instruments = self.exchange.instruments
        if kind in MARKET_STREAMS:
            name, at, rest = selector.partition("@")
            if not at:
                raise GrvtApiError(1101)
            if name not in instruments:
                raise GrvtApiError(3000)
            depth = rest.partition("-")[2] if kind == "book.s" else ""
            if depth and not depth.isdigit():
                raise GrvtApiError(1101)
            return _Sub(conn, stream, selector, kind, instrument=name, depth=int(depth or 10))
        session = self._session(conn)
        sub_id, _, rest = selector.partition("-")
        self.exchange.accounts.sub_account(session, sub_id)  # 1000 without a login, 1001 not its own
        if rest in instruments:
            return _Sub(conn, stream, selector, kind, instrument=rest, sub_account=sub_id)
        kind_f, base, quote = ([*rest.split("-"), "", "", ""])[:3] if rest else ("", "", "")
        return _Sub(
            conn,
            stream,
            selector,
            kind,
            sub_account=sub_id,
            kind_filter=kind_f or None,
            base=base or None,
            quote=quote or None,
        )

    def _snapshots(self, conn: _Connection, stream: str, selectors: list[str]) -> None:
        for selector in selectors:
            sub = conn.subs.get((stream, selector))
            if sub is not None and sub.kind in _SNAPSHOT_STREAMS and sub.instrument is not None:
                self._publish_market(sub, self.exchange.instruments[sub.instrument], {})

    # -- the ExchangeListener side ----------------------------------------------------------------
    def on_market(self, instrument: str) -> None:
        books: dict[int, dict[str, Any]] = {}
        inst = self.exchange.instruments[instrument]
        for kind in _SNAPSHOT_STREAMS:
            for sub in self._subs[kind]:
                if sub.instrument == instrument:
                    self._publish_market(sub, inst, books)

    def _publish_market(self, sub: _Sub, inst: Instrument, books: dict[int, dict[str, Any]]) -> None:
        now = self.exchange.clock()
        if sub.kind in ("mini.s", "mini.d", "ticker.s", "ticker.d"):
            sub.message(ticker_payload(inst, now, mini=sub.kind.startswith("mini")))
            return
        depth = sub.depth if sub.kind == "book.s" else 500
        if depth not in books:
            books[depth] = self.exchange.book_payload(inst, depth)
        book = books[depth]
        if sub.kind == "book.s":
            sub.message(book)
            return
        delta: dict[str, list[dict[str, Any]]] = {}
        for side in ("bids", "asks"):
            now_levels = {lvl["price"]: lvl for lvl in book[side]}
            before = sub.levels.get(side, {})
            changed = [lvl for p, lvl in now_levels.items() if before.get(p) != lvl["size"] or sub.seq < 0]
            gone = [{"price": p, "size": "0", "num_orders": 0} for p in before if p not in now_levels]
            delta[side] = sorted(
                changed + gone, key=lambda lvl: Decimal(lvl["price"]), reverse=side == "bids"
            )
            sub.levels[side] = {p: lvl["size"] for p, lvl in now_levels.items()}
        if sub.seq < 0 or delta["bids"] or delta["asks"]:
            sub.message(book | delta)

    def on_trade(self, instrument: str, trade: dict[str, Any]) -> None:
        for sub in self._subs["trade"]:
            if sub.instrument == instrument:
                sub.message(trade)

    def on_private(self, stream: str, sub_account_id: str, instrument: str, feed: dict[str, Any]) -> None:
        inst = self.exchange.instruments[instrument]
        for sub in self._subs[stream]:
            if sub.sub_account == sub_account_id and sub.wants(inst):
                sub.message(feed)
