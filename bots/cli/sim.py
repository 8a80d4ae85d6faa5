"""`mmfleet sim ...`: the local GRVT-compatible exchange (`bots.venues.grvt.server.app`).

- `mmfleet sim serve --host H --port P [--faults SPEC]` serves it until interrupted;
- `mmfleet sim fault SPEC --url URL` switches faults on a running one (`POST /_sim/faults`);
- `mmfleet sim step N --url URL` advances its markets (useful with `--step-interval 0`).

SPEC is the comma-separated form of `bots.venues.grvt.server.faults.parse_fault_spec`, e.g.
`latency=0.2,http_errors=503:2,rate_limit=1:1.5,reject_next=2:BELOW_MARGIN,partial_fills=0.5`.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
from decimal import Decimal, InvalidOperation
from typing import TYPE_CHECKING, Annotated, Any

import typer

from bots.cli.common import fail

if TYPE_CHECKING:  # the server pulls in eth_account and the SDK (seconds): imported when a command runs
    from bots.venues.grvt.server.app import GrvtSimServer

__all__ = ["sim_app"]

sim_app = typer.Typer(
    no_args_is_help=True,
    help="The local GRVT-compatible exchange: paper and live bots reach it through exchange.base_url.",
)

_URL_HELP = "Base URL of a running `mmfleet sim serve`."


def _signers(values: list[str]) -> dict[str, str]:
    signers: dict[str, str] = {}
    for value in values:
        sub, _, address = value.partition("=")
        if not sub.isdigit() or not address.startswith("0x") or len(address) != 42:
            fail([f"--signer {value!r}: expected SUB_ACCOUNT_ID=0xADDRESS"])
        signers[sub] = address
    return signers


def _spec(text: str) -> dict[str, Any]:
    from bots.venues.grvt.server.faults import parse_fault_spec  # noqa: PLC0415 - the SDK loads only when used

    try:
        return parse_fault_spec(text)
    except ValueError as exc:
        fail([f"--faults: {exc}"])


@sim_app.command("serve")
def serve(
    host: Annotated[str, typer.Option(help="Interface to bind; 127.0.0.1 keeps it local.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=0, max=65535, help="Port; 0 picks a free one.")] = 8080,
    step_interval: Annotated[
        float, typer.Option(min=0, help="Seconds between market steps; 0: only `mmfleet sim step` moves it.")
    ] = 0.1,
    seed: Annotated[int, typer.Option(help="Seed of the synthetic markets.")] = 0,
    balance: Annotated[str, typer.Option(help="Starting USDT of a new sub-account.")] = "10000",
    signer: Annotated[
        list[str] | None, typer.Option(help="SUB_ACCOUNT_ID=0xADDRESS: its signing key (repeatable).")
    ] = None,
    faults: Annotated[str, typer.Option(help="Faults switched on at start (see `mmfleet sim fault`).")] = "",
    funding_interval: Annotated[
        float, typer.Option(min=1, help="Market seconds between funding settlements (GRVT: 8 h).")
    ] = 28_800.0,
) -> None:
    """Serve the local exchange until Ctrl-C; prints its base URL."""
    from bots.venues.grvt.server.app import GrvtSimConfig, GrvtSimServer  # noqa: PLC0415

    try:
        starting = Decimal(balance)
    except InvalidOperation:
        fail([f"--balance {balance!r} is not a number"])
    try:
        config = GrvtSimConfig(
            seed=seed,
            step_interval_s=step_interval or None,
            starting_balance_usdt=starting,
            signers=_signers(signer or []),
            funding_params={"interval_s": funding_interval},
        )
    except ValueError as exc:
        fail([str(exc)])
    spec = _spec(faults) if faults else {}
    asyncio.run(_serve(GrvtSimServer(config), host, port, spec))


async def _serve(server: GrvtSimServer, host: str, port: int, spec: dict[str, Any]) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)
    url = await server.start(host, port)
    server.faults.apply(spec)
    typer.echo(f"GRVT sim serving at {url} (websockets at {url.replace('http', 'ws', 1)}/ws/full)")
    try:
        await stop.wait()
    finally:
        await server.stop()


async def _post(url: str, path: str, body: dict[str, Any]) -> dict[str, Any]:
    import aiohttp  # noqa: PLC0415 - a bot, which starts through this CLI, needs no HTTP client

    async with aiohttp.ClientSession() as session, session.post(url.rstrip("/") + path, json=body) as reply:
        data: dict[str, Any] = await reply.json(content_type=None)
        if reply.status != 200:
            fail([f"{path}: HTTP {reply.status}: {data.get('message', data)}"])
        return data


@sim_app.command("fault")
def fault(
    spec: Annotated[str, typer.Argument(help="e.g. latency=0.2,http_errors=503:2 (or `clear`).")],
    url: Annotated[str, typer.Option(help=_URL_HELP)] = "http://127.0.0.1:8080",
) -> None:
    """Switch faults on a running local exchange; prints the switches now in force."""
    typer.echo(json.dumps(asyncio.run(_post(url, "/_sim/faults", _spec(spec))), indent=2))


@sim_app.command("step")
def step(
    n: Annotated[int, typer.Argument(min=0, max=100_000, help="Market steps.")] = 1,
    url: Annotated[str, typer.Option(help=_URL_HELP)] = "http://127.0.0.1:8080",
) -> None:
    """Advance the markets of a running local exchange."""
    typer.echo(json.dumps(asyncio.run(_post(url, "/_sim/step", {"n": n}))))
