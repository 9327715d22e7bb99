"""Names to suggest for a model nobody lists (pure): the listed names nearest to it."""

from __future__ import annotations

import difflib
from collections.abc import Iterable

# How alike two names must be (difflib's ratio) for one to be suggested for the other.
CLOSE_ENOUGH = 0.5


def nearest_models(
    model: str, listed: Iterable[str], *, limit: int = 3, cutoff: float = CLOSE_ENOUGH
) -> list[str]:
    """Up to ``limit`` listed model names most like ``model``, nearest first (compared without
    case; a listed name is returned as listed). ``cutoff`` 0 ranks every listed name."""
    by_folded: dict[str, str] = {}
    for name in listed:
        by_folded.setdefault(name.casefold(), name)
    found = difflib.get_close_matches(model.casefold(), by_folded, n=limit, cutoff=cutoff)
    return [by_folded[name] for name in found]


def name_list(names: list[str]) -> str:
    """Names joined for a message: ``a, b and c``."""
    if len(names) <= 1:
        return "".join(names)
    return ", ".join(names[:-1]) + " and " + names[-1]
