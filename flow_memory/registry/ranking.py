"""How well a registry entry matches a word: the impact kept per word and entry, and the rarity
weight applied when a search adds the words of a query up. Pure: no database, no web.

An entry's words fall in three fields: its name (the slug's words and the display name), its
tags and its description. A word's impact in an entry is BM25F: its occurrences, weighted by
field (name 6, tags 3, description 1) and normalised by each field's length against a typical
length, saturate as ``tf·(k1 + 1) / (tf + k1)``. The impact is kept as an integer (thousandths)
when the entry is written, so it never depends on the rest of the registry; rarity (BM25's
inverse document frequency) is applied when searching, from the number of entries holding the
word at that moment. A query's rank of an entry is the sum over its words of
``idf(word) * impact(word, entry)``."""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Mapping, Sequence

FIELD_WEIGHTS = {"name": 6.0, "tags": 3.0, "description": 1.0}
# Lengths (in words) at which a field is neither favoured nor penalised. Fixed rather than the
# registry's averages so that an impact written once stays right as the registry grows.
TYPICAL_LENGTHS = {"name": 5.0, "tags": 4.0, "description": 20.0}
K1 = 1.2
B = 0.75
SCALE = 1000  # impacts are kept in thousandths


def impacts(fields: Mapping[str, Sequence[str]]) -> dict[str, int]:
    """Each word's impact in an entry whose fields hold these (stemmed) words."""
    weighted: dict[str, float] = {}
    for field, words in fields.items():
        if not words:
            continue
        norm = 1.0 - B + B * len(words) / TYPICAL_LENGTHS[field]
        for word, count in Counter(words).items():
            weighted[word] = weighted.get(word, 0.0) + FIELD_WEIGHTS[field] * count / norm
    return {word: max(1, round(SCALE * tf * (K1 + 1) / (tf + K1))) for word, tf in weighted.items()}


def idf(entries: int, holding: int) -> float:
    """BM25's rarity of a word held by ``holding`` of ``entries`` entries (always positive)."""
    holding = max(1, min(holding, entries))
    return math.log(1.0 + (entries - holding + 0.5) / (holding + 0.5))
