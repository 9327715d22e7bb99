"""The seven safety fields every market answer carries, from this one constant."""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

SAFETY_ENVELOPE: Mapping[str, bool] = MappingProxyType(
    {
        "dry_run_only": True,
        "funds_moved": False,
        "broadcast_allowed": False,
        "private_key_required": False,
        "live_trading_enabled": False,
        "legal_review_required": True,
        "compliance_review_required": True,
    }
)
