"""The worker's HTTP port answers from its own thread, even while the trading loop is busy."""

from __future__ import annotations

import asyncio
import socket
import time
from concurrent.futures import ThreadPoolExecutor

from prometheus_client import CollectorRegistry, Gauge

from bots.http import start_http
from tests.integration.test_fleet import free_port, http


def test_metrics_health_and_readiness_are_served() -> None:
    registry = CollectorRegistry()
    Gauge("mmfleet_test_value", "a test gauge", registry=registry).set(7)
    problems: list[str | None] = ["starting"]

    async def scenario() -> None:
        port = free_port()
        server = await start_http(registry, lambda: problems[0], "127.0.0.1", port)
        try:
            assert server.port == port
            status, body = await asyncio.to_thread(http, port, "/metrics")
            assert status == 200 and "mmfleet_test_value 7.0" in body
            assert await asyncio.to_thread(http, port, "/healthz") == (200, "ok\n")
            assert await asyncio.to_thread(http, port, "/readyz") == (503, "not ready: starting\n")
            problems[0] = None
            assert await asyncio.to_thread(http, port, "/readyz") == (200, "ready\n")
            assert (await asyncio.to_thread(http, port, "/nope"))[0] == 404
        finally:
            await server.cleanup()
        with socket.socket() as sock:  # nothing listens there any more (TIME_WAIT is fine)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind(("127.0.0.1", port))
            sock.listen()

    asyncio.run(scenario())


def test_a_scrape_is_answered_while_the_event_loop_is_blocked() -> None:
    registry = CollectorRegistry()
    Gauge("mmfleet_test_value", "a test gauge", registry=registry).set(1)

    def timed_get(port: int) -> tuple[int, float]:
        status, _ = http(port, "/metrics")
        return status, time.monotonic()

    async def scenario() -> tuple[int, float, float]:
        port = free_port()
        server = await start_http(registry, lambda: None, "127.0.0.1", port)
        try:
            with ThreadPoolExecutor(1) as pool:
                scrape = pool.submit(timed_get, port)
                time.sleep(1.5)  # the loop is busy (a burst of books): nothing on it can run
                blocked_until = time.monotonic()
                status, answered_at = scrape.result()
        finally:
            await server.cleanup()
        return status, answered_at, blocked_until

    status, answered_at, blocked_until = asyncio.run(scenario())
    assert status == 200
    assert answered_at < blocked_until  # served from its own thread, not after the loop came free
