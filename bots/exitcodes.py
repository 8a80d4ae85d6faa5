"""Exit codes of a bot process, and what the supervisor does about each: the one table.

| code | name              | cause                                                        | supervisor      |
|------|-------------------|--------------------------------------------------------------|-----------------|
| 0    | SHUTDOWN          | the `shutdown` command: stop and stay down                   | stopped         |
| 1    | CRASH             | an unexpected error (a bug; the traceback is in the log)     | restart/backoff |
| 2    | CONFIG            | invalid config, credentials refused by the exchange, lock    | failed          |
|      |                   | held by another worker: restarting cannot fix it             |                 |
| 3    | STORE_UNAVAILABLE | the ledger database cannot be reached or opened              | restart/backoff |
| 4    | MARKET_DATA_ENDED | the market-data source ended or broke (a replay that ran out | failed          |
|      |                   | or hit a corrupt row): a restart would read the same data    |                 |
| 5    | ORDERS_LEFT       | stopped, but orders of ours still rest: the exchange did not | restart/backoff |
|      |                   | confirm their cancel within `exchange.stop_deadline_s` (an   | (its start      |
|      |                   | ERROR names them); when the fleet is stopping they stay      | cancels them)   |
| 130  | INTERRUPTED       | SIGINT (Ctrl-C), orders cancelled                            | see below       |
| 143  | TERMINATED        | SIGTERM, orders cancelled                                    | see below       |
| <0   | (killed)          | the process died from signal -code (SIGKILL: OOM, `kill -9`) | restart/backoff |

Codes of the operator's commands, not of a bot (so outside the bots' codes):

| 123  | COMMAND_REFUSED   | `mmfleet ctl`: some bot acked the command as refused or      |
|      |                   | failed (e.g. `start` on a halted bot); its ack says why      |
| 124  | ACK_TIMEOUT       | `mmfleet ctl`: some bot did not ack within `--wait` (as       |
|      |                   | `timeout(1)`); the command stays queued, runs when it polls  |

A signal stop is a requested stop: while the supervisor is stopping the fleet it expects it and
marks the bot stopped; any other time someone else stopped the worker, and the supervisor, whose job
is to keep the fleet running, restarts it. Only `shutdown` (0) keeps a bot down. Any code not in the
table is treated as a crash. Codes 128+N follow the shell's convention for "ended by signal N".
"""

from __future__ import annotations

import signal
from enum import IntEnum, StrEnum
from typing import Final

__all__ = [
    "ACK_TIMEOUT",
    "COMMAND_REFUSED",
    "ExitCode",
    "SupervisorAction",
    "signal_exit_code",
    "supervisor_action",
]


class ExitCode(IntEnum):
    """Why a bot process ended (see the module table)."""

    SHUTDOWN = 0
    CRASH = 1
    CONFIG = 2
    STORE_UNAVAILABLE = 3
    MARKET_DATA_ENDED = 4
    ORDERS_LEFT = 5
    INTERRUPTED = 128 + signal.SIGINT
    TERMINATED = 128 + signal.SIGTERM


COMMAND_REFUSED: Final = 123  # `mmfleet ctl`: a bot acked the command failed or refused
ACK_TIMEOUT: Final = 124  # `mmfleet ctl`: an ack did not arrive within --wait


class SupervisorAction(StrEnum):
    """What the supervisor does when a worker exits; the values are the states it shows."""

    STOPPED = "stopped"  # leave it down: asked for
    RESTART = "backoff"  # start it again after a backoff (failed after too many in a window)
    FAILED = "failed"  # leave it down: a restart would fail the same way; an operator must act


_FAILED = frozenset({ExitCode.CONFIG, ExitCode.MARKET_DATA_ENDED})


def signal_exit_code(signum: int) -> ExitCode:
    """The code of a worker stopped cleanly by `signum` (SIGINT or SIGTERM)."""
    return ExitCode(128 + signum)


def supervisor_action(code: int, *, stopping: bool) -> SupervisorAction:
    """What to do about a worker that exited with `code` (negative: killed by that signal).

    `stopping`: the supervisor itself is stopping the fleet (it sent the SIGTERM).
    """
    if stopping or code == ExitCode.SHUTDOWN:
        return SupervisorAction.STOPPED
    if code in _FAILED:
        return SupervisorAction.FAILED
    return SupervisorAction.RESTART  # crashes, a lost store, kills, and signals from someone else
