"""Point grvt-pysdk at one base URL (the local exchange) instead of GRVT's hosts.

The SDK has no host setting: it asks three functions (see shared GRVT_API.md "Hosts"). This replaces
them while the context is open: every REST family (edge, trade data, market data) goes to `base_url`,
the legacy websocket endpoints to `<base>/ws`, the RPC-full ones to `<base>/ws/full`. The chain ids of
the environments are kept, so orders are signed as for the real environment.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pysdk.grvt_ccxt_env
import pysdk.grvt_ccxt_ws
import pysdk.grvt_raw_base
from pysdk.grvt_ccxt_env import GrvtEndpointType, GrvtWSEndpointType
from pysdk.grvt_raw_env import GrvtEndpointConfig, GrvtEnvConfig

__all__ = ["sdk_pointed_at"]


@contextmanager
def sdk_pointed_at(base_url: str) -> Iterator[None]:
    """Within the block, every SDK client built talks to `base_url` (http://host:port)."""
    base = base_url.rstrip("/")
    ws_base = "ws" + base.removeprefix("http")
    saved = (
        pysdk.grvt_ccxt_env.get_grvt_endpoint_domains,
        pysdk.grvt_ccxt_ws.get_grvt_ws_endpoint,
        pysdk.grvt_raw_base.get_env_config,
    )
    original_env_config = saved[2]

    def domains(env_name: str) -> dict[Any, str]:
        return dict.fromkeys(GrvtEndpointType, base)

    def ws_endpoint(env: str, endpoint_type: Any) -> str:
        full = endpoint_type in (
            GrvtWSEndpointType.TRADE_DATA_RPC_FULL,
            GrvtWSEndpointType.MARKET_DATA_RPC_FULL,
        )
        return f"{ws_base}/ws/full" if full else f"{ws_base}/ws"

    def env_config(environment: Any) -> Any:
        chain_id = original_env_config(environment).chain_id
        edge = GrvtEndpointConfig(rpc_endpoint=base, ws_endpoint=None)
        data = GrvtEndpointConfig(rpc_endpoint=base, ws_endpoint=f"{ws_base}/ws")
        return GrvtEnvConfig(edge=edge, trade_data=data, market_data=data, chain_id=chain_id)

    pysdk.grvt_ccxt_env.get_grvt_endpoint_domains = domains
    pysdk.grvt_ccxt_ws.get_grvt_ws_endpoint = ws_endpoint
    pysdk.grvt_raw_base.get_env_config = env_config
    try:
        yield
    finally:
        (
            pysdk.grvt_ccxt_env.get_grvt_endpoint_domains,
            pysdk.grvt_ccxt_ws.get_grvt_ws_endpoint,
            pysdk.grvt_raw_base.get_env_config,
        ) = saved
