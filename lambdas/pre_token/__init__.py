"""Cognito pre-token-generation (V2): the caller's gateway group as custom claims."""
