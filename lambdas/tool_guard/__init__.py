"""AgentCore Gateway interceptors that hold each group to its tools (fail closed)."""
