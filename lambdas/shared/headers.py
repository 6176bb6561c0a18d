"""HTTP headers more than one side names. Imports nothing: the CDK app may import it too."""

# AgentCore Runtime's session header (AWS's name): the gateway sets it, the agent reads it.
AGENT_SESSION_HEADER = "X-Amzn-Bedrock-AgentCore-Runtime-Session-Id"
# The session an agent's MCP client sends the tools gateway, for the interceptors' telemetry.
CONVERSATION_HEADER = "X-Genai-Conversation-Id"
# The caller's access token, which the AI gateway forwards to an agent runtime it invokes with its
# own IAM identity: AgentCore passes a request header to the agent only if it is allowlisted and
# named with this prefix (the runtime's Authorization header is the gateway's SigV4 signature).
CALLER_TOKEN_HEADER = "X-Amzn-Bedrock-AgentCore-Runtime-Custom-Caller-Token"  # noqa: S105 - a header name
# The AI gateway's passage for that token (shared.passage), to the agent runtime (allowlisted like
# the token) and from the agent to the tools gateway, whose interceptor checks it.
PASSAGE_HEADER = "X-Amzn-Bedrock-AgentCore-Runtime-Custom-Gateway-Passage"
TOOLS_PASSAGE_HEADER = "X-Genai-Gateway-Passage"
