"""Judging one string: the kind of forbidden material it holds, or None.

A string is judged as ``skeleton`` gives it (disguises off), and what it carries encoded is
judged too, two levels deep. Strings found clean are remembered (short ones, a bounded number):
requests repeat the same models, units and ids. Strings found to hold a secret are never kept.
"""

from __future__ import annotations

from flow_memory.kit.safety import credentials as shapes
from flow_memory.kit.safety.normalize import decoded, printable, skeleton
from flow_memory.kit.safety.phrases import recovery_phrase
from flow_memory.kit.safety.transfers import transfer_kind

_REMEMBERED_LENGTH = 256
_REMEMBERED_COUNT = 16_384
_CLEAN: set[tuple[str, bool]] = set()
_DECODE_DEPTH = 2


def secret_kind_in_text(text: str, *, digest: bool = False) -> str | None:
    """Name the kind of forbidden material ``text`` holds (``digest``: its field says it holds
    a digest, so a 64-hex value there is one), or None."""
    remembered = len(text) <= _REMEMBERED_LENGTH
    if remembered and (text, digest) in _CLEAN:
        return None
    kind = _kind(text, digest, 0)
    if kind is None and remembered:
        if len(_CLEAN) >= _REMEMBERED_COUNT:
            _CLEAN.clear()
        _CLEAN.add((text, digest))
    return kind


def _kind(text: str, digest: bool, depth: int) -> str | None:
    plain = skeleton(text)
    if len(plain) >= (23 if plain.isascii() else 12) and (
        recovery_phrase(text) or (plain != text and recovery_phrase(plain))
    ):
        return "seed_phrase"
    if len(plain) < 12:
        return None
    found = shapes.VENDOR.search(plain) or shapes.VENDOR.search(shapes.prefixes_lowered(plain))
    if found is not None and found.lastgroup is not None:
        return shapes.REPORTED_KIND[found.lastgroup]
    folded = plain.lower()
    for kind, (words, pattern) in shapes.CONTEXT.items():
        if any(word in folded for word in words):
            for match in pattern.finditer(plain):
                captured = [v for k, v in match.groupdict().items() if k.startswith("credential")]
                if not any(captured) or any(shapes.credential_shaped(v) for v in captured if v):
                    return "secret_assignment" if kind == "password_in_text" else kind
    if "[" in plain and shapes.KEY_ARRAY.search(plain):
        return "signing_key_array"
    transfer = transfer_kind(plain, folded)
    if transfer is not None:
        return transfer
    if "begin" in folded:
        plain = shapes.PUBLIC_BLOCK.sub(" ", plain)
    if "base64," in plain:
        plain = shapes.without_images(plain)
    if "ssh-" in plain or "ecdsa-" in plain:
        plain = shapes.SSH_PUBLIC_KEY.sub(" ", plain)
    return _token_kind(plain, digest, depth)


def _token_kind(text: str, digest: bool, depth: int) -> str | None:
    for match in shapes.HEX_KEY.finditer(text):
        # A key's 64 digits are random: a run of a few repeated digits is filler, not a key.
        if len(set(match.group().lower())) >= 8 and not (
            digest or shapes.digest_context(text, match.start())
        ):
            return "hex_private_key"
    for match in shapes.WIF.finditer(text):
        if shapes.wif_key(match.group()):
            return "wif_private_key"
    if shapes.EXTENDED_KEY.search(text):
        return "extended_private_key"
    for match in shapes.TOKEN_RUN.finditer(text):
        if shapes.looks_random(match.group()) and not (
            digest or shapes.digest_context(text, match.start())
        ):
            return "high_entropy_token"
    if depth >= _DECODE_DEPTH:
        return None
    for encoding, content in decoded(text):
        if isinstance(content, bytes):
            if encoding == "base64" and shapes.private_key_der(content):
                return "pem_private_key"
            inner = printable(content)
        else:
            inner = content
        if inner is not None:
            kind = _kind(inner, digest, depth + 1)
            if kind is not None:
                return kind
    return None
