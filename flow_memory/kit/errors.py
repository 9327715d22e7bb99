"""One error shape for the whole API: stable codes, HTTP status carried by the class."""

from __future__ import annotations

from typing import ClassVar


class FlowMemoryError(Exception):
    """Base for every error the API renders; subclasses fix the status and the code."""

    status_code: ClassVar[int] = 400
    code: ClassVar[str] = "bad_request"

    def __init__(
        self,
        message: str,
        *,
        field: str | None = None,
        hint: str | None = None,
        code: str | None = None,
        status_code: int | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.field = field
        self.hint = hint
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
