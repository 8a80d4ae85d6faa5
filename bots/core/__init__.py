"""The bot core: one synchronous object, events in and actions out, driven by the worker and by every
backtest alike (`bots.core.core.BotCore`); its actions (`actions`), its frozen config (`config`), its
resting-order book (`orders`), the regime blend (`blend`) and the recorded features (`features`)."""
