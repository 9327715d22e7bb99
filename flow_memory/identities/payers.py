"""Whose account pays for an identity: read once for the database's life in this process
(an identity's kind and creator never change)."""

from __future__ import annotations

import threading
import weakref
from typing import Any

from sqlalchemy.orm import Session

from flow_memory.identities import repository
from flow_memory.identities.models import AgentIdentity
from flow_memory.kit.db import transaction_memo


def payer_of(session: Session, identity_id: str) -> str:
    """Whose account pays for and earns from what ``identity_id`` does: a bound agent's
    operator, anyone else itself.

    An identity's kind and creator never change, and its id is drawn at random when it is
    registered, so no id is asked about before its identity exists: what was read is kept for
    the database's life in this process (``_LASTING``), not only for the transaction. The one
    exception is an identity this very transaction registered and has not written yet: the
    read misses it, and that answer is kept for the transaction alone."""
    known = transaction_memo(session, "payer_of")
    payer: str | None = known.get(identity_id)
    if payer is None:
        lasting = _lasting(session)
        payer = lasting.get(identity_id)
        if payer is None:
            agent = repository.get(session, identity_id)
            payer = identity_id
            if agent is not None and agent.kind == "bound":
                payer = agent.creator_id
            if agent is not None or not _registering(session, identity_id):
                if len(lasting) >= _LASTING_LIMIT:
                    lasting.clear()
                lasting[identity_id] = payer
        known[identity_id] = payer
    return payer


# Who pays for each identity asked about, per database (its engine): see ``payer_of``.
_LASTING: weakref.WeakKeyDictionary[Any, dict[str, str]] = weakref.WeakKeyDictionary()
_LASTING_LIMIT = 100_000
_LASTING_LOCK = threading.Lock()


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
