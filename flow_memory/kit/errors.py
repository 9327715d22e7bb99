"""One error shape for the whole API: stable codes, HTTP status carried by the class."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar, Literal


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a request: the field it is in (None for the body as a whole), what
    is wrong, and its code. Never the value the caller sent."""

    field: str | None
    message: str
    code: str

    def read(self) -> dict[str, Any]:
        return {"field": self.field, "message": self.message, "code": self.code}


class FlowMemoryError(Exception):
    """Base for every error the API renders; subclasses fix the status and the code."""

    status_code: ClassVar[int] = 400
    code: ClassVar[str] = "bad_request"
    # Seconds a client should wait before trying again, sent as the retry-after header.
    retry_after: int | None = None
    # Every problem found in the request, the first included: answered as ``problems`` beside
    # the first, so that one round trip fixes every field (empty: the error has no such list).
    problems: tuple[Problem, ...] = ()

    def __init__(
        self,
        message: str,
        *,
        field: str | None = None,
        hint: str | None = None,
        code: str | None = None,
        status_code: int | None = None,
        problems: tuple[Problem, ...] = (),
    ) -> None:
        super().__init__(message)
        self.message = message
        self.field = field
        self.hint = hint
        if problems:
            self.problems = problems
        if code is not None:
            self.code = code  # type: ignore[misc]
        if status_code is not None:
            self.status_code = status_code  # type: ignore[misc]


class Unauthenticated(FlowMemoryError):
    status_code = 401
    code = "unauthenticated"


class Forbidden(FlowMemoryError):
    status_code = 403
    code = "missing_scope"


class NotFound(FlowMemoryError):
    status_code = 404
    code = "not_found"


class Conflict(FlowMemoryError):
    status_code = 409
    code = "conflict"


class Invalid(FlowMemoryError):
    status_code = 422
    code = "invalid_request"


class ForbiddenMaterial(FlowMemoryError):
    status_code = 422
    code = "forbidden_material"


class PayloadTooLarge(FlowMemoryError):
    status_code = 413
    code = "payload_too_large"


# Seconds a client waits before retrying a request the database could not serve: enough for a
# connection refused to turn into a server that answers again after a restart or a failover.
DATABASE_RETRY_AFTER_SECONDS = 2

# What became of a write the database failed under: nothing (it failed before its transaction
# committed), or unknown (it failed while committing: the commit may have landed). None for a
# read, which changes nothing.
Applied = Literal["not_applied", "may_have_applied"] | None

_DATABASE_UNAVAILABLE: dict[Applied, tuple[str, str]] = {
    None: (
        "the database is unavailable",
        "retry after the number of seconds in the retry-after header",
    ),
    "not_applied": (
        "the database is unavailable: the request was not applied",
        "send it again after the number of seconds in the retry-after header",
    ),
    "may_have_applied": (
        "the database became unavailable while the request was being committed: it may or may "
        "not have been applied",
        "look the record up before you retry, after the number of seconds in the retry-after "
        "header",
    ),
}


class DatabaseUnavailable(FlowMemoryError):
    """The database cannot be reached or used right now (an outage, not a bug): 503 with a
    retry-after header, and for a write whether it may have been applied."""

    status_code = 503
    code = "database_unavailable"

    def __init__(
        self, applied: Applied = None, *, retry_after: int = DATABASE_RETRY_AFTER_SECONDS
    ) -> None:
        message, hint = _DATABASE_UNAVAILABLE[applied]
        super().__init__(message, hint=hint)
        self.applied: Applied = applied
        self.retry_after = retry_after


class InsufficientCredit(FlowMemoryError):
    """An enforced ledger account's available credit does not cover what an action would
    take from it: the action is refused before it happens."""

    status_code = 402
    code = "insufficient_credit"
