"""Starts the agent's HTTP server: ``python -m agent`` locally; the runtime runs it as main.py."""

from agent.server import serve

serve().serve_forever()
