"""The knowledge_search MCP tool: Knowledge Base Retrieve, always filtered to the caller's data."""
