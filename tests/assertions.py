"""Assertions every API test shares: the safety envelope, success and error shapes."""

from __future__ import annotations

import json
import re
from typing import Any

from httpx import Response

SAFETY = {
    "dry_run_only": True,
    "funds_moved": False,
    "broadcast_allowed": False,
    "private_key_required": False,
    "live_trading_enabled": False,
    "legal_review_required": True,
    "compliance_review_required": True,
}


def assert_safety(body: dict[str, Any]) -> None:
    for name, value in SAFETY.items():
        assert body[name] is value, name


def assert_plain_numbers(response: Response) -> None:
    """Prices are JSON numbers in fixed-point notation: never strings, never exponents. The
    number literals are read by the JSON parser itself, so text inside a string (a result's
    hash such as ``"sha256:092e9…"``) is never taken for a number."""
    text = response.text

    def fixed_point(literal: str) -> float:
        assert "e" not in literal.lower(), f"{literal} in {text}"
        return float(literal)

    json.loads(text, parse_float=fixed_point)
    assert not re.search(r'"(unit_price|limit_unit_price|ask_unit_price|best_\w+)":"', text), text


def ok(response: Response, status: int = 200) -> dict[str, Any]:
    """A success body with the safety fields and plain-number prices."""
    assert response.status_code == status, response.text
    body: dict[str, Any] = response.json()
    assert body["ok"] is True
    assert_safety(body)
    assert_plain_numbers(response)
    return body


def error_body(
    response: Response, status: int, code: str, field: str | None = None
) -> dict[str, Any]:
    """An error body with the given status, code and (when given) field path."""
    assert response.status_code == status, response.text
    body: dict[str, Any] = response.json()
    assert body["ok"] is False
    assert_safety(body)
    assert body["error"]["code"] == code, body["error"]
    if field is not None:
        assert body["error"]["field"] == field, body["error"]
    return body


def error(response: Response, status: int, code: str, field: str | None = None) -> dict[str, Any]:
    """Like error_body, returning the ``error`` object."""
    detail: dict[str, Any] = error_body(response, status, code, field)["error"]
    return detail
