"""One bot's worker: the async shell (`shell.BotWorker`) that feeds its core events and performs the
actions it answers with, through the exchange and the bot's store thread."""

from bots.control import WorkerExit
from bots.store.startup import ENABLED_KEY, RISK_KEY
from bots.worker.ports import RegimeSource
from bots.worker.shell import BotWorker

__all__ = ["ENABLED_KEY", "RISK_KEY", "BotWorker", "RegimeSource", "WorkerExit"]
