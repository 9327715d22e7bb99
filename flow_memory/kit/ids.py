"""Prefixed, unguessable identifiers."""

from __future__ import annotations

import secrets

_ALPHABET = "0123456789abcdefghijklmnopqrstuvwxyz"


def new_id(prefix: str, length: int = 20) -> str:
    """Return e.g. ``credref_k3j…``: a prefix and 20 random base-36 characters (~103 bits)."""
    return f"{prefix}_" + "".join(secrets.choice(_ALPHABET) for _ in range(length))
