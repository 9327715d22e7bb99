"""A JSON encoder that writes Decimal as a plain number (0.00000075, never "7.5E-7").

``render`` is the fast path for responses (orjson, UTF-8); ``dumps`` the pure-Python one it
falls back to for what orjson cannot write (integers beyond 64 bits). Both write Decimal and
datetime the same way; ``dumps`` escapes non-ASCII text, ``render`` writes it as UTF-8."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from decimal import Decimal
from enum import Enum
from functools import lru_cache
from typing import Any

import orjson
from pydantic import BaseModel

from flow_memory.kit.clock import isoformat_z
from flow_memory.kit.money import plain

_encode_str = json.encoder.encode_basestring_ascii


_RENDER_OPTIONS = orjson.OPT_NON_STR_KEYS | orjson.OPT_PASSTHROUGH_DATETIME


# A response's times are mostly its batch's one moment (created_at, updated_at, each fill's
# created_at): a UTC time is written once and remembered.
_utc_text = lru_cache(maxsize=1024)(isoformat_z)


def _render_default(value: Any) -> Any:
    if isinstance(value, Decimal):
        return orjson.Fragment(plain(value))
    if isinstance(value, datetime):
        return _utc_text(value) if value.tzinfo is UTC else isoformat_z(value)
    if isinstance(value, BaseModel):
        return value.model_dump(mode="python")
    raise TypeError(f"cannot encode {type(value).__name__} as JSON")


def render(value: Any) -> bytes:
    """Encode plain Python data as UTF-8 JSON bytes, with the rules of ``dumps``."""
    try:
        return orjson.dumps(value, default=_render_default, option=_RENDER_OPTIONS)
    except orjson.JSONEncodeError:
        # Integers beyond 64 bits, or a value ``dumps`` refuses with the precise error.
        return dumps(value).encode()


def dumps(value: Any) -> str:
    """Encode plain Python data (dict, list, str, int, float, bool, None, Decimal, datetime)."""
    parts: list[str] = []
    _encode(value, parts)
    return "".join(parts)


def _encode(value: Any, out: list[str]) -> None:
    if value is None:
        out.append("null")
    elif value is True:
        out.append("true")
    elif value is False:
        out.append("false")
    elif isinstance(value, str):
        out.append(_encode_str(value))
    elif isinstance(value, Decimal):
        out.append(plain(value))
    elif isinstance(value, int):
        out.append(int.__repr__(value))
    elif isinstance(value, float):
        out.append(json.dumps(value, allow_nan=False))
    elif isinstance(value, dict):
        out.append("{")
        first = True
        for key, item in value.items():
            if not first:
                out.append(",")
            first = False
            out.append(_encode_str(str(key)))
            out.append(":")
            _encode(item, out)
        out.append("}")
    elif isinstance(value, list | tuple):
        out.append("[")
        for index, item in enumerate(value):
            if index:
                out.append(",")
            _encode(item, out)
        out.append("]")
    elif isinstance(value, datetime):
        out.append(_encode_str(isoformat_z(value)))
    elif isinstance(value, BaseModel):
        _encode(value.model_dump(mode="python"), out)
    elif isinstance(value, Enum):
        _encode(value.value, out)
    else:
        raise TypeError(f"cannot encode {type(value).__name__} as JSON")
