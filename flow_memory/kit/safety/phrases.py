"""Recovery phrases: twelve or more words of one BIP-39 wordlist in a row, in any of its
languages (the wordlists ship with the ``mnemonic`` package), spelled with or without accents,
spaced or, for the Chinese lists, written as unspaced characters (then only a phrase whose
checksum holds counts, since ordinary Chinese text is made of the same characters)."""

from __future__ import annotations

import hashlib
import re
import unicodedata
from functools import cache
from pathlib import Path

PHRASE_WORDS = 12
_WORD = re.compile(r"[^\W\d_]+")  # letters only: numbering and punctuation end a word
_CHINESE = ("chinese_simplified", "chinese_traditional")


def _plain(word: str) -> str:
    decomposed = unicodedata.normalize("NFKD", word)
    return "".join(c for c in decomposed if not unicodedata.combining(c)).lower()


@cache
def _wordlists() -> dict[str, list[str]]:
    import mnemonic

    folder = Path(mnemonic.__file__).parent / "wordlist"
    return {
        path.stem: [_plain(w) for w in path.read_text(encoding="utf-8").split()]
        for path in sorted(folder.glob("*.txt"))
    }


@cache
def _languages_of() -> dict[str, frozenset[str]]:
    """Each word of every list, and the languages whose list has it."""
    found: dict[str, set[str]] = {}
    for language, words in _wordlists().items():
        for word in words:
            found.setdefault(word, set()).add(language)
    return {word: frozenset(languages) for word, languages in found.items()}


def recovery_phrase(text: str) -> bool:
    """Whether ``text`` holds a recovery phrase."""
    words = _WORD.findall(_plain(text))
    if len(words) >= PHRASE_WORDS and _has_run(words):
        return True
    return not text.isascii() and _unspaced_chinese(text)


def word_list(items: list[object]) -> bool:
    """Whether a list spells a recovery phrase one word per item (``["legal", "winner", …]``)."""
    if len(items) < PHRASE_WORDS:
        return False
    return _has_run(
        [_plain(item.strip()) if isinstance(item, str) and item.strip() else "" for item in items]
    )


def _has_run(words: list[str]) -> bool:
    languages_of = _languages_of()
    # A run of twelve has a word at every twelfth place: one there is needed to look further.
    if not any(w in languages_of for w in words[PHRASE_WORDS - 1 :: PHRASE_WORDS]):
        return False
    run, languages = 0, frozenset[str]()
    for word in words:
        found = languages_of.get(word)
        if found is None:
            run, languages = 0, frozenset()
            continue
        shared = languages & found if run else found
        if shared:
            run, languages = run + 1, shared
        else:
            run, languages = 1, found
        if run >= PHRASE_WORDS:
            return True
    return False


def _unspaced_chinese(text: str) -> bool:
    characters = [c for c in text if not c.isspace()]
    if len(characters) not in (12, 15, 18, 21, 24):
        return False
    lists = _wordlists()
    return any(
        all(c in lists[language] for c in characters) and _checksum_holds(characters, language)
        for language in _CHINESE
    )


def _checksum_holds(words: list[str], language: str) -> bool:
    index = {w: i for i, w in enumerate(_wordlists()[language])}
    bits = "".join(format(index[w], "011b") for w in words)
    check_length = len(words) // 3
    entropy = bits[:-check_length]
    digest = hashlib.sha256(int(entropy, 2).to_bytes(len(entropy) // 8, "big")).digest()
    return digest[0] >> (8 - check_length) == int(bits[-check_length:], 2)
