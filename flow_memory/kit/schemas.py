"""Schema pieces every domain shares: the safety fields, the error body, bounded strings."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from pydantic import (
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StringConstraints,
    field_validator,
)
from pydantic_core import PydanticCustomError

from flow_memory.kit.safety import SAFETY_ENVELOPE


class RequestModel(BaseModel):
    """Base for request bodies: unknown fields are refused, strings are bounded, and every
    value must be storable as sent on both SQLite and PostgreSQL."""

    model_config = ConfigDict(extra="forbid", str_max_length=4096, frozen=True)

    @field_validator("*", mode="after")
    @classmethod
    def _storable(cls, value: Any) -> Any:
        return storable(value)


def storable(value: Any) -> Any:
    """Refuse what a database cannot hold and normalise what it holds differently.

    PostgreSQL text cannot contain NUL, so NUL is refused on every backend alike. Datetimes are
    stored in UTC: a naive one is refused, and one that leaves the calendar once converted
    (``9999-12-31T23:59:59-01:00``) is refused here instead of failing in the database layer."""
    if isinstance(value, str):
        if "\x00" in value:
            raise PydanticCustomError(
                "invalid_character", "text must not contain the NUL character (U+0000)"
            )
        return value
    if isinstance(value, datetime):
        if value.tzinfo is None:
            raise PydanticCustomError(
                "timezone_aware", "datetime must carry a timezone (Z for UTC)"
            )
        try:
            return value.astimezone(UTC)
        except OverflowError:
            raise PydanticCustomError(
                "datetime_out_of_range", "datetime is outside the representable range in UTC"
            ) from None
    if isinstance(value, list):
        return [storable(item) for item in value]
    if isinstance(value, dict):
        return {storable(key): storable(item) for key, item in value.items()}
    return value


class SafetyFields(BaseModel):
    """The seven dry-run safety fields; their values are fixed by the schema itself."""

    dry_run_only: Literal[True] = True
    funds_moved: Literal[False] = False
    broadcast_allowed: Literal[False] = False
    private_key_required: Literal[False] = False
    live_trading_enabled: Literal[False] = False
    legal_review_required: Literal[True] = True
    compliance_review_required: Literal[True] = True


assert SafetyFields().model_dump() == dict(SAFETY_ENVELOPE)


class ProblemRead(BaseModel):
    field: str | None = Field(description="The field's path, or null for the body as a whole")
    message: str
    code: str


class ErrorDetail(BaseModel):
    code: str
    message: str
    field: str | None = None
    hint: str | None = None
    problems: list[ProblemRead] | None = Field(
        default=None,
        description="On a request whose fields are at fault: every problem found, the first "
        "(this error's own code, field and message) included, so one round trip fixes them "
        "all. Absent on other errors.",
    )


class ErrorEnvelope(SafetyFields):
    ok: Literal[False] = False
    error: ErrorDetail


ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    status: {"model": ErrorEnvelope, "description": description}
    for status, description in {
        400: "Bad request",
        401: "No valid Flow Memory API key",
        403: "The key lacks the scope this endpoint needs (missing_scope), or a field names "
        "an identity the key may not act as (identity_not_yours)",
        404: "Not found (or owned by someone else)",
        409: "The record's state does not allow this",
        413: "Request body too large",
        422: "Invalid request or forbidden material",
        503: "The database or the market is unavailable for now: retry after the retry-after "
        "header's seconds (a write's message says whether it may have been applied)",
    }.items()
}
# What the safety guard can answer on any route, before a handler or auth runs.
GUARD_RESPONSES: dict[int | str, dict[str, Any]] = {
    status: ERROR_RESPONSES[status] for status in (413, 422)
}

Name = Annotated[str, StringConstraints(min_length=1, max_length=128, strip_whitespace=True)]
Text = Annotated[str, StringConstraints(max_length=512)]
Identifier = Annotated[
    str, StringConstraints(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9][A-Za-z0-9._:@/-]*$")
]
ProviderApi = Annotated[
    str, StringConstraints(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
]
CredentialPointer = Annotated[
    str,
    StringConstraints(max_length=256, pattern=r"^secret://[A-Za-z0-9][A-Za-z0-9._~/-]*$"),
    Field(description="An opaque reference resolved on the operator's side, never a secret value"),
]
Metadata = Annotated[dict[str, Any], Field(max_length=64)]

# A date-time (RFC 3339) begins with a whole date and a time. Pydantic alone would also read a
# number, or a string of one ("0.5"), as seconds since 1970, and a date alone as its midnight.
_DATE_TIME_START = re.compile(r"\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}")


def date_time_text(value: Any) -> Any:
    """Let only date-time text (or a datetime, or None) through to pydantic's parsing."""
    if value is None or isinstance(value, datetime):
        return value
    if isinstance(value, str) and _DATE_TIME_START.match(value):
        return value
    raise PydanticCustomError(
        "datetime_format",
        "must be a date-time such as 2026-06-17T00:00:00Z (a number is not a date-time)",
    )


# Every date-time a request carries, in a body or a query: text with a date, a time and a zone.
DateTime = Annotated[AwareDatetime, BeforeValidator(date_time_text)]
