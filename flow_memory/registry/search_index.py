"""The registry's search index: each listed entry's stemmed words with their impact, and how
many entries hold each word, written in the transaction that writes the entry.

Words are what the engines index as words (letters and digits), lower-cased; the database's own
text-search engine stems them. PostgreSQL: ``to_tsvector('english', word)``, which also drops
English stop words. SQLite: the Porter stemmer of its full-text extension (the table
``registry_fts_tokenize``, an ``fts3tokenize('porter')``), after diacritics are removed as FTS5's
``unicode61`` tokenizer removes them; a word holding digits or other than ASCII letters, or
longer than 20 letters, is its own stem there (that stemmer would cut it short). A stem is the
same whatever surrounds the word, so stems are cached by word."""

from __future__ import annotations

import re
import unicodedata
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from sqlalchemy import (
    Column,
    Connection,
    MetaData,
    Table,
    Text,
    bindparam,
    delete,
    insert,
    inspect,
    select,
    text,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from flow_memory.registry.models import RegistryEntry, RegistrySearchTerm, RegistrySearchWord
from flow_memory.registry.ranking import impacts

WORD = re.compile(r"[^\W_]+")  # letters and digits
MAX_TERM = 64  # longer words are not indexed (nor found)
EVERY_ENTRY = ""  # the vocabulary row counting every indexed entry
FACETS = ("kind", "license", "pricing_model", "modality", "tool_calling", "publisher_id")
# What a posting copies from its entry: the facets, and the filters searched (migration 0018).
COPIED = (*FACETS, "context_window", "price")
_PORTER = re.compile(r"[a-z]{3,20}")  # what SQLite's fts3 Porter stemmer stems whole
_STEMS: dict[tuple[str, str], tuple[str, ...]] = {}
_STEMS_KEPT = 100_000
_PG_STEMS = text(
    "SELECT x.i, t.lexeme FROM unnest(:words) WITH ORDINALITY AS x(w, i) "
    "JOIN LATERAL unnest(to_tsvector('english', x.w)) AS t ON true ORDER BY x.i, t.lexeme"
).bindparams(bindparam("words", type_=postgresql.ARRAY(Text())))
_SQLITE_STEMS = text("SELECT position, token FROM registry_fts_tokenize WHERE input = :words")


def words_of(value: str, dialect: str) -> list[str]:
    """A text's words, lower-cased (and without diacritics on SQLite), before stemming."""
    lowered = value.lower()
    if dialect == "sqlite" and not lowered.isascii():
        decomposed = unicodedata.normalize("NFKD", lowered)
        lowered = "".join(c for c in decomposed if not unicodedata.combining(c))
    return WORD.findall(lowered)


def stems(connection: Connection, words: Iterable[str]) -> dict[str, tuple[str, ...]]:
    """Each word's stems by the database's engine: none for a stop word, usually one."""
    dialect = connection.dialect.name
    known: dict[str, tuple[str, ...]] = {}
    wanted = []
    for word in set(words):
        cached = _STEMS.get((dialect, word))
        if cached is None:
            wanted.append(word)
        else:
            known[word] = cached
    wanted.sort()
    for start in range(0, len(wanted), 500):
        chunk = wanted[start : start + 500]
        found = _engine_stems(connection, chunk)
        for index, word in enumerate(chunk):
            known[word] = tuple(s for s in found.get(index, ()) if len(s) <= MAX_TERM)
    if len(_STEMS) + len(wanted) > _STEMS_KEPT:
        _STEMS.clear()
    _STEMS.update(((dialect, word), known[word]) for word in wanted[:_STEMS_KEPT])
    return known


def _engine_stems(connection: Connection, words: Sequence[str]) -> dict[int, list[str]]:
    found: dict[int, list[str]] = {}
    if connection.dialect.name == "postgresql":
        for index, lexeme in connection.execute(_PG_STEMS, {"words": list(words)}):
            found.setdefault(int(index) - 1, []).append(str(lexeme))
        return found
    stemmed = [i for i, w in enumerate(words) if _PORTER.fullmatch(w)]
    if stemmed:
        rows = connection.execute(_SQLITE_STEMS, {"words": " ".join(words[i] for i in stemmed)})
        for position, token in rows:
            found[stemmed[int(position)]] = [str(token)]
    for index, word in enumerate(words):
        found.setdefault(index, [word])
    return found


def entry_fields(entry: Any) -> dict[str, str]:
    """The text of an entry's three fields (a row or an entry: slug, display_name, …)."""
    return {
        "name": f"{entry.slug.replace('/', ' ')} {entry.display_name}",
        "tags": entry.tag_text,
        "description": entry.description,
    }


def entry_impacts(connection: Connection, entries: Sequence[Any]) -> list[dict[str, int]]:
    """Each entry's stemmed words and their impacts."""
    dialect = connection.dialect.name
    split = [
        {field: words_of(value, dialect) for field, value in entry_fields(e).items()}
        for e in entries
    ]
    known = stems(connection, (w for fields in split for ws in fields.values() for w in ws))
    return [
        impacts({field: [s for w in ws for s in known[w]] for field, ws in fields.items()})
        for fields in split
    ]


def facets_of(entry: Any, dialect: str, copied: Sequence[str] = COPIED) -> dict[str, Any]:
    """What a posting copies from its entry (a row or an entry); the price as the postings keep
    it (a float on SQLite, for comparing)."""
    found = {name: getattr(entry, name) for name in copied}
    if dialect == "sqlite" and found.get("price") is not None:
        found["price"] = float(found["price"])
    return found


def index_entry(session: Session, entry: RegistryEntry) -> None:
    """Bring an entry's postings in line with it: its words while listed, none otherwise."""
    connection = session.connection()
    t = RegistrySearchTerm
    wanted: list[dict[str, Any]] = []
    if entry.listed:
        found = entry_impacts(connection, [entry])[0]
        facets = facets_of(entry, connection.dialect.name)
        wanted = [
            {"doc_id": entry.doc_id, "term": w, "impact": i, **facets} for w, i in found.items()
        ]
    columns = [t.doc_id, t.term, t.impact, *(getattr(t, name) for name in COPIED)]
    held = [
        dict(row._mapping)
        for row in connection.execute(select(*columns).where(t.doc_id == entry.doc_id))
    ]
    key = sorted(sorted(row.items()) for row in wanted)
    if key == sorted(sorted(row.items()) for row in held):
        return
    connection.execute(delete(t).where(t.doc_id == entry.doc_id))
    if wanted:
        connection.execute(insert(t), wanted)
    change = Counter(dict.fromkeys((row["term"] for row in wanted), 1))
    change.subtract(dict.fromkeys((row["term"] for row in held), 1))
    change[EVERY_ENTRY] = bool(wanted) - bool(held)
    count_words(connection, change)


def count_words(connection: Connection, change: Mapping[str, int]) -> None:
    """Add to the number of entries holding each word, in the words' order (so that two
    writers take their row locks in one order), and forget words no entry holds."""
    rows: list[dict[str, Any]] = [{"term": w, "entries": n} for w, n in sorted(change.items()) if n]
    if not rows:
        return
    table = RegistrySearchWord
    dialect = postgresql if connection.dialect.name == "postgresql" else sqlite
    for start in range(0, len(rows), 5000):
        upsert = dialect.insert(table).values(rows[start : start + 5000])
        upsert = upsert.on_conflict_do_update(
            index_elements=[table.term],
            set_={"entries": table.entries + upsert.excluded.entries},
        )
        connection.execute(upsert)
    gone = [w for w, n in change.items() if n < 0]
    if gone:
        connection.execute(delete(table).where(table.term.in_(gone), table.entries <= 0))


def rebuild(connection: Connection, *, batch: int = 2000) -> int:
    """Index every listed entry again from scratch (a migration, a bulk load); how many.
    Only the columns the postings have are written: migration 0015 runs this before 0018 adds
    the filters' columns."""
    t, e = RegistrySearchTerm, RegistryEntry
    held_columns = {c["name"] for c in inspect(connection).get_columns(t.__tablename__)}
    copied = [name for name in COPIED if name in held_columns]
    table = Table(
        t.__tablename__,
        MetaData(),
        *(Column(c.name, c.type) for c in t.__table__.c if c.name in held_columns),
    )
    dialect = connection.dialect.name
    connection.execute(delete(t))
    connection.execute(delete(RegistrySearchWord))
    held: Counter[str] = Counter()
    fields = (e.doc_id, e.slug, e.display_name, e.tag_text, e.description)
    query = (
        select(*fields, *(getattr(e, name) for name in copied))
        .where(e.listed.is_(True))
        .order_by(e.doc_id)
    )
    rows = connection.execute(query).all()
    for start in range(0, len(rows), batch):
        chunk = rows[start : start + batch]
        postings = [
            {
                "doc_id": row.doc_id,
                "term": word,
                "impact": impact,
                **facets_of(row, dialect, copied),
            }
            for row, found in zip(chunk, entry_impacts(connection, chunk), strict=True)
            for word, impact in found.items()
        ]
        held.update(p["term"] for p in postings)
        if postings:
            connection.execute(insert(table), postings)
    held[EVERY_ENTRY] = len(rows)
    count_words(connection, held)
    return len(rows)
