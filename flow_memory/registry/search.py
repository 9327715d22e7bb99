"""Search of the registry: ranked, filtered and counted by facet, from an index of its own.

Each word of a query is stemmed by the database's own engine (``search_index``) and every word
must be found (AND); the last is a prefix, a user still typing it, that stands for its
``PREFIX_TERMS`` most frequent completions. The index keeps each listed entry's words with
their impact (``ranking``: BM25F over name, tags and description) and the entry's facets in
``registry_search_terms``, read best first for a word, so a search stops after what it shows
instead of ranking every hit:

- One word: its entries that pass the filters, best first, ``max(FACETS_OVER, offset + limit)``
  of them and one more (a prefix: as many of each completion, an entry ranked by its best
  one). The page is exact.
- Several words: the rarest word drives; its entries are read best first, each probed for the
  other words by key (the word, or a prefix's completions) and ranked by the sum of
  ``idf * impact``. Exact when at most ``CANDIDATES`` entries hold every word; beyond, the
  ranked hits are the ``CANDIDATES`` best of them by the driving word (``total_exact`` false).

One statement then answers the page, the facet counts over the best ``FACETS_OVER`` hits
(``facets_exact`` false when there are more) and how many hits were read. ``total`` is exact
up to the hits read, and for one word of one completion without filters (the index counts the
entries holding each word); otherwise a lower bound with ``total_exact`` false. Without words,
the newest entries first, counted exactly. See the registry search section of
docs/BENCHMARKS.md."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from sqlalchemy import (
    ColumnElement,
    CompoundSelect,
    Float,
    Select,
    Text,
    and_,
    cast,
    func,
    literal,
    select,
)
from sqlalchemy.orm import Session, aliased

from flow_memory.registry import search_index
from flow_memory.registry.models import RegistryEntry, RegistrySearchTerm, RegistrySearchWord
from flow_memory.registry.ranking import SCALE, idf

MAX_TERMS = 8
FACETS = ("kind", "license", "pricing_model", "modality", "tool_calling")
FACET_COLUMNS = (*FACETS, "publisher_id")
TOP_PUBLISHERS = 10
# Facet counts cover at most the best this many hits of a search.
FACETS_OVER = 1000
# A prefix stands for at most this many of its completions, the most frequent first.
PREFIX_TERMS = 16
# A search of several words ranks at most this many of the hits, the best by its rarest word.
CANDIDATES = 2000
_TOP = chr(0x10FFFF)  # sorts after every character: a prefix's range ends with it


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
    # False when ``total`` is a lower bound.
    total_exact: bool
    facets: dict[str, list[dict[str, Any]]]
    # How many hits the facets count: every hit, or the best FACETS_OVER of them.
    facets_over: int
    facets_exact: bool


@dataclass(frozen=True)
class Word:
    """A stemmed word of a query: the index terms it stands for and how many entries hold it."""

    terms: tuple[str, ...]
    entries: int
    largest: int  # how many entries hold the most frequent of its terms
    prefix: str | None = None  # the stem a prefix word's terms start with
    complete: bool = True  # False when a prefix has more completions than PREFIX_TERMS


def terms(query: str, dialect: str = "postgresql") -> list[str]:
    """The words of a query, lower-cased: punctuation never reaches the database."""
    return search_index.words_of(query, dialect)[:MAX_TERMS]


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


def query_words(session: Session, query: str) -> tuple[list[Word], int]:
    """The query's stemmed words as the index knows them (a word no entry holds has no terms),
    and how many entries the index holds."""
    connection = session.connection()
    words = terms(query, connection.dialect.name)
    found = search_index.stems(connection, words)
    stemmed = [s for w in words for s in found[w]]
    if not stemmed:
        return [], 0
    # The last word is a prefix only if it stems to something (a stop word does not).
    last = stemmed.pop() if words and found[words[-1]] else None
    w = RegistrySearchWord
    exact = {*stemmed, search_index.EVERY_ENTRY}
    # One statement: the exact words' counts, then the prefix's most frequent completions.
    parts: list[Any] = [select(w.term, w.entries, literal(0).label("k")).where(w.term.in_(exact))]
    if last is not None:
        completing = (
            select(w.term, w.entries, literal(1).label("k"))
            .where(w.term >= last, w.term < last + _TOP, w.entries > 0)
            .order_by(w.entries.desc(), w.term)
            .limit(PREFIX_TERMS + 1)
            .subquery()
        )
        parts.append(select(*completing.c))
    statement = _union(parts) if len(parts) > 1 else parts[0]
    rows = session.execute(statement).all()
    counts = {str(t): int(n) for t, n, k in rows if k == 0}
    completions = [(str(t), int(n)) for t, n, k in rows if k == 1]
    completions.sort(key=lambda tn: (-tn[1], tn[0]))
    every = counts.get(search_index.EVERY_ENTRY, 0)
    result = [Word((s,), counts.get(s, 0), counts.get(s, 0)) for s in dict.fromkeys(stemmed)]
    if last is not None:
        kept = completions[:PREFIX_TERMS]
        result.append(
            Word(
                tuple(t for t, _ in kept),
                min(every, sum(n for _, n in kept)),
                max((n for _, n in kept), default=0),
                prefix=last,
                complete=len(completions) <= PREFIX_TERMS,
            )
        )
    return result, every


def _driven_by(
    term: str, others: Sequence[Word], conditions: list[ColumnElement[bool]]
) -> Select[Any]:
    """The entries holding ``term`` (one of the driving word's) and every other word that pass
    the filters, best first by ``term``; a row: doc_id, each word's impact (the driver's
    first), the facets."""
    p, e = RegistrySearchTerm, RegistryEntry
    impacts: list[Any] = [p.impact.label("i0")]
    query = select(p.doc_id)
    found: list[ColumnElement[bool]] = [p.term == term]
    if len(conditions) > 1:  # filters: read from the entry (postings are of listed ones)
        query = query.join(e, e.doc_id == p.doc_id)
        found.extend(conditions)
    for word in others:
        q = aliased(RegistrySearchTerm)
        best = select(func.max(q.impact)).where(q.doc_id == p.doc_id, _holds(q, word))
        # Each driving entry's key is sought for the word (measured cheaper than reading the
        # word's entries as a set first, on both databases).
        impacts.append(best.scalar_subquery().label(f"i{len(impacts)}"))
        found.append(impacts[-1].element.is_not(None))
    columns = [getattr(p, name) for name in FACET_COLUMNS]
    return (
        query.add_columns(*impacts, *columns)
        .where(*found)
        .order_by(p.impact.desc(), p.doc_id.desc())
    )


def _union(parts: Sequence[Select[Any]]) -> CompoundSelect[Any]:
    """The rows of every part, in the parts' order (UNION ALL)."""
    first, *rest = parts
    return first.union_all(*rest)


def _holds(posting: type[RegistrySearchTerm], word: Word) -> ColumnElement[bool]:
    """A posting is of the word: its term, one of its completions, or (when a prefix has more
    than ``PREFIX_TERMS``) any word it starts. Named terms rather than a range where possible:
    with a range the planners scan the word index instead of seeking an entry's key."""
    if word.prefix is None or word.complete:
        return (
            posting.term.in_(word.terms) if len(word.terms) > 1 else posting.term == word.terms[0]
        )
    return and_(posting.term >= word.prefix, posting.term < word.prefix + _TOP)


def _best(
    branches: Sequence[Select[Any]], weights: Sequence[float], *, cap: int, bound: int
) -> Select[Any]:
    """The best ``bound + 1`` hits of the branches (each cut at ``cap``), an entry ranked by
    its best branch; a row: doc_id, score (``sum of idf * impact``), the facets."""
    if len(branches) == 1 and len(weights) == 1:
        hits = branches[0].limit(bound + 1).subquery()
        facets = [hits.c[name] for name in FACET_COLUMNS]
        return select(hits.c.doc_id, (hits.c.i0 * weights[0]).label("score"), *facets)
    hits = _union([select(*b.limit(cap).subquery().c) for b in branches]).subquery()
    impacts = [func.max(hits.c[f"i{k}"]) for k in range(len(weights))]
    score = sum((w * i for w, i in zip(weights, impacts, strict=True)), start=literal(0.0))
    facets = [hits.c[name] for name in FACET_COLUMNS]  # the same in each of an entry's rows
    return (
        select(hits.c.doc_id, score.label("score"), *facets)
        .group_by(hits.c.doc_id, *facets)
        .order_by(score.desc(), hits.c.doc_id.desc())
        .limit(bound + 1)
    )


def search(
    session: Session, *, query: str, filters: SearchFilters, limit: int, offset: int
) -> SearchPage:
    """Ranked hits (best first), the number of hits, and facet counts over the best of them."""
    dialect = session.get_bind().dialect.name
    conditions = _conditions(filters, dialect)
    bound = max(FACETS_OVER, offset + limit)
    if not terms(query, dialect):
        return _newest(session, conditions, bound=bound, limit=limit, offset=offset)
    words, every = query_words(session, query)
    if not words or any(not word.terms or not word.entries for word in words):
        return SearchPage([], 0, True, _facet_lists([]), facets_over=0, facets_exact=True)
    driver = min(words, key=lambda word: word.entries)
    ordered = [driver, *(word for word in words if word is not driver)]
    weights = [idf(every, word.entries) for word in ordered]
    branches = [_driven_by(term, ordered[1:], conditions) for term in driver.terms]
    cap = bound + 1 if len(ordered) == 1 else max(CANDIDATES, bound + 1)
    best = _best(branches, weights, cap=cap, bound=bound).cte("hits")
    order = [best.c.score.desc(), best.c.doc_id.desc()]
    page, facets, found, counted = _summary(session, best, order, limit=limit, offset=offset)
    total, total_exact = found, found <= bound and driver.complete
    if not total_exact and len(ordered) == 1 and len(conditions) == 1:
        # One word without filters: how many entries hold it is kept.
        total, total_exact = max(found, driver.largest), len(driver.terms) == 1
    return SearchPage(
        _load(session, [(doc_id, score / SCALE) for doc_id, score in page]),
        total,
        total_exact,
        facets,
        facets_over=counted,
        facets_exact=counted == total and total_exact,
    )


def _summary(
    session: Session, hits: Any, order: list[Any], *, limit: int, offset: int
) -> tuple[list[tuple[int, float]], dict[str, list[dict[str, Any]]], int, int]:
    """One statement over the hits (a CTE: doc_id, score, facets): the page in ``order``, the
    facet counts over the best ``FACETS_OVER``, how many hits and how many counted. Only these
    rows leave the database."""
    top = select(hits).order_by(*order).limit(FACETS_OVER).cte("top")
    number = cast(func.count(), Float)
    page = (
        select(
            literal("~page"),
            cast(hits.c.doc_id, Text),
            cast(hits.c.score, Float),
            func.row_number().over(order_by=order),
        )
        .order_by(*order)
        .limit(limit)
        .offset(offset)
        .subquery()
    )
    parts: list[Any] = [
        select(literal("~hits"), literal(""), number, literal(0)).select_from(hits),
        select(literal("~top"), literal(""), number, literal(0)).select_from(top),
        select(*page.c),
    ]
    for name in FACET_COLUMNS:
        counting = select(literal(name), cast(top.c[name], Text), number, literal(0)).group_by(
            top.c[name]
        )
        if name == "publisher_id":  # the busiest only
            counting = counting.order_by(number.desc(), top.c[name]).limit(TOP_PUBLISHERS)
            counting = select(*counting.subquery().c)
        parts.append(counting)
    rows = session.connection().execute(_union(parts)).all()
    found = counted = 0
    listed: list[tuple[int, int, float]] = []
    counts: list[tuple[str, str, int]] = []
    for part, value, n, position in rows:
        if part == "~hits":
            found = int(n)
        elif part == "~top":
            counted = int(n)
        elif part == "~page":
            listed.append((int(position), int(value), float(n)))
        elif value is not None:
            counts.append((part, value, int(n)))
    listed.sort()
    return [(doc_id, score) for _, doc_id, score in listed], _facet_lists(counts), found, counted


def _newest(
    session: Session, conditions: list[ColumnElement[bool]], *, bound: int, limit: int, offset: int
) -> SearchPage:
    """Without words: the newest entries first, counted exactly."""
    e = RegistryEntry
    columns = [getattr(e, name) for name in FACET_COLUMNS]
    best = (
        select(e.doc_id, literal(0.0).label("score"), *columns, e.updated_at, e.slug)
        .where(*conditions)
        .order_by(e.updated_at.desc(), e.slug)
        .limit(bound + 1)
        .cte("hits")
    )
    order = [best.c.updated_at.desc(), best.c.slug]
    page, facets, total, counted = _summary(session, best, order, limit=limit, offset=offset)
    if total > bound:
        counting = select(func.count()).select_from(e).where(*conditions)
        total = int(session.connection().execute(counting).scalar_one())
    return SearchPage(
        _load(session, page),
        total,
        True,
        facets,
        facets_over=counted,
        facets_exact=counted == total,
    )


def _load(session: Session, page: Sequence[tuple[int, float]]) -> list[tuple[RegistryEntry, float]]:
    """The page's entries read whole, in the page's order."""
    e = RegistryEntry
    wanted = [doc_id for doc_id, _ in page]
    loaded = {
        entry.doc_id: entry for entry in session.scalars(select(e).where(e.doc_id.in_(wanted)))
    }
    return [(loaded[doc_id], score) for doc_id, score in page if doc_id in loaded]


def _facet_lists(counts: Sequence[tuple[str, str, int]]) -> dict[str, list[dict[str, Any]]]:
    """Each facet's values, the most frequent first (ties by value); the busiest publishers."""
    facets: dict[str, list[dict[str, Any]]] = {name: [] for name in (*FACETS, "publisher")}
    for column, value, number in sorted(counts, key=lambda c: (c[0], -c[2], c[1])):
        if column == "tool_calling":  # a boolean, as text: 'true' on PostgreSQL, '1' on SQLite
            value = "true" if value in ("true", "1") else "false"
        facets["publisher" if column == "publisher_id" else column].append(
            {"value": value, "count": number}
        )
    return facets
