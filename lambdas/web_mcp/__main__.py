"""Starts the web MCP server: AgentCore Runtime runs this file as main.py, `python -m web_mcp` runs
it locally. The runtime's MCP contract: streamable HTTP on 0.0.0.0:8000 at /mcp."""

import uvicorn

from web_mcp.server import HOST, PORT, create_app, default_tools

uvicorn.run(create_app(default_tools()), host=HOST, port=PORT, log_level="warning")
