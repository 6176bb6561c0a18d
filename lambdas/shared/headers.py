"""HTTP headers more than one side names. Imports nothing: the CDK app may import it too."""

# AgentCore Runtime's session header (AWS's name): the gateway sets it, the agent reads it.
AGENT_SESSION_HEADER = "X-Amzn-Bedrock-AgentCore-Runtime-Session-Id"
# The session an agent's MCP client sends the tools gateway, for the interceptors' telemetry.
CONVERSATION_HEADER = "X-Genai-Conversation-Id"
