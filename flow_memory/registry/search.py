"""Full-text search of the registry, ranked, filtered and counted by facet.

Each backend answers with its own engine: SQLite with the FTS5 table ``registry_fts`` (BM25,
names weighing most), whose rowid is the entry's ``doc_id``; PostgreSQL with the GIN-indexed
``tsvector`` column ``search_vector`` (``ts_rank_cd`` over its weights). Both are built by
migration 0012. Only listed entries (an active version) are found.

One statement reads the best ``FACETS_OVER`` hits (or more, to reach a deep page) that pass
the filters, ranked exactly by the engine over every hit, with each hit's facets; the page is
cut from them (its rows read whole by a second) and the facets are counted over them: over
every hit when there are no more, else over the best ``FACETS_OVER`` only (``facets_exact``
false). The number of hits is then counted exactly on SQLite (joining each FTS5 hit costs a
fifth of ranking it) and left as a lower bound on PostgreSQL, where counting costs 40 % of
ranking (``total_exact``). Ranking is the cost that grows with the hits: see the registry
search section of docs/BENCHMARKS.md."""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Float,
    Select,
    bindparam,
    cast,
    column,
    func,
    literal,
    literal_column,
    select,
    table,
)
from sqlalchemy.orm import Session

from flow_memory.registry.models import RegistryEntry

# BM25 weights of registry_fts's columns: slug, display name, tags, description.
SQLITE_RANK = "bm25(registry_fts, 10.0, 8.0, 4.0, 1.0)"
MAX_TERMS = 8
FACETS = ("kind", "license", "pricing_model", "modality", "tool_calling")
TOP_PUBLISHERS = 10
# Facet counts cover at most the best this many hits of a search.
FACETS_OVER = 1000
_WORD = re.compile(r"[^\W_]+")  # letters and digits: what both engines index as words
_FTS = table("registry_fts", column("rowid"))


@dataclass(frozen=True)
class SearchFilters:
    kind: str | None = None
    capability: str | None = None
    api: str | None = None
    min_context_window: int | None = None
    max_price: Decimal | None = None
    pricing_model: str | None = None
    license: str | None = None
    publisher_id: str | None = None


@dataclass(frozen=True)
class SearchPage:
    hits: list[tuple[RegistryEntry, float]]
    total: int
    # False when ``total`` is a lower bound (PostgreSQL, more than FACETS_OVER hits).
    total_exact: bool
    facets: dict[str, list[dict[str, Any]]]
    # How many hits the facets count: every hit, or the best FACETS_OVER of them.
    facets_over: int
    facets_exact: bool


def terms(query: str) -> list[str]:
    """The words of a query, lower-cased: punctuation never reaches an engine's syntax."""
    return _WORD.findall(query.lower())[:MAX_TERMS]


def sqlite_match(words: list[str]) -> str:
    """Every word, the last as a prefix (a user still typing it): ``"fast" "cod"*``."""
    quoted = [f'"{w}"' for w in words]
    quoted[-1] += "*"
    return " ".join(quoted)


def postgres_query(words: list[str]) -> str:
    return " & ".join([*words[:-1], f"{words[-1]}:*"])


def _conditions(filters: SearchFilters, dialect: str) -> list[ColumnElement[bool]]:
    e = RegistryEntry
    found: list[ColumnElement[bool]] = [e.listed.is_(True)]
    if filters.kind:
        found.append(e.kind == filters.kind)
    if filters.capability == "tool_calling":
        found.append(e.tool_calling.is_(True))
    elif filters.capability:
        found.append(e.modality == filters.capability)
    if filters.api:
        found.append(e.api_text.like(f"% {filters.api} %"))
    if filters.min_context_window is not None:
        found.append(e.context_window >= filters.min_context_window)
    if filters.pricing_model:
        found.append(e.pricing_model == filters.pricing_model)
    if filters.max_price is not None:
        # SQLite keeps prices as exact text; compared here as numbers.
        price: Any = cast(e.price, Float) if dialect == "sqlite" else e.price
        ceiling: Any = float(filters.max_price) if dialect == "sqlite" else filters.max_price
        found.append(e.price.is_not(None))
        found.append(price <= ceiling)
    if filters.license:
        found.append(e.license == filters.license)
    if filters.publisher_id:
        found.append(e.publisher_id == filters.publisher_id)
    return found


def _matching(
    words: list[str], dialect: str, conditions: list[ColumnElement[bool]]
) -> tuple[Select[Any], ColumnElement[Any]]:
    """The statement the hits come from (conditions extended with the text match) and the
    rank of a hit (higher is better)."""
    e = RegistryEntry
    if not words:
        return select(e), literal(0.0)
    if dialect == "postgresql":
        tsquery = func.to_tsquery(
            literal_column("'english'"), bindparam("tsq", postgres_query(words))
        )
        conditions.append(e.search_vector.op("@@")(tsquery))
        return select(e), func.ts_rank_cd(e.search_vector, tsquery)
    match = literal_column("registry_fts").op("MATCH")(bindparam("match", sqlite_match(words)))
    conditions.append(match)
    return select(e).join(_FTS, e.doc_id == _FTS.c.rowid), -literal_column(SQLITE_RANK)


def search(
    session: Session, *, query: str, filters: SearchFilters, limit: int, offset: int
) -> SearchPage:
    """Ranked hits (best first), the number of hits, and facet counts over the best of them."""
    e = RegistryEntry
    dialect = session.get_bind().dialect.name
    conditions = _conditions(filters, dialect)
    words = terms(query)
    base, rank = _matching(words, dialect, conditions)
    # Without words the order is the newest first, and the rank 0.
    order = [rank.desc(), e.doc_id] if words else [e.updated_at.desc(), e.slug]
    bound = max(FACETS_OVER, offset + limit)
    columns = [getattr(e, name) for name in (*FACETS, "publisher_id")]
    best = (
        base.with_only_columns(e.doc_id, rank, *columns)
        .where(*conditions)
        .order_by(*order)
        .limit(bound + 1)
    )
    rows = session.connection().execute(best).all()  # plain rows: no ORM layer for counts
    more = len(rows) > bound
    rows = rows[:bound]
    page = rows[offset : offset + limit]
    loaded = {
        entry.doc_id: entry
        for entry in session.scalars(select(e).where(e.doc_id.in_([row[0] for row in page])))
    }
    hits = [(loaded[row[0]], float(row[1] or 0.0)) for row in page if row[0] in loaded]
    counted = rows[:FACETS_OVER]
    total, total_exact = len(rows), True
    if more and (dialect == "sqlite" or not words):
        counting = base.with_only_columns(func.count()).where(*conditions)
        total = int(session.connection().execute(counting).scalar_one())
    elif more:
        total, total_exact = bound + 1, False
    return SearchPage(
        hits,
        total,
        total_exact,
        _facets(counted),
        facets_over=len(counted),
        facets_exact=len(counted) == total and total_exact,
    )


def _facets(rows: Sequence[Any]) -> dict[str, list[dict[str, Any]]]:
    """Each facet's values over the rows, the most frequent first (ties by value); the
    busiest publishers only."""
    names = (*FACETS, "publisher")
    columns = list(zip(*rows, strict=True))[2:] if rows else [() for _ in names]
    facets: dict[str, list[dict[str, Any]]] = {}
    for name, values in zip(names, columns, strict=True):
        counts = Counter(values)
        counts.pop(None, None)
        ordered = sorted(
            (
                (str(value).lower() if isinstance(value, bool) else str(value), number)
                for value, number in counts.items()
            ),
            key=lambda item: (-item[1], item[0]),
        )
        facets[name] = [{"value": value, "count": number} for value, number in ordered]
    facets["publisher"] = facets["publisher"][:TOP_PUBLISHERS]
    return facets
