"""`python -m reward_server` is `reward-server`."""

from reward_server.cli import app

app()
