"""Shared infrastructure: database, errors, safety, auth, ids, money, clock."""
