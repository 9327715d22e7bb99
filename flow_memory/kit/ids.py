"""Prefixed, unguessable identifiers."""

from __future__ import annotations

import base64
import secrets


def new_id(prefix: str) -> str:
    """Return e.g. ``credref_k3j…``: a prefix and 20 random base-32 characters (100 bits)."""
    token = base64.b32encode(secrets.token_bytes(13)).decode("ascii")[:20].lower()
    return f"{prefix}_{token}"
