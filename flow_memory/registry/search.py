"""Full-text search of the registry, ranked, filtered and counted by facet.

Each backend answers with its own engine: SQLite with the FTS5 table ``registry_fts`` (BM25,
names weighing most), whose rowid is the entry's ``doc_id``; PostgreSQL with the GIN-indexed
``tsvector`` column ``search_vector`` (``ts_rank_cd`` over its weights). Both are built by
migration 0012. Only listed entries (an active version) are found. A search of a few thousand
hits at most reads every hit's key, rank and facets in one statement; a larger one takes three:
the ranked page, one grouped count that every facet but the publisher (and the number of hits)
is read from, and the busiest publishers."""

from __future__ import annotations

import heapq
import re
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
from sqlalchemy.orm import Session, aliased

from flow_memory.registry.models import RegistryEntry

# BM25 weights of registry_fts's columns: slug, display name, tags, description.
SQLITE_RANK = "bm25(registry_fts, 10.0, 8.0, 4.0, 1.0)"
MAX_TERMS = 8
FACETS = ("kind", "license", "pricing_model", "modality", "tool_calling")
TOP_PUBLISHERS = 10
# Up to this many hits, a search is one statement whose hits are ranked and counted in Python.
ONE_PASS_HITS = 1000
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
    facets: dict[str, list[dict[str, Any]]]


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
    """Ranked hits (best first), the number of all hits, and facet counts over them."""
    e = RegistryEntry
    dialect = session.get_bind().dialect.name
    conditions = _conditions(filters, dialect)
    words = terms(query)
    base, rank = _matching(words, dialect, conditions)
    if words:
        found = _in_one_pass(session, base, rank, conditions, limit=limit, offset=offset)
        if found is not None:
            return found
        # The page's keys are ranked first and only its rows are read whole: sorting every hit
        # with its description would cost more than finding them.
        page = (
            base.with_only_columns(e.doc_id, rank.label("rank"))
            .where(*conditions)
            .order_by(rank.desc(), e.doc_id)
            .limit(limit)
            .offset(offset)
            .subquery("page")
        )
        shown = aliased(RegistryEntry, name="shown")
        statement = (
            select(shown, page.c.rank)
            .join(page, shown.doc_id == page.c.doc_id)
            .order_by(page.c.rank.desc(), shown.doc_id)
        )
    else:
        statement = (
            select(e, rank.label("rank"))
            .where(*conditions)
            .order_by(e.updated_at.desc(), e.slug)
            .limit(limit)
            .offset(offset)
        )
    hits = [(row[0], float(row[1] or 0.0)) for row in session.execute(statement)]
    facets, total = _facets(session, base, conditions)
    return SearchPage(hits, total, facets)


def _in_one_pass(
    session: Session,
    base: Select[Any],
    rank: ColumnElement[Any],
    conditions: list[ColumnElement[bool]],
    *,
    limit: int,
    offset: int,
) -> SearchPage | None:
    """A search of at most ``ONE_PASS_HITS`` hits from one statement: every hit's key, rank
    and facets, ranked and counted here, then the page's rows. None when there are more (then
    three statements that rank and count in the database cost less than carrying every hit
    here: measured, one statement halved searches of a thousand hits and doubled those of
    tens of thousands)."""
    e = RegistryEntry
    columns = [getattr(e, name) for name in (*FACETS, "publisher_id")]
    statement = (
        base.with_only_columns(e.doc_id, rank, *columns).where(*conditions).limit(ONE_PASS_HITS + 1)
    )
    rows = session.connection().execute(statement).all()
    if len(rows) > ONE_PASS_HITS:
        return None
    best = heapq.nsmallest(offset + limit, rows, key=lambda row: (-(row[1] or 0.0), row[0]))
    page = best[offset:]
    loaded = {
        entry.doc_id: entry
        for entry in session.scalars(select(e).where(e.doc_id.in_([row[0] for row in page])))
    }
    hits = [(loaded[row[0]], float(row[1] or 0.0)) for row in page if row[0] in loaded]
    counts: dict[str, dict[str, int]] = {name: {} for name in (*FACETS, "publisher")}
    for row in rows:
        for name, value in zip((*FACETS, "publisher"), row[2:], strict=True):
            _count(counts[name], value, 1)
    facets = _ordered(counts)
    facets["publisher"] = facets["publisher"][:TOP_PUBLISHERS]
    return SearchPage(hits, len(rows), facets)


def _count(counts: dict[str, int], value: Any, number: int) -> None:
    if value is None:
        return
    key = str(value).lower() if isinstance(value, bool) else str(value)
    counts[key] = counts.get(key, 0) + number


def _ordered(counts: dict[str, dict[str, int]]) -> dict[str, list[dict[str, Any]]]:
    """Each facet's values, the most frequent first (ties by value)."""
    return {
        name: [
            {"value": value, "count": number}
            for value, number in sorted(values.items(), key=lambda item: (-item[1], item[0]))
        ]
        for name, values in counts.items()
    }


def _facets(
    session: Session, base: Select[Any], conditions: list[ColumnElement[bool]]
) -> tuple[dict[str, list[dict[str, Any]]], int]:
    """Every facet's counts over every hit, from one grouped count (the number of hits is
    their sum), and the busiest publishers from another."""
    e = RegistryEntry
    columns = [getattr(e, name) for name in FACETS]
    grouped = base.with_only_columns(*columns, func.count()).where(*conditions).group_by(*columns)
    counts: dict[str, dict[str, int]] = {name: {} for name in FACETS}
    total = 0
    connection = session.connection()  # plain rows: no ORM layer for counts
    for row in connection.execute(grouped):
        number = int(row[-1])
        total += number
        for name, value in zip(FACETS, row[:-1], strict=True):
            _count(counts[name], value, number)
    facets = _ordered(counts)
    count = func.count()
    publishers = (
        base.with_only_columns(e.publisher_id, count)
        .where(*conditions)
        .group_by(e.publisher_id)
        .order_by(count.desc(), e.publisher_id)
        .limit(TOP_PUBLISHERS)
    )
    facets["publisher"] = [
        {"value": publisher, "count": int(number)}
        for publisher, number in connection.execute(publishers)
    ]
    return facets, total
