"""The registry's pure rules: the compatibility of an agent with a model (property tests),
semantic version order, and how a search query reaches the engines."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from flow_memory.registry.domain import (
    AgentNeeds,
    ModelFacts,
    compatible,
    mismatches,
    parse_version,
)
from flow_memory.registry.search import terms

APIS = ("chat_completions", "responses", "messages", "embeddings", "chat_responses")
FAMILIES = ("swift", "coder", "tiny")
MODALITIES = ("chat", "text", "vision", "embedding")

models = st.builds(
    ModelFacts,
    modality=st.sampled_from(MODALITIES),
    apis=st.frozensets(st.sampled_from(APIS), min_size=1),
    context_window=st.integers(1, 300_000),
    tool_calling=st.booleans(),
    family=st.sampled_from(FAMILIES),
)
needs = st.builds(
    AgentNeeds,
    apis=st.frozensets(st.sampled_from(APIS)),
    min_context_window=st.integers(0, 300_000),
    tool_calling=st.booleans(),
    families=st.frozensets(st.sampled_from(FAMILIES)),
    modalities=st.frozensets(st.sampled_from(MODALITIES)),
)


class TestCompatibilityRule:
    @given(needs, models)
    def test_compatible_exactly_when_every_requirement_holds(
        self, agent: AgentNeeds, model: ModelFacts
    ) -> None:
        holds = (
            (not agent.apis or bool(agent.apis & model.apis))
            and model.context_window >= agent.min_context_window
            and (model.tool_calling or not agent.tool_calling)
            and (not agent.families or model.family in agent.families)
            and (not agent.modalities or model.modality in agent.modalities)
        )
        assert compatible(agent, model) is holds

    @given(needs, models)
    def test_each_reason_names_a_requirement_that_fails_and_none_twice(
        self, agent: AgentNeeds, model: ModelFacts
    ) -> None:
        failed = [m.requirement for m in mismatches(agent, model)]
        assert len(failed) == len(set(failed))
        for requirement in failed:
            relaxed = _without(agent, requirement)
            assert requirement not in [m.requirement for m in mismatches(relaxed, model)]

    @given(models)
    def test_an_agent_that_asks_nothing_fits_every_model(self, model: ModelFacts) -> None:
        assert compatible(AgentNeeds(), model)

    @given(needs, models, st.integers(0, 100_000))
    def test_a_larger_context_window_never_breaks_a_fit(
        self, agent: AgentNeeds, model: ModelFacts, more: int
    ) -> None:
        larger = ModelFacts(
            model.modality,
            model.apis,
            model.context_window + more,
            model.tool_calling,
            model.family,
        )
        if compatible(agent, model):
            assert compatible(agent, larger)

    @given(needs, models)
    def test_adding_tool_calling_or_an_api_never_breaks_a_fit(
        self, agent: AgentNeeds, model: ModelFacts
    ) -> None:
        richer = ModelFacts(
            model.modality, frozenset(APIS), model.context_window, True, model.family
        )
        if compatible(agent, model):
            assert compatible(agent, richer)


def _without(agent: AgentNeeds, requirement: str) -> AgentNeeds:
    relaxed = {
        "apis": {"apis": frozenset()},
        "min_context_window": {"min_context_window": 0},
        "tool_calling": {"tool_calling": False},
        "families": {"families": frozenset()},
        "modalities": {"modalities": frozenset()},
    }[requirement]
    return AgentNeeds(**{**agent.__dict__, **relaxed})


class TestVersionOrder:
    def test_semantic_precedence(self) -> None:
        ordered = [
            "1.0.0-alpha",
            "1.0.0-alpha.1",
            "1.0.0-alpha.beta",
            "1.0.0-beta",
            "1.0.0-beta.2",
            "1.0.0-beta.11",
            "1.0.0-rc.1",
            "1.0.0",
            "1.0.1",
            "1.2.0",
            "1.10.0",
            "2.0.0",
        ]
        assert sorted(ordered, key=parse_version) == ordered
        assert str(parse_version("1.0.0-rc.1")) == "1.0.0-rc.1"

    @pytest.mark.parametrize("text", ["1.0", "01.0.0", "1.0.0-", "v1.0.0", "1.0.0+build", ""])
    def test_not_versions(self, text: str) -> None:
        with pytest.raises(ValueError):
            parse_version(text)

    @given(st.tuples(st.integers(0, 999), st.integers(0, 999), st.integers(0, 999)))
    def test_a_release_follows_its_prereleases(self, core: tuple[int, int, int]) -> None:
        text = ".".join(map(str, core))
        assert parse_version(f"{text}-rc.1") < parse_version(text)


class TestQueryText:
    def test_only_words_reach_the_search(self) -> None:
        words = terms('Fast "coder" OR NEAR(x) -y *:')
        assert words == ["fast", "coder", "or", "near", "x", "y"]
        assert terms("chat_completions") == ["chat", "completions"]

    @given(st.text(max_size=200))
    def test_any_text_becomes_plain_words(self, query: str) -> None:
        words = terms(query)
        assert len(words) <= 8
        assert all(word.isalnum() for word in words)
