"""What a string says once its disguises are taken off.

A secret can arrive in forms a plain pattern misses: fullwidth letters, zero-width characters or
combining marks inside it, Cyrillic or Greek letters that look like Latin ones, or the whole of
it encoded as base64, hex or percent-escapes. The scanner judges each string as ``skeleton``
gives it, and what ``decoded`` finds inside it too.
"""

from __future__ import annotations

import base64
import binascii
import html
import re
import unicodedata
from collections.abc import Iterator
from urllib.parse import unquote

# Letters of other scripts drawn like Latin ones (from Unicode's confusables, for the letters
# keys and field names are spelled with), and the dashes that pass for a hyphen.
_LOOK_ALIKE_PAIRS = (
    ("CYRILLIC SMALL LETTER A", "a"),
    ("CYRILLIC SMALL LETTER VE", "b"),
    ("CYRILLIC SMALL LETTER IE", "e"),
    ("CYRILLIC SMALL LETTER KA", "k"),
    ("CYRILLIC SMALL LETTER EM", "m"),
    ("CYRILLIC SMALL LETTER EN", "h"),
    ("CYRILLIC SMALL LETTER O", "o"),
    ("CYRILLIC SMALL LETTER ER", "p"),
    ("CYRILLIC SMALL LETTER ES", "c"),
    ("CYRILLIC SMALL LETTER TE", "t"),
    ("CYRILLIC SMALL LETTER U", "y"),
    ("CYRILLIC SMALL LETTER HA", "x"),
    ("CYRILLIC SMALL LETTER DZE", "s"),
    ("CYRILLIC SMALL LETTER BYELORUSSIAN-UKRAINIAN I", "i"),
    ("CYRILLIC SMALL LETTER JE", "j"),
    ("CYRILLIC SMALL LETTER KOMI DE", "d"),
    ("CYRILLIC SMALL LETTER SHHA", "h"),
    ("CYRILLIC SMALL LETTER PALOCHKA", "l"),
    ("CYRILLIC SMALL LETTER QA", "q"),
    ("CYRILLIC SMALL LETTER WE", "w"),
    ("CYRILLIC CAPITAL LETTER A", "A"),
    ("CYRILLIC CAPITAL LETTER VE", "B"),
    ("CYRILLIC CAPITAL LETTER IE", "E"),
    ("CYRILLIC CAPITAL LETTER KA", "K"),
    ("CYRILLIC CAPITAL LETTER EM", "M"),
    ("CYRILLIC CAPITAL LETTER EN", "H"),
    ("CYRILLIC CAPITAL LETTER O", "O"),
    ("CYRILLIC CAPITAL LETTER ER", "P"),
    ("CYRILLIC CAPITAL LETTER ES", "C"),
    ("CYRILLIC CAPITAL LETTER TE", "T"),
    ("CYRILLIC CAPITAL LETTER HA", "X"),
    ("CYRILLIC CAPITAL LETTER BYELORUSSIAN-UKRAINIAN I", "I"),
    ("CYRILLIC CAPITAL LETTER JE", "J"),
    ("CYRILLIC CAPITAL LETTER DZE", "S"),
    ("GREEK SMALL LETTER ALPHA", "a"),
    ("GREEK SMALL LETTER BETA", "b"),
    ("GREEK SMALL LETTER EPSILON", "e"),
    ("GREEK SMALL LETTER IOTA", "i"),
    ("GREEK SMALL LETTER KAPPA", "k"),
    ("GREEK SMALL LETTER NU", "v"),
    ("GREEK SMALL LETTER OMICRON", "o"),
    ("GREEK SMALL LETTER RHO", "p"),
    ("GREEK SMALL LETTER TAU", "t"),
    ("GREEK SMALL LETTER UPSILON", "u"),
    ("GREEK SMALL LETTER CHI", "x"),
    ("GREEK CAPITAL LETTER ALPHA", "A"),
    ("GREEK CAPITAL LETTER BETA", "B"),
    ("GREEK CAPITAL LETTER EPSILON", "E"),
    ("GREEK CAPITAL LETTER ZETA", "Z"),
    ("GREEK CAPITAL LETTER ETA", "H"),
    ("GREEK CAPITAL LETTER IOTA", "I"),
    ("GREEK CAPITAL LETTER KAPPA", "K"),
    ("GREEK CAPITAL LETTER MU", "M"),
    ("GREEK CAPITAL LETTER NU", "N"),
    ("GREEK CAPITAL LETTER OMICRON", "O"),
    ("GREEK CAPITAL LETTER RHO", "P"),
    ("GREEK CAPITAL LETTER TAU", "T"),
    ("GREEK CAPITAL LETTER UPSILON", "Y"),
    ("GREEK CAPITAL LETTER CHI", "X"),
    ("HYPHEN", "-"),
    ("NON-BREAKING HYPHEN", "-"),
    ("FIGURE DASH", "-"),
    ("EN DASH", "-"),
    ("EM DASH", "-"),
    ("MINUS SIGN", "-"),
)
_LOOK_ALIKES = str.maketrans({unicodedata.lookup(name): latin for name, latin in _LOOK_ALIKE_PAIRS})
# Marks and invisible formatting characters (zero-width space and joiners, soft hyphen, word
# joiner, byte-order mark, bidirectional controls) carry nothing a secret needs.
_DROPPED_CATEGORIES = frozenset({"Mn", "Me", "Cf"})


def skeleton(text: str) -> str:
    """``text`` with marks and invisible characters removed, look-alike letters replaced by
    the Latin ones they imitate, and compatibility forms (fullwidth letters) folded."""
    if text.isascii():
        return text
    decomposed = unicodedata.normalize("NFKD", text)
    kept = "".join(c for c in decomposed if unicodedata.category(c) not in _DROPPED_CATEGORIES)
    return unicodedata.normalize("NFKC", kept.translate(_LOOK_ALIKES))


_BASE64_RUN = re.compile(r"[A-Za-z0-9+/_-]{24,}={0,2}")
_HEX_RUN = re.compile(r"(?<![0-9A-Fa-f])(?:[0-9A-Fa-f]{2}){12,}(?![0-9A-Fa-f])")
_PERCENT = re.compile(r"%[0-9A-Fa-f]{2}")
_ENTITY = re.compile(r"&#(?:[0-9]{2,7}|x[0-9A-Fa-f]{2,6});|&[a-z]{2,8};")
_ESCAPE = re.compile(r"\\u([0-9A-Fa-f]{4})")
_BASE32_RUN = re.compile(r"(?<![A-Za-z0-9])[A-Z2-7]{32,}={0,6}(?![A-Za-z0-9])")


def decoded(text: str) -> Iterator[tuple[str, bytes | str]]:
    """What ``text`` carries encoded: ``("base64", bytes)``, ``("base32", bytes)`` and
    ``("hex", bytes)`` for each run that decodes, and the text with its percent-escapes, HTML
    character references or ``\\u`` escapes written out."""
    if "%" in text and _PERCENT.search(text):
        unquoted = unquote(text)
        if unquoted != text:
            yield "percent", unquoted
    if "&" in text and _ENTITY.search(text):
        yield "entities", html.unescape(text)
    if "\\" in text and _ESCAPE.search(text):
        yield "escapes", _ESCAPE.sub(lambda m: chr(int(m.group(1), 16)), text)
    for run in _BASE32_RUN.findall(text):
        try:
            yield "base32", base64.b32decode(run + "=" * (-len(run) % 8))
        except (binascii.Error, ValueError):
            continue
    for run in _BASE64_RUN.findall(text):
        body = run.rstrip("=").replace("-", "+").replace("_", "/")
        if len(body) % 4 == 1:
            continue
        try:
            yield "base64", base64.b64decode(body + "=" * (-len(body) % 4), validate=True)
        except (binascii.Error, ValueError):
            continue
    for run in _HEX_RUN.findall(text):
        yield "hex", bytes.fromhex(run)


def printable(data: bytes) -> str | None:
    """Decoded bytes as text, when nearly all of them are printable (a secret, not noise)."""
    if len(data) < 12:
        return None
    shown = sum(32 <= b < 127 or b in (9, 10, 13) for b in data)
    if shown < 0.95 * len(data):
        return None
    return data.decode("latin-1")
