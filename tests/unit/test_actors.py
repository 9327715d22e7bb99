"""Who a key may act as (flow_memory/kit/actors.py): the one check, and the sources of the
identities an owner controls."""

from __future__ import annotations

import pickle
from collections.abc import Iterable, Iterator

import pytest
from pydantic import BaseModel
from sqlalchemy.orm import Session

import flow_memory.app  # noqa: F401  (every domain's request models)
from flow_memory.kit import actors
from flow_memory.kit.actors import (
    ACTOR_EXTENSION,
    IDENTITY_NOT_YOURS,
    controlled_identities,
    ensure_may_act_as,
    register_identity_source,
    unregister_identity_source,
)
from flow_memory.kit.deps import Principal
from flow_memory.kit.errors import Forbidden
from flow_memory.kit.schemas import RequestModel
from flow_memory.kit.scopes import ADMIN, BUY

OWNER = Principal("key_1", "team-a", frozenset({BUY}), controls=frozenset({"agent-a"}))
# Field names that name who acts, in the product's vocabulary (DESIGN.md, "Identities").
ACTOR_NAMES = {"buyer_id", "agent_id", "requested_by", "owner_id", "requester_id", "bidder_id"}


class TestEnsureMayActAs:
    @pytest.mark.parametrize("identity", [None, "team-a", "agent-a"])
    def test_the_owner_and_what_it_controls_pass(self, identity: str | None) -> None:
        ensure_may_act_as(OWNER, identity, field="buyer_id")

    @pytest.mark.parametrize("identity", ["team-b", "agent-b", "agent-a2", "TEAM-A", ""])
    def test_anyone_else_is_refused_naming_the_field_not_the_identity(self, identity: str) -> None:
        with pytest.raises(Forbidden) as refused:
            ensure_may_act_as(OWNER, identity, field="requested_by")
        error = refused.value
        assert (error.status_code, error.code, error.field) == (
            403,
            IDENTITY_NOT_YOURS,
            "requested_by",
        )
        for text in (error.message, error.hint or ""):
            assert identity == "" or identity not in text

    def test_admin_acts_as_anyone_until_narrowed_away(self) -> None:
        admin = Principal("key_2", "operator", frozenset({ADMIN}))
        ensure_may_act_as(admin, "team-b", field="agent_id")
        narrowed = Principal("key_2", "operator", frozenset({BUY}))
        with pytest.raises(Forbidden):
            ensure_may_act_as(narrowed, "team-b", field="agent_id")

    def test_a_principal_crosses_to_the_market_process_with_what_it_controls(self) -> None:
        assert pickle.loads(pickle.dumps(OWNER)).may_act_as("agent-a")


@pytest.fixture(autouse=True)
def no_registered_sources(monkeypatch: pytest.MonkeyPatch) -> None:
    """The sources the app's domains register (agent identities) are set aside: these tests
    register their own."""
    monkeypatch.setattr(actors, "_SOURCES", [])
    monkeypatch.setattr(actors, "_SELF_GOVERNED", [])


@pytest.fixture
def sources() -> Iterator[list[actors.IdentitySource]]:
    added: list[actors.IdentitySource] = []
    yield added
    for source in added:
        unregister_identity_source(source)


SESSION = Session()  # the sources below read nothing


class TestSources:
    def test_no_source_controls_nothing(self) -> None:
        assert controlled_identities(SESSION, owner_id="team-a", key_id="key_1") == frozenset()

    def test_sources_are_united_and_the_owner_itself_left_out(
        self, sources: list[actors.IdentitySource]
    ) -> None:
        def bound(session: Session, *, owner_id: str, key_id: str) -> Iterable[str]:
            return ["agent-a", "agent-b", owner_id] if owner_id == "team-a" else []

        def issued(session: Session, *, owner_id: str, key_id: str) -> Iterable[str]:
            return ["agent-c"] if key_id == "key_1" else []

        for source in (bound, issued, bound):
            register_identity_source(source)
        sources.extend([bound, issued])
        assert controlled_identities(SESSION, owner_id="team-a", key_id="key_1") == {
            "agent-a",
            "agent-b",
            "agent-c",
        }
        assert controlled_identities(SESSION, owner_id="team-b", key_id="key_2") == frozenset()
        unregister_identity_source(bound)
        assert controlled_identities(SESSION, owner_id="team-a", key_id="key_1") == {"agent-c"}


def _request_models() -> Iterator[type[BaseModel]]:
    pending: list[type[BaseModel]] = [RequestModel]
    while pending:
        model = pending.pop()
        pending.extend(model.__subclasses__())
        yield model


def test_every_request_field_that_names_who_acts_is_an_actor_field() -> None:
    seen = set()
    for model in _request_models():
        for name, info in model.model_fields.items():
            if name in ACTOR_NAMES:
                seen.add(name)
                extra = info.json_schema_extra
                assert isinstance(extra, dict) and extra.get(ACTOR_EXTENSION), (
                    f"{model.__name__}.{name}: declare it with flow_memory.kit.actors.Actor"
                )
    assert seen >= {"buyer_id", "agent_id", "requested_by", "owner_id"}


class TestSelfGovernedIdentities:
    """A free agent with keys of its own acts only with them: an admin's key may not name it."""

    def test_an_admin_may_not_act_as_a_self_governed_identity(self) -> None:
        admin = Principal(
            "key_2", "operator", frozenset({ADMIN}), self_governed=frozenset({"agent_free"})
        )
        assert admin.may_act_as("anyone-else")
        assert not admin.may_act_as("agent_free")
        with pytest.raises(Forbidden) as refused:
            ensure_may_act_as(admin, "agent_free", field="buyer_id")
        assert refused.value.code == IDENTITY_NOT_YOURS
        assert "agent_free" not in refused.value.message
        itself = Principal("key_3", "agent_free", frozenset({BUY}))
        assert itself.may_act_as("agent_free")

    def test_the_self_governed_travel_with_the_caller(self) -> None:
        admin = Principal("k", "operator", frozenset({ADMIN}), self_governed=frozenset({"a"}))
        assert pickle.loads(pickle.dumps(admin)) == admin

    def test_the_sources_are_read_without_the_owner_itself(self) -> None:
        def source(session: Session) -> Iterable[str]:
            return ["agent_x", "agent_y"]

        actors.register_self_governed_source(source)
        try:
            found = actors.self_governed_identities(None, owner_id="agent_x")  # type: ignore[arg-type]
        finally:
            actors.unregister_self_governed_source(source)
        assert "agent_y" in found and "agent_x" not in found
