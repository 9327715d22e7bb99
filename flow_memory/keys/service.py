"""Create, list, revoke and authenticate API keys."""

from __future__ import annotations

import hashlib
import secrets
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import event, select
from sqlalchemy.orm import Session

from flow_memory.keys.models import ApiKey
from flow_memory.kit.actors import controlled_identities, self_governed_identities
from flow_memory.kit.broadcast import KEY_REVOKED, announce
from flow_memory.kit.errors import Conflict, Invalid, NotFound
from flow_memory.kit.ids import new_id
from flow_memory.kit.scopes import ADMIN, ALL_SCOPES

KEY_PREFIX = "fm_"
# How long a server process trusts a key it has checked before asking the database again. A
# revoke in the same process takes effect at once; one made elsewhere (the CLI, another server
# process) within this many seconds.
KEY_CACHE_SECONDS = 2.0


@dataclass(frozen=True)
class IssuedKey:
    """A freshly created key: ``secret`` is shown once and never stored."""

    record: ApiKey
    secret: str


def hash_key(secret: str) -> str:
    # Keys carry 256 random bits, so a plain SHA-256 is enough; no slow KDF is needed.
    return hashlib.sha256(secret.encode()).hexdigest()


def create_key(
    session: Session, *, owner_id: str, scopes: Iterable[str], label: str, now: datetime
) -> IssuedKey:
    """Issue a new key for ``owner_id`` with the given scopes."""
    wanted = sorted(set(scopes))
    unknown = [s for s in wanted if s not in ALL_SCOPES]
    if unknown or not wanted:
        raise Invalid(
            f"unknown or missing scopes: {', '.join(unknown) or 'none given'}",
            field="scopes",
            hint=f"choose from {', '.join(sorted(ALL_SCOPES))}",
        )
    if not owner_id.strip():
        raise Invalid("owner_id must not be empty", field="owner_id")
    secret = KEY_PREFIX + secrets.token_urlsafe(32)
    record = ApiKey(
        key_id=new_id("key"),
        key_hash=hash_key(secret),
        key_preview=secret[:10] + "…",
        owner_id=owner_id,
        label=label,
        scopes=wanted,
        created_at=now,
    )
    session.add(record)
    session.flush()
    return IssuedKey(record=record, secret=secret)


def list_keys(session: Session, *, include_revoked: bool = False) -> list[ApiKey]:
    query = select(ApiKey).order_by(ApiKey.created_at, ApiKey.key_id)
    if not include_revoked:
        query = query.where(ApiKey.revoked_at.is_(None))
    return list(session.scalars(query))


def revoke_key(session: Session, *, key_id: str, now: datetime) -> ApiKey:
    record = session.get(ApiKey, key_id)
    if record is None:
        raise NotFound("no such key", field="key_id")
    if record.revoked_at is not None:
        raise Conflict("the key is already revoked", code="key_already_revoked")
    record.revoked_at = now
    session.flush()
    # Forget the key now and again once the revoke is committed, so that a lookup racing with
    # this transaction cannot put the still-active key back for a whole cache period.
    KEY_CACHE.forget(key_id)
    event.listen(session, "after_commit", lambda _: KEY_CACHE.forget(key_id), once=True)
    announce(session, KEY_REVOKED, key_id)  # other servers on the database forget it at once
    return record


def find_active_key(session: Session, secret: str) -> ApiKey | None:
    record = session.scalars(select(ApiKey).where(ApiKey.key_hash == hash_key(secret))).first()
    if record is None or record.revoked_at is not None:
        return None
    return record


@dataclass(frozen=True, slots=True)
class KeyGrant:
    """What an active key grants: whose it is, its scopes, the identities its owner controls
    besides itself, and for an admin's key the identities it may still not act as
    (``flow_memory.kit.actors``)."""

    key_id: str
    owner_id: str
    scopes: frozenset[str]
    controls: frozenset[str] = frozenset()
    self_governed: frozenset[str] = frozenset()


def find_grant(session: Session, secret: str) -> KeyGrant | None:
    """The grant of an active key, looked up in the database."""
    record = find_active_key(session, secret)
    if record is None:
        return None
    controls = controlled_identities(session, owner_id=record.owner_id, key_id=record.key_id)
    self_governed = (
        self_governed_identities(session, owner_id=record.owner_id)
        if ADMIN in record.scopes
        else frozenset()
    )
    return KeyGrant(
        record.key_id, record.owner_id, frozenset(record.scopes), controls, self_governed
    )


class KeyCache:
    """Recently checked active keys by hash, each trusted for ``ttl`` seconds.

    ``generation`` moves on every ``forget``: a lookup that began before a revoke passes the
    generation it saw to ``put``, which then refuses to cache what the lookup found."""

    def __init__(
        self,
        ttl: float = KEY_CACHE_SECONDS,
        *,
        clock: Callable[[], float] = time.monotonic,
        max_entries: int = 4096,
    ) -> None:
        self.ttl = ttl
        self.clock = clock
        self.max_entries = max_entries
        self.generation = 0
        self._entries: dict[str, tuple[KeyGrant, float]] = {}
        self._lock = threading.Lock()

    def get(self, key_hash: str) -> KeyGrant | None:
        entry = self._entries.get(key_hash)
        if entry is None:
            return None
        grant, until = entry
        if self.clock() >= until:
            self._entries.pop(key_hash, None)
            return None
        return grant

    def put(self, key_hash: str, grant: KeyGrant, *, generation: int) -> None:
        with self._lock:
            if generation != self.generation:
                return
            if len(self._entries) >= self.max_entries:
                self._entries.clear()
            self._entries[key_hash] = (grant, self.clock() + self.ttl)

    def forget(self, key_id: str) -> None:
        """Drop every cached entry of a key (it was revoked)."""
        with self._lock:
            self.generation += 1
            for key_hash in [h for h, (g, _) in self._entries.items() if g.key_id == key_id]:
                del self._entries[key_hash]

    def clear(self) -> None:
        with self._lock:
            self.generation += 1
            self._entries.clear()


KEY_CACHE = KeyCache()
