"""FastAPI dependencies shared by every router: session, clock, settings, principal."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.orm import Session, sessionmaker
from starlette.concurrency import run_in_threadpool

from flow_memory.keys.service import KEY_CACHE, KEY_PREFIX, KeyGrant, find_grant, hash_key
from flow_memory.kit.clock import Clock
from flow_memory.kit.errors import Applied, Forbidden, Invalid, NotFound, Unauthenticated
from flow_memory.kit.outage import database_unavailable, is_database_outage
from flow_memory.kit.scopes import ADMIN, ALL_SCOPES
from flow_memory.settings import Settings

SessionEndHook = Callable[[bool], None]


def on_session_end(session: Session, hook: SessionEndHook) -> None:
    """Run ``hook(committed)`` once the request's transaction has committed or rolled back."""
    session.info.setdefault("on_end", []).append(hook)


def _run_end_hooks(session: Session, committed: bool) -> None:
    hooks: list[SessionEndHook] = session.info.pop("on_end", [])
    for hook in reversed(hooks):
        hook(committed)


@contextmanager
def transaction(factory: Callable[[], Session]) -> Iterator[Session]:
    """One unit of work: commit on success, roll back on error, then run the end hooks.

    A database outage is raised as ``DatabaseUnavailable``, saying whether the work may have
    been applied: not when it failed before the commit began, perhaps when it failed in it."""
    session = factory()
    committed = False
    committing = False
    try:
        yield session
        committing = True
        session.commit()
        committed = True
    except BaseException as error:
        _roll_back(session, error)
        _raise_if_outage(
            error, session, applied="may_have_applied" if committing else "not_applied"
        )
        raise
    finally:
        _run_end_hooks(session, committed)
        session.close()


def _roll_back(session: Session, error: BaseException) -> None:
    """Roll back after ``error``; a rollback that fails for the same outage is let go, so the
    outage is what is reported."""
    try:
        session.rollback()
    except Exception:
        if not is_database_outage(error):
            raise


def _raise_if_outage(error: BaseException, session: Session, *, applied: Applied) -> None:
    """Raise ``DatabaseUnavailable`` in place of ``error`` when it is a database outage."""
    unavailable = database_unavailable(error, applied=applied, bind=session.get_bind())
    if unavailable is not None and unavailable is not error:
        raise unavailable from error


def get_session(request: Request) -> Iterator[Session]:
    """One transaction per request, committed here and nowhere else."""
    with transaction(request.app.state.session_factory) as session:
        yield session


@contextmanager
def read_session(factory: Callable[[], Session]) -> Iterator[Session]:
    """A session that only reads (on SQLite it never takes the write lock); an outage is
    raised as 503 ``database_unavailable``."""
    session = factory()
    try:
        yield session
    except BaseException as error:
        _roll_back(session, error)
        # It wrote nothing: a POST that only reads (a quote) was not applied.
        _raise_if_outage(error, session, applied="not_applied")
        raise
    else:
        session.rollback()
    finally:
        session.close()


def get_read_session(request: Request) -> Iterator[Session]:
    """A session for endpoints that only read."""
    with read_session(request.app.state.read_session_factory) as session:
        yield session


# The dependencies below that touch no database are coroutines: FastAPI runs a plain function
# dependency in its thread pool, a hop that costs more than the work itself.


async def refuse_unstorable_path_parameters(request: Request) -> None:
    """Path ids are compared in SQL, and PostgreSQL text cannot hold NUL: such an id is refused
    alike on every backend instead of failing in the database."""
    for name, value in request.path_params.items():
        if isinstance(value, str) and "\x00" in value:
            raise Invalid(
                f"{name} must not contain the NUL character (U+0000)",
                field=name,
                code="invalid_character",
            )


async def get_clock(request: Request) -> Clock:
    clock: Clock = request.app.state.clock
    return clock


async def get_settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


SessionDep = Annotated[Session, Depends(get_session, scope="function")]
ReadSessionDep = Annotated[Session, Depends(get_read_session, scope="function")]
ClockDep = Annotated[Clock, Depends(get_clock)]
SettingsDep = Annotated[Settings, Depends(get_settings)]

SCOPES_HEADER = "x-flow-memory-scopes"
# Declares the bearer scheme in the OpenAPI document (the docs page's Authorize button);
# the key itself is checked by _authenticate so every failure has Flow Memory's error shape.
_bearer = HTTPBearer(
    auto_error=False, scheme_name="FlowMemoryKey", description="A Flow Memory API key: fm_…"
)


@dataclass(frozen=True)
class Principal:
    """Who is calling: the key's owner, the scopes in force for this request, the identities
    the owner controls besides itself, and those that act only with keys of their own
    (``flow_memory.kit.actors``; read for admins' keys only)."""

    key_id: str
    owner_id: str
    scopes: frozenset[str]
    controls: frozenset[str] = frozenset()
    self_governed: frozenset[str] = frozenset()

    @property
    def is_admin(self) -> bool:
        return ADMIN in self.scopes

    def may_act_as(self, identity_id: str) -> bool:
        """Whether a request field may name ``identity_id`` as who acts: the owner itself, an
        identity it controls, or for an admin anyone but a free agent with keys of its own."""
        if identity_id == self.owner_id or identity_id in self.controls:
            return True
        return self.is_admin and identity_id not in self.self_governed

    def can_see(self, owner_id: str) -> bool:
        return self.is_admin or owner_id == self.owner_id

    def ensure_visible(self, owner_id: str, what: str) -> None:
        """Another owner's record is reported as absent, never as forbidden."""
        if not self.can_see(owner_id):
            raise NotFound(f"{what} not found")


def _lookup_grant(factory: sessionmaker[Session], secret: str) -> KeyGrant | None:
    # Keys are looked up outside the request's transaction, without taking a write lock.
    with factory() as session:
        try:
            return find_grant(session, secret)
        except Exception as error:
            # Nothing of the request has run yet: whatever it asks, it was not applied.
            _raise_if_outage(error, session, applied="not_applied")
            raise


# Lookups in flight by key hash: when a busy key's cache entry expires, the requests that
# miss it together share one database lookup instead of each queueing one in the thread pool.
# A request joins only a lookup begun since the last revoke (the cache's generation).
_LOOKUPS: dict[str, tuple[asyncio.Future[KeyGrant | None], int]] = {}


async def _look_up_once(
    factory: sessionmaker[Session], token: str, key_hash: str
) -> KeyGrant | None:
    loop = asyncio.get_running_loop()
    generation = KEY_CACHE.generation
    flight = _LOOKUPS.get(key_hash)
    if flight is not None and flight[1] == generation and flight[0].get_loop() is loop:
        lookup = flight[0]
    else:
        lookup = asyncio.ensure_future(run_in_threadpool(_lookup_grant, factory, token))
        _LOOKUPS[key_hash] = (lookup, generation)

        def finish(done: asyncio.Future[KeyGrant | None]) -> None:
            if _LOOKUPS.get(key_hash, (None, 0))[0] is done:
                del _LOOKUPS[key_hash]
            if not done.cancelled() and done.exception() is None:
                grant = done.result()
                if grant is not None:
                    KEY_CACHE.put(key_hash, grant, generation=generation)

        lookup.add_done_callback(finish)
    # Shielded: a caller that goes away does not cancel the lookup the others wait for.
    return await asyncio.shield(lookup)


async def _authenticate(request: Request) -> Principal:
    return await authenticate(
        request.headers.get("authorization", ""),
        request.headers.get(SCOPES_HEADER),
        request.app.state.read_session_factory,
    )


async def authenticate(
    authorization: str, narrowing: str | None, factory: sessionmaker[Session]
) -> Principal:
    """The caller of a request with these ``authorization`` and ``x-flow-memory-scopes`` header
    values (each the first one sent), looked up through ``factory`` when not cached."""
    scheme, _, token = authorization.partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token.startswith(KEY_PREFIX):
        raise Unauthenticated(
            "a Flow Memory API key is required",
            hint="send Authorization: Bearer fm_… (the demo prints one for each role)",
        )
    # A key checked in the last few seconds is trusted without a database round trip.
    key_hash = hash_key(token)
    record = KEY_CACHE.get(key_hash)
    if record is None:
        record = await _look_up_once(factory, token, key_hash)
    if record is None:
        raise Unauthenticated(
            "the API key is unknown or revoked", hint="create a key with `flow-memory keys create`"
        )
    scopes = record.scopes
    if narrowing is not None:
        asked = {s for s in narrowing.replace(",", " ").split() if s}
        unknown = sorted(asked - ALL_SCOPES)
        if unknown:
            raise Invalid(
                f"{SCOPES_HEADER} names unknown scopes: {', '.join(unknown)}",
                field=SCOPES_HEADER,
                code="invalid_scopes_header",
                hint=f"choose from {', '.join(sorted(ALL_SCOPES))}",
            )
        scopes = scopes & asked
    return Principal(
        key_id=record.key_id,
        owner_id=record.owner_id,
        scopes=scopes,
        controls=record.controls,
        self_governed=record.self_governed,
    )


def ensure_scopes(principal: Principal, any_of: tuple[str, ...]) -> None:
    """Refuse a caller that holds none of ``any_of`` (admin satisfies any)."""
    if not (principal.scopes & {*any_of, ADMIN}):
        needed = " or ".join(any_of)
        raise Forbidden(
            f"this endpoint needs the scope {needed}",
            field="scope",
            hint=f"use a key with {needed}; {SCOPES_HEADER} can only narrow a key's scopes",
        )


class RequireScopes:
    """A dependency that authenticates and demands one of ``any_of`` (admin satisfies any).

    The app runs it first through ``authenticate_first``; the route's own use then returns
    the caller found there."""

    def __init__(self, *any_of: str) -> None:
        self.any_of = any_of
        self.__name__ = "require_" + "_or_".join(s.split(":")[-1] for s in any_of)

    async def __call__(
        self,
        request: Request,
        _documented: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
    ) -> Principal:
        return await _authorize(request, self.any_of)


def require_scopes(*any_of: str) -> RequireScopes:
    """A dependency that authenticates and demands one of ``any_of`` (admin satisfies any)."""
    return RequireScopes(*any_of)


async def _authorize(request: Request, any_of: tuple[str, ...]) -> Principal:
    # The caller is looked up once a request: authenticate_first and the route share it.
    principal: Principal | None = getattr(request.state, "principal", None)
    if principal is None:
        principal = await _authenticate(request)
        request.state.principal = principal
    ensure_scopes(principal, any_of)
    return principal


def route_scopes(route: object) -> tuple[str, ...] | None:
    """The scopes a route demands (any one of them), or None for a route open to anyone."""
    dependant = getattr(route, "dependant", None)
    for dependency in getattr(dependant, "dependencies", ()):
        if isinstance(dependency.call, RequireScopes):
            return dependency.call.any_of
    return None


async def authorize_route(request: Request) -> Principal | None:
    """Authenticate the caller of the request's route and check its scopes, unless the route
    is open to anyone (None)."""
    any_of = route_scopes(request.scope.get("route"))
    return None if any_of is None else await _authorize(request, any_of)


async def authenticate_first(request: Request) -> None:
    """The app's first dependency: a route that needs a key checks it (401) and its scopes
    (403) before any of the route's parameters, dependencies or body is read, so what else is
    wrong with a request never answers ahead of them."""
    await authorize_route(request)
