"""Schema pieces every domain shares: the safety fields, the error body, bounded strings."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from flow_memory.kit.safety import SAFETY_ENVELOPE


class RequestModel(BaseModel):
    """Base for request bodies: unknown fields are refused, strings are bounded."""

    model_config = ConfigDict(extra="forbid", str_max_length=4096, frozen=True)


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


class ErrorDetail(BaseModel):
    code: str
    message: str
    field: str | None = None
    hint: str | None = None


class ErrorEnvelope(SafetyFields):
    ok: Literal[False] = False
    error: ErrorDetail


ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    status: {"model": ErrorEnvelope, "description": description}
    for status, description in {
        400: "Bad request",
        401: "No valid Flow Memory API key",
        403: "The key lacks the scope this endpoint needs",
        404: "Not found (or owned by someone else)",
        409: "The record's state does not allow this",
        413: "Request body too large",
        422: "Invalid request or forbidden material",
    }.items()
}

Name = Annotated[str, StringConstraints(min_length=1, max_length=128, strip_whitespace=True)]
Text = Annotated[str, StringConstraints(max_length=512)]
Identifier = Annotated[
    str, StringConstraints(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9][A-Za-z0-9._:@/-]*$")
]
CredentialPointer = Annotated[
    str,
    StringConstraints(max_length=256, pattern=r"^secret://[A-Za-z0-9][A-Za-z0-9._~/-]*$"),
    Field(description="An opaque reference resolved on the operator's side, never a secret value"),
]
Metadata = Annotated[dict[str, Any], Field(max_length=64)]
