"""Create, list, revoke and authenticate API keys."""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from flow_memory.keys.models import ApiKey
from flow_memory.kit.errors import Conflict, Invalid, NotFound
from flow_memory.kit.ids import new_id
from flow_memory.kit.scopes import ALL_SCOPES

KEY_PREFIX = "fm_"


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
        raise NotFound(f"no key {key_id}", field="key_id")
    if record.revoked_at is not None:
        raise Conflict(f"key {key_id} is already revoked", code="key_already_revoked")
    record.revoked_at = now
    session.flush()
    return record


def find_active_key(session: Session, secret: str) -> ApiKey | None:
    record = session.scalars(select(ApiKey).where(ApiKey.key_hash == hash_key(secret))).first()
    if record is None or record.revoked_at is not None:
        return None
    return record
