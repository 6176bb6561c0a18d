"""Agent-ready adapters over legacy REST APIs, served as MCP tools behind the AgentCore Gateway."""
