"""Changes every server on one PostgreSQL database must hear of at once.

A change that gates routes (a credential reference revoked or rotated, an enrollment, a catalog,
capacity or list-price change) or revokes an API key is announced with ``NOTIFY`` inside the
transaction that makes it: PostgreSQL delivers it to every listening server when, and only if,
that transaction commits. Each server listens on a thread of its own (``Listener``) and forgets
what it kept of the change at once: the proxy's cached routes and the offers quotes keep (and
with them what its market writer kept), or the cached key.

SQLite has no such channel; there another process sees a change when what it kept expires
(route facts after a second, the proxy's routes after ``proxy_route_cache_seconds``, a key after
``KEY_CACHE_SECONDS``; a proxied call after a pause may still take a route up to three times
``proxy_route_cache_seconds`` old while its refresh runs: ``proxy.plans.PlanCache``). A
server that loses its listening connection forgets everything once it listens again: it may
have missed an announcement meanwhile.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping
from typing import Any

from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session

log = logging.getLogger("flow_memory.broadcast")

CHANNEL = "flow_memory_changes"
ROUTES = "routes"  # what decides a provider's route gate changed
KEY_REVOKED = "key_revoked"  # subject: the key id
_NOTIFY = text("SELECT pg_notify(:channel, :payload)")
WAIT_SECONDS = 0.5  # how long the listener waits for a notification before it looks up again
RETRY_SECONDS = 1.0


def announce(session: Session, topic: str, subject: str = "", *, channel: str = CHANNEL) -> None:
    """Announce a change to every server on this PostgreSQL database once the session's
    transaction commits (nothing on SQLite). A domain whose announcements are frequent gives
    them a ``channel`` of their own, so servers that do not care never hear them."""
    if session.get_bind().dialect.name != "postgresql":
        return
    session.execute(_NOTIFY, {"channel": channel, "payload": f"{topic}:{subject}"})


Handlers = Mapping[str, Callable[[str], None]]


class Listener:
    """Hears announcements on a thread of its own and runs the handler of each one's topic
    (with its subject); after (re)connecting, runs every handler with an empty subject."""

    def __init__(self, database_url: str, handlers: Handlers, *, channel: str = CHANNEL) -> None:
        url = make_url(database_url).set(drivername="postgresql")
        self._conninfo = url.render_as_string(hide_password=False)
        self._handlers = handlers
        self._channel = channel
        self._stopping = threading.Event()
        self.listening = threading.Event()  # set while it listens
        self.heard = 0
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(
            target=self._run, name=f"flow-memory-listener-{self._channel}", daemon=True
        )
        self._thread.start()

    def stop(self) -> None:
        """Stop listening. Not waited for: the thread ends (closing its connection) within
        ``WAIT_SECONDS``, and an app's shutdown need not wait that long."""
        self._stopping.set()
        self._thread = None

    def _run(self) -> None:
        import psycopg

        failing = False
        while not self._stopping.is_set():
            try:
                with psycopg.connect(self._conninfo, autocommit=True) as connection:
                    connection.execute(f"LISTEN {self._channel}")
                    self.listening.set()
                    if failing:
                        log.warning("listening for changes from other servers again")
                        failing = False
                    self._forget_everything()  # anything may have changed while not listening
                    while not self._stopping.is_set():
                        for note in connection.notifies(timeout=WAIT_SECONDS):
                            self._hear(note.payload)
            except Exception as error:
                self.listening.clear()
                if not failing:
                    log.error("not hearing changes from other servers: %s", _first_line(error))
                    failing = True
                self._stopping.wait(RETRY_SECONDS)
        self.listening.clear()

    def _hear(self, payload: str) -> None:
        topic, _, subject = payload.partition(":")
        handler = self._handlers.get(topic)
        if handler is None:
            return
        self.heard += 1
        try:
            handler(subject)
        except Exception:
            log.exception("handling a change announced by another server failed")

    def _forget_everything(self) -> None:
        for handler in self._handlers.values():
            try:
                handler("")
            except Exception:
                log.exception("forgetting what was kept failed")


def _first_line(error: Any) -> str:
    lines = str(error).strip().splitlines()
    return lines[0] if lines else type(error).__name__
