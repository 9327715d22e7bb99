"""Whose account pays for an identity: read once for the database's life in this process
(an identity's kind and creator never change)."""

from __future__ import annotations

import threading
import weakref
from collections.abc import Collection
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from flow_memory.identities.models import AgentIdentity
from flow_memory.kit.db import transaction_memo


def payer_of(session: Session, identity_id: str) -> str:
    """Whose account pays for and earns from what ``identity_id`` does: a bound agent's
    operator, anyone else itself (``payers_of`` for one)."""
    return payers_of(session, [identity_id])[identity_id]


def payers_of(session: Session, identity_ids: Collection[str]) -> dict[str, str]:
    """Whose account pays for each identity, those not known yet read in one query.

    An identity's kind and creator never change, and its id is drawn at random when it is
    registered, so no id is asked about before its identity exists: what was read is kept for
    the database's life in this process (``_LASTING``), not only for the transaction. The one
    exception is an identity this very transaction registered and has not written yet: the
    read misses it, and that answer is kept for the transaction alone."""
    known = transaction_memo(session, "payer_of")
    lasting = _lasting(session)
    found: dict[str, str] = {}
    missing: list[str] = []
    for identity_id in identity_ids:
        payer = known.get(identity_id) or lasting.get(identity_id)
        if payer is None:
            missing.append(identity_id)
        else:
            found[identity_id] = payer
    if missing:
        a = AgentIdentity
        query = select(a.agent_id, a.kind, a.creator_id).where(a.agent_id.in_(sorted(missing)))
        agents = {agent_id: (kind, creator) for agent_id, kind, creator in session.execute(query)}
        if len(lasting) + len(missing) > _LASTING_LIMIT:
            lasting.clear()
        for identity_id in missing:
            agent = agents.get(identity_id)
            payer = identity_id
            if agent is not None and agent[0] == "bound":
                payer = agent[1]
            if agent is not None or not _registering(session, identity_id):
                lasting[identity_id] = payer
            found[identity_id] = payer
    for identity_id, payer in found.items():
        known[identity_id] = payer
    return found


# Who pays for each identity asked about, per database (its engine): see ``payer_of``.
_LASTING: weakref.WeakKeyDictionary[Any, dict[str, str]] = weakref.WeakKeyDictionary()
_LASTING_LIMIT = 100_000
_LASTING_LOCK = threading.Lock()


def forget_all() -> None:
    """Forget what every database's identities were read to be (as after a restart)."""
    with _LASTING_LOCK:
        for known in list(_LASTING.values()):
            known.clear()


def _lasting(session: Session) -> dict[str, str]:
    engine = session.get_bind()
    found = _LASTING.get(engine)
    if found is None:
        with _LASTING_LOCK:
            found = _LASTING.setdefault(engine, {})
    return found


def _registering(session: Session, identity_id: str) -> bool:
    """Whether the session holds a new identity of this id, not yet written."""
    return any(isinstance(o, AgentIdentity) and o.agent_id == identity_id for o in session.new)
