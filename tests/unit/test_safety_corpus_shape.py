"""The safety corpus itself: large enough, covering every kind the boundary names, reproducible,
and with harmless cases that never contain what a forbidden case must not leave behind."""

from __future__ import annotations

import importlib
import json

from mnemonic import Mnemonic

import tests.safety_corpus.forbidden as forbidden_module
import tests.safety_corpus.harmless as harmless_module
from tests.safety_corpus.case import Case
from tests.safety_corpus.forbidden import FORBIDDEN, SAFETY_FIELDS_UNSAFE
from tests.safety_corpus.harmless import HARMLESS

KINDS = {
    "provider_key",
    "generic_token",
    "webhook_url",
    "flow_memory_secret",
    "bearer_session",
    "jwt",
    "pem_private_key",
    "signing_key",
    "mnemonic",
    "password_in_url",
    "credential_text",
    "secret_field_name",
    "disguised_field_name",
    "split_secret",
    "encoded_secret",
    "unicode_disguise",
    "key_in_reference",
    "value_transfer",
    "payment_target",
    "unsafe_flag",
    "safety_field",
}
MNEMONIC_LANGUAGES = [
    "english",
    "spanish",
    "french",
    "italian",
    "czech",
    "portuguese",
    "korean",
    "japanese",
    "chinese_simplified",
    "chinese_traditional",
]


def _snapshot(cases: tuple[Case, ...]) -> list[str]:
    return [json.dumps([c.id, c.value, c.fields, c.needles], sort_keys=True) for c in cases]


def test_the_corpus_is_large_and_covers_every_kind() -> None:
    assert len(FORBIDDEN) >= 300
    assert len(HARMLESS) >= 100
    ids = [c.id for c in (*FORBIDDEN, *HARMLESS)]
    assert len(ids) == len(set(ids))
    assert {c.kind for c in FORBIDDEN} == KINDS
    safety = {key for c in FORBIDDEN if c.kind == "safety_field" for key in c.fields or {}}
    assert set(SAFETY_FIELDS_UNSAFE) <= safety


def test_every_case_is_the_same_on_every_run() -> None:
    before = _snapshot(FORBIDDEN), _snapshot(HARMLESS)
    importlib.reload(forbidden_module)
    importlib.reload(harmless_module)
    assert (_snapshot(forbidden_module.FORBIDDEN), _snapshot(harmless_module.HARMLESS)) == before


def test_mnemonics_are_valid_phrases_in_every_language() -> None:
    by_id = {c.id: c for c in FORBIDDEN}
    for language in MNEMONIC_LANGUAGES:
        phrase = by_id[f"mnemonic.{language}_12"].value
        assert phrase is not None
        assert Mnemonic(language).check(phrase), language


def test_what_must_not_be_found_is_distinctive() -> None:
    """Each forbidden case names what must never be found (a flag case: its key and value),
    and no harmless case holds any of it, so an accepted harmless case is never a leak."""
    harmless_text = "\n".join(
        json.dumps([c.value, c.fields], ensure_ascii=False) + "\n" + (c.value or "")
        for c in HARMLESS
    )
    for case in FORBIDDEN:
        assert case.needles or case.kind in ("unsafe_flag", "safety_field"), case.id
        for needle in case.needles:
            assert len(needle) >= 10, (case.id, needle)
            assert needle not in harmless_text, (case.id, needle)
