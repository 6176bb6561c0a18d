"""The production tier."""
