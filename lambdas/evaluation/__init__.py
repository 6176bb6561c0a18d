"""Deterministic tool-call evaluation: did the agent call the right tool with the right arguments?"""
