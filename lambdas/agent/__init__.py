"""The agents' code (AgentCore Runtime): a bounded Converse tool-use loop over MCP tools."""
