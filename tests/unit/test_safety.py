"""The forbidden-material scanner, against a corpus of refused material and allowed look-alikes.

Every secret here is fake and built at run time from a seeded generator, so this file holds no
credential-shaped string a secret scanner could mistake for a real one. The API suite
(``tests/api/test_safety_guard.py``) sends the same corpus through the HTTP guard.
"""

from __future__ import annotations

import base64
import json
import random
import string
from dataclasses import dataclass
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from mnemonic import Mnemonic

from flow_memory.kit.safety import (
    REDACTED_KEY,
    SAFETY_ENVELOPE,
    Finding,
    find_forbidden,
    find_forbidden_in_query,
    is_safety_flag,
    name_words,
    secret_kind_in_text,
    secret_like_name,
    unsafe_flag,
)

_RNG = random.Random(20260617)
_ALNUM = string.ascii_letters + string.digits
_UPPER_DIGITS = string.ascii_uppercase + string.digits
_URLSAFE = _ALNUM + "-_"
_HEX = string.hexdigits[:16]
_B64 = _ALNUM + "+/"
_BIP39 = Mnemonic("english")

NAME_KIND = "secret_field_name"
FLAG_KIND = "unsafe_flag"
VALUE_KEY = "note"  # the neutral field a secret value is placed under


def _chars(alphabet: str, length: int) -> str:
    return "".join(_RNG.choice(alphabet) for _ in range(length))


def _lower(length: int) -> str:
    return _chars(string.ascii_lowercase, length)


def _b64url(document: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(document).encode()).decode().rstrip("=")


def _jwt() -> str:
    header = _b64url({"alg": "HS256", "typ": "JWT"})
    claims = _b64url({"sub": f"user-{_lower(8)}", "iat": 1781654400, "scope": "inference"})
    return f"{header}.{claims}.{_chars(_URLSAFE, 43)}"


def _seed_words(count: int) -> list[str]:
    entropy = bytes(_RNG.getrandbits(8) for _ in range(count * 4 // 3))
    return _BIP39.to_mnemonic(entropy).split()


@dataclass(frozen=True)
class ForbiddenCase:
    """Material refused as ``kind`` when ``value`` is sent under the field ``key``.

    ``needle`` is a single-line part of the material that must never be stored, logged or
    echoed (None for flags, whose values are plain booleans and numbers)."""

    id: str
    key: str
    value: Any
    kind: str
    needle: str | None

    @property
    def by_value(self) -> bool:
        """True when the value itself is the secret (any field name would be refused)."""
        return self.kind not in (NAME_KIND, FLAG_KIND)

    @property
    def query_value(self) -> str | None:
        """The value as a query-string parameter, or None when it cannot be one."""
        if isinstance(self.value, bool):
            return "true" if self.value else "false"
        if isinstance(self.value, int | str):
            return str(self.value)
        return None


def _value(case_id: str, value: Any, kind: str, needle: str | None = None) -> ForbiddenCase:
    if needle is None and isinstance(value, str):
        needle = value
    return ForbiddenCase(case_id, VALUE_KEY, value, kind, needle)


def _pem(label: str) -> ForbiddenCase:
    body = _chars(_B64, 64)
    text = f"-----BEGIN {label}-----\n{body}\n{_chars(_B64, 40)}==\n-----END {label}-----\n"
    return _value(f"pem-{label.lower().replace(' ', '-')}", text, "pem_private_key", body)


def _seed_phrase_cases() -> list[ForbiddenCase]:
    cases = [
        _value(f"seed-phrase-{n}-words", " ".join(_seed_words(n)), "seed_phrase")
        for n in (12, 15, 18, 21, 24)
    ]
    words = _seed_words(12)
    cases.append(_value("seed-phrase-upper", " ".join(words).upper(), "seed_phrase"))
    words = _seed_words(12)
    cases.append(_value("seed-phrase-commas", ", ".join(words), "seed_phrase"))
    words = _seed_words(12)
    numbered = " ".join(f"{i}. {word}" for i, word in enumerate(words, 1))
    cases.append(_value("seed-phrase-numbered", numbered, "seed_phrase"))
    # One word per line leaves no single-line part worth searching for: no needle.
    lines = "\n".join(_seed_words(24))
    cases.append(ForbiddenCase("seed-phrase-lines", VALUE_KEY, lines, "seed_phrase", None))
    words = _seed_words(12)
    sentence = f"my wallet recovery words are {' '.join(words)} please keep them safe"
    cases.append(_value("seed-phrase-in-sentence", sentence, "seed_phrase", " ".join(words)))
    words = _seed_words(12)
    cases.append(_value("seed-phrase-as-list", words, "seed_phrase"))
    return cases


def _secret_value_cases() -> list[ForbiddenCase]:
    bearer = _chars(_ALNUM, 40)
    jwt, bearer_jwt, sentence_jwt = (_jwt() for _ in range(3))
    fm_key = "fm_" + _chars(_URLSAFE, 43)
    fm_bearer = "fm_" + _chars(_URLSAFE, 43)
    json_password = _chars(_ALNUM, 18)
    hex_key = _chars(_HEX, 64)
    basic = base64.b64encode(f"operator:{_chars(_ALNUM, 18)}".encode()).decode()
    return [
        _value("openai-style-key", "sk-" + _chars(_ALNUM, 48), "provider_api_key"),
        _value("project-key", "sk-proj-" + _chars(_URLSAFE, 74), "provider_api_key"),
        _value("service-account-key", "sk-svcacct-" + _chars(_URLSAFE, 60), "provider_api_key"),
        _value("messages-api-key", "sk-ant-api03-" + _chars(_URLSAFE, 93), "provider_api_key"),
        _value("aws-access-key-id", "AKIA" + _chars(_UPPER_DIGITS, 16), "provider_api_key"),
        _value("aws-session-key-id", "ASIA" + _chars(_UPPER_DIGITS, 16), "provider_api_key"),
        _value("google-api-key", "AIza" + _chars(_URLSAFE, 35), "provider_api_key"),
        _value("github-classic-token", "ghp_" + _chars(_ALNUM, 36), "provider_api_key"),
        _value("github-oauth-token", "gho_" + _chars(_ALNUM, 36), "provider_api_key"),
        _value("github-app-token", "ghs_" + _chars(_ALNUM, 36), "provider_api_key"),
        _value(
            "github-fine-grained-token",
            "github_pat_" + _chars(_ALNUM, 22) + "_" + _chars(_ALNUM, 59),
            "provider_api_key",
        ),
        _value("gitlab-token", "glpat-" + _chars(_URLSAFE, 20), "provider_api_key"),
        _value(
            "slack-bot-token",
            f"xoxb-{_chars(string.digits, 12)}-{_chars(string.digits, 13)}-{_chars(_ALNUM, 24)}",
            "provider_api_key",
        ),
        _value(
            "slack-user-token",
            f"xoxp-{_chars(string.digits, 12)}-{_chars(string.digits, 12)}-{_chars(_HEX, 32)}",
            "provider_api_key",
        ),
        _value("hub-token", "hf_" + _chars(_ALNUM, 34), "provider_api_key"),
        _value("groq-style-key", "gsk_" + _chars(_ALNUM, 52), "provider_api_key"),
        _value("replicate-style-token", "r8_" + _chars(_ALNUM, 37), "provider_api_key"),
        _value("payments-live-key", "sk_live_" + _chars(_ALNUM, 24), "provider_api_key"),
        _value("payments-restricted-key", "rk_live_" + _chars(_ALNUM, 24), "provider_api_key"),
        _value("payments-test-key", "sk_test_" + _chars(_ALNUM, 24), "provider_api_key"),
        _value("flow-memory-key", fm_key, "provider_api_key"),
        _value(
            "env-line-with-key",
            "OPENAI_API_KEY=sk-" + _chars(_ALNUM, 48),
            "provider_api_key",
        ),
        _value("bearer-token", f"Bearer {bearer}", "bearer_token", bearer),
        _value(
            "authorization-header",
            "Authorization: Bearer " + _chars(_URLSAFE, 32),
            "bearer_token",
        ),
        _value("lowercase-bearer", "bearer " + _chars(_ALNUM, 24), "bearer_token"),
        # A key whose own shape is known is named as the key it is.
        _value("bearer-flow-memory-key", f"Bearer {fm_bearer}", "provider_api_key", fm_bearer),
        _value("token-scheme", "Token " + _chars(_HEX, 40), "bearer_token"),
        _value("basic-auth", f"Basic {basic}", "bearer_token", basic),
        _value("jwt", jwt, "jwt"),
        _value("bearer-jwt", f"Bearer {bearer_jwt}", "jwt", bearer_jwt),
        _value("jwt-in-sentence", f"the session was {sentence_jwt} yesterday", "jwt", sentence_jwt),
        _pem("PRIVATE KEY"),
        _pem("RSA PRIVATE KEY"),
        _pem("EC PRIVATE KEY"),
        _pem("OPENSSH PRIVATE KEY"),
        _pem("ENCRYPTED PRIVATE KEY"),
        _pem("PGP PRIVATE KEY BLOCK"),
        _value("hex-private-key", "0x" + hex_key, "hex_private_key"),
        _value("hex-private-key-upper", "0x" + _chars(_HEX, 64).upper(), "hex_private_key"),
        _value("hex-private-key-capital-x", "0X" + _chars(_HEX, 64), "hex_private_key"),
        _value(
            "hex-private-key-in-sentence",
            f"wallet key 0x{hex_key[::-1]} for the pool",
            "hex_private_key",
            f"0x{hex_key[::-1]}",
        ),
        _value("api-key-assignment", "api_key=" + _chars(_ALNUM, 24), "secret_assignment"),
        _value("password-colon", "password: " + _chars(_ALNUM, 16), "secret_assignment"),
        _value("env-password", "DB_PASSWORD=" + _chars(_ALNUM, 20), "secret_assignment"),
        _value("wallet-address", "0x" + _chars(_HEX, 40), "wallet_address"),
        _value("client-secret-pair", "client_secret=" + _chars(_ALNUM, 32), "secret_assignment"),
        _value("private-key-yaml", "private-key: " + _chars(_B64, 44), "secret_assignment"),
        _value(
            "access-token-in-url",
            "https://provider.example/callback?access_token=" + _chars(_ALNUM, 30),
            "secret_assignment",
        ),
        _value(
            "password-in-json-text",
            json.dumps({"user": "operator", "password": json_password}),
            "secret_assignment",
            json_password,
        ),
        *_seed_phrase_cases(),
    ]


_SECRET_NAMES = (
    "api_key",
    "apiKey",
    "API_KEY",
    "x-api-key",
    "apikey",
    "api_keys",
    "secret",
    "client_secret",
    "clientSecret",
    "clientsecret",
    "aws_secret_access_key",
    "secret_key",
    "password",
    "passwd",
    "db_password",
    "dbpassword",
    "passphrase",
    "private_key",
    "privateKey",
    "privatekey",
    "private_keys",
    "mnemonic",
    "seed_phrase",
    "seedPhrase",
    "seed_words",
    "signature",
    "signatures",
    "access_token",
    "accessToken",
    "accesstoken",
    "access_token_value",
    "refresh_token",
    "auth_token",
    "oauth_token",
    "id_token",
    "bearer_token",
    "session_token",
    "token",
    "pairing_token",
    "authorization",
    "signing_key",
    "wallet_key",
    "session_key",
    "raw_credentials",
    "signed_transaction",
    "raw_transaction",
    "keystore",
)

_UNSAFE_FLAGS: tuple[tuple[str, Any], ...] = (
    ("broadcast_enabled", True),
    ("broadcast_enabled", "true"),
    ("broadcastEnabled", True),
    ("BROADCAST_ENABLED", "TRUE"),
    ("broadcast_allowed", True),
    ("live_trading_enabled", True),
    ("live_trading_enabled", "yes"),
    ("liveTradingEnabled", 1),
    ("raw_credentials_allowed", True),
    ("raw_credentials_allowed", 1),
    ("sensitive_signing_inputs_allowed", True),
    ("sensitive_signing_inputs_allowed", "on"),
    ("dry_run_required", False),
    ("dry_run_required", "false"),
    ("dry_run_required", 0),
    ("dry_run_required", "no"),
    ("dry_run_required", None),
    ("dryRunRequired", False),
    ("dry_run_only", False),
    ("dry_run", "off"),
    ("production", True),
    ("production_mode", "true"),
    ("production_execution_enabled", True),
    ("direct_execution", True),
    ("direct_execution_enabled", "1"),
    ("execute_directly", True),
    ("execution_enabled", True),
    ("allow_live_execution", "enabled"),
    ("live_execution", True),
    ("funds_moved", True),
    ("funds_movement_enabled", True),
    ("value_transfer_enabled", True),
    ("private_key_required", True),
    ("signing_enabled", True),
    ("sign_transactions", "yes"),
    ("requires_signature", True),
    ("execution_mode", "live"),
    ("trading_mode", "production"),
    ("settlement_mode", "mainnet"),
)


def _forbidden_cases() -> list[ForbiddenCase]:
    cases = _secret_value_cases()
    for name in _SECRET_NAMES:
        # A plain lowercase value: only the field name makes it forbidden.
        needle = f"value{_lower(20)}"
        cases.append(ForbiddenCase(f"name-{name}", name, needle, NAME_KIND, needle))
    for name, value in _UNSAFE_FLAGS:
        label = f"{type(value).__name__}-{value}".lower()
        cases.append(ForbiddenCase(f"flag-{name}-{label}", name, value, FLAG_KIND, None))
    return cases


FORBIDDEN_CASES: list[ForbiddenCase] = _forbidden_cases()

_SEED_EXAMPLE_ROUTING_POLICY = {
    "min_discount_bps": 500,
    "allow_fallback": True,
    "dry_run_required": True,
    "raw_credentials_allowed": False,
    "broadcast_enabled": False,
    "sensitive_signing_inputs_allowed": False,
}

_PUBLIC_KEY_PEM = f"-----BEGIN PUBLIC KEY-----\n{_chars(_B64, 64)}\n-----END PUBLIC KEY-----\n"

# Look-alikes of forbidden material that ordinary marketplace records hold.
ALLOWED_CASES: list[tuple[str, dict[str, Any]]] = [
    ("secret-reference", {"fallback_ref": "secret://inference/provider-alpha"}),
    ("rotated-reference", {"next_ref": "secret://inference/provider-alpha-2026-07"}),
    ("credential_ref", {"credential_ref": "secret://inference/provider-beta"}),
    ("credential_ref_id", {"credential_ref_id": "credref_" + _chars(_HEX, 24)}),
    ("new_credential_ref", {"new_credential_ref": "secret://inference/provider-alpha-2026-07"}),
    ("credentialRef-camel", {"credentialRef": "secret://inference/provider-gamma"}),
    ("raw_credentials_allowed-false", {"raw_credentials_allowed": False}),
    ("dry_run_required-true", {"dry_run_required": True}),
    ("broadcast_enabled-false", {"broadcast_enabled": False}),
    ("live_trading_enabled-false", {"live_trading_enabled": False}),
    ("sensitive_signing_inputs_allowed-false", {"sensitive_signing_inputs_allowed": False}),
    (
        "flags-as-falsy-strings",
        {
            "broadcast_enabled": "false",
            "live_trading_enabled": "no",
            "production": "off",
            "raw_credentials_allowed": 0,
            "direct_execution": "disabled",
        },
    ),
    ("dry-run-as-truthy-strings", {"dry_run_required": "yes", "dry_run_only": 1, "dry_run": "on"}),
    ("dry-run-modes", {"execution_mode": "dry_run", "settlement_mode": "simulated"}),
    ("seed-routing-policy", {"routing_policy": _SEED_EXAMPLE_ROUTING_POLICY}),
    (
        "seed-market-policy",
        {
            "market_policy": {
                **_SEED_EXAMPLE_ROUTING_POLICY,
                "require_healthy_provider": True,
                "allowed_models": ["flow-memory-orchestrator"],
                "max_unit_price": 0.0000008,
                "allow_external_providers": True,
            }
        },
    ),
    (
        "payment-preview-flags",
        {
            "execution_enabled": False,
            "requires_signature": False,
            "requires_sensitive_signing_material": False,
            "broadcast_allowed": False,
            "acknowledge_disabled_execution": True,
            "status": "disabled_preview_only",
        },
    ),
    ("safety-envelope", dict(SAFETY_ENVELOPE)),
    ("redaction-flags", {"secret_value_redacted": True, "raw_credentials_accepted": False}),
    (
        "english-sentence",
        {
            "description": "The provider team keeps a spare machine ready for the evening peak, "
            "and routes overflow to the second region when the queue grows."
        },
    ),
    (
        "english-sentence-secret-words",
        {
            "notes": "Keep the secret reference outside of the request body and bill every token "
            "at the posted ask price for the whole month."
        },
    ),
    (
        "english-sentence-credential-words",
        {
            "runbook": "If the password of the provider console is lost, the operator rotates "
            "the access key in the vault and then updates the reference."
        },
    ),
    (
        "english-sentence-token-unit",
        {
            "pricing": "Settlement is per token denominated-in-usd-credits and nothing is ever "
            "signed, broadcast or moved on any chain."
        },
    ),
    ("sha256-hex", {"catalog_sha256": _chars(_HEX, 64)}),
    ("hex-of-63-digits", {"trace": "0x" + _chars(_HEX, 63)}),
    ("max_tokens", {"max_tokens": 4096, "total_tokens": 1200, "input_token_count": 800}),
    ("unit-type-token", {"unit_type": "token", "supported_units": ["token", "request"]}),
    ("price-per-token", {"price_per_token": 0.00000075, "cost_per_token": 0.0000008}),
    ("unit-keyed-prices", {"reference_unit_prices": {"token": 0.00000075, "request": 0.002}}),
    ("unit-keyed-capacity", {"capacity": {"token": {"available_units": 2500000}}}),
    ("pagination-cursors", {"next_token": "page-2", "page_token": "cursor-0042"}),
    ("display-name", {"display_name": "Provider Alpha production reference"}),
    ("emails", {"routing_email": "ops@example.invalid", "billing": "billing@provider.example"}),
    (
        "urls",
        {
            "base_url": "https://provider-alpha.example/v1",
            "docs": "https://docs.example/guide?page=2&lang=en",
        },
    ),
    ("idempotency_key", {"idempotency_key": "agent-research-1-task-42"}),
    ("key-preview", {"key_preview": "fm_" + _chars(_ALNUM, 7) + "…"}),
    ("flow-memory-identifier", {"pool": "fm_orchestrator_pool_primary_west"}),
    (
        "model-names",
        {"models": ["flow-memory-orchestrator", "task-classifier-v2", "risk-adjusted-router"]},
    ),
    (
        "public-key-pem",
        {"verify_with": _PUBLIC_KEY_PEM},
    ),
    ("eleven-seed-words", {"motto": " ".join(_seed_words(12)[:11])}),
    ("eleven-seed-words-as-list", {"tags": _seed_words(12)[:11]}),
    (
        "twelve-tags-with-a-non-word",
        {"tags": [*_seed_words(12)[:6], "gpu-a100", *_seed_words(12)[6:]]},
    ),
    (
        "uuid-and-timestamps",
        {"trace_id": "3f1e2d4c-8b7a-4c6d-9e0f-1a2b3c4d5e6f", "expires_at": "2026-12-31T00:00:00Z"},
    ),
    ("operator-ticket", {"operator_ticket": "SEC-1024", "rotation_policy": "operator-managed"}),
    ("tokenizer", {"tokenizer": "bpe", "context_window": 128000, "tool_calling": "metadata_only"}),
    ("public_key-name", {"public_key_fingerprint": "SHA256:" + _chars(_ALNUM, 43)}),
]


def _case_params(cases: list[ForbiddenCase]) -> list[Any]:
    return [pytest.param(case, id=case.id) for case in cases]


ALLOWED_PARAMS = [pytest.param(document, id=case_id) for case_id, document in ALLOWED_CASES]


class TestCorpus:
    def test_the_corpus_is_large_and_its_ids_are_unique(self) -> None:
        assert len(FORBIDDEN_CASES) >= 100
        assert len(ALLOWED_CASES) >= 30
        assert len({case.id for case in FORBIDDEN_CASES}) == len(FORBIDDEN_CASES)
        assert len({case_id for case_id, _ in ALLOWED_CASES}) == len(ALLOWED_CASES)

    @pytest.mark.parametrize("case", _case_params(FORBIDDEN_CASES))
    def test_needles_are_searchable(self, case: ForbiddenCase) -> None:
        # A needle must be found verbatim in a JSON column, a log line or a response body.
        if case.needle is None:
            return
        assert len(case.needle) >= 16
        assert json.dumps(case.needle) == f'"{case.needle}"'
        assert case.needle in (case.value if isinstance(case.value, str) else "")


class TestForbiddenMaterial:
    @pytest.mark.parametrize("case", _case_params([c for c in FORBIDDEN_CASES if c.by_value]))
    def test_a_secret_value_is_named_by_its_kind(self, case: ForbiddenCase) -> None:
        if isinstance(case.value, str):
            assert secret_kind_in_text(case.value) == case.kind
        else:
            assert find_forbidden(case.value) == Finding("body", case.kind)

    @pytest.mark.parametrize("case", _case_params(FORBIDDEN_CASES))
    def test_top_level_material_is_refused(self, case: ForbiddenCase) -> None:
        assert find_forbidden({"display_name": "Provider Alpha", case.key: case.value}) == Finding(
            case.key, case.kind
        )

    @pytest.mark.parametrize("case", _case_params(FORBIDDEN_CASES))
    def test_material_deep_inside_lists_and_objects_is_refused(self, case: ForbiddenCase) -> None:
        document = {
            "display_name": "Provider Alpha",
            "metadata": {
                "rotation_policy": "operator-managed",
                "history": [{"step": 1}, {"step": 2, "detail": {case.key: case.value}}],
            },
        }
        found = find_forbidden(document)
        assert found == Finding(f"metadata.history[1].detail.{case.key}", case.kind)

    @pytest.mark.parametrize(
        "case", _case_params([c for c in FORBIDDEN_CASES if c.query_value is not None])
    )
    def test_material_in_a_query_string_is_refused(self, case: ForbiddenCase) -> None:
        assert case.query_value is not None
        pairs = [("status", "active"), ("limit", "10"), (case.key, case.query_value)]
        assert find_forbidden_in_query(pairs) == Finding(f"query.{case.key}", case.kind)

    @pytest.mark.parametrize(
        "case", _case_params([c for c in FORBIDDEN_CASES if c.by_value and c.query_value])
    )
    def test_a_secret_used_as_a_key_is_refused_without_naming_it(self, case: ForbiddenCase) -> None:
        assert isinstance(case.value, str)
        found = find_forbidden({"metadata": {"ok": 1, case.value: "x"}})
        assert found == Finding(f"metadata.{REDACTED_KEY}", case.kind)
        assert find_forbidden_in_query([(case.value, "1")]) == Finding(
            f"query.{REDACTED_KEY}", case.kind
        )

    def test_a_bare_secret_item_in_a_list_is_named_by_index(self) -> None:
        key = "sk-" + _chars(_ALNUM, 40)
        assert find_forbidden({"metadata": {"items": ["a", "b", key]}}) == Finding(
            "metadata.items[2]", "provider_api_key"
        )
        assert find_forbidden([{"ok": True}, key]) == Finding("[1]", "provider_api_key")
        assert find_forbidden(key) == Finding("body", "provider_api_key")

    def test_the_first_finding_in_document_order_is_reported(self) -> None:
        document = {"a": {"b": "fine", "api_key": "x"}, "c": {"broadcast_enabled": True}}
        assert find_forbidden(document) == Finding("a.api_key", NAME_KIND)

    def test_material_beside_safe_flags_is_still_found(self) -> None:
        document = {"broadcast_enabled": False, "dry_run_required": True, "x": {"api_key": "x"}}
        assert find_forbidden(document) == Finding("x.api_key", NAME_KIND)

    def test_a_flag_that_must_be_false_takes_nothing_else(self) -> None:
        # Given as a list or an object, a flag is not false: refused as unsafe.
        for value in ([True], {"enabled": True}, "maybe"):
            found = find_forbidden({"broadcast_enabled": value})
            assert found == Finding("broadcast_enabled", FLAG_KIND)

    def test_flags_inside_lists_are_checked(self) -> None:
        document = {"policies": [{"broadcast_enabled": False}, {"broadcast_enabled": "yes"}]}
        assert find_forbidden(document) == Finding("policies[1].broadcast_enabled", FLAG_KIND)


class TestAllowedLookAlikes:
    @pytest.mark.parametrize("document", ALLOWED_PARAMS)
    def test_look_alike_is_not_refused(self, document: dict[str, Any]) -> None:
        assert find_forbidden(document) is None
        assert find_forbidden({"metadata": {"nested": [document]}}) is None

    @pytest.mark.parametrize("document", ALLOWED_PARAMS)
    def test_look_alike_in_a_query_string_is_not_refused(self, document: dict[str, Any]) -> None:
        pairs = [
            (name, json.dumps(value).strip('"') if not isinstance(value, str) else value)
            for name, value in document.items()
            if not isinstance(value, dict | list)
        ]
        assert find_forbidden_in_query(pairs) is None

    @pytest.mark.parametrize(
        "text",
        [
            "price per token internationalization",
            "Basic characteristics-of-the-marketplace",
            "The bearer token is resolved by the operator, never sent in a request.",
            "token usage grew by 12% this week",
            "secret://inference/provider-alpha",
            '"secret": "secret://inference/provider-alpha"',
            "api_key = secret://inference/provider-alpha",
            "secret_value_redacted=true",
            "password: short",
            "AKIA-style keys are refused at the edge",
            "task-classifier-large-v2",
        ],
    )
    def test_prose_and_references_hold_no_secret(self, text: str) -> None:
        assert secret_kind_in_text(text) is None


class TestSeedPhrases:
    def test_twelve_wordlist_words_in_a_row_are_a_phrase(self) -> None:
        words = _seed_words(12)
        assert secret_kind_in_text(" ".join(words)) == "seed_phrase"
        assert secret_kind_in_text(" ".join(words[:11])) is None

    def test_a_word_outside_the_list_breaks_the_run(self) -> None:
        words = _seed_words(12)
        broken = [*words[:6], "flowmemory", *words[6:]]
        assert secret_kind_in_text(" ".join(broken)) is None

    def test_a_list_of_twelve_words_is_a_phrase(self) -> None:
        words = _seed_words(12)
        assert find_forbidden({"words": words}) == Finding("words", "seed_phrase")
        assert find_forbidden({"words": words[:11]}) is None
        assert find_forbidden({"words": [*words[:6], 7, *words[6:]]}) is None


class TestFieldNames:
    @pytest.mark.parametrize(
        ("name", "words"),
        [
            ("apiKey", ["api", "key"]),
            ("X-Api-Key", ["x", "api", "key"]),
            ("client_secret", ["client", "secret"]),
            ("liveTradingEnabled", ["live", "trading", "enabled"]),
            ("BROADCAST_ENABLED", ["broadcast", "enabled"]),
        ],
    )
    def test_names_split_into_lowercase_words(self, name: str, words: list[str]) -> None:
        assert name_words(name) == words

    @pytest.mark.parametrize(
        "name",
        [
            "credential_ref",
            "credential_ref_id",
            "new_credential_ref",
            "credentialRefId",
            "secret_value_redacted",
            "raw_credentials_accepted",
            "max_tokens",
            "total_tokens",
            "price_per_token",
            "next_token",
            "page_token",
            "unit_type",
            "tokenizer",
            "idempotency_key",
            "public_key",
            "partition_key",
            "display_name",
            "secretary",
        ],
    )
    def test_ordinary_names_are_not_secret_like(self, name: str) -> None:
        assert not secret_like_name(name)

    @pytest.mark.parametrize("name", _SECRET_NAMES)
    def test_secret_names_are_secret_like(self, name: str) -> None:
        assert secret_like_name(name)

    @pytest.mark.parametrize(
        ("name", "value", "unsafe"),
        [
            ("broadcast_enabled", True, True),
            ("broadcast_enabled", False, False),
            ("broadcast_enabled", "maybe", True),
            ("broadcast_enabled", [], False),
            ("broadcast_enabled", [True], True),
            ("legal_review_required", False, True),
            ("compliance_review_required", "false", True),
            ("network", "mainnet", True),
            ("broadcast_enabled", None, False),
            ("dry_run_required", True, False),
            ("dry_run_required", None, True),
            ("dry_run_required", "0", True),
            ("execution_mode", "Live ", True),
            ("execution_mode", "dry_run", False),
            ("display_name", True, False),
        ],
    )
    def test_unsafe_flag_values(self, name: str, value: Any, unsafe: bool) -> None:
        assert unsafe_flag(name, value) is unsafe

    @pytest.mark.parametrize(
        ("value", "refused"),
        [(0.00000075, False), (3, False), ({"price": 1}, False), ("0.00000075", False),
         ("7.5E-7", False), (".5", False), ("abc", True), (True, False), (None, False),
         (["abc"], True), ("123456", True), ("0.5abc", True), ("1.5e3", False)],
    )  # fmt: skip
    def test_a_field_named_token_is_a_secret_unless_it_keys_unit_data(
        self, value: Any, refused: bool
    ) -> None:
        found = find_forbidden({"prices": {"token": value}})
        assert found == (Finding("prices.token", NAME_KIND) if refused else None)

    def test_safety_flags_are_recognised_in_any_spelling(self) -> None:
        assert is_safety_flag("dryRunRequired")
        assert is_safety_flag("Live-Trading-Enabled")
        assert not is_safety_flag("allow_fallback")


class TestSafetyEnvelope:
    def test_the_envelope_holds_the_dry_run_values(self) -> None:
        assert dict(SAFETY_ENVELOPE) == {
            "dry_run_only": True,
            "funds_moved": False,
            "broadcast_allowed": False,
            "private_key_required": False,
            "live_trading_enabled": False,
            "legal_review_required": True,
            "compliance_review_required": True,
        }

    def test_the_envelope_cannot_be_changed(self) -> None:
        with pytest.raises(TypeError):
            SAFETY_ENVELOPE["funds_moved"] = True  # type: ignore[index]


_KEY_PREFIXES = ("sk-", "sk-proj-", "ghp_", "hf_", "gsk_", "r8_", "sk_live_")
_SAFE_WORDS = st.text(alphabet=string.ascii_lowercase, min_size=1, max_size=10)


@settings(max_examples=60, deadline=None)
@given(
    prefix=st.sampled_from(_KEY_PREFIXES),
    body=st.text(alphabet=_ALNUM, min_size=40, max_size=60),
    before=st.lists(_SAFE_WORDS, max_size=6),
    after=st.lists(_SAFE_WORDS, max_size=6),
)
def test_a_provider_key_is_found_anywhere_in_prose(
    prefix: str, body: str, before: list[str], after: list[str]
) -> None:
    text = " ".join([*before, prefix + body, *after])
    assert secret_kind_in_text(text) == "provider_api_key"


@settings(max_examples=60, deadline=None)
@given(
    path=st.lists(st.sampled_from(["metadata", "items", "detail", "policy", "extra"]), max_size=8),
    body=st.text(alphabet=_ALNUM, min_size=40, max_size=60),
    as_key=st.booleans(),
)
def test_a_finding_never_repeats_the_secret(path: list[str], body: str, as_key: bool) -> None:
    secret = "sk-" + body
    document: Any = {secret: 1} if as_key else {"note": secret}
    for name in reversed(path):
        document = {name: [document]}
    found = find_forbidden(document)
    assert found is not None
    assert found.kind == "provider_api_key"
    assert secret not in found.field
    assert body not in found.field
