"""The registry of models, agents and solutions (issue 24)."""
