"""Point grvt-pysdk at another host: the one place that knows how the SDK finds its endpoints.

The SDK has no setting for its hosts: each environment (prod, testnet, ...) maps to fixed domains in
three functions, looked up at call time:

- `pysdk.grvt_ccxt_env.get_grvt_endpoint_domains(env)`: the REST domains (edge/auth, trade data,
  market data) of the ccxt-style clients (`GrvtCcxt`, `GrvtCcxtPro`, `GrvtCcxtWS`), read on every request;
- `pysdk.grvt_ccxt_ws.get_grvt_ws_endpoint(env, type)`: the websocket URLs of `GrvtCcxtWS`, read once
  in its constructor (imported by name there, so it is replaced in both modules);
- `pysdk.grvt_raw_base.get_env_config(env)`: hosts and websocket URLs of the raw clients
  (`GrvtRawSync`, `GrvtRawAsync`), read once in their constructors.

`install()` wraps each of them once (idempotent): the wrapper asks `current_base_url()` and, when it is
None, calls the SDK's original function, so without an override nothing changes. The override is a
context variable, not a global: wrap the SDK calls of one client in `with base_url_override(url):`.
Tasks started inside the block (the websocket client starts its reader tasks in its constructor)
inherit it, so two clients with different base URLs coexist in one process without leaking into each
other. Code that calls the SDK outside such a block gets the SDK's own hosts.

Layout of an override `http://host:port` (or https): every REST family at `http://host:port/<path>`
(`/auth/api_key/login`, `/full/v1/...`), websockets at `ws://host:port/ws` (market data and trade data)
and `ws://host:port/ws/full` (the JSON-RPC variants) - the same paths as on GRVT, one host for all.
Chain ids (signing domain) stay those of the environment.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterator
from contextvars import ContextVar
from typing import Any
from urllib.parse import urlsplit

import pysdk.grvt_ccxt_env as ccxt_env
import pysdk.grvt_ccxt_ws as ccxt_ws
import pysdk.grvt_raw_base as raw_base
import pysdk.grvt_raw_env as raw_env

__all__ = [
    "base_url_override",
    "current_base_url",
    "install",
    "normalise_base_url",
    "rest_domains",
    "ws_endpoint",
]

_BASE_URL: ContextVar[str | None] = ContextVar("mmfleet_grvt_base_url", default=None)
_LOCK = threading.Lock()
_MARK = "__mmfleet_endpoint_shim__"  # set on our wrappers, so install() never wraps twice
_RPC_FULL_TYPES = (
    ccxt_env.GrvtWSEndpointType.TRADE_DATA_RPC_FULL,
    ccxt_env.GrvtWSEndpointType.MARKET_DATA_RPC_FULL,
)


def normalise_base_url(base_url: str) -> str:
    """`http(s)://host[:port]` without a trailing slash; ValueError for anything else."""
    parts = urlsplit(base_url.strip())
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ValueError(f"GRVT base_url must look like http://host:port, got {base_url!r}")
    if parts.path not in ("", "/") or parts.query or parts.fragment:
        raise ValueError(f"GRVT base_url must be a bare host (no path or query), got {base_url!r}")
    return f"{parts.scheme}://{parts.netloc}"


def rest_domains(base_url: str) -> dict[ccxt_env.GrvtEndpointType, str]:
    """The REST domains of every endpoint family for an override (all the same host)."""
    url = normalise_base_url(base_url)
    return dict.fromkeys(ccxt_env.GrvtEndpointType, url)


def ws_endpoint(base_url: str, endpoint_type: ccxt_env.GrvtWSEndpointType) -> str:
    """The websocket URL of `endpoint_type` for an override: `/ws`, or `/ws/full` for the RPC variants."""
    url = normalise_base_url(base_url)
    scheme, _, rest = url.partition("://")
    ws_base = f"{'wss' if scheme == 'https' else 'ws'}://{rest}"
    return f"{ws_base}/ws/full" if endpoint_type in _RPC_FULL_TYPES else f"{ws_base}/ws"


def current_base_url() -> str | None:
    """The override in effect in this context, or None (the SDK's own hosts)."""
    return _BASE_URL.get()


@contextlib.contextmanager
def base_url_override(base_url: str | None) -> Iterator[None]:
    """Within the block (and in tasks started in it), the SDK talks to `base_url`; None keeps the SDK's
    hosts. Installs the hooks on first use."""
    install()
    token = _BASE_URL.set(normalise_base_url(base_url) if base_url is not None else None)
    try:
        yield
    finally:
        _BASE_URL.reset(token)


def _marked(function: Callable[..., Any]) -> Callable[..., Any]:
    setattr(function, _MARK, True)
    return function


def install() -> None:
    """Wrap the SDK's three endpoint functions once; safe to call any number of times."""
    with _LOCK:
        if getattr(ccxt_env.get_grvt_endpoint_domains, _MARK, False):
            return
        original_domains = ccxt_env.get_grvt_endpoint_domains
        original_ws = ccxt_env.get_grvt_ws_endpoint
        original_env_config = raw_env.get_env_config

        def get_grvt_endpoint_domains(env_name: str) -> dict[Any, str]:
            url = _BASE_URL.get()
            return original_domains(env_name) if url is None else rest_domains(url)

        def get_grvt_ws_endpoint(env: str, endpoint_type: ccxt_env.GrvtWSEndpointType) -> str:
            url = _BASE_URL.get()
            return original_ws(env, endpoint_type) if url is None else ws_endpoint(url, endpoint_type)

        def get_env_config(environment: raw_env.GrvtEnv) -> raw_env.GrvtEnvConfig:
            config = original_env_config(environment)
            url = _BASE_URL.get()
            if url is None:
                return config
            market = ccxt_env.GrvtWSEndpointType.MARKET_DATA
            trade = ccxt_env.GrvtWSEndpointType.TRADE_DATA
            return raw_env.GrvtEnvConfig(
                edge=raw_env.GrvtEndpointConfig(rpc_endpoint=url, ws_endpoint=None),
                trade_data=raw_env.GrvtEndpointConfig(rpc_endpoint=url, ws_endpoint=ws_endpoint(url, trade)),
                market_data=raw_env.GrvtEndpointConfig(
                    rpc_endpoint=url, ws_endpoint=ws_endpoint(url, market)
                ),
                chain_id=config.chain_id,
            )

        ccxt_env.get_grvt_endpoint_domains = _marked(get_grvt_endpoint_domains)
        ccxt_env.get_grvt_ws_endpoint = _marked(get_grvt_ws_endpoint)
        ccxt_ws.get_grvt_ws_endpoint = ccxt_env.get_grvt_ws_endpoint
        raw_env.get_env_config = _marked(get_env_config)
        raw_base.get_env_config = raw_env.get_env_config
