"""The sandbox (prototype) tier."""
