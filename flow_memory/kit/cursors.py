"""Page cursors of keyset-paged lists: a row's time and id, as base64url text without padding.

A cursor names the last row of a page; the next page starts after it. A cursor that is not one
an endpoint gave out is refused with 400 ``invalid_cursor``, never repeated back."""

from __future__ import annotations

import base64
import binascii
import re
from datetime import UTC, datetime

from flow_memory.kit.errors import Invalid

# What a cursor may look like (also the query parameter's schema pattern).
CURSOR_PATTERN = r"^[A-Za-z0-9_-]+$"
_CURSOR = re.compile(CURSOR_PATTERN)


def encode_cursor(when: datetime, row_id: str) -> str:
    raw = f"{when.astimezone(UTC).isoformat()}|{row_id}"
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, str]:
    """The time (in UTC) and id a cursor names."""
    try:
        if not _CURSOR.match(cursor):
            raise ValueError(cursor)  # b64decode would skip what is not base64url
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        moment, row_id = raw.split("|", 1)
        when = datetime.fromisoformat(moment)
        if when.tzinfo is None or not row_id:
            raise ValueError(cursor)
        return when.astimezone(UTC), row_id
    except (ValueError, OverflowError, UnicodeDecodeError, binascii.Error):
        raise Invalid(
            "cursor is not one this endpoint gave out",
            field="cursor",
            code="invalid_cursor",
            hint="pass next_cursor from the previous page unchanged",
        ) from None
