"""`ctl start` for a bot that was shut down: the supervisor relaunches it when a start waits for it.

A shut-down worker reads no commands, so the supervisor looks in the store for it. A start addressed
to the bot stays pending and the relaunched worker acts on it and acks it (its usual answer). A
broadcast start would be skipped by the new worker (it was issued before that worker started), so
the supervisor acks the broadcast for the bot and hands a start addressed to it in its place.
"""

from __future__ import annotations

from collections.abc import Sequence

from bots.store import ALL_BOTS, Ledger

__all__ = ["claim_starts"]


def claim_starts(ledger_url: str, bots: Sequence[str]) -> list[str]:
    """The bots among `bots` (shut down under a running supervisor) that a pending start waits for."""
    wanted: list[str] = []
    with Ledger(ledger_url) as ledger:
        for bot in bots:
            start = next((c for c in ledger.pending_commands(bot) if c.command == "start"), None)
            if start is None:
                continue
            if start.bot == ALL_BOTS:
                own = ledger.enqueue_command(bot, "start", author=f"supervisor (for command {start.id})")
                ledger.ack_command(start.id, f"relaunched; start sent as command {own}", bot=bot)
            wanted.append(bot)
    return wanted
