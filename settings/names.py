"""The bot name rule, and the names other systems derive from a bot's name.

A bot name keys metrics, ledger rows, commands and the log file `data_dir/logs/<name>.log`, and it
names the bot's Kubernetes objects. So it is one rule, checked when the fleet file is loaded:

    1 to 63 characters from A-Z a-z 0-9 _ -, starting and ending with a letter or a digit

It can never be a path (no `/`, `.` or NUL), and `kubernetes_name` (lowercase, `_` -> `-`) always
gives a valid Kubernetes object name (an RFC 1123 DNS label). Two bots of one fleet must differ in
that derived name too, so `BTC_x` and `btc-x` cannot share a fleet.
"""

from __future__ import annotations

import re

__all__ = ["BOT_NAME_PATTERN", "BOT_NAME_RULE", "check_bot_name", "kubernetes_name"]

BOT_NAME_PATTERN = r"^[A-Za-z0-9](?:[A-Za-z0-9_-]{0,61}[A-Za-z0-9])?$"
BOT_NAME_RULE = "1 to 63 characters from A-Z a-z 0-9 _ -, starting and ending with a letter or a digit"
_BOT_NAME = re.compile(BOT_NAME_PATTERN)


def check_bot_name(name: str) -> str:
    """`name` when it follows the rule, else ValueError saying the rule (not repeating the name)."""
    if not _BOT_NAME.fullmatch(name):
        raise ValueError(f"a bot name is {BOT_NAME_RULE}")
    return name


def kubernetes_name(bot_name: str) -> str:
    """The Kubernetes object name of a bot: its name lowercased, `_` replaced by `-`.

    >>> kubernetes_name("BTC_USDT_Perp")
    'btc-usdt-perp'
    """
    return check_bot_name(bot_name).lower().replace("_", "-")
