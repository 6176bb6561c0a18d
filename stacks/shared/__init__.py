"""Constructs and helpers every tier shares."""
