"""Reputation, validators, stakes and earned capacity (issue 23)."""
