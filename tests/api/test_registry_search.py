"""Finding registry entries: ranked full-text search with filters and facets, compatibility
both ways with reasons, and solutions checked compatible when published."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from tests.api.test_registry import (
    REGISTRY,
    agent_body,
    assert_error,
    model_body,
    publish,
    publisher_headers,
)
from tests.factories import Headers


def _model(slug: str, **spec: Any) -> dict[str, Any]:
    body = model_body(slug, display_name=slug.split("/")[1].replace("-", " ").title())
    body["model"] = {**body["model"], **spec}
    return body


@pytest.fixture
def shelf(app: FastAPI, client: TestClient) -> Headers:
    """Three models and two agents from two publishers."""
    acme = publisher_headers(app)
    globex = publisher_headers(app, "globex")
    publish(client, acme, "models", model_body())  # chat, 32k, tools, swift
    publish(
        client,
        acme,
        "models",
        _model(
            "acme/tiny-embed",
            modality="embedding",
            compatible_api=["embeddings"],
            context_window=512,
            tool_calling=False,
            family="tiny",
        )
        | {"description": "Small embedding model for search", "tags": ["embedding"]},
    )
    publish(
        client,
        globex,
        "models",
        _model("globex/long-coder", context_window=200000, family="coder")
        | {
            "description": "Long context coding model",
            "license": "mit",
            "pricing": {"model": "per_token", "price": 0.000002},
        },
    )
    publish(client, acme, "agents", agent_body())
    publish(
        client,
        globex,
        "agents",
        agent_body(
            "globex/summariser",
            display_name="Summariser",
            description="Summarises long documents",
            tags=["summary"],
        )
        | {
            "agent": {
                "requirements": {"min_context_window": 100000, "families": ["coder", "swift"]}
            }
        },
    )
    return acme


def _search(client: TestClient, headers: Headers, **params: Any) -> Any:
    answer = client.get(f"{REGISTRY}/search", params=params, headers=headers)
    assert answer.status_code == 200, answer.text
    return answer.json()


def _slugs(result: Any) -> list[str]:
    return [hit["entry"]["slug"] for hit in result["results"]]


class TestSearch:
    def test_words_in_names_rank_above_words_in_descriptions(
        self, client: TestClient, shelf: Headers
    ) -> None:
        result = _search(client, shelf, q="coder")
        # "coder" is in globex/long-coder's name; the others only say "coding".
        assert _slugs(result)[0] == "globex/long-coder"
        ranks = [hit["rank"] for hit in result["results"]]
        assert ranks == sorted(ranks, reverse=True)

    def test_tags_and_descriptions_are_searched(self, client: TestClient, shelf: Headers) -> None:
        assert _slugs(_search(client, shelf, q="review")) == ["acme/reviewer"]
        assert _slugs(_search(client, shelf, q="documents")) == ["globex/summariser"]
        assert _slugs(_search(client, shelf, q="nothing-like-this")) == []

    def test_the_last_word_is_a_prefix(self, client: TestClient, shelf: Headers) -> None:
        assert _slugs(_search(client, shelf, q="summar")) == ["globex/summariser"]

    def test_filters_narrow_the_hits(self, client: TestClient, shelf: Headers) -> None:
        assert set(_slugs(_search(client, shelf, kind="agent"))) == {
            "acme/reviewer",
            "globex/summariser",
        }
        assert _slugs(_search(client, shelf, capability="embedding")) == ["acme/tiny-embed"]
        assert _slugs(_search(client, shelf, api="embeddings")) == ["acme/tiny-embed"]
        models = _search(client, shelf, kind="model", min_context_window=100000)
        assert _slugs(models) == ["globex/long-coder"]
        cheap = _search(client, shelf, kind="model", max_price="0.000001")
        assert set(_slugs(cheap)) == {"acme/swift-7b", "acme/tiny-embed"}
        assert set(_slugs(_search(client, shelf, license="mit"))) == {
            "acme/reviewer",
            "globex/long-coder",
            "globex/summariser",
        }
        assert set(_slugs(_search(client, shelf, publisher="globex", kind="model"))) == {
            "globex/long-coder"
        }
        tools = _search(client, shelf, kind="model", capability="tool_calling")
        assert set(_slugs(tools)) == {"acme/swift-7b", "globex/long-coder"}

    def test_facets_count_every_hit(self, client: TestClient, shelf: Headers) -> None:
        result = _search(client, shelf, limit=1)
        assert result["total"] == 5
        assert len(result["results"]) == 1
        facets = result["facets"]
        assert {f["value"]: f["count"] for f in facets["kind"]} == {"model": 3, "agent": 2}
        assert {f["value"]: f["count"] for f in facets["publisher"]} == {"acme": 3, "globex": 2}
        assert {f["value"]: f["count"] for f in facets["license"]} == {"apache-2.0": 2, "mit": 3}

    def test_an_entry_without_an_active_version_is_not_found(
        self, client: TestClient, shelf: Headers
    ) -> None:
        answer = client.post(
            f"{REGISTRY}/models/acme/swift-7b/versions/1.0.0/status",
            json={"status": "deprecated", "reason": "retired"},
            headers=shelf,
        )
        assert answer.status_code == 200, answer.text
        assert "acme/swift-7b" not in _slugs(_search(client, shelf, q="swift"))

    def test_query_syntax_is_only_words(self, client: TestClient, shelf: Headers) -> None:
        for q in ('"', "swift OR", "NEAR(a b)", "a:*", "*", "'); drop", "-swift"):
            _search(client, shelf, q=q)

    def test_bad_filters_are_refused(self, client: TestClient, shelf: Headers) -> None:
        for params, field in (
            ({"kind": "dataset"}, "kind"),
            ({"capability": "flying"}, "capability"),
            ({"max_price": "-1"}, "max_price"),
            ({"limit": "0"}, "limit"),
            ({"q": "x" * 201}, "q"),
        ):
            answer = client.get(f"{REGISTRY}/search", params=params, headers=shelf)
            assert_error(answer, 422, "invalid_request", f"query.{field}")


def _versions(client: TestClient, headers: Headers, slug: str, version: str, **spec: Any) -> None:
    body = {
        "version": version,
        "pricing": {"model": "per_token", "price": 0.0000005},
        "royalty_bps": 250,
        "model": {**model_body()["model"], **spec},
    }
    answer = client.post(f"{REGISTRY}/models/{slug}/versions", json=body, headers=headers)
    assert answer.status_code == 201, answer.text


def _status(client: TestClient, headers: Headers, slug: str, version: str, status: str) -> None:
    answer = client.post(
        f"{REGISTRY}/models/{slug}/versions/{version}/status",
        json={"status": status, "reason": "testing the index"},
        headers=headers,
    )
    assert answer.status_code == 200, answer.text


def _postings(app: FastAPI, slug: str) -> list[tuple[str, int, str | None]]:
    """The search index's rows of an entry: (word, impact, modality)."""
    from sqlalchemy import select

    from flow_memory.registry.models import RegistryEntry, RegistrySearchTerm

    t, e = RegistrySearchTerm, RegistryEntry
    query = (
        select(t.term, t.impact, t.modality)
        .join(e, e.doc_id == t.doc_id)
        .where(e.slug == slug)
        .order_by(t.term)
    )
    with app.state.engine.connect() as connection:
        return [(str(a), int(b), c) for a, b, c in connection.execute(query)]


def _held_by(app: FastAPI, word: str) -> int:
    """How many entries the index says hold a word (stemmed as the database stems it)."""
    from sqlalchemy import select

    from flow_memory.registry import search_index
    from flow_memory.registry.models import RegistrySearchWord

    with app.state.engine.connect() as connection:
        (stem,) = search_index.stems(connection, [word])[word]
        found = connection.execute(
            select(RegistrySearchWord.entries).where(RegistrySearchWord.term == stem)
        ).scalar()
    return int(found or 0)


class TestIndexStaysCurrent:
    """The index is written in the transaction of each publish and status change: an entry
    is found exactly while it is listed, once, with the facets of its listed version."""

    def test_publish_version_unlist_and_relist(
        self, app: FastAPI, client: TestClient, shelf: Headers
    ) -> None:
        slug = "acme/quasar-9"
        publish(client, shelf, "models", _model(slug) | {"description": "Zephyrine quasar"})
        found = _search(client, shelf, q="zephyrine")
        assert (_slugs(found), found["total"], found["total_exact"]) == ([slug], 1, True)
        first = _postings(app, slug)
        assert first and {modality for _, _, modality in first} == {"chat"}
        assert _held_by(app, "zephyrine") == 1

        _versions(client, shelf, slug, "1.1.0", modality="vision")  # a new listed version
        assert _postings(app, slug) == [(w, i, "vision") for w, i, _ in first]
        assert _slugs(_search(client, shelf, q="zephyrine", capability="vision")) == [slug]
        assert _search(client, shelf, q="zephyrine", capability="chat")["total"] == 0
        assert _held_by(app, "zephyrine") == 1

        _status(client, shelf, slug, "1.1.0", "yanked")  # 1.0.0 is listed again
        assert _slugs(_search(client, shelf, q="zephyrine", capability="chat")) == [slug]
        _status(client, shelf, slug, "1.0.0", "deprecated")  # nothing active: unlisted
        assert _postings(app, slug) == []
        assert _held_by(app, "zephyrine") == 0
        for q in ("zephyrine", "zephyr", "quasar zephyrine"):
            assert _search(client, shelf, q=q)["total"] == 0

        _status(client, shelf, slug, "1.0.0", "active")  # listed again
        assert _postings(app, slug) == first
        assert _slugs(_search(client, shelf, q="quasar zephyr")) == [slug]
        assert _held_by(app, "zephyrine") == 1

    def test_every_listed_entry_is_counted(
        self, app: FastAPI, client: TestClient, shelf: Headers
    ) -> None:
        assert _held_by(app, "model") == _search(client, shelf, q="model")["total"] == 3
        _status(client, shelf, "acme/tiny-embed", "1.0.0", "yanked")
        assert _held_by(app, "model") == _search(client, shelf, q="model")["total"] == 2


class TestRanking:
    def test_a_word_in_a_name_outranks_it_in_a_description(
        self, client: TestClient, shelf: Headers
    ) -> None:
        publish(client, shelf, "models", _model("acme/orbit-lens") | {"description": "A model"})
        publish(
            client,
            shelf,
            "models",
            _model("acme/plain-lens") | {"description": "A model for orbit tracking"},
        )
        assert _slugs(_search(client, shelf, q="orbit")) == ["acme/orbit-lens", "acme/plain-lens"]

    def test_a_rare_word_outweighs_a_common_one(self, client: TestClient, shelf: Headers) -> None:
        # Each holds one word in its name and the other in its description: the one whose name
        # holds the rarer word ranks first ("model" is in every model of the shelf).
        publish(
            client,
            shelf,
            "models",
            _model("acme/zebra-one") | {"description": "Fine model"},
        )
        publish(
            client,
            shelf,
            "models",
            _model("acme/model-one") | {"description": "Fine zebra"},
        )
        for q in ("zebra model", "model zebra"):
            ranked = _search(client, shelf, q=q)["results"]
            assert [hit["entry"]["slug"] for hit in ranked] == ["acme/zebra-one", "acme/model-one"]
            assert ranked[0]["rank"] > ranked[1]["rank"] > 0

    def test_every_word_must_be_found(self, client: TestClient, shelf: Headers) -> None:
        assert _slugs(_search(client, shelf, q="long coding")) == ["globex/long-coder"]
        assert _search(client, shelf, q="long embedding")["total"] == 0


class TestCompatibility:
    def test_an_agent_lists_the_models_that_fit_it(
        self, client: TestClient, shelf: Headers
    ) -> None:
        answer = client.get(f"{REGISTRY}/agents/acme/reviewer/compatible-models", headers=shelf)
        assert answer.status_code == 200, answer.text
        body = answer.json()
        assert body["subject"] == {"slug": "acme/reviewer", "version": "1.0.0"}
        assert [c["slug"] for c in body["compatible"]] == ["acme/swift-7b", "globex/long-coder"]

    def test_each_incompatible_candidate_says_why(self, client: TestClient, shelf: Headers) -> None:
        answer = client.get(
            f"{REGISTRY}/agents/acme/reviewer/compatible-models",
            params={"candidate": ["acme/tiny-embed", "acme/swift-7b@1.0.0", "acme/none"]},
            headers=shelf,
        )
        checked = {c["slug"]: c for c in answer.json()["checked"]}
        tiny = checked["acme/tiny-embed"]
        assert tiny["compatible"] is False
        assert [r["requirement"] for r in tiny["reasons"]] == [
            "apis",
            "min_context_window",
            "tool_calling",
        ]
        assert checked["acme/swift-7b"]["compatible"] is True
        assert checked["acme/none"]["reasons"][0]["requirement"] == "exists"

    def test_a_model_lists_the_agents_it_fits(self, client: TestClient, shelf: Headers) -> None:
        answer = client.get(
            f"{REGISTRY}/models/globex/long-coder/compatible-agents",
            params={"candidate": "globex/summariser"},
            headers=shelf,
        )
        body = answer.json()
        assert [c["slug"] for c in body["compatible"]] == ["acme/reviewer", "globex/summariser"]
        answer = client.get(
            f"{REGISTRY}/models/acme/swift-7b/compatible-agents",
            params={"candidate": "globex/summariser"},
            headers=shelf,
        )
        body = answer.json()
        assert [c["slug"] for c in body["compatible"]] == ["acme/reviewer"]
        reasons = body["checked"][0]["reasons"]
        assert [r["requirement"] for r in reasons] == ["min_context_window"]

    def test_unknown_subjects_are_404(self, client: TestClient, shelf: Headers) -> None:
        answer = client.get(f"{REGISTRY}/agents/acme/none/compatible-models", headers=shelf)
        assert_error(answer, 404, "not_found", "slug")
        answer = client.get(f"{REGISTRY}/agents/acme/swift-7b/compatible-models", headers=shelf)
        assert_error(answer, 404, "not_found", "slug")


def _solution(agent: str, model: str, slug: str = "acme/review-kit") -> dict[str, Any]:
    return {
        "slug": slug,
        "display_name": "Review kit",
        "description": "The reviewer agent on the Swift model, ready to deploy",
        "tags": ["coding"],
        "license": "mit",
        "royalty_bps": 100,
        "solution": {
            "agent": {"slug": agent, "version": "1.0.0"},
            "model": {"slug": model, "version": "1.0.0"},
            "configuration": {"system_prompt": "Review strictly."},
        },
    }


class TestSolutions:
    def test_a_compatible_pair_is_published_listed_and_searchable(
        self, client: TestClient, shelf: Headers
    ) -> None:
        body = publish(client, shelf, "solutions", _solution("acme/reviewer", "acme/swift-7b"))
        spec = body["version"]["spec"]
        assert spec["agent"]["slug"] == "acme/reviewer"
        assert spec["model"]["version"] == "1.0.0"
        listed = client.get(f"{REGISTRY}/solutions", headers=shelf).json()
        assert _slugs(listed) == ["acme/review-kit"]
        assert _slugs(_search(client, shelf, q="deploy")) == ["acme/review-kit"]
        page = client.get(f"{REGISTRY}/solutions/acme/review-kit", headers=shelf)
        assert page.json()["version"]["royalty_bps"] == 100

    def test_an_incompatible_pair_is_refused_with_every_reason(
        self, client: TestClient, shelf: Headers
    ) -> None:
        answer = client.post(
            f"{REGISTRY}/solutions",
            json=_solution("acme/reviewer", "acme/tiny-embed"),
            headers=shelf,
        )
        assert_error(answer, 422, "solution_incompatible", "solution.model")
        codes = [p["code"] for p in answer.json()["error"]["problems"]]
        assert codes == [
            "requirement_apis",
            "requirement_min_context_window",
            "requirement_tool_calling",
        ]

    def test_pins_must_exist_and_not_be_yanked(self, client: TestClient, shelf: Headers) -> None:
        answer = client.post(
            f"{REGISTRY}/solutions", json=_solution("acme/nobody", "acme/swift-7b"), headers=shelf
        )
        assert_error(answer, 422, "pin_unknown", "solution.agent")
        answer = client.post(
            f"{REGISTRY}/solutions", json=_solution("acme/swift-7b", "acme/swift-7b"), headers=shelf
        )
        assert_error(answer, 422, "pin_unknown", "solution.agent")
        client.post(
            f"{REGISTRY}/models/acme/swift-7b/versions/1.0.0/status",
            json={"status": "yanked", "reason": "broken"},
            headers=shelf,
        )
        answer = client.post(
            f"{REGISTRY}/solutions", json=_solution("acme/reviewer", "acme/swift-7b"), headers=shelf
        )
        assert_error(answer, 422, "pin_yanked", "solution.model")


@pytest.mark.parametrize(
    "params",
    [
        {"q": "coding"},
        {"q": "model", "kind": "model"},
        {"q": "cod", "limit": 2, "offset": 1},
        {"q": "model", "max_price": "0.000003", "license": "apache-2.0"},
        {"kind": "model"},
    ],
)
def test_facets_over_the_best_hits_count_those_hits_and_say_so(
    client: TestClient, shelf: Headers, monkeypatch: pytest.MonkeyPatch, params: dict[str, Any]
) -> None:
    """Up to FACETS_OVER hits the facets count every hit; beyond, the best FACETS_OVER only.
    The page is the same either way: ranked over every hit."""
    from flow_memory.registry import search

    every = _search(client, shelf, **params)
    assert every["total"] > 1
    assert every["total_exact"] is True
    assert (every["facets_exact"], every["facets_over"]) == (True, every["total"])
    ranked = _search(client, shelf, **{**params, "limit": 100, "offset": 0})
    monkeypatch.setattr(search, "FACETS_OVER", 1)
    best = _search(client, shelf, **params)
    assert best["results"] == every["results"]
    assert (best["facets_exact"], best["facets_over"]) == (False, 1)
    first = ranked["results"][0]
    assert best["facets"]["kind"] == [{"value": first["entry"]["kind"], "count": 1}]
    assert best["facets"]["publisher"] == [{"value": first["entry"]["publisher_id"], "count": 1}]
    if best["total_exact"]:
        assert best["total"] == every["total"]
    else:  # a lower bound: the hits read
        assert every["total"] >= best["total"] >= params.get("offset", 0) + len(best["results"])


def test_past_the_best_hits_the_total_is_counted_or_marked_a_lower_bound(
    client: TestClient, shelf: Headers, monkeypatch: pytest.MonkeyPatch
) -> None:
    """One word without filters is counted on both databases (the index keeps how many entries
    hold each word); with a filter, past the hits read, the total is a lower bound: those hits."""
    from flow_memory.registry import search

    every = _search(client, shelf, q="model")["total"]
    models = _search(client, shelf, q="model", kind="model")["total"]
    assert every >= models > 2
    monkeypatch.setattr(search, "FACETS_OVER", 1)
    answer = _search(client, shelf, q="model", limit=1)
    assert len(answer["results"]) == 1
    assert (answer["facets_exact"], answer["facets_over"]) == (False, 1)
    assert (answer["total"], answer["total_exact"]) == (every, True)
    filtered = _search(client, shelf, q="model", kind="model", limit=1)
    assert (filtered["total"], filtered["total_exact"]) == (2, False)  # the best 1, and 1 more


def _filter_postings(app: FastAPI, slug: str) -> set[tuple[int | None, Decimal | None]]:
    """The context window and price an entry's postings carry (migration 0018)."""
    from sqlalchemy import select

    from flow_memory.registry.models import RegistryEntry, RegistrySearchTerm

    t, e = RegistrySearchTerm, RegistryEntry
    query = select(t.context_window, t.price).join(e, e.doc_id == t.doc_id).where(e.slug == slug)
    with app.state.engine.connect() as connection:
        return {
            (window, None if price is None else Decimal(str(price)).normalize())
            for window, price in connection.execute(query)
        }


class TestReadingTheIndex:
    """What the search reads from its index alone: the filters its postings carry, a prefix's
    completions merged into one list per entry, and the other words of a query either sought
    per entry or read as a set."""

    def test_context_window_and_price_filters_follow_the_listed_version(
        self, app: FastAPI, client: TestClient, shelf: Headers
    ) -> None:
        slug = "acme/zephyr-window"
        publish(client, shelf, "models", _model(slug) | {"description": "Zephyrine windows"})
        assert _filter_postings(app, slug) == {(32768, Decimal("0.0000005"))}
        assert _search(client, shelf, q="zephyrine", min_context_window=100000)["total"] == 0

        body = {
            "version": "1.1.0",
            "pricing": {"model": "per_token", "price": 0.000003},
            "royalty_bps": 250,
            "model": {**model_body()["model"], "context_window": 200000},
        }
        answer = client.post(f"{REGISTRY}/models/{slug}/versions", json=body, headers=shelf)
        assert answer.status_code == 201, answer.text
        assert _filter_postings(app, slug) == {(200000, Decimal("0.000003"))}
        wide = _search(client, shelf, q="zephyrine", min_context_window=100000)
        assert _slugs(wide) == [slug]
        assert _search(client, shelf, q="zephyrine", max_price="0.0000029")["total"] == 0
        assert _slugs(_search(client, shelf, q="zephyrine", max_price="0.000003")) == [slug]

        _status(client, shelf, slug, "1.1.0", "yanked")  # 1.0.0's terms are listed again
        assert _filter_postings(app, slug) == {(32768, Decimal("0.0000005"))}
        assert _search(client, shelf, q="zephyrine", min_context_window=100000)["total"] == 0
        assert _slugs(_search(client, shelf, q="zephyrine", max_price="0.000001")) == [slug]

    def test_an_entry_holding_several_completions_is_one_hit(
        self, client: TestClient, shelf: Headers, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        from flow_memory.registry import search

        both = "acme/zorbax-zorbaxy"  # two completions of "zorba" in its name
        publish(client, shelf, "models", _model(both) | {"description": "A model"})
        publish(
            client, shelf, "models", _model("acme/plain-one") | {"description": "Zorbaxium tool"}
        )
        every = _search(client, shelf, q="zorba")
        assert (_slugs(every), every["total"], every["total_exact"]) == (
            [both, "acme/plain-one"],
            2,
            True,
        )
        # Reading as few rows as the hits wanted: the first two rows are both of one entry,
        # so more are read until the hits are there.
        monkeypatch.setattr(search, "FACETS_OVER", 1)
        pair = _search(client, shelf, q="zorba", limit=2)
        assert (pair["results"], pair["total"], pair["total_exact"]) == (every["results"], 2, True)
        first = _search(client, shelf, q="zorba", limit=1)
        assert first["results"] == every["results"][:1]
        assert first["total"] >= 2 and first["facets_over"] == 1

    def test_a_prefix_with_more_completions_than_named_finds_every_word_it_starts(
        self, client: TestClient, shelf: Headers, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        from flow_memory.registry import search

        publish(client, shelf, "models", _model("acme/cobalt-one") | {"description": "A model"})
        every = _search(client, shelf, q="model c", kind="model")
        assert "acme/cobalt-one" in _slugs(every)
        assert every["total_exact"] is True
        monkeypatch.setattr(search, "PREFIX_TERMS", 1)  # "c" now names one of its words
        for cost in (0.0, 1e9):  # "c" sought for each entry of "model", or read as a set
            monkeypatch.setattr(search, "SEEK_COST", {"sqlite": cost, "postgresql": cost})
            few = _search(client, shelf, q="model c", kind="model")
            assert set(_slugs(few)) == set(_slugs(every))
            assert few["total"] == every["total"]

    def test_other_words_sought_or_read_as_a_set_find_the_same(
        self, client: TestClient, shelf: Headers, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        from flow_memory.registry import search, search_sql

        queries = ("coding model", "model cod", "long cod", "chat coding assistants", "model c")
        found = {}
        for name, cost in (("sought", 0.0), ("set", 1e9)):
            monkeypatch.setattr(search, "SEEK_COST", {"sqlite": cost, "postgresql": cost})
            found[name] = [_search(client, shelf, q=q, kind="model") for q in queries]
        assert found["sought"] == found["set"]
        assert [len(answer["results"]) for answer in found["set"]] == [2, 2, 1, 1, 2]
        # Each shape of statement is built once and kept.
        built = search_sql.hits_sql.cache_info()
        _search(client, shelf, q="coding model", kind="model")
        assert search_sql.hits_sql.cache_info().hits == built.hits + 1
        assert search_sql.hits_sql.cache_info().misses == built.misses


def test_migration_0018_copies_context_window_and_price_into_existing_postings(
    tmp_path: Path,
) -> None:
    """Entries indexed before 0018 (0015 indexes with the columns its postings have) get their
    context window and price in their postings."""
    from sqlalchemy import insert, select

    from flow_memory.kit.db import make_engine
    from flow_memory.migrations import upgrade
    from flow_memory.registry import search_index
    from flow_memory.registry.domain import api_text
    from flow_memory.registry.models import RegistryEntry, RegistrySearchTerm

    url = f"sqlite:///{tmp_path / 'before_0018.db'}"
    upgrade(url, "0017")
    engine = make_engine(url)
    now = datetime(2026, 12, 7, tzinfo=UTC)
    rows = [
        {
            "entry_id": f"reg_m{index}",
            "doc_id": 100 + index,
            "kind": kind,
            "slug": f"acme/old-{index}",
            "publisher_id": "acme",
            "name": f"old-{index}",
            "display_name": "Old entry",
            "description": "Indexed before the filters were",
            "tags": [],
            "tag_text": "",
            "license": "mit",
            "published_by": "acme",
            "created_at": now,
            "updated_at": now,
            "listed": True,
            "latest_version": "1.0.0",
            "modality": None,
            "family": None,
            "api_text": api_text(["chat_completions"]),
            "context_window": window,
            "tool_calling": False,
            "pricing_model": None if price is None else "per_token",
            "price": price,
            "royalty_bps": 0,
        }
        for index, (kind, window, price) in enumerate(
            (("model", 8192, Decimal("0.000002")), ("solution", 131072, None))
        )
    ]
    try:
        with engine.begin() as connection:
            connection.execute(insert(RegistryEntry), rows)
            assert search_index.rebuild(connection) == 2
        engine.dispose()
        upgrade(url)
        t = RegistrySearchTerm
        with engine.connect() as connection:
            held = set(connection.execute(select(t.doc_id, t.context_window, t.price).distinct()))
    finally:
        engine.dispose()
    assert held == {(100, 8192, 0.000002), (101, 131072, None)}
