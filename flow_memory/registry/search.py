"""Search of the registry: ranked, filtered and counted by facet, from an index of its own.

Each word of a query is stemmed by the database's own engine (``search_index``) and every word
must be found (AND); the last is a prefix, a user still typing it, that stands for its
``PREFIX_TERMS`` most frequent completions. The index keeps each listed entry's words with
their impact (``ranking``: BM25F over name, tags and description) and the entry's facets,
context window and price in ``registry_search_terms``, read best first for a word, so a search
stops after what it shows instead of ranking every hit, and filters (all but the API) read
nothing else:

- One word: its entries that pass the filters, best first, ``max(FACETS_OVER, offset + limit)``
  of them and one more (a prefix: its completions' entries merged best first on SQLite, as
  many of each completion on PostgreSQL; an entry ranked by its best one). The page is exact.
- Several words: the rarest word drives; its entries are read best first, and each other word
  is sought by key for each of them or, when that would cost more (``SEEK_COST``), read as a
  set; hits ranked by the sum of ``idf * impact``. Exact when at most ``CANDIDATES`` entries
  hold every word; beyond, the ranked hits are the ``CANDIDATES`` best of them by the driving
  word (``total_exact`` false).

One statement per search answers those rows (its text built once per shape of query:
``search_sql``); they are ranked here, the page taken, and the facets counted over the best
``FACETS_OVER`` hits (``facets_exact`` false when there are more). ``total`` is exact up to
the hits read, and for one word of one completion without filters (the index counts the
entries holding each word); otherwise a lower bound with ``total_exact`` false. Without words,
the newest entries first, counted exactly. See the registry search section of
docs/BENCHMARKS.md."""

from __future__ import annotations

import heapq
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal
from operator import itemgetter
from typing import Any

from sqlalchemy import bindparam, select
from sqlalchemy.orm import Session

from flow_memory.registry import search_index, search_sql
from flow_memory.registry.models import RegistryEntry
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
# Seeking an entry's key in the index costs about as much as reading this many in order
# (measured on the bench's registry: a set is read into a hash on PostgreSQL, a b-tree on SQLite).
SEEK_COST = {"sqlite": 2.0, "postgresql": 8.0}
_TOP = chr(0x10FFFF)  # sorts after every character: a prefix's range ends with it
_BY_RANK = "score DESC, doc_id DESC"
_BY_AGE = "updated_at DESC, slug"
_LOAD = select(RegistryEntry).where(RegistryEntry.doc_id.in_(bindparam("ids", expanding=True)))


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


def _filters(filters: SearchFilters, dialect: str) -> tuple[search_sql.Filters, dict[str, Any]]:
    """Which filters are set (the statement's shape) and their values (its parameters)."""
    values: dict[str, Any] = {}
    if filters.kind:
        values["kind"] = filters.kind
    if filters.capability == "tool_calling":
        values["tool_calling"] = True
    elif filters.capability:
        values["modality"] = filters.capability
    if filters.api:
        values["api"] = f"% {filters.api} %"
    if filters.min_context_window is not None:
        values["min_context_window"] = filters.min_context_window
    if filters.pricing_model:
        values["pricing_model"] = filters.pricing_model
    if filters.max_price is not None:
        # Compared as a float on SQLite (its prices are exact text), exactly on PostgreSQL.
        price = filters.max_price
        values["max_price"] = float(price) if dialect == "sqlite" else price
    if filters.license:
        values["license"] = filters.license
    if filters.publisher_id:
        values["publisher_id"] = filters.publisher_id
    return search_sql.Filters(**dict.fromkeys(values, True)), values


def query_words(session: Session, query: str) -> tuple[list[Word], int]:
    """The query's stemmed words as the index knows them (a word no entry holds has no terms),
    and how many entries the index holds."""
    connection = session.connection()
    dialect = connection.dialect.name
    words = terms(query, dialect)
    found = search_index.stems(connection, words)
    stemmed = [s for w in words for s in found[w]]
    if not stemmed:
        return [], 0
    # The last word is a prefix only if it stems to something (a stop word does not).
    last = stemmed.pop() if words and found[words[-1]] else None
    exact = [search_index.EVERY_ENTRY, *dict.fromkeys(stemmed)]
    # One statement: the exact words' counts, then the prefix's most frequent completions.
    values: dict[str, Any] = {f"x{k}": term for k, term in enumerate(exact)}
    if last is not None:
        values |= {"prefix": last, "prefix_end": last + _TOP, "prefix_terms": PREFIX_TERMS + 1}
    statement = search_sql.words_sql(len(exact), last is not None, dialect)
    rows = connection.exec_driver_sql(statement, values).all()
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


def search(
    session: Session, *, query: str, filters: SearchFilters, limit: int, offset: int
) -> SearchPage:
    """Ranked hits (best first), the number of hits, and facet counts over the best of them."""
    dialect = session.get_bind().dialect.name
    shape, values = _filters(filters, dialect)
    bound = max(FACETS_OVER, offset + limit)
    if not terms(query, dialect):
        return _newest(session, shape, values, bound=bound, limit=limit, offset=offset)
    words, every = query_words(session, query)
    if not words or any(not word.terms or not word.entries for word in words):
        return SearchPage([], 0, True, _facet_lists([]), facets_over=0, facets_exact=True)
    driver = min(words, key=lambda word: word.entries)
    others = [word for word in words if word is not driver]
    values |= {f"d{j}": term for j, term in enumerate(driver.terms)}
    for k, word in enumerate(others, start=1):
        if word.complete:
            values |= {f"o{k}_{j}": term for j, term in enumerate(word.terms)}
        else:  # a prefix with more completions than named: every word it starts
            values |= {f"o{k}_from": word.prefix, f"o{k}_to": f"{word.prefix}{_TOP}"}
    weights = [idf(every, word.entries) for word in (driver, *others)]
    values |= {f"w{k}": weight for k, weight in enumerate(weights)}
    # Rows to read: the hits wanted; a sixteenth more for a prefix (an entry may hold several
    # of its completions: more are read when too many did); the candidates of several words.
    merged = len(driver.terms) + len(others) > 1  # an entry may be in several rows
    read = max(CANDIDATES, bound + 1) if others else (bound + 1) * (17 if merged else 16) // 16
    reading = _reading(driver, others, every, read, SEEK_COST.get(dialect, 8.0))
    statement = search_sql.hits_sql(len(driver.terms), reading, shape, dialect)
    connection = session.connection()
    while True:
        values |= {"bound": bound + 1, "read": read}
        rows = connection.exec_driver_sql(statement, values).all()
        hits = _ranked(rows, weights, best_first=not others)[: bound + 1]
        # Rows, not entries: when the rows read stopped short of the hits wanted, read more.
        stopped = merged and len(rows) >= read
        if not stopped or len(hits) > bound:
            break
        read *= 2
    total, total_exact = len(hits), len(hits) <= bound and driver.complete and not stopped
    if not total_exact and not others and shape == search_sql.Filters():
        # One word without filters: how many entries hold it is kept.
        total, total_exact = max(len(hits), driver.largest), len(driver.terms) == 1
    return _page(session, hits, total, total_exact, limit=limit, offset=offset)


def _reading(
    driver: Word, others: Sequence[Word], every: int, read: int, seek_cost: float
) -> tuple[search_sql.Other, ...]:
    """How to find each other word in the driving word's entries: sought by key for each
    (reading the driving word best first until ``read`` entries hold every word: about
    ``read / share`` of them, ``share`` the part of the registry holding the others) or read
    as a set (the word's entries in the order of their keys, once) when that costs less; a
    sought key costs about as much as ``seek_cost`` entries read in order."""
    share = 1.0
    for word in others:
        share *= min(1.0, word.entries / max(every, 1))
    sought = min(driver.entries, read / max(share, 1e-9))
    return tuple(
        (
            len(word.terms) if word.complete else 0,
            sought * seek_cost > driver.entries + word.entries,
        )
        for word in others
    )


# A hit: doc_id, score, and the row it was ranked from, its facets (FACET_COLUMNS) last.
_Hit = tuple[int, float, Sequence[Any]]


def _ranked(rows: Sequence[Any], weights: Sequence[float], *, best_first: bool) -> list[_Hit]:
    """The hits of rows (doc_id, each word's impact, the facets), best first (ties: the
    larger doc_id): an entry's best impact of each word, weighted and added up. Rows of one
    word read ``best_first`` (by impact, then doc_id) are in that order already, an entry's
    first row its best."""
    if best_first and len(weights) == 1:
        weight, seen, hits = weights[0], set(), list[_Hit]()
        for row in rows:
            if row[0] not in seen:
                seen.add(row[0])
                hits.append((row[0], weight * row[1], row))
        return hits
    width = len(weights)
    best: dict[int, list[Any]] = {}
    for row in rows:
        held = best.get(row[0])
        if held is None:
            best[row[0]] = list(row)
        else:
            for k in range(1, width + 1):
                held[k] = max(held[k], row[k])
    ranked: list[_Hit] = [
        (r[0], sum(w * i for w, i in zip(weights, r[1 : width + 1], strict=True)), r)
        for r in best.values()
    ]
    ranked.sort(key=lambda hit: (hit[1], hit[0]), reverse=True)
    return ranked


def _page(
    session: Session,
    hits: Sequence[_Hit],
    total: int,
    total_exact: bool,
    *,
    limit: int,
    offset: int,
) -> SearchPage:
    """The page of the hits (best first) read whole, and the facet counts over the best
    ``FACETS_OVER`` of them."""
    top = [row for _, _, row in hits[:FACETS_OVER]]
    counts: list[tuple[str, str, int]] = []
    first = len(top[0]) - len(FACET_COLUMNS) if top else 0
    for index, name in enumerate(FACET_COLUMNS, start=first):
        found = Counter(map(itemgetter(index), top))
        found.pop(None, None)
        if name == "publisher_id":  # the busiest only
            ranked = heapq.nsmallest(TOP_PUBLISHERS, found.items(), key=_busiest)
        else:
            ranked = sorted(found.items(), key=_busiest)
        counts.extend((name, _text(name, value), n) for value, n in ranked)
    page = [(int(doc_id), score / SCALE) for doc_id, score, _ in hits[offset : offset + limit]]
    return SearchPage(
        _load(session, page),
        total,
        total_exact,
        _facet_lists(counts),
        facets_over=len(top),
        facets_exact=len(top) == total and total_exact,
    )


def _busiest(value_count: tuple[Any, int]) -> tuple[int, str]:
    return -value_count[1], str(value_count[0])


def _text(name: str, value: Any) -> str:
    """A facet's value as the API shows it: tool calling (1 or 0 on SQLite) 'true' or 'false'."""
    if name == "tool_calling":
        return "true" if value else "false"
    return str(value)


def _newest(
    session: Session,
    shape: search_sql.Filters,
    values: dict[str, Any],
    *,
    bound: int,
    limit: int,
    offset: int,
) -> SearchPage:
    """Without words: the newest entries first, counted exactly."""
    dialect = session.get_bind().dialect.name
    values = values | {"listed": True, "bound": bound + 1}
    connection = session.connection()
    rows = connection.exec_driver_sql(search_sql.newest_sql(shape, dialect), values).all()
    hits = [(row[0], 0.0, row) for row in rows]
    total = len(hits)
    if total > bound:
        counting = search_sql.count_sql(shape, dialect)
        total = int(connection.exec_driver_sql(counting, values).scalar_one())
    return _page(session, hits, total, True, limit=limit, offset=offset)


def _load(session: Session, page: Sequence[tuple[int, float]]) -> list[tuple[RegistryEntry, float]]:
    """The page's entries read whole, in the page's order."""
    wanted = [doc_id for doc_id, _ in page]
    if not wanted:
        return []
    loaded = {entry.doc_id: entry for entry in session.scalars(_LOAD, {"ids": wanted})}
    return [(loaded[doc_id], score) for doc_id, score in page if doc_id in loaded]


def _facet_lists(counts: Sequence[tuple[str, str, int]]) -> dict[str, list[dict[str, Any]]]:
    """Each facet's values, the most frequent first (ties by value); the busiest publishers."""
    facets: dict[str, list[dict[str, Any]]] = {name: [] for name in (*FACETS, "publisher")}
    for column, value, number in sorted(counts, key=lambda c: (c[0], -c[2], c[1])):
        facets["publisher" if column == "publisher_id" else column].append(
            {"value": value, "count": number}
        )
    return facets
