"""The AI gateway's Lambda authorizer: Cognito JWT in, the group's usage-plan API key out."""
