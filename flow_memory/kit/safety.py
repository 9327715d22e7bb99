"""The safety boundary: the dry-run envelope and the forbidden-material scanner.

Pure logic, no web or database imports. The HTTP guard in ``kit.http`` calls ``find_forbidden``
on every request body and query string before anything is validated, stored or logged.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from functools import cache, lru_cache
from itertools import pairwise
from types import MappingProxyType
from typing import Any

SAFETY_ENVELOPE: Mapping[str, bool] = MappingProxyType(
    {
        "dry_run_only": True,
        "funds_moved": False,
        "broadcast_allowed": False,
        "private_key_required": False,
        "live_trading_enabled": False,
        "legal_review_required": True,
        "compliance_review_required": True,
    }
)


@dataclass(frozen=True)
class Finding:
    """Where forbidden material was found and what kind it is; never the value itself."""

    field: str
    kind: str


# Flags whose only safe value is false: a truthy value is refused.
_MUST_BE_FALSE = frozenset(
    {
        "broadcast_enabled",
        "broadcast_allowed",
        "broadcast",
        "live_trading_enabled",
        "live_trading",
        "live_execution",
        "live_execution_enabled",
        "raw_credentials_allowed",
        "sensitive_signing_inputs_allowed",
        "private_key_required",
        "funds_moved",
        "funds_movement_enabled",
        "value_transfer_enabled",
        "transfer_funds",
        "production",
        "production_mode",
        "production_enabled",
        "production_execution",
        "production_execution_enabled",
        "direct_execution",
        "direct_execution_enabled",
        "execute_directly",
        "execution_enabled",
        "allow_live_execution",
        "signing_enabled",
        "sign_transactions",
        "requires_signature",
        "requires_sensitive_signing_material",
    }
)
# Flags whose only safe value is true: a falsy value is refused.
_MUST_BE_TRUE = frozenset({"dry_run_required", "dry_run_only", "dry_run"})
# Mode fields whose value must not name a live path.
_MODE_FIELDS = frozenset({"execution_mode", "trading_mode", "settlement_mode"})
_LIVE_MODES = frozenset({"live", "production", "prod", "mainnet", "direct", "real"})

_TRUTHY = frozenset({"true", "1", "yes", "on", "enabled"})
_FALSY = frozenset({"false", "0", "no", "off", "disabled"})

# Words that make a field name secret-like wherever they appear in it.
_SECRET_WORDS = frozenset(
    {
        "password",
        "passwd",
        "passphrase",
        "secret",
        "secrets",
        "mnemonic",
        "signature",
        "signatures",
        "privkey",
        "apikey",
        "authorization",
        "keystore",
        "seedphrase",
    }
)
# Run-together spellings (``clientsecret``, ``privatekey``, ``dbpassword``) found in the name
# with its separators removed; ``secretar…`` is left alone so ``secretary`` stays a plain name.
_SECRET_COMPACT = re.compile(
    r"apikey|privatekey|privkey|secretkey|accesstoken|authtoken|refreshtoken|sessiontoken"
    r"|bearertoken|seedphrase|mnemonic|password|passwd|passphrase|secret(?!ar)"
)
# A name ending in ``token`` is a credential unless the word before says it is a unit or a cursor.
_TOKEN_NOT_SECRET_AFTER = frozenset({"per", "next", "page", "prev", "previous", "continuation"})
# Unit types that are also secret-like words; see secret_like_field.
_UNIT_NAMES = frozenset({"token"})
# Adjacent word pairs that make a field name secret-like.
_SECRET_PAIRS = frozenset(
    {
        ("api", "key"),
        ("api", "keys"),
        ("api", "token"),
        ("api", "tokens"),
        ("access", "token"),
        ("access", "tokens"),
        ("auth", "token"),
        ("auth", "tokens"),
        ("refresh", "token"),
        ("refresh", "tokens"),
        ("bearer", "token"),
        ("bearer", "tokens"),
        ("session", "token"),
        ("session", "tokens"),
        ("id", "token"),
        ("private", "key"),
        ("private", "keys"),
        ("secret", "key"),
        ("seed", "phrase"),
        ("seed", "words"),
        ("signing", "key"),
        ("signing", "material"),
        ("access", "key"),
        ("session", "key"),
        ("wallet", "key"),
        ("raw", "credential"),
        ("raw", "credentials"),
        ("signed", "tx"),
        ("signed", "transaction"),
        ("raw", "transaction"),
    }
)
# Names allowed although they contain a secret-like word: opaque references and redaction flags.
_ALLOWED_NAMES = frozenset(
    {
        "credential_ref",
        "credential_ref_id",
        "new_credential_ref",
        "secret_value_redacted",
        "raw_credentials_accepted",
    }
)

_VALUE_PATTERNS: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("pem_private_key", re.compile(r"-----BEGIN (?:[A-Z0-9]+ )*PRIVATE KEY(?: BLOCK)?-----")),
    ("hex_private_key", re.compile(r"(?<![0-9A-Za-z])0[xX][0-9a-fA-F]{64}(?![0-9A-Za-z])")),
    ("jwt", re.compile(r"eyJ[A-Za-z0-9_-]{4,}\.eyJ[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]{4,}")),
    # The credential must look random (see _credential_shaped): "per token internationalization"
    # is prose, "Bearer 9fQ2…" is not.
    (
        "bearer_token",
        re.compile(r"(?i)\b(?:bearer|basic|token)\s+([A-Za-z0-9._~+/=-]{16,})"),
    ),
    (
        "provider_api_key",
        re.compile(
            r"(?<![A-Za-z0-9])(?:"
            r"sk-[A-Za-z0-9_-]{16,}"
            r"|(?:sk|rk|pk)_(?:live|test)_[A-Za-z0-9]{16,}"
            r"|AKIA[0-9A-Z]{16}"
            r"|ASIA[0-9A-Z]{16}"
            r"|AIza[0-9A-Za-z_-]{35}"
            r"|gh[pousr]_[A-Za-z0-9]{30,}"
            r"|github_pat_[A-Za-z0-9_]{30,}"
            r"|glpat-[A-Za-z0-9_-]{20,}"
            r"|xox[abposr]-[A-Za-z0-9-]{10,}"
            r"|hf_[A-Za-z0-9]{30,}"
            r"|gsk_[A-Za-z0-9]{30,}"
            r"|r8_[A-Za-z0-9]{30,}"
            # Flow Memory keys are 43 url-safe random characters, so mixed case: an identifier
            # such as fm_orchestrator_pool_primary_west is not one.
            r"|fm_(?=[A-Za-z0-9_-]*[A-Z])(?=[A-Za-z0-9_-]*[a-z])[A-Za-z0-9_-]{24,}"
            r")"
        ),
    ),
    (
        "secret_assignment",
        re.compile(
            # No \b: in DB_PASSWORD=… or client_secret=… the word follows an underscore.
            r"(?i)(?<![A-Za-z0-9])(?:api[_-]?key|secret|password|passwd|private[_-]?key"
            r"|access[_-]?token)"
            # An optional closing quote catches JSON or YAML text: "password": "…"; a value that
            # is a reference (secret://…) is what the API asks for.
            r"[\"']?\s*[:=]\s*(?![\"']?(?:secret:)?//)\S{8,}"
        ),
    ),
)

_SEED_PHRASE_WORDS = 12
# Stands in for a mapping key in a field path when the key itself holds secret material.
REDACTED_KEY = "<redacted>"

_WORD_SPLIT = re.compile(r"[^A-Za-z0-9]+|(?<=[a-z0-9])(?=[A-Z])")
_PHRASE_WORD = re.compile(r"[a-z]+")


def name_words(name: str) -> list[str]:
    """Split a field name into lowercase words: ``apiKey`` and ``api-key`` give ``[api, key]``."""
    return [w.lower() for w in _WORD_SPLIT.split(name) if w]


# The name checks are pure and see the same few field names on every request: remembered.
@lru_cache(maxsize=4096)
def normalized_name(name: str) -> str:
    return "_".join(name_words(name))


@lru_cache(maxsize=4096)
def secret_like_name(name: str) -> bool:
    """True when a field name says it holds a secret (``api_key``, ``clientSecret``, …)."""
    normalized = normalized_name(name)
    if normalized in _ALLOWED_NAMES:
        return False
    words = normalized.split("_")
    if any(word in _SECRET_WORDS for word in words):
        return True
    if _SECRET_COMPACT.search("".join(words)):
        return True
    if words[-1] == "token" and (len(words) == 1 or words[-2] not in _TOKEN_NOT_SECRET_AFTER):
        return True
    return any(pair in _SECRET_PAIRS for pair in pairwise(words))


# A price written as exact decimal text ("0.00000075", "7.5E-7"): a fraction, never a secret.
_DECIMAL_TEXT = re.compile(
    r"[0-9]{0,20}\.[0-9]{1,40}(?:[eE][+-]?[0-9]{1,3})?|[0-9]{1,20}[eE]-[0-9]{1,3}"
)


def secret_like_field(name: str, value: Any) -> bool:
    """``secret_like_name`` for a field holding ``value``: a unit name keying a number or an
    object (``{"token": 0.00000075}``, a price per token) is marketplace data, not a secret."""
    return secret_like_name(name) and not _unit_data(name, value)


def _unit_data(name: str, value: Any) -> bool:
    if normalized_name(name) not in _UNIT_NAMES:
        return False
    return (isinstance(value, int | float | Mapping) and not isinstance(value, bool)) or (
        isinstance(value, str) and _DECIMAL_TEXT.fullmatch(value) is not None
    )


def unsafe_flag(name: str, value: Any) -> bool:
    """True when a safety flag is set to its unsafe value (``broadcast_enabled: true``, …)."""
    normalized = normalized_name(name)
    if normalized in _MUST_BE_FALSE:
        return _is_truthy(value)
    if normalized in _MUST_BE_TRUE:
        return _is_falsy(value)
    if normalized in _MODE_FIELDS:
        return isinstance(value, str) and value.strip().lower() in _LIVE_MODES
    return False


@lru_cache(maxsize=4096)
def is_safety_flag(name: str) -> bool:
    normalized = normalized_name(name)
    return normalized in _MUST_BE_FALSE or normalized in _MUST_BE_TRUE or normalized in _MODE_FIELDS


def _is_truthy(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, int | float):
        return value != 0
    if isinstance(value, str):
        return value.strip().lower() in _TRUTHY
    return value is not None and not isinstance(value, list | dict)


def _is_falsy(value: Any) -> bool:
    if isinstance(value, bool):
        return not value
    if isinstance(value, int | float):
        return value == 0
    if isinstance(value, str):
        return value.strip().lower() in _FALSY
    return value is None


@cache
def _seed_words() -> frozenset[str]:
    from mnemonic import Mnemonic

    return frozenset(Mnemonic("english").wordlist)


def secret_kind_in_text(text: str) -> str | None:
    """Name the kind of raw secret a string holds, or None when it holds none."""
    # Short texts (field names, models, ids, enum values) repeat from request to request.
    return _short_text_kind(text) if len(text) <= _SHORT_TEXT else _text_kind(text)


_SHORT_TEXT = 128


def _text_kind(text: str) -> str | None:
    for kind, pattern in _VALUE_PATTERNS:
        if kind == "bearer_token":
            if any(_credential_shaped(m.group(1)) for m in pattern.finditer(text)):
                return kind
        elif pattern.search(text):
            return kind
    if _looks_like_seed_phrase(text):
        return "seed_phrase"
    return None


_short_text_kind = lru_cache(maxsize=8192)(_text_kind)


def _credential_shaped(candidate: str) -> bool:
    """True when a string looks machine-generated: letters with digits, or mixed case."""
    digits = sum(c.isdigit() for c in candidate)
    upper = sum(c.isupper() for c in candidate)
    lower = sum(c.islower() for c in candidate)
    return (digits > 0 and upper + lower > 0) or (upper >= 2 and lower >= 2)


def field_segment(key: str) -> str:
    """How a mapping key appears in a reported field path: never the secret it may hold."""
    return REDACTED_KEY if secret_kind_in_text(key) is not None else key


def _looks_like_seed_phrase(text: str) -> bool:
    words = _PHRASE_WORD.findall(text.lower())
    return len(words) >= _SEED_PHRASE_WORDS and _has_seed_run(words)


def _has_seed_run(words: Iterable[str]) -> bool:
    wordlist = _seed_words()
    # Any run of 12 or more consecutive wordlist words is treated as a recovery phrase.
    run = 0
    for word in words:
        run = run + 1 if word in wordlist else 0
        if run >= _SEED_PHRASE_WORDS:
            return True
    return False


def _is_seed_word_list(items: list[Any] | tuple[Any, ...]) -> bool:
    """True when a list spells a recovery phrase one word per item (``["legal", "winner", …]``)."""
    if len(items) < _SEED_PHRASE_WORDS:
        return False
    # An item that is not a single bare word breaks the run, as a non-wordlist word would.
    words = (
        item.strip().lower() if isinstance(item, str) and item.strip().isalpha() else ""
        for item in items
    )
    return _has_seed_run(words)


def find_forbidden(value: Any, path: str = "") -> Finding | None:
    """Walk a decoded JSON value and return the first forbidden material found, if any."""
    if isinstance(value, str):
        kind = secret_kind_in_text(value)
        return None if kind is None else Finding(path or "body", kind)
    if isinstance(value, Mapping):
        return _find_in_mapping(value, path)
    if isinstance(value, list | tuple):
        if _is_seed_word_list(value):
            return Finding(path or "body", "seed_phrase")
        for index, item in enumerate(value):
            if isinstance(item, str | Mapping | list | tuple):
                found = find_forbidden(item, f"{path}[{index}]")
                if found is not None:
                    return found
    return None


def _find_in_mapping(value: Mapping[Any, Any], path: str) -> Finding | None:
    # Field paths are built only for what is reported or walked into: every request body passes
    # here, and most of its fields are short strings and numbers that hold nothing.
    for key, item in value.items():
        key_text = str(key)
        kind, flag, secret_name = _name_facts(key_text)
        if kind is not None:
            # The key itself is the secret: name its place without repeating it. This comes
            # first, since a key such as "api_key=…" is also a secret-like name.
            return Finding(f"{path}.{REDACTED_KEY}" if path else REDACTED_KEY, kind)
        if flag:
            if unsafe_flag(key_text, item):
                return Finding(f"{path}.{key_text}" if path else key_text, "unsafe_flag")
        elif secret_name and not _unit_data(key_text, item):
            return Finding(f"{path}.{key_text}" if path else key_text, "secret_field_name")
        if isinstance(item, str):
            kind = secret_kind_in_text(item)
            if kind is not None:
                return Finding((f"{path}.{key_text}" if path else key_text) or "body", kind)
        elif isinstance(item, Mapping | list | tuple):
            found = find_forbidden(item, f"{path}.{key_text}" if path else key_text)
            if found is not None:
                return found
    return None


def _name_facts(name: str) -> tuple[str | None, bool, bool]:
    """What a field name is: the raw secret it holds, a safety flag, a secret-like name."""
    if len(name) <= _SHORT_TEXT:
        return _short_name_facts(name)
    return secret_kind_in_text(name), is_safety_flag(name), secret_like_name(name)


@lru_cache(maxsize=4096)
def _short_name_facts(name: str) -> tuple[str | None, bool, bool]:
    return secret_kind_in_text(name), is_safety_flag(name), secret_like_name(name)


def find_forbidden_in_query(pairs: Iterable[tuple[str, str]]) -> Finding | None:
    """Check query-string parameters the way body fields are checked."""
    for name, raw in pairs:
        found = find_forbidden({name: raw}, "query")
        if found is not None:
            return found
    return None
