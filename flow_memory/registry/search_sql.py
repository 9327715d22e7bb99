"""The statements of a registry search, as SQL text built once per shape of query.

A search's statements differ only by their shape: how many terms each word stands for, which
filters are set, one word or several. Each shape's text is built once and kept
(``functools.cache``); a search binds its values (terms, weights, filter values, limits) as
parameters and runs the text on the driver, so no statement is built or compiled per search
(building and compiling them in the ORM's expression language was a third of a search's time).

Parameters are written ``:name`` and rewritten ``%(name)s`` for PostgreSQL's driver; no
statement holds a literal percent sign (a ``LIKE`` pattern is a parameter)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cache

TERMS = "registry_search_terms"
ENTRIES = "registry_entries"
WORDS = "registry_search_words"
FACET_COLUMNS = ("kind", "license", "pricing_model", "modality", "tool_calling", "publisher_id")


# Another word of a query than the one driving: how many terms it stands for (0: every word
# its prefix starts), and whether its entries are read as a set (not sought for each driving
# entry).
Other = tuple[int, bool]


@dataclass(frozen=True)
class Filters:
    """Which filters a search sets (their values are parameters of the same names)."""

    kind: bool = False
    tool_calling: bool = False
    modality: bool = False
    api: bool = False
    min_context_window: bool = False
    pricing_model: bool = False
    max_price: bool = False
    license: bool = False
    publisher_id: bool = False


def driver_sql(sql: str, dialect: str) -> str:
    """The text as the dialect's driver takes its named parameters."""
    if dialect == "postgresql":
        return re.sub(r"(?<![:\w]):(\w+)", r"%(\1)s", sql)
    return sql


def conditions(filters: Filters, alias: str, dialect: str) -> list[str]:
    """The filters on a posting (``p``: the index holds them all but the API) or an entry
    (``e``). The API is read from the entry: postings are joined to it for that filter."""
    found = []
    if filters.kind:
        found.append(f"{alias}.kind = :kind")
    if filters.tool_calling:
        found.append(f"{alias}.tool_calling = :tool_calling")
    if filters.modality:
        found.append(f"{alias}.modality = :modality")
    if filters.api:
        found.append("e.api_text LIKE :api")
    if filters.min_context_window:
        found.append(f"{alias}.context_window >= :min_context_window")
    if filters.pricing_model:
        found.append(f"{alias}.pricing_model = :pricing_model")
    if filters.max_price:
        # An entry's price is exact text on SQLite, compared as a number (as the postings' is).
        price = f"CAST({alias}.price AS REAL)" if alias == "e" and dialect == "sqlite" else None
        found.append(f"{price or alias + '.price'} <= :max_price")
    if filters.license:
        found.append(f"{alias}.license = :license")
    if filters.publisher_id:
        found.append(f"{alias}.publisher_id = :publisher_id")
    return found


def _in(column: str, name: str, count: int) -> str:
    """The column is one of ``count`` terms (``:{name}0``…), or, ``count`` 0, any term from
    ``:{name}from`` up to ``:{name}to`` (a prefix with more completions than are named)."""
    if count == 0:
        return f"{column} >= :{name}from AND {column} < :{name}to"
    if count == 1:
        return f"{column} = :{name}0"
    return f"{column} IN ({', '.join(f':{name}{k}' for k in range(count))})"


def _facets(alias: str) -> str:
    return ", ".join(f"{alias}.{name}" for name in FACET_COLUMNS)


@cache
def words_sql(exact: int, prefix: bool, dialect: str) -> str:
    """How many entries hold each of ``exact`` words (``:x0``…, with ``:every``, the row
    counting every entry), then the prefix's (``:prefix``) most frequent completions."""
    sql = f"SELECT term, entries, 0 FROM {WORDS} WHERE {_in('term', 'x', exact)}"
    if prefix:
        sql += (
            " UNION ALL SELECT * FROM (SELECT term, entries, 1 FROM "
            f"{WORDS} WHERE term >= :prefix AND term < :prefix_end AND entries > 0 "
            "ORDER BY entries DESC, term LIMIT :prefix_terms) c"
        )
    return driver_sql(sql, dialect)


def _branch(term: int, others: tuple[Other, ...], filters: Filters, dialect: str) -> str:
    """The entries holding the driving word's term ``:d{term}`` and every other word (word
    ``k``'s terms ``:o{k}_0``…) that pass the filters; a row: doc_id, each word's impact
    (``i0``, the driver's, first), the facets. Read best first by that term (the caller orders
    and limits). Each other word is either sought by key for each driving entry, in that order
    (SQLite: ``CROSS JOIN`` keeps its loops so; PostgreSQL: a lateral subquery, as its planner
    would rather read every entry of the word), or, when that would cost more than reading
    the word's entries whole (``joined``), read as a set (SQLite: ``IN``, its impact sought
    for the entries left only; PostgreSQL: a join its planner chooses how to make)."""
    joins = []
    where = [f"p.term = :d{term}"]
    impacts = ["p.impact AS i0"]
    if filters.api:
        joins.append(f"JOIN {ENTRIES} e ON e.doc_id = p.doc_id")
    for k, (count, joined) in enumerate(others, start=1):
        terms = _in(f"q{k}.term", f"o{k}_", count)
        best = f"SELECT max(q{k}.impact) FROM {TERMS} q{k} WHERE q{k}.doc_id = p.doc_id AND {terms}"
        if dialect == "postgresql" and joined:
            joins.append(f"JOIN {TERMS} q{k} ON q{k}.doc_id = p.doc_id AND {terms}")
            impacts.append(f"q{k}.impact AS i{k}")
        elif dialect == "postgresql":
            joins.append(f"CROSS JOIN LATERAL ({best}) w{k}(impact)")
            where.append(f"w{k}.impact IS NOT NULL")
            impacts.append(f"w{k}.impact AS i{k}")
        elif joined:  # "+" keeps SQLite from seeking the entries by this condition
            where.append(f"+p.doc_id IN (SELECT q{k}.doc_id FROM {TERMS} q{k} WHERE {terms})")
            impacts.append(f"({best}) AS i{k}")
        else:
            joins.append(f"CROSS JOIN {TERMS} q{k}")
            where.append(f"q{k}.doc_id = p.doc_id AND {terms}")
            impacts.append(f"q{k}.impact AS i{k}")
    where.extend(conditions(filters, "p", dialect))
    return (
        f"SELECT p.doc_id AS doc_id, {', '.join(impacts)}, {_facets('p')} FROM {TERMS} p "
        f"{' '.join(joins)} WHERE {' AND '.join(where)}"
    )


_BEST_FIRST = "ORDER BY i0 DESC, doc_id DESC LIMIT :read"


@cache
def hits_sql(driver_terms: int, others: tuple[Other, ...], filters: Filters, dialect: str) -> str:
    """The rows a query's hits are ranked from, for a query whose rarest word stands for
    ``driver_terms`` terms and whose other words for ``others`` terms each (and whether each
    is read as a set: ``_branch``). A row: doc_id, each word's impact (``i0``, the driving
    word's, first), the facets; an entry's rank is ``sum of w_k * its best impact of word k``
    (an entry may hold several terms of a word, a prefix's completions, and then be in several
    rows: the caller groups them).

    The driving word's terms' rows, best first by the driving word, ``:read`` of them: on
    SQLite a compound ``ORDER BY``, which SQLite merges from each term's index order and
    stops; on PostgreSQL, whose planner sorts a union instead of merging it, the best
    ``:read`` of each term, then the best ``:read`` of those."""
    arms = [_branch(j, others, filters, dialect) for j in range(driver_terms)]
    if dialect == "sqlite" or driver_terms == 1:
        return driver_sql(f"{' UNION ALL '.join(arms)} {_BEST_FIRST}", dialect)
    source = " UNION ALL ".join(
        f"SELECT * FROM ({arm} {_BEST_FIRST}) b{j}" for j, arm in enumerate(arms)
    )
    return driver_sql(f"SELECT * FROM ({source}) u {_BEST_FIRST}", dialect)


@cache
def newest_sql(filters: Filters, dialect: str) -> str:
    """Without words: the newest ``:bound`` listed entries that pass the filters; a row:
    doc_id, the facets."""
    where = " AND ".join(["e.listed = :listed", *conditions(filters, "e", dialect)])
    return driver_sql(
        f"SELECT e.doc_id, {_facets('e')} FROM {ENTRIES} e WHERE {where} "
        "ORDER BY e.updated_at DESC, e.slug LIMIT :bound",
        dialect,
    )


@cache
def count_sql(filters: Filters, dialect: str) -> str:
    """How many listed entries pass the filters."""
    where = " AND ".join(["e.listed = :listed", *conditions(filters, "e", dialect)])
    return driver_sql(f"SELECT count(*) FROM {ENTRIES} e WHERE {where}", dialect)
