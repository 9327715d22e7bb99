"""Field names: names that say a field holds a secret, and safety flags with their safe values.

A name is judged as ``skeleton`` gives it (fullwidth and look-alike letters folded), split into
lowercase words (``apiKey``, ``api-key`` and ``API_KEY`` are all ``api key``).
"""

from __future__ import annotations

import re
from functools import lru_cache
from itertools import pairwise
from typing import Any

from flow_memory.kit.safety.normalize import skeleton

_WORD_SPLIT = re.compile(r"[^A-Za-z0-9]+|(?<=[a-z0-9])(?=[A-Z])")


def name_words(name: str) -> list[str]:
    """Split a field name into lowercase words: ``apiKey`` and ``api-key`` give ``[api, key]``."""
    return [w.lower() for w in _WORD_SPLIT.split(skeleton(name)) if w]


@lru_cache(maxsize=4096)
def normalized_name(name: str) -> str:
    return "_".join(name_words(name))


# Words that make a name secret-like wherever they appear in it.
_SECRET_WORDS = frozenset(
    {
        "password", "passwd", "passphrase", "passcode", "pwd", "secret", "secrets", "mnemonic",
        "signature", "signatures", "privkey", "apikey", "authorization", "keystore",
        "seedphrase", "cookie", "cookies", "credentials", "sessionid", "otp", "totp", "creds",
        "bearer",
    }
)  # fmt: skip
# Names secret-like only as the whole name (as a word they are common: "pass_rate").
_SECRET_ALONE = frozenset({"pass", "key", "keys", "auth", "session", "sid", "credential", "seed"})
# Run-together spellings (``clientsecret``, ``privatekey``, ``dbpassword``) found in the name with
# its separators removed; ``secretar…`` is left alone so ``secretary`` stays a plain name.
_SECRET_COMPACT = re.compile(
    r"apikey|privatekey|privkey|secretkey|accesstoken|authtoken|refreshtoken|sessiontoken"
    r"|sessionkey|bearertoken|seedphrase|mnemonic|password|passwd|passphrase|secret(?!ar)"
)
# A name ending in ``token`` is a credential unless the word before says it counts or places
# tokens (a unit of text, not a secret).
_TOKEN_NOT_SECRET_AFTER = frozenset(
    {"per", "next", "page", "prev", "previous", "continuation", "first", "last", "each", "max",
     "min", "num", "stop", "end", "start", "eos", "bos", "pad", "special", "unknown", "unk"}
)  # fmt: skip
# Adjacent word pairs that make a name secret-like.
_SECRET_PAIRS = frozenset(
    {
        ("api", "key"), ("api", "keys"), ("api", "token"), ("api", "tokens"),
        ("access", "token"), ("access", "tokens"), ("auth", "token"), ("auth", "tokens"),
        ("auth", "key"), ("auth", "header"), ("refresh", "token"), ("refresh", "tokens"),
        ("bearer", "token"), ("bearer", "tokens"), ("session", "token"), ("session", "tokens"),
        ("session", "id"), ("session", "key"), ("session", "cookie"), ("id", "token"),
        ("private", "key"), ("private", "keys"), ("secret", "key"), ("seed", "phrase"),
        ("seed", "words"), ("signing", "key"), ("signing", "material"), ("access", "key"),
        ("account", "key"), ("master", "key"), ("wallet", "key"), ("raw", "credential"),
        ("raw", "credentials"), ("signed", "tx"), ("signed", "transaction"),
        ("raw", "transaction"), ("client", "secret"), ("shared", "key"), ("connection", "string"),
    }
)  # fmt: skip
# Names allowed although they contain a secret-like word: opaque references, redaction flags.
_ALLOWED_NAMES = frozenset(
    {
        "credential_ref",
        "credential_ref_id",
        "new_credential_ref",
        "previous_credential_ref",
        "secret_value_redacted",
        "raw_credentials_accepted",
    }
)


@lru_cache(maxsize=4096)
def secret_like_name(name: str) -> bool:
    """True when a field name says it holds a secret (``api_key``, ``clientSecret``, …)."""
    normalized = normalized_name(name)
    if normalized in _ALLOWED_NAMES or not normalized:
        return False
    words = normalized.split("_")
    if any(word in _SECRET_WORDS for word in words) or normalized in _SECRET_ALONE:
        return True
    if _SECRET_COMPACT.search("".join(words)):
        return True
    if words[-1] == "token" and (len(words) == 1 or words[-2] not in _TOKEN_NOT_SECRET_AFTER):
        return True
    if words[-1] == "pass" and len(words) > 1:  # smtp_pass, db_pass (not pass_rate)
        return True
    return any(pair in _SECRET_PAIRS for pair in pairwise(words))


# Unit types that are also secret-like words: they key prices and capacity per unit.
_UNIT_NAMES = frozenset({"token"})
# A price written as exact decimal text ("0.00000075", "7.5E-7"): a fraction, never a secret.
_DECIMAL_TEXT = re.compile(
    r"[0-9]{0,20}\.[0-9]{1,40}(?:[eE][+-]?[0-9]{1,3})?|[0-9]{1,20}[eE]-[0-9]{1,3}"
)


def holds_secret_value(name: str, value: Any) -> bool:
    """Whether a secret-like name holds something a secret could be: text (other than a
    ``secret://`` reference, a placeholder or a price), a list of it, or an object of anything
    (``{"credentials": {…}}``, ``{"signing_material": {…}}``); not a number, a flag or nothing.
    A unit name keying prices (``{"token": 0.00000075}``, ``{"token": {…}}``) is marketplace
    data."""
    if isinstance(value, list | tuple):
        return any(holds_secret_value(name, item) for item in value)
    if isinstance(value, dict):
        return bool(value) and normalized_name(name) not in _UNIT_NAMES
    if not isinstance(value, str):
        return False
    text = value.strip()
    if not text or text.startswith("secret://") or _DECIMAL_TEXT.fullmatch(text):
        return False
    return text.lower() not in {"none", "null", "redacted", "<redacted>", "***", "n/a"}


# Flags whose only safe value is false: any other value (true, "yes", a list, an object) is
# refused.
_MUST_BE_FALSE = frozenset(
    {
        "broadcast_enabled", "broadcast_allowed", "broadcast", "broadcast_transaction",
        "live_trading_enabled", "live_trading", "live_execution", "live_execution_enabled",
        "live_mode", "live", "raw_credentials_allowed", "sensitive_signing_inputs_allowed",
        "private_key_required", "funds_moved", "funds_movement_enabled",
        "value_transfer_enabled", "transfer_funds", "move_funds", "production",
        "production_mode", "production_enabled", "production_execution",
        "production_execution_enabled", "direct_execution", "direct_execution_enabled",
        "execute_directly", "execution_enabled", "allow_live_execution", "signing_enabled",
        "sign_transactions", "sign_transaction", "requires_signature",
        "requires_sensitive_signing_material", "execute", "execute_now", "auto_execute",
        "autoexecute", "auto_execution", "immediate_execution", "send_transaction",
        "send_transactions", "submit_transaction", "sign_and_send", "mainnet", "use_mainnet",
        "real_money", "real_funds", "settle_on_chain", "on_chain_settlement",
        "execute_immediately", "skip_simulation", "skip_dry_run", "is_production", "is_live",
        "is_mainnet", "live_funds", "no_dry_run",
    }
)  # fmt: skip
# Flags whose only safe value is true: the safety envelope's, and asking for a dry run.
_MUST_BE_TRUE = frozenset(
    {
        "dry_run_required", "dry_run_only", "dry_run", "legal_review_required",
        "compliance_review_required", "simulate", "simulation", "simulated", "testnet",
        "sandbox",
    }
)  # fmt: skip
# Fields whose value must not name a live path.
_MODE_FIELDS = frozenset(
    {
        "execution_mode", "trading_mode", "settlement_mode", "mode", "environment", "env",
        "network", "chain_network", "deployment_environment", "run_mode", "chain", "chain_id",
        "stage",
    }
)  # fmt: skip
_LIVE_MODES = frozenset(
    {"live", "production", "prod", "mainnet", "main", "direct", "real", "realmoney", "real_money"}
)
_FALSY = frozenset({"false", "0", "no", "off", "disabled", "none", "null", ""})
_TRUTHY_ONLY = frozenset({"true", "1", "yes", "on", "enabled"})


def unsafe_flag(name: str, value: Any) -> bool:
    """True when a safety flag holds anything but its safe value (``broadcast_enabled: true``,
    ``legal_review_required: false``, ``network: mainnet``, …)."""
    normalized = normalized_name(name)
    if normalized in _MUST_BE_FALSE:
        return not _is_false(value)
    if normalized in _MUST_BE_TRUE:
        return not _is_true(value)
    if normalized in _MODE_FIELDS:
        return _names_live(value)
    return False


_MODE_WORDS = re.compile(r"[a-z]+")


def _names_live(value: Any) -> bool:
    """Whether a mode field's value names a live path (``"mainnet"``, ``"ethereum-mainnet"``,
    ``{"name": "mainnet"}``)."""
    if isinstance(value, str):
        words = _MODE_WORDS.findall(skeleton(value).lower())
        return any(word in _LIVE_MODES for word in words) and "testnet" not in words
    if isinstance(value, dict):
        return any(_names_live(item) for item in value.values())
    if isinstance(value, list):
        return any(_names_live(item) for item in value)
    return False


@lru_cache(maxsize=4096)
def is_safety_flag(name: str) -> bool:
    normalized = normalized_name(name)
    return normalized in _MUST_BE_FALSE or normalized in _MUST_BE_TRUE or normalized in _MODE_FIELDS


def _is_false(value: Any) -> bool:
    if value is None or value is False:
        return True
    if isinstance(value, bool):
        return False
    if isinstance(value, int | float):
        return value == 0
    if isinstance(value, str):
        return skeleton(value).strip().lower() in _FALSY
    if isinstance(value, list | dict):
        return not value
    return False


def _is_true(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, int | float):
        return value == 1
    if isinstance(value, str):
        return skeleton(value).strip().lower() in _TRUTHY_ONLY
    return False
