"""`python -m bots.cli`: the `mmfleet` command (how the supervisor and the stack start their children)."""

from bots.cli import app

app()
