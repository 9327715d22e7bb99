"""The safety boundary: the dry-run envelope and the forbidden-material scanner.

Pure logic, no web or database imports. The HTTP guard in ``kit.guard`` calls ``find_forbidden``
on every request body and query string before anything is validated, stored or logged.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from functools import cache
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
# Adjacent word pairs that make a field name secret-like.
_SECRET_PAIRS = frozenset(
    {
        ("api", "key"),
        ("api", "keys"),
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
    ("hex_private_key", re.compile(r"(?<![0-9A-Za-z])0x[0-9a-fA-F]{64}(?![0-9A-Za-z])")),
    ("jwt", re.compile(r"eyJ[A-Za-z0-9_-]{4,}\.eyJ[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]{4,}")),
    ("bearer_token", re.compile(r"(?i)\b(?:bearer|basic|token)\s+[A-Za-z0-9._~+/=-]{16,}")),
    (
        "provider_api_key",
        re.compile(
            r"(?<![A-Za-z0-9])(?:"
            r"sk-[A-Za-z0-9_-]{16,}"
            r"|(?:sk|rk|pk)_live_[A-Za-z0-9]{16,}"
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
            r"|fm_[A-Za-z0-9_-]{24,}"
            r")"
        ),
    ),
    (
        "secret_assignment",
        re.compile(
            r"(?i)\b(?:api[_-]?key|secret|password|passwd|private[_-]?key|access[_-]?token)"
            r"\s*[:=]\s*(?!//)\S{8,}"
        ),
    ),
)

_WORD_SPLIT = re.compile(r"[^A-Za-z0-9]+|(?<=[a-z0-9])(?=[A-Z])")
_PHRASE_WORD = re.compile(r"[a-z]+")


def name_words(name: str) -> list[str]:
    """Split a field name into lowercase words: ``apiKey`` and ``api-key`` give ``[api, key]``."""
    return [w.lower() for w in _WORD_SPLIT.split(name) if w]


def normalized_name(name: str) -> str:
    return "_".join(name_words(name))


def secret_like_name(name: str) -> bool:
    """True when a field name says it holds a secret (``api_key``, ``clientSecret``, …)."""
    normalized = normalized_name(name)
    if normalized in _ALLOWED_NAMES:
        return False
    words = normalized.split("_")
    if any(word in _SECRET_WORDS for word in words):
        return True
    if words and words[-1] == "token":
        return True
    return any(pair in _SECRET_PAIRS for pair in zip(words, words[1:], strict=False))


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
    for kind, pattern in _VALUE_PATTERNS:
        if pattern.search(text):
            return kind
    if _looks_like_seed_phrase(text):
        return "seed_phrase"
    return None


def _looks_like_seed_phrase(text: str) -> bool:
    words = _PHRASE_WORD.findall(text.lower())
    if len(words) < 12:
        return False
    wordlist = _seed_words()
    # Any run of 12 or more consecutive wordlist words is treated as a recovery phrase.
    run = 0
    for word in words:
        run = run + 1 if word in wordlist else 0
        if run >= 12:
            return True
    return False


def find_forbidden(value: Any, path: str = "") -> Finding | None:
    """Walk a decoded JSON value and return the first forbidden material found, if any."""
    if isinstance(value, Mapping):
        for key, item in value.items():
            key_text = str(key)
            child = f"{path}.{key_text}" if path else key_text
            if is_safety_flag(key_text):
                if unsafe_flag(key_text, item):
                    return Finding(child, "unsafe_flag")
            elif secret_like_name(key_text):
                return Finding(child, "secret_field_name")
            elif (kind := secret_kind_in_text(key_text)) is not None:
                return Finding(child, kind)
            found = find_forbidden(item, child)
            if found is not None:
                return found
        return None
    if isinstance(value, list | tuple):
        for index, item in enumerate(value):
            found = find_forbidden(item, f"{path}[{index}]")
            if found is not None:
                return found
        return None
    if isinstance(value, str):
        kind = secret_kind_in_text(value)
        if kind is not None:
            return Finding(path or "body", kind)
    return None


def find_forbidden_in_query(pairs: Iterable[tuple[str, str]]) -> Finding | None:
    """Check query-string parameters the way body fields are checked."""
    for name, raw in pairs:
        found = find_forbidden({name: raw}, "query")
        if found is not None:
            return found
    return None
