"""Flow Memory API keys: hashed, owned, scoped."""
