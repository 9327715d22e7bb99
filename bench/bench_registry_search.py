"""Registry search over 100,000 entries, in process: p50 and p95 of a search with its facets.

    python bench/bench_registry_search.py [--entries 100000] [--queries 400]
                                          [--database-url URL] [--seed-only | --no-seed]

Seeding (the same command, or ``--seed-only``): ``--entries`` listed models, agents and
solutions from 2,000 publishers, written in bulk on a freshly migrated database (SQLite file in
a temporary directory by default; a PostgreSQL URL is emptied first), then indexed for search
as migration 0015 indexes existing entries (``search_index.rebuild``) and analysed (PostgreSQL:
vacuumed too, so that index-only scans stay index-only). Names, tags and descriptions draw
words from a 3,000-word vocabulary with Zipf-like frequencies, so a query's hits range from a
handful to tens of thousands.

Then ``--queries`` searches, each in a read session of its own as the endpoint runs it (a
read-only engine; ``flow_memory.registry.search.search``: the ranked page of 20, read whole,
and the facet counts), mixed
from six kinds: a broad word (one of the 30 most frequent, in 40-85 % of entries), a common word
(in a few per cent), a rare word, two words, a prefix, and a word with filters (kind, context
window, price ceiling). Printed: p50 and p95 over all, and per kind, of the wall time and of
this process's CPU time (the machine is shared: CPU time moves less with its load), with the
median number of hits and how many searches answered a lower bound (``total_exact`` false);
on PostgreSQL running on this machine, the server processes' CPU time a search (/proc)."""

from __future__ import annotations

import argparse
import os
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from sqlalchemy import event, insert, text

import flow_memory.models  # noqa: F401
from flow_memory.kit.db import make_engine, make_session_factory
from flow_memory.migrations import upgrade
from flow_memory.registry import search_index
from flow_memory.registry.domain import api_text
from flow_memory.registry.models import RegistryEntry, RegistryVersion
from flow_memory.registry.search import FACETS_OVER, SearchFilters, search

DOMAIN_WORDS = [
    "chat",
    "code",
    "coding",
    "vision",
    "embed",
    "embedding",
    "summarise",
    "translate",
    "legal",
    "medical",
    "finance",
    "reasoning",
    "math",
    "agent",
    "review",
    "search",
    "retrieval",
    "speech",
    "audio",
    "image",
    "writer",
    "planner",
    "tutor",
    "support",
    "sales",
    "research",
    "assistant",
    "fast",
    "small",
    "large",
    "instruct",
    "quantized",
    "distilled",
]
SYLLABLES = "ka lo mi nu re sa ti vo ba de fi gu ha je ko la me ni po qu ri su te vi wa xe yo zu"
APIS = ("chat_completions", "responses", "messages", "embeddings", "chat_responses")
MODALITIES = ("chat", "text", "vision", "embedding", "audio")
LICENSES = ("apache-2.0", "mit", "bsd-3-clause", "cc-by-4.0", "proprietary", "llama", "gpl-3.0")
FAMILIES = ("swift", "coder", "tiny", "atlas", "orca", "lumen", "quill", "sable")
NOW = datetime(2026, 12, 7, tzinfo=UTC)


def vocabulary(rng: random.Random, size: int = 3000) -> list[str]:
    syllables = SYLLABLES.split()
    words = list(DOMAIN_WORDS)
    seen = set(words)
    while len(words) < size:
        word = "".join(rng.choice(syllables) for _ in range(rng.randint(2, 4)))
        if word not in seen:
            seen.add(word)
            words.append(word)
    return words


def zipf_weights(size: int) -> list[float]:
    return [1.0 / (rank + 1) ** 0.9 for rank in range(size)]


def seed(database_url: str, entries: int, rng: random.Random) -> list[str]:
    """Migrate and fill the registry; the vocabulary, most frequent first."""
    words = vocabulary(rng)
    weights = zipf_weights(len(words))
    upgrade(database_url)
    engine = make_engine(database_url)
    with engine.begin() as connection:
        connection.execute(RegistryVersion.__table__.delete())
        connection.execute(RegistryEntry.__table__.delete())
    started = time.perf_counter()
    batch = 5000
    for start in range(0, entries, batch):
        rows, versions = [], []
        for index in range(start, min(start + batch, entries)):
            row, version = _entry(index, rng, words, weights)
            rows.append(row)
            versions.append(version)
        with engine.begin() as connection:
            connection.execute(insert(RegistryEntry), rows)
            connection.execute(insert(RegistryVersion), versions)
    written = time.perf_counter()
    with engine.begin() as connection:
        search_index.rebuild(connection)
    indexed = time.perf_counter()
    if engine.dialect.name == "postgresql":
        # VACUUM too: an index-only scan reads the table unless its pages are marked visible.
        with engine.connect() as connection:
            connection = connection.execution_options(isolation_level="AUTOCOMMIT")
            for table in ("registry_entries", "registry_search_terms", "registry_search_words"):
                connection.execute(text(f"VACUUM ANALYZE {table}"))
    else:
        with engine.begin() as connection:
            connection.execute(text("ANALYZE"))
    engine.dispose()
    print(
        f"seeded {entries:,} entries in {written - started:.1f} s, indexed them for search in"
        f" {indexed - written:.1f} s"
    )
    return words


def _entry(
    index: int, rng: random.Random, words: list[str], weights: list[float]
) -> tuple[dict[str, Any], dict[str, Any]]:
    kind = rng.choices(("model", "agent", "solution"), (6, 3, 1))[0]
    publisher = f"pub{index % 2000:04d}"
    name_words = rng.choices(words, weights, k=rng.randint(1, 3))
    name = "-".join(name_words) + f"-{index}"
    tags = sorted(set(rng.choices(words, weights, k=rng.randint(1, 5))))
    description = " ".join(rng.choices(words, weights, k=rng.randint(8, 30)))
    apis = sorted(set(rng.choices(APIS, k=rng.randint(1, 2))))
    context = rng.choice((2048, 8192, 32768, 131072, 200000))
    price = Decimal(rng.randint(1, 5000)).scaleb(-9)
    entry_id = f"reg_bench{index:012d}"
    row = {
        "entry_id": entry_id,
        "doc_id": rng.getrandbits(62),
        "kind": kind,
        "slug": f"{publisher}/{name}"[:129],
        "publisher_id": publisher,
        "name": name[:64],
        "display_name": " ".join(w.title() for w in name_words),
        "description": description[:2000],
        "tags": tags,
        "tag_text": " ".join(tags),
        "license": rng.choice(LICENSES),
        "published_by": publisher,
        "created_at": NOW,
        "updated_at": NOW,
        "listed": True,
        "latest_version": "1.0.0",
        "modality": None if kind == "agent" else rng.choice(MODALITIES),
        "family": None if kind == "agent" else rng.choice(FAMILIES),
        "api_text": api_text(apis),
        "context_window": context,
        "tool_calling": rng.random() < 0.4,
        "pricing_model": None if kind == "solution" else "per_token",
        "price": None if kind == "solution" else price,
        "royalty_bps": rng.randint(0, 5000),
    }
    version = {
        "version_id": f"regv_bench{index:012d}",
        "entry_id": entry_id,
        "version": "1.0.0",
        "major": 1,
        "minor": 0,
        "patch": 0,
        "prerelease": "",
        "spec": {"seeded": True},
        "pricing_model": row["pricing_model"],
        "price": row["price"],
        "royalty_bps": row["royalty_bps"],
        "changelog": "",
        "status": "active",
        "status_reason": None,
        "status_changed_at": None,
        "published_by": publisher,
        "published_at": NOW,
    }
    return row, version


def query_kinds(
    words: list[str],
) -> dict[str, Callable[[random.Random], tuple[str, SearchFilters]]]:
    """Query kinds by how much of the registry they match: the 30 most frequent words are in
    40-85 % of entries (stop words, in effect), words 30-300 in a few per cent."""
    broad, common, rare = words[:30], words[30:300], words[500:]
    return {
        "broad word": lambda r: (r.choice(broad), SearchFilters()),
        "common word": lambda r: (r.choice(common), SearchFilters()),
        "rare word": lambda r: (r.choice(rare), SearchFilters()),
        "two words": lambda r: (f"{r.choice(common)} {r.choice(common)}", SearchFilters()),
        "prefix": lambda r: (r.choice(common)[:4], SearchFilters()),
        "word + filters": lambda r: (
            r.choice(common),
            SearchFilters(kind="model", min_context_window=32768, max_price=Decimal("0.000002")),
        ),
    }


def measure(database_url: str, words: list[str], queries: int, rng: random.Random) -> None:
    engine = make_engine(database_url, read_only=True)  # as the endpoint's read sessions
    factory = make_session_factory(engine)
    kinds = query_kinds(words)
    timings: dict[str, list[float]] = {name: [] for name in kinds}
    cpu: dict[str, list[float]] = {name: [] for name in kinds}
    hits: dict[str, list[int]] = {name: [] for name in kinds}
    bounded: dict[str, int] = {name: 0 for name in kinds}  # searches whose total is a bound
    backends = _backends(engine)
    server_cpu = 0.0
    for round_ in range(queries + 20):
        if round_ == 20:
            server_cpu = -_cpu_of(backends)
        name = list(kinds)[round_ % len(kinds)]
        q, filters = kinds[name](rng)
        started, used = time.perf_counter(), time.process_time()
        with factory() as session:
            page = search(session, query=q, filters=filters, limit=20, offset=0)
            session.rollback()
        elapsed = (time.perf_counter() - started) * 1000
        if round_ >= 20:  # the first rounds warm the caches
            timings[name].append(elapsed)
            cpu[name].append((time.process_time() - used) * 1000)
            hits[name].append(page.total)
            bounded[name] += not page.total_exact
    server_cpu += _cpu_of(backends)
    engine.dispose()
    every = [t for values in timings.values() for t in values]
    every_cpu = [t for values in cpu.values() for t in values]
    print(
        f"{engine.dialect.name}: {len(every)} searches (page of 20 + facet counts over the best"
        f" {FACETS_OVER:,} hits); wall time, then this process's CPU time (on SQLite the whole"
        " search; on PostgreSQL the server's share is not in it)"
    )
    print(
        f"  all              p50 {_p(every, 50):7.2f} ms  p95 {_p(every, 95):7.2f} ms"
        f"  cpu p50 {_p(every_cpu, 50):6.2f} p95 {_p(every_cpu, 95):6.2f} ms"
    )
    for name, values in timings.items():
        print(
            f"  {name:<16} p50 {_p(values, 50):7.2f} ms  p95 {_p(values, 95):7.2f} ms"
            f"  cpu p50 {_p(cpu[name], 50):6.2f} p95 {_p(cpu[name], 95):6.2f} ms"
            f"  (median hits {int(statistics.median(hits[name])):,}"
            + (f"; a lower bound in {bounded[name]} searches)" if bounded[name] else ")")
        )
    if backends:
        print(
            f"  PostgreSQL's server processes: {server_cpu * 1000 / len(every):.2f} ms of CPU a"
            f" search on average ({len(backends)} connection(s), from /proc)"
        )


def _backends(engine: Any) -> list[int]:
    """The PostgreSQL server processes of the engine's connections, when they run on this
    machine (their CPU time is then read from /proc)."""
    pids: list[int] = []
    if engine.dialect.name == "postgresql":

        @event.listens_for(engine, "connect")
        def _seen(connection: Any, _record: Any) -> None:
            pid = connection.info.backend_pid
            if Path(f"/proc/{pid}/stat").exists():
                pids.append(pid)

    return pids


def _cpu_of(pids: list[int]) -> float:
    """Seconds of CPU (user and system) the processes have used so far."""
    ticks = os.sysconf("SC_CLK_TCK")
    used = 0
    for pid in pids:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        used += int(fields[11]) + int(fields[12])  # utime, stime (fields 14 and 15)
    return used / ticks


def _p(values: list[float], percentile: int) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * percentile / 100))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--entries", type=int, default=100_000)
    parser.add_argument("--queries", type=int, default=400)
    parser.add_argument("--database-url", default=None)
    parser.add_argument("--seed-only", action="store_true")
    parser.add_argument("--no-seed", action="store_true", help="search an already seeded one")
    args = parser.parse_args()
    directory = tempfile.mkdtemp(prefix="flow-memory-registry-bench-")
    database_url = args.database_url or f"sqlite:///{directory}/registry.db"
    rng = random.Random(24)
    words = vocabulary(rng) if args.no_seed else seed(database_url, args.entries, rng)
    if not args.seed_only:
        measure(database_url, words, args.queries, random.Random(7))


if __name__ == "__main__":
    main()
