"""Walking a request: every field name, every value, and secrets split over two fields."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from flow_memory.kit.safety import credentials as shapes
from flow_memory.kit.safety.names import (
    holds_secret_value,
    is_safety_flag,
    normalized_name,
    secret_like_name,
    unsafe_flag,
)
from flow_memory.kit.safety.normalize import skeleton
from flow_memory.kit.safety.phrases import recovery_phrase, word_list
from flow_memory.kit.safety.text import secret_kind_in_text

# Stands in for a mapping key in a field path when the key itself holds secret material.
REDACTED_KEY = "<redacted>"


@dataclass(frozen=True)
class Finding:
    """Where forbidden material was found and what kind it is; never the value itself."""

    field: str
    kind: str


def find_forbidden(value: Any, path: str = "") -> Finding | None:
    """Walk a decoded JSON value and return the first forbidden material found, if any."""
    if isinstance(value, str):
        kind = secret_kind_in_text(value)
        return None if kind is None else Finding(path or "body", kind)
    if isinstance(value, Mapping):
        return _find_in_mapping(value, path)
    if isinstance(value, list | tuple):
        return _find_in_list(value, path, digest=False)
    return None


def find_forbidden_in_query(pairs: Iterable[tuple[str, str]]) -> Finding | None:
    """Check query-string parameters the way body fields are checked."""
    for name, raw in pairs:
        found = find_forbidden({name: raw}, "query")
        if found is not None:
            return found
    return None


def field_segment(key: str) -> str:
    """How a mapping key appears in a reported field path: never the secret it may hold."""
    return REDACTED_KEY if secret_kind_in_text(key) is not None else key


def _find_in_list(items: list[Any] | tuple[Any, ...], path: str, *, digest: bool) -> Finding | None:
    if word_list(list(items)):
        return Finding(path or "body", "seed_phrase")
    if shapes.key_array(items):
        return Finding(path or "body", "signing_key_array")
    for index, item in enumerate(items):
        if isinstance(item, str):
            kind = secret_kind_in_text(item, digest=digest)
            if kind is not None:
                return Finding(f"{path}[{index}]", kind)
        elif isinstance(item, Mapping | list | tuple):
            found = find_forbidden(item, f"{path}[{index}]")
            if found is not None:
                return found
    return None


def _find_in_mapping(value: Mapping[Any, Any], path: str) -> Finding | None:
    # Field paths are built only for what is reported or walked into: every request body passes
    # here, and most of its fields are short strings and numbers that hold nothing.
    parts: list[tuple[str, str]] = []  # the mapping's short token-like texts, for split secrets
    words: list[tuple[str, str]] = []  # its texts of words, for a recovery phrase split up
    for key, item in value.items():
        name = str(key)
        held, flag, secret_name, digest = _name_facts(name)
        if held is not None:
            # The key itself is the secret: name its place without repeating it. This comes
            # first, since a key such as "api_key=…" is also a secret-like name.
            return Finding(f"{path}.{REDACTED_KEY}" if path else REDACTED_KEY, held)
        here = f"{path}.{name}" if path else name
        if flag:
            if unsafe_flag(name, item):
                return Finding(here, "unsafe_flag")
        elif secret_name and holds_secret_value(name, item):
            return Finding(here, "secret_field_name")
        if isinstance(item, str):
            kind = secret_kind_in_text(item, digest=digest)
            if kind is not None:
                return Finding(here or "body", kind)
            if _PART.fullmatch(item):
                parts.append((here, item))
            elif _WORDS.fullmatch(item):
                words.append((here, item))
        elif isinstance(item, Mapping):
            found = _find_in_mapping(item, here)
            if found is not None:
                return found
        elif isinstance(item, list | tuple):
            found = _find_in_list(item, here, digest=digest)
            if found is not None:
                return found
    if len(words) > 1 and recovery_phrase(" ".join(text for _, text in words)):
        return Finding(words[-1][0], "split_secret")
    return _split_secret(parts)


# What may be one part of a secret split over fields: a short run of token characters; or a
# few words of a recovery phrase.
_PART = re.compile(r"[A-Za-z0-9_.~+/=-]{4,120}")
_WORDS = re.compile(r"[^\W\d_]+(?:\s+[^\W\d_]+){1,23}")
_MOST_PARTS = 24


def _split_secret(parts: list[tuple[str, str]]) -> Finding | None:
    """A credential whose start is in one field and whose rest is in another of the same
    object (in the order the fields were sent)."""
    if len(parts) < 2:
        return None
    parts = parts[:_MOST_PARTS]
    for first in range(len(parts) - 1):
        for second in range(first + 1, len(parts)):
            if _joined_holds_secret(parts[first][1], parts[second][1]):
                return Finding(parts[second][0], "split_secret")
    return None


_CLEAN_PAIRS: set[tuple[str, str]] = set()
_REMEMBERED_COUNT = 16_384


def _joined_holds_secret(head: str, tail: str) -> bool:
    # Pairs found clean are remembered (requests repeat them); a pair holding a secret never is.
    if (head, tail) in _CLEAN_PAIRS:
        return False
    joined = head + tail
    for match in shapes.VENDOR.finditer(joined):
        if match.lastgroup in shapes.SPLIT_KINDS and match.start() < len(head) < match.end():
            return True
    for match in shapes.HEX_KEY.finditer(joined):
        if match.start() < len(head) < match.end() and len(set(match.group().lower())) >= 8:
            return True
    if len(_CLEAN_PAIRS) >= _REMEMBERED_COUNT:
        _CLEAN_PAIRS.clear()
    _CLEAN_PAIRS.add((head, tail))
    return False


# Names that say a field holds a digest or a page cursor Flow Memory made: a 64-hex value
# there is a hash, a random-looking one an opaque position, not a key (its other shapes are
# still looked for).
_DIGEST_WORDS = frozenset(
    {"hash", "digest", "checksum", "sha", "sha1", "sha256", "sha512", "sha3", "etag", "md5",
     "blake2b", "commit", "fingerprint", "cursor", "integrity"}
)  # fmt: skip


_NAMES: dict[str, tuple[str | None, bool, bool, bool]] = {}


def _name_facts(name: str) -> tuple[str | None, bool, bool, bool]:
    """What a field name is: the raw secret it holds, a safety flag, a secret-like name, a
    digest's name (remembered for short names that hold no secret)."""
    facts = _NAMES.get(name)
    if facts is None:
        facts = _facts(name)
        if facts[0] is None and len(name) <= 128:
            if len(_NAMES) >= 4096:
                _NAMES.clear()
            _NAMES[name] = facts
    return facts


def _facts(name: str) -> tuple[str | None, bool, bool, bool]:
    digest = any(word in _DIGEST_WORDS for word in normalized_name(name).split("_"))
    held = secret_kind_in_text(name) if len(skeleton(name)) >= 12 else None
    return held, is_safety_flag(name), secret_like_name(name), digest
