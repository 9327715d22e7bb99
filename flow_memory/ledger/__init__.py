"""Dry-run credit accounts, double-entry transfers and holds (``USD_CREDIT``)."""
