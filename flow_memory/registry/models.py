"""Registry tables: entries (models, agents, solutions) and their immutable versions.

An entry's row also carries the facts of its latest active version (price, APIs, context
window, …): search and compatibility filter on them without reading versions. They are copied
whenever a version is published or changes status, and nowhere else.

Search reads an index of its own beside them (migration 0015): each listed entry's words,
stemmed by the database's own text-search engine, with their impact
(``flow_memory.registry.ranking``), and how many entries hold each word.
``flow_memory.registry.search_index`` keeps it in the transaction that writes the entry;
``flow_memory.registry.search`` reads it."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import (
    BigInteger,
    Float,
    ForeignKey,
    Index,
    Integer,
    Numeric,
    PrimaryKeyConstraint,
    String,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from flow_memory.kit.db import Base, JSONDocument, Money, UTCDateTime


class RegistryEntry(Base):
    """A model, agent or solution under its publisher's namespace (``publisher/name``)."""

    __tablename__ = "registry_entries"
    __table_args__ = (
        Index("ix_registry_entries_publisher", "publisher_id", "kind", "slug"),
        Index("ix_registry_entries_kind", "kind", "listed", "context_window"),
        # A search joins each hit by doc_id and counts facets from this index alone.
        Index(
            "ix_registry_entries_doc",
            "doc_id",
            "listed",
            "kind",
            "license",
            "pricing_model",
            "modality",
            "tool_calling",
            "publisher_id",
        ),
    )

    entry_id: Mapped[str] = mapped_column(String(40), primary_key=True)
    # A random 62-bit integer: the key the search index's postings hold (an integer joins a hit
    # to its entry in one seek of the covering index below).
    doc_id: Mapped[int] = mapped_column(BigInteger)
    kind: Mapped[str] = mapped_column(String(8))  # model | agent | solution
    slug: Mapped[str] = mapped_column(String(160), unique=True)
    publisher_id: Mapped[str] = mapped_column(String(64))
    name: Mapped[str] = mapped_column(String(64))
    display_name: Mapped[str] = mapped_column(String(128))
    description: Mapped[str] = mapped_column(String(2000))
    tags: Mapped[list[str]] = mapped_column(JSONDocument())
    # The tags as words, for the full-text engines.
    tag_text: Mapped[str] = mapped_column(String(1200))
    license: Mapped[str] = mapped_column(String(64))
    published_by: Mapped[str] = mapped_column(String(128))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())
    # The latest active version's facts; ``listed`` is false while no version is active.
    listed: Mapped[bool] = mapped_column()
    latest_version: Mapped[str | None] = mapped_column(String(64), nullable=True)
    modality: Mapped[str | None] = mapped_column(String(16), nullable=True)
    family: Mapped[str | None] = mapped_column(String(64), nullable=True)
    # Space-delimited with a space at each end (" chat_completions responses "), so one API
    # is matched with LIKE on both backends.
    api_text: Mapped[str] = mapped_column(String(600))
    context_window: Mapped[int | None] = mapped_column(Integer, nullable=True)
    tool_calling: Mapped[bool | None] = mapped_column(nullable=True)
    pricing_model: Mapped[str | None] = mapped_column(String(16), nullable=True)
    price: Mapped[Decimal | None] = mapped_column(Money(), nullable=True)
    royalty_bps: Mapped[int | None] = mapped_column(Integer, nullable=True)


class RegistryVersion(Base):
    """One published version: its terms (pricing, royalty) and its specification never change
    once written; only its status does (active, deprecated, yanked, with a reason)."""

    __tablename__ = "registry_versions"
    __table_args__ = (
        UniqueConstraint("entry_id", "version"),
        Index("ix_registry_versions_order", "entry_id", "major", "minor", "patch"),
    )

    version_id: Mapped[str] = mapped_column(String(40), primary_key=True)
    entry_id: Mapped[str] = mapped_column(ForeignKey("registry_entries.entry_id"))
    version: Mapped[str] = mapped_column(String(64))
    major: Mapped[int] = mapped_column(Integer)
    minor: Mapped[int] = mapped_column(Integer)
    patch: Mapped[int] = mapped_column(Integer)
    # "" for a release; as long as a version (64) allows, so PostgreSQL never refuses one.
    prerelease: Mapped[str] = mapped_column(String(64))
    # Model: modality, APIs, context window, tool calling, family, lineage. Agent: its
    # requirements and configuration template. Solution: the agent and model versions and the
    # configuration.
    spec: Mapped[dict[str, Any]] = mapped_column(JSONDocument())
    pricing_model: Mapped[str | None] = mapped_column(String(16), nullable=True)
    price: Mapped[Decimal | None] = mapped_column(Money(), nullable=True)
    royalty_bps: Mapped[int] = mapped_column(Integer)
    changelog: Mapped[str] = mapped_column(String(2000))
    status: Mapped[str] = mapped_column(String(12))  # active | deprecated | yanked
    status_reason: Mapped[str | None] = mapped_column(String(512), nullable=True)
    status_changed_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    published_by: Mapped[str] = mapped_column(String(128))
    published_at: Mapped[datetime] = mapped_column(UTCDateTime())


# A stemmed word. Compared byte by byte on PostgreSQL too (as on SQLite), whatever the database's
# collation: a prefix's words are the range from the prefix to the prefix and U+10FFFF.
TERM = String(64).with_variant(String(64, collation="C"), "postgresql")
SEARCH_PRICE = Numeric(38, 18).with_variant(Float(), "sqlite")


class RegistrySearchTerm(Base):
    """One word of a listed entry (a posting) with its impact and the entry's facets, so that a
    word's best entries and their facet counts are read from one index, best first."""

    __tablename__ = "registry_search_terms"
    __table_args__ = (
        # A word's entries, best first (scanned backwards: ORDER BY impact DESC, doc_id DESC),
        # with the facets: a search without filters reads nothing else.
        Index(
            "ix_registry_search_terms_impact",
            "term",
            "impact",
            "doc_id",
            "kind",
            "license",
            "pricing_model",
            "modality",
            "tool_calling",
            "publisher_id",
            "context_window",
            "price",
        ),
        # Probing entries for a word reads the key alone (SQLite keeps the rows in the key's
        # order, PostgreSQL's key includes the impact), within the word's few pages: keyed by
        # the entry first, each probe landed on a page of its own.
        PrimaryKeyConstraint("term", "doc_id", postgresql_include=["impact"]),
        # An entry's postings, to replace them when it changes.
        Index("ix_registry_search_terms_doc", "doc_id"),
        {"sqlite_with_rowid": False},
    )

    doc_id: Mapped[int] = mapped_column(BigInteger)
    term: Mapped[str] = mapped_column(TERM)
    impact: Mapped[int] = mapped_column(Integer)
    # The entry's facets, as on its row (copied whenever its listing changes).
    kind: Mapped[str] = mapped_column(String(8))
    license: Mapped[str] = mapped_column(String(64))
    pricing_model: Mapped[str | None] = mapped_column(String(16), nullable=True)
    modality: Mapped[str | None] = mapped_column(String(16), nullable=True)
    tool_calling: Mapped[bool | None] = mapped_column(nullable=True)
    publisher_id: Mapped[str] = mapped_column(String(64))
    # The filters a search applies besides the facets (migration 0018), so that a filtered
    # search reads the index alone. The price is compared, never paid: a float on SQLite (as
    # the entry's exact text price was compared), the entry's exact decimal on PostgreSQL.
    context_window: Mapped[int | None] = mapped_column(Integer, nullable=True)
    price: Mapped[Decimal | None] = mapped_column(SEARCH_PRICE, nullable=True)


class RegistrySearchWord(Base):
    """How many listed entries hold a word; the row of the empty word counts every indexed
    entry. Read for a word's rarity and to complete a prefix with the words it starts."""

    __tablename__ = "registry_search_words"

    term: Mapped[str] = mapped_column(TERM, primary_key=True)
    entries: Mapped[int] = mapped_column(Integer)
