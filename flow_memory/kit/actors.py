"""Who a key may act as: the one check every request field that names an actor passes.

A request field that names who acts (``buyer_id``, ``agent_id``, ``requested_by``, ``owner_id``)
must name the key's owner, or an identity that owner controls, unless the key holds
``inference:admin``; otherwise the request is refused with 403 ``identity_not_yours`` before it
changes anything. Such fields are declared with ``Actor`` so the OpenAPI document marks them
(``x-flow-memory-actor``) and a test can find every one.

The identities an owner controls besides itself (its bound agent identities) come from the
sources registered with ``register_identity_source``. They are read with the key, once per
lookup, and travel with the caller (``Principal.controls``): the check itself reads nothing,
so it runs alike in a route, in the order edge and in the market process. A source's answer is
kept as long as the key is (``flow_memory.keys.service.KEY_CACHE``): a change to what an owner
controls should clear that cache, as a revoke does.

A free agent that holds keys of its own acts only with them: no other key may name it, an
admin's included. The sources registered with ``register_self_governed_source`` name such
identities; they are read with keys that hold ``inference:admin`` and travel with the caller
(``Principal.self_governed``) as ``controls`` does.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Annotated, Protocol

from pydantic import Field
from sqlalchemy.orm import Session

from flow_memory.kit.errors import Forbidden
from flow_memory.kit.schemas import Identifier

if TYPE_CHECKING:
    from flow_memory.kit.deps import Principal

IDENTITY_NOT_YOURS = "identity_not_yours"
# The OpenAPI extension that marks a field naming who acts.
ACTOR_EXTENSION = "x-flow-memory-actor"

Actor = Annotated[
    Identifier | None,
    Field(
        description="Who acts: the key's owner when left out. It must be the key's owner or an "
        "identity that owner controls, unless the key holds inference:admin; otherwise the "
        "request is refused (403 identity_not_yours) and changes nothing.",
        json_schema_extra={ACTOR_EXTENSION: True},
    ),
]


class IdentitySource(Protocol):
    """The identities ``owner_id`` controls besides itself, read in ``session`` when the key
    ``key_id`` is looked up."""

    def __call__(self, session: Session, *, owner_id: str, key_id: str) -> Iterable[str]: ...


_SOURCES: list[IdentitySource] = []


def register_identity_source(source: IdentitySource) -> None:
    """Add a source of controlled identities (registering one twice adds it once)."""
    if source not in _SOURCES:
        _SOURCES.append(source)


def unregister_identity_source(source: IdentitySource) -> None:
    """Remove a source added by ``register_identity_source``."""
    if source in _SOURCES:
        _SOURCES.remove(source)


class SelfGovernedSource(Protocol):
    """The identities that act only with keys of their own, read in ``session``."""

    def __call__(self, session: Session) -> Iterable[str]: ...


_SELF_GOVERNED: list[SelfGovernedSource] = []


def register_self_governed_source(source: SelfGovernedSource) -> None:
    """Add a source of self-governed identities (registering one twice adds it once)."""
    if source not in _SELF_GOVERNED:
        _SELF_GOVERNED.append(source)


def unregister_self_governed_source(source: SelfGovernedSource) -> None:
    """Remove a source added by ``register_self_governed_source``."""
    if source in _SELF_GOVERNED:
        _SELF_GOVERNED.remove(source)


def self_governed_identities(session: Session, *, owner_id: str) -> frozenset[str]:
    """Every identity that acts only with its own keys, but ``owner_id`` itself."""
    found = {identity for source in _SELF_GOVERNED for identity in source(session)}
    found.discard(owner_id)
    return frozenset(found)


def controlled_identities(session: Session, *, owner_id: str, key_id: str) -> frozenset[str]:
    """Every identity the registered sources say the key's owner controls, itself aside."""
    if not _SOURCES:
        return frozenset()
    found = {
        identity
        for source in _SOURCES
        for identity in source(session, owner_id=owner_id, key_id=key_id)
    }
    found.discard(owner_id)
    return frozenset(found)


def ensure_may_act_as(principal: Principal, identity_id: str | None, *, field: str) -> None:
    """Refuse a request whose ``field`` names an identity the caller may not act as (None, a
    field left out, means the key's owner). The message never repeats the identity."""
    if identity_id is None or principal.may_act_as(identity_id):
        return
    raise Forbidden(
        f"{field} names an identity this key may not act as",
        field=field,
        code=IDENTITY_NOT_YOURS,
        hint=f"leave {field} out to act as the key's owner, name an identity that owner "
        "controls, or use a key with inference:admin (a free agent with keys of its own acts "
        "only with them)",
    )
