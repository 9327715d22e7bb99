"""Harmless request material that looks a little like the forbidden kind: it must be accepted.

Each case is what an honest buyer, seller or operator sends: content hashes, identifiers, model
names that begin with ``sk-``, token counts, prices, small images, references, and prose that
talks about keys and passwords without holding one. A detector that refuses these is too blunt
to live with. Cases marked ``borderline`` are judgement calls, explained where they are made.
"""

from __future__ import annotations

import base64
import hashlib
import struct
import urllib.parse
import uuid
import zlib
from collections.abc import Callable
from typing import Any

from tests.safety_corpus.case import Case
from tests.safety_corpus.formats import Fakes, fullwidth


def _png(width: int, height: int, rgb: tuple[int, int, int]) -> bytes:
    """A real PNG of one colour (the smallest image a thumbnail field could carry)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    row = b"\x00" + bytes(rgb) * width
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
        + chunk(b"IDAT", zlib.compress(row * height))
        + chunk(b"IEND", b"")
    )


GIF_1X1 = base64.b64decode("R0lGODlhAQABAIAAAP///wAAACH5BAEAAAAALAAAAAABAAEAAAICRAEAOw==")


def _data_uri(media_type: str, data: bytes) -> str:
    return f"data:{media_type};base64," + base64.b64encode(data).decode()


def _sha256(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def _sha1(text: str) -> str:
    return hashlib.sha1(text.encode()).hexdigest()


def _uuid(f: Fakes) -> str:
    return str(uuid.UUID(bytes=f.raw(16), version=4))


def _flow_id(f: Fakes, prefix: str) -> str:
    return f"{prefix}_" + f.chars("abcdefghijklmnopqrstuvwxyz234567", 20)


def _values(kind: str, specs: list[tuple[str, Callable[[Fakes], str]]], **kw: Any) -> list[Case]:
    return [
        Case(f"{kind}.{name}", kind, value=build(Fakes(f"{kind}.{name}")), **kw)
        for name, build in specs
    ]


def _shapes(
    kind: str, specs: list[tuple[str, Callable[[Fakes], dict[str, Any]]]], **kw: Any
) -> list[Case]:
    return [
        Case(f"{kind}.{name}", kind, fields=build(Fakes(f"{kind}.{name}")), **kw)
        for name, build in specs
    ]


def _hashes() -> list[Case]:
    shapes: list[tuple[str, Callable[[Fakes], dict[str, Any]]]] = [
        ("content_sha256", lambda f: {"content_sha256": _sha256("weights-" + f.hex(8))}),
        ("sha256_prefixed_digest", lambda f: {"digest": "sha256:" + _sha256("layer-" + f.hex(8))}),
        ("git_commit", lambda f: {"git_sha": _sha1("commit-" + f.hex(8))}),
        ("git_short_sha", lambda f: {"build": "agent@" + _sha1(f.hex(8))[:7]}),
        ("md5_checksum", lambda f: {"md5": hashlib.md5(f.raw(16)).hexdigest()}),
        ("sha512", lambda f: {"sha512": hashlib.sha512(f.raw(16)).hexdigest()}),
        (
            "image_digest",
            lambda f: {"image": "registry.example.com/flow/agent@sha256:" + _sha256(f.hex(6))},
        ),
        (
            "subresource_integrity",
            lambda f: {
                "integrity": "sha384-"
                + base64.b64encode(hashlib.sha384(f.raw(8)).digest()).decode()
            },
        ),
        ("etag", lambda f: {"etag": f'W/"{_sha1(f.hex(8))[:16]}"'}),
        (
            "model_file_sha256",
            lambda f: {"weights": {"file": "model.gguf", "sha256": _sha256(f.hex(9))}},
        ),
    ]
    values: list[tuple[str, Callable[[Fakes], str]]] = [
        ("sha256_digest_text", lambda f: "sha256:" + _sha256("blob-" + f.hex(6))),
        ("git_sha_text", lambda f: "built from commit " + _sha1(f.hex(10))),
    ]
    return _shapes("content_hash", shapes) + _values("content_hash", values)


def _identifiers() -> list[Case]:
    shapes: list[tuple[str, Callable[[Fakes], dict[str, Any]]]] = [
        ("request_id_uuid", lambda f: {"request_id": _uuid(f)}),
        ("trace_id_uuid_hex", lambda f: {"trace_id": uuid.UUID(_uuid(f)).hex}),
        ("traceparent", lambda f: {"traceparent": f"00-{f.hex(32)}-{f.hex(16)}-01"}),
        ("order_id", lambda f: {"parent_order": _flow_id(f, "ord")}),
        ("provider_id", lambda f: {"preferred_provider": _flow_id(f, "prov")}),
        ("credential_ref_id", lambda f: {"credential_ref_id": _flow_id(f, "credref")}),
        ("reservation_id", lambda f: {"reservation": _flow_id(f, "rsv")}),
        ("route_id", lambda f: {"route": _flow_id(f, "route")}),
        ("key_id", lambda f: {"issued_by": _flow_id(f, "key")}),
        ("ticket", lambda f: {"operator_ticket": "OPS-" + f.digits(5)}),
    ]
    values: list[tuple[str, Callable[[Fakes], str]]] = [
        ("uuid", _uuid),
        ("uuid_uppercase", lambda f: _uuid(f).upper()),
        ("flow_memory_order_id", lambda f: _flow_id(f, "ord")),
        ("flow_memory_fill_id", lambda f: _flow_id(f, "fill")),
        ("task_slug", lambda f: "task-" + f.digits(6)),
        ("agent_slug", lambda f: "agent-research-" + f.digits(3)),
        ("workspace_slug", lambda f: "workspace-eu-" + f.digits(2)),
        ("dotted_version", lambda f: f"v{f.digits(1)}.{f.digits(2)}.{f.digits(1)}"),
    ]
    return _shapes("identifier", shapes) + _values("identifier", values)


SK_MODEL_NAMES = [
    "sk-llama-3-70b-instruct-q4",
    "sk-llama-3.1-8b-instruct",
    "sk-mistral-7b-instruct-v0.3",
    "sk-qwen2.5-coder-32b-instruct-awq",
    "sk-phi-3-mini-4k-instruct-gguf",
    "sk-gemma-2-9b-it-q8_0",
    "sk-deepseek-coder-v2-lite-instruct",
    "sk-embed-multilingual-v3",
    "sk-whisper-large-v3-turbo",
    "sk-router-small-2026-06",
]


def _model_names() -> list[Case]:
    cases = [Case(f"model_name.{name}", "model_name", value=name) for name in SK_MODEL_NAMES]
    cases += [
        Case("model_name.org_slash_model", "model_name", value="meta-llama/Llama-3.1-8B-Instruct"),
        Case("model_name.tokenizer_name", "model_name", value="tokenizer-bpe-50k"),
        Case(
            "model_name.alias_map",
            "model_name",
            fields={
                "model_alias": "sk-llama-3-70b-instruct-q4",
                "fallback_model": "sk-mistral-7b-instruct-v0.3",
            },
        ),
    ]
    return cases


def _usage_numbers() -> list[Case]:
    shapes: list[tuple[str, Callable[[Fakes], dict[str, Any]]]] = [
        ("time_to_first_token", lambda f: {"time_to_first_token": 0.42}),
        ("time_to_first_token_ms", lambda f: {"time_to_first_token_ms": 420}),
        ("max_tokens", lambda f: {"max_tokens": 4096}),
        (
            "token_counts",
            lambda f: {"input_tokens": 1234, "output_tokens": 567, "total_tokens": 1801},
        ),
        ("tokens_per_second", lambda f: {"tokens_per_second": 88.5}),
        ("token_budget", lambda f: {"token_budget": 200000}),
        ("tokenizer", lambda f: {"tokenizer": "sentencepiece"}),
        ("cached_prompt_tokens", lambda f: {"prompt_tokens_cached": 1024}),
        ("token_count_string", lambda f: {"token_count": "2048"}),
        ("context_window", lambda f: {"context_window": 128000, "kv_cache_gb": "12.5"}),
        ("unit_price_string", lambda f: {"unit_price": "0.00000075"}),
        ("budget_string", lambda f: {"budget_usd_credit": "12.50", "currency": "USD_CREDIT"}),
        ("discount_bps", lambda f: {"min_discount_bps": 150}),
        ("big_integer_string", lambda f: {"units_total": "1000000000000000000"}),
        ("iso_timestamp_z", lambda f: {"window_start": "2026-06-17T00:00:00Z"}),
        ("iso_timestamp_offset", lambda f: {"window_end": "2026-06-17T02:00:00+02:00"}),
        ("date_only", lambda f: {"billing_day": "2026-06-17"}),
        ("epoch_millis", lambda f: {"observed_at_ms": 1781654400000}),
        ("latency_percentiles", lambda f: {"p50_ms": 180, "p95_ms": 620, "p99_ms": 1400}),
    ]
    values: list[tuple[str, Callable[[Fakes], str]]] = [
        ("price_decimal_string", lambda f: "0.0000015"),
        ("iso_timestamp_text", lambda f: "2026-06-17T12:30:00.250Z"),
    ]
    return _shapes("usage_number", shapes) + _values("usage_number", values)


def _images() -> list[Case]:
    png = _data_uri("image/png", _png(1, 1, (255, 140, 0)))
    png_4 = _data_uri("image/png", _png(4, 4, (20, 90, 200)))
    gif = _data_uri("image/gif", GIF_1X1)
    return [
        Case("image.thumbnail_png_1x1", "image", fields={"thumbnail": png}),
        Case("image.icon_png_4x4", "image", fields={"icon": png_4}),
        Case("image.preview_gif", "image", fields={"preview": gif}),
        Case("image.nested_avatar", "image", fields={"branding": {"avatar": png_4, "alt": "logo"}}),
    ]


def _references() -> list[Case]:
    return [
        Case("reference.credential_ref", "reference", value="secret://inference/provider-beta"),
        Case(
            "reference.nested_path", "reference", value="secret://inference/eu-west/provider-gamma"
        ),
        Case("reference.versioned", "reference", value="secret://inference/provider-delta/v2"),
        Case("reference.numbered", "reference", value="secret://inference/provider-2"),
        Case(
            "reference.in_metadata",
            "reference",
            fields={"credential_ref": "secret://inference/provider-beta", "rotation_policy": "90d"},
        ),
        Case(
            "reference.fallback_ref",
            "reference",
            fields={"fallback_credential_ref": "secret://inference/provider-standby"},
        ),
    ]


PROSE = {
    "rotate_monthly": "Rotate the API key monthly.",
    "never_paste": "Never paste a private key or seed phrase into this form.",
    "session_timeout": "The session ends after 30 minutes without activity.",
    "bearer_docs": "Bearer authentication uses a Flow Memory key issued by the operator.",
    "passwords_elsewhere": "Passwords are checked by the identity provider, not here.",
    "transfer_weights": "We transfer the model weights to the GPU before serving.",
    "send_report": "Send the weekly report to the ops channel on Fridays.",
    "production_rollout": "The production rollout of the new tokenizer is planned for July.",
    "tokens_billed": "Tokens are counted per request and billed at the end of the month.",
    "wire_format": "Wire format: JSON lines over HTTP/2.",
    "keys_are_models": "Keys in this map are model names, values are unit prices.",
    "approve_pr": "Approve the pull request once the benchmark passes.",
    "cookies_off": "Cookies are disabled in the dashboard.",
    "dry_run_only": "This order is a dry run: nothing executes live and no funds move.",
    "latency_secret": "The secret to low latency is batching requests.",
    "credential_ref_advice": "Use credential_ref only: the operator resolves it elsewhere.",
    "mnemonic_in_prose": "A mnemonic device helps the team remember the routing rules.",
    "signature_in_prose": "The signature of the function changed in version 2.",
    "live_in_prose": "Provider Alpha went live in the EU region last week.",
    "spanish": "La orden se cancela si el precio sube antes del cierre.",
    "french": "Le fournisseur publie sa capacité toutes les cinq minutes.",
    "japanese": "注文は明日の朝にキャンセルされます。",
    "chinese": "该模型的上下文窗口为十二万八千个词元。",
    "korean": "이 주문은 시험 실행이며 자금은 이동하지 않습니다.",
    "emoji": "Throughput up 12% this week 🚀",
    "fullwidth_name": fullwidth("Flow Memory") + " \u30c6\u30b9\u30c8",
}

SNIPPETS = {
    "env_lookup": "client = Client(api_key=os.environ['FLOW_MEMORY_KEY'])",
    "curl_variable": 'curl -H "Authorization: Bearer $FLOW_MEMORY_KEY" http://127.0.0.1:8765/v1/models',
    "placeholder_export": "export API_KEY=<your key here>",
    "getpass": "password = getpass.getpass()",
    "fstring_header": "headers = {'Authorization': f'Bearer {token}'}",
    "redacted": "api_key: ****************",
    "ellipsis_placeholder": "sk-... (ask the operator)",
}

URLS = {
    "https_plain": "https://provider-alpha.example/v1",
    "port_and_query": "https://provider.example:8443/v1?region=eu&page=2",
    "loopback": "http://127.0.0.1:8080/health",
    "fragment_mentions_keys": "https://docs.example.com/guide#api-keys",
    "user_without_password": "https://ops@status.example.com/",
    "git_ssh_user": "ssh://git@git.example.com/flow/agent.git",
    "database_without_credentials": "postgresql://db.internal:5432/flow_memory",
    "mailto": "mailto:ops@example.invalid",
}


def _prose() -> list[Case]:
    cases = [Case(f"prose.{k}", "prose", value=v) for k, v in PROSE.items()]
    cases += [Case(f"code_snippet.{k}", "code_snippet", value=v) for k, v in SNIPPETS.items()]
    cases += [Case(f"url.{k}", "url", value=v) for k, v in URLS.items()]
    cases += [
        Case("email.plain", "email", value="ops@example.invalid"),
        Case("email.plus_tag", "email", value="first.last+market@example.org"),
        Case("email.contact_field", "email", fields={"routing_email": "oncall@example.invalid"}),
    ]
    return cases


def _lookalikes() -> list[Case]:
    plain = "hello flow memory"
    shapes: dict[str, dict[str, Any]] = {
        "author": {"author": "Jane Doe"},
        "monkey_patch": {"monkey_patch": False},
        "keyboard_layout": {"keyboard_layout": "us-intl"},
        "passenger_count": {"passenger_count": 3},
        "session_count": {"session_count": 12},
        "hex_colour": {"accent": "#ff8800"},
        "short_hex_flag": {"feature_bits": "0x1f"},
        "payload_base64_text": {"payload_b64": base64.b64encode(plain.encode()).decode()},
        "url_encoded_query": {"query": "q=" + urllib.parse.quote("hello world")},
        "dry_run_true": {"dry_run": True},
        "broadcast_disabled": {"broadcast_enabled": False},
        "auto_execute_off": {"auto_execute": False},
        "environment_staging": {"environment": "staging"},
        "mode_dry_run": {"mode": "dry_run"},
        "region": {"region": "eu-west", "zone": "b"},
        "tags": {"tags": ["batch", "nightly", "eu"]},
        "nested_config": {"retry": {"attempts": 3, "backoff_ms": [100, 200, 400]}},
        "null_and_bool": {"notes": None, "verified": True},
    }
    cases = [Case(f"lookalike.{k}", "lookalike", fields=v) for k, v in shapes.items()]
    values = {
        "sk_prose": "sk-learn pipeline retrained on the June logs",
        "task_hyphenated": "task-2026-06-17-eu",
        "short_base64": base64.b64encode(plain.encode()).decode(),
        "percent_encoded": urllib.parse.quote("price <= 0.5 USD_CREDIT"),
    }
    cases += [Case(f"lookalike.{k}", "lookalike", value=v) for k, v in values.items()]
    return cases


def _borderline() -> list[Case]:
    # Judgement calls, decided as harmless: each holds no secret and no payment target.
    return [
        Case(
            "borderline.ssh_public_key",
            "borderline",
            value="ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAI"
            + base64.b64encode(b"a public key, not a private one").decode()
            + " ops@example",
            borderline=True,
            note="a public key is meant to be shared",
        ),
        Case(
            "borderline.dry_run_only_true",
            "borderline",
            fields={"dry_run_only": True},
            borderline=True,
            note="a safety field at its required value asks for nothing unsafe",
        ),
        Case(
            "borderline.auth_scheme_name",
            "borderline",
            fields={"auth_scheme": "bearer"},
            borderline=True,
            note="names the scheme, holds no token",
        ),
        Case(
            "borderline.key_rotation_days",
            "borderline",
            fields={"key_rotation_days": 30},
            borderline=True,
            note="a number under a key-ish name",
        ),
        Case(
            "borderline.placeholder_bearer",
            "borderline",
            value="Authorization: Bearer XXXXXXXXXXXX",
            borderline=True,
            note="a documentation placeholder: one repeated letter is no token",
        ),
    ]


HARMLESS: tuple[Case, ...] = tuple(
    [
        *_hashes(),
        *_identifiers(),
        *_model_names(),
        *_usage_numbers(),
        *_images(),
        *_references(),
        *_prose(),
        *_lookalikes(),
        *_borderline(),
    ]
)
