"""The canonical encoding of a job's result, and the SHA-256 that addresses it.

Canonical JSON, byte for byte:

- objects with their keys sorted by Unicode code point, no whitespace anywhere (``,`` and ``:``
  alone separate);
- text as JSON strings in UTF-8: ``"`` and ``\\`` escaped, control characters below U+0020
  escaped (``\\n``, ``\\t`` and the like by name, others as ``\\u00XX`` in lower-case hex), every
  other character written as itself (never ``\\uXXXX``);
- integers in decimal; other numbers in plain decimal notation, no exponent, no trailing zeros
  and no trailing point (``0.5``, ``2``: ``2.0`` and ``2`` encode alike), ``-0`` as ``0``;
- ``true``, ``false``, ``null``.

The result's hash is ``sha256:`` and the lower-case hex SHA-256 of those bytes (the algorithm
named, as content addresses name it: the hash reads as a digest wherever it goes, a path
included, never as 64 bare hex digits). The document hashed is
``{"job_id", "model", "output", "timings", "usage"}`` as uploaded, so one content addresses one
job's result."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from decimal import Decimal
from typing import Any

from flow_memory.kit.money import plain

_encode_text = json.encoder.encode_basestring


def canonical_bytes(document: Any) -> bytes:
    """``document`` (dicts, lists, text, integers, Decimals, booleans, None) in canonical JSON."""
    parts: list[str] = []
    _encode(document, parts)
    return "".join(parts).encode("utf-8")


PREFIX = "sha256:"


def result_hash(document: Any) -> str:
    """``sha256:`` and the SHA-256 of the document's canonical encoding, in lower-case hex."""
    return PREFIX + hashlib.sha256(canonical_bytes(document)).hexdigest()


def _encode(value: Any, out: list[str]) -> None:
    if value is None:
        out.append("null")
    elif value is True:
        out.append("true")
    elif value is False:
        out.append("false")
    elif isinstance(value, str):
        out.append(_encode_text(value))
    elif isinstance(value, int):
        out.append(int.__repr__(value))
    elif isinstance(value, Decimal):
        out.append(plain(value))
    elif isinstance(value, float):
        out.append(plain(Decimal(repr(value))))
    elif isinstance(value, Mapping):
        out.append("{")
        for index, key in enumerate(sorted(value)):
            if not isinstance(key, str):
                raise TypeError("object keys are text")
            if index:
                out.append(",")
            out.append(_encode_text(key))
            out.append(":")
            _encode(value[key], out)
        out.append("}")
    elif isinstance(value, list | tuple):
        out.append("[")
        for index, item in enumerate(value):
            if index:
                out.append(",")
            _encode(item, out)
        out.append("]")
    else:
        raise TypeError(f"cannot encode {type(value).__name__} canonically")
