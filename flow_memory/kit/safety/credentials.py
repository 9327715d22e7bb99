"""Credentials by their shape: provider keys of many vendors, tokens, private keys.

The vendor shapes are written here from each vendor's published key formats, checked against
the rule lists of maintained scanners (CredSweeper, MIT; detect-secrets, Apache-2.0), which
were evaluated and found too slow or too heavy for every request. Each rule names a kind;
the scanner reports the kind and the field, never the value.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import math
import re

# A token starts where no token character precedes it.
_START = r"(?<![A-Za-z0-9_])"
_W = r"[A-Za-z0-9_-]"

# Shapes that are credentials by themselves, each kind under one named group.
_VENDOR_SHAPES = {
    "cloud_access_key": (
        r"(?:AKIA|ASIA|ABIA|ACCA|AGPA|AIDA|AROA|ANPA|ANVA|APKA)[A-Z0-9]{16}(?![A-Z0-9])"
        r"|LTAI[0-9A-Za-z]{12,20}(?![0-9A-Za-z])"
        r"|ABSK[0-9A-Za-z+/=]{40,}"
        r"|AKCp[0-9A-Za-z]{60,}"
        r"|[A-Za-z0-9_~.-]{3}8Q~[A-Za-z0-9_~.-]{31,34}"
    ),
    "google_credential": r"AIza" + _W + r"{35}|ya29\." + _W + r"{20,}|1//0" + _W + r"{20,}"
    r"|GOCSPX-" + _W + r"{28}",
    "chat_platform_token": r"xox[abposer]-[0-9A-Za-z-]{10,}|xapp-[0-9A-Za-z-]{10,}"
    r"|[0-9]{8,10}:AA[A-Za-z0-9_-]{33}(?![A-Za-z0-9_-])"
    r"|[MNO][A-Za-z0-9_-]{23,27}\.[A-Za-z0-9_-]{6}\.[A-Za-z0-9_-]{27,40}",
    "payment_provider_key": r"(?:sk|rk|pk)_(?:live|test)_[0-9A-Za-z]{16,}|whsec_[0-9A-Za-z]{24,}"
    r"|sq0(?:atp|csp)-" + _W + r"{22,43}|EAAA" + _W + r"{60}",
    "messaging_service_key": r"SG\." + _W + r"{16,32}\." + _W + r"{16,64}"
    r"|SK[0-9a-f]{32}(?![0-9a-f])|key-[0-9a-z]{32}(?![0-9a-z])"
    r"|[0-9a-f]{32}-us[0-9]{1,2}(?![0-9])",
    "package_registry_token": r"npm_[0-9A-Za-z]{36}|pypi-AgE[A-Za-z0-9_-]{50,}"
    r"|rubygems_[0-9a-f]{48}|oy2[a-z0-9]{43}(?![a-z0-9])",
    "code_host_token": r"gh[pousr]_[0-9A-Za-z]{30,}|github_pat_[0-9A-Za-z_]{30,}"
    r"|gl(?:pat|dt|ft|soat|rt|cbt|imt|ptt|oas|ffct)-" + _W + r"{20,}|GR1348941" + _W + r"{20,}"
    r"|ATATT3" + _W + r"{60,}|ATBB[0-9A-Za-z]{32}",
    "model_provider_key": r"sk-(?:proj|svcacct|admin|None)-" + _W + r"{20,}"
    r"|sk-ant-[a-z]{2,6}[0-9]{2}-" + _W + r"{40,}|sk-or-v1-[0-9a-f]{64}"
    # sk- and a long run: a key; sk- and short words between dashes: a model's name.
    r"|sk-(?:[A-Za-z0-9]{1,12}-){0,3}[A-Za-z0-9]{20,}(?![A-Za-z0-9_])"
    r"|hf_[A-Za-z0-9]{30,}|api_org_[A-Za-z0-9]{30,}|lsv2_(?:pt|sk)_[0-9a-f]{32}_[0-9a-f]{10}"
    r"|gsk_[0-9A-Za-z]{40,}|xai-[0-9A-Za-z]{60,}|pplx-[0-9A-Za-z]{40,}"
    r"|tgp_v1_" + _W + r"{40,}|llx-" + _W + r"{40,}|tvly-" + _W + r"{30,}|r8_[0-9A-Za-z]{37}",
    "infrastructure_token": r"do[oprs]_v1_[0-9a-f]{64}|shp(?:at|ca|pa|ss)_[0-9a-fA-F]{32}"
    r"|hv[sbr]\." + _W + r"{24,}|dapi[0-9a-f]{32}|HRKU-" + _W + r"{36,}"
    r"|dp\.(?:pt|st|ct|sa)\.[0-9A-Za-z]{40,}|dckr_pat_" + _W + r"{27,}|pul-[0-9a-f]{40}"
    r"|cf(?:at|ut)_[0-9A-Za-z]{40,}|tskey-[a-z]+-[0-9A-Za-z-]{20,}"
    r"|dt0c01\.[0-9A-Z]{24}\.[0-9A-Z]{64}|lin_api_[0-9A-Za-z]{40}|sntry[su]_" + _W + r"{40,}"
    r"|ops_eyJ" + _W + r"{60,}|PMAK-[0-9a-f]{24}-[0-9a-f]{34}|NRAK-[0-9A-Z]{27}"
    r"|(?:ntn|secret)_[0-9A-Za-z]{40,}|figd_" + _W + r"{40}|nfp_[0-9A-Za-z]{36}"
    r"|sbp_[0-9a-f]{40}|pscale_(?:tkn|pw|oauth)_"
    + _W
    + r"{32,}|glsa_"
    + _W
    + r"{32}_[0-9a-fA-F]{8}"
    r"|glc_eyJ" + _W + r"{40,}|AAAAAAAAAAAAAAAAAAAAA[0-9A-Za-z%]{30,}"
    r"|AGE-SECRET-KEY-1[0-9A-Z]{58}|SU[A-Z2-7]{56}"
    r"|IQoJb3JpZ2luX2Vj[A-Za-z0-9+/=]{40,}|FwoGZXIvYXdz[A-Za-z0-9+/=]{40,}"
    r"|access_token\$(?:production|sandbox)\$[0-9a-z]{16}\$[0-9a-f]{32}"
    r"|rzp_(?:live|test)_[0-9A-Za-z]{14,}|[a-z0-9]{14}\.atlasv1\.[A-Za-z0-9_-]{60,}"
    r"|sha256~[A-Za-z0-9_-]{43}|v1\.0-[0-9a-f]{24}-[0-9a-f]{100,}"
    r"|EAA[A-Z][A-Za-z0-9]{60,}|AAAA[A-Za-z0-9_-]{7}:APA91b[A-Za-z0-9_-]{100,}"
    r"|eyJrIjoi[A-Za-z0-9+/=]{20,}|nsec1[02-9ac-hj-np-z]{58}",
    # Flow Memory's own keys: 43 url-safe random characters, so mixed case (an identifier such
    # as fm_orchestrator_pool_primary_west is not one).
    "flow_memory_key": r"fm_(?=[A-Za-z0-9_-]*[A-Z])(?=[A-Za-z0-9_-]*[a-z])[A-Za-z0-9_-]{24,}",
    # alg "none" leaves the signature empty; an encrypted one (JWE) has five parts.
    "jwt": r"eyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]*"
    r"|eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]*\.[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}",
    "paseto": r"v[1-4]\.(?:local|public)\.[A-Za-z0-9_-]{20,}",
    "private_key": r"b3BlbnNzaC1rZXktdjE|LS0tLS1CRUdJTiB[A-Za-z0-9+/]*UFJJVkFURSBLRV",
}
VENDOR = re.compile(
    _START
    + "(?:"
    + "|".join(f"(?P<{kind}>{shape})" for kind, shape in _VENDOR_SHAPES.items())
    + ")"
)
# The kind each group is reported as: coarse on purpose (an answer names what was refused, not
# which rule matched).
REPORTED_KIND = {
    **dict.fromkeys(_VENDOR_SHAPES, "provider_api_key"),
    "jwt": "jwt",
    "paseto": "bearer_token",
    "private_key": "pem_private_key",
}
# Shapes a secret split over two fields is looked for in, once the fields are joined.
SPLIT_KINDS = frozenset(_VENDOR_SHAPES) - {"private_key"}

# Shapes that need words around them, each tried only when a word it needs is in the text.
_CONTEXT_SHAPES: dict[str, tuple[tuple[str, ...], str]] = {
    "pem_private_key": (
        ("private", "putty"),
        r"(?i)-{3,}\s*begin\s+(?:[a-z0-9]+\s+){0,3}private\s+key(?:\s+block)?\s*-{3,}"
        r"|PuTTY-User-Key-File-[0-9]",
    ),
    # No \b before the name: in DB_PASSWORD=… or client_secret=… it follows an underscore. A
    # value that is a reference (secret://…) is what the API asks for.
    "secret_assignment": (
        ("pass", "pwd", "secret", "private", "key", "mnemonic", "seed", "credential", "token"),
        r"(?i)(?<![A-Za-z0-9])(?:pass(?:word|wd|phrase)?|pwd|secret|client[_-]?secret"
        r"|private[_-]?key|api[_-]?key|access[_-]?key|secret[_-]?key|account[_-]?key"
        r"|shared[_-]?access[_-]?key|mnemonic|seed[_-]?phrase|credentials?|access[_-]?token"
        r"|auth[_-]?token|refresh[_-]?token)"
        r"[\"']?\s*(?:=>|:=|[=:])\s*(?![\"']?(?:secret:)?//)[\"']?(?![$<{*])"
        r"(?P<credential>[^\s\"',;}&]{6,})",
    ),
    "password_in_text": (
        ("pass", "pwd", "secret", "-u", "--user", ":"),
        r"(?i)(?<![A-Za-z0-9])(?:password|passwd|passphrase|pwd|secret)\s+(?:is\s+|was\s+)?"
        r"(?P<credential>[^\s\"',;]{6,})"
        r"|(?:\bcurl\b[^\n]*?\s-u|--user)\s+[^:\s]+:(?P<credential2>[^\s@]{6,})"
        r"|^[^:\s]+:[0-9]{2,5}:[^:\s]+:[^:\s]+:(?P<credential3>\S{6,})$",
    ),
    "signature": (
        ("signature", "sig"),
        r"(?i)\bsig(?:nature)?\b[\"']?\s*[:=]\s*[\"']?(?:0x)?[0-9a-f]{64,}",
    ),
    "bearer_token": (
        ("bearer", "basic", "token", "ntlm", "negotiate", "authorization"),
        r"(?i)\b(?:bearer|token|ntlm|negotiate|basic)\s+(?P<credential>[A-Za-z0-9._~+/-]{12,}=*)",
    ),
    "session_cookie": (
        ("sess", "sid", "csrf", "cookie", "remember"),
        r"(?i)(?<![A-Za-z0-9])(?:session(?:id|_id|_token)?|sid|connect\.sid|_session|csrftoken"
        r"|jsessionid|phpsessid|remember_token|cookie)"
        r"\s*[=:]\s*[\"']?(?P<credential>[A-Za-z0-9._%+/=-]{12,})",
    ),
    "password_in_url": (
        ("://",),
        r"\b[a-zA-Z][a-zA-Z0-9+.-]{1,20}://[^\s/:@\"']*:(?P<credential>[^\s/@\"']{3,})@",
    ),
    "webhook_url": (
        ("hook", "token=", "key=", "sig=", "secret=", "auth="),
        r"(?i)hooks\.slack\.com/(?:services|workflows|triggers)/[A-Za-z0-9_/]{20,}"
        r"|discord(?:app)?\.com/api/webhooks/[0-9]+/[A-Za-z0-9_-]{20,}"
        r"|webhook\.office\.com/webhookb2/\S{20,}|hooks\.zapier\.com/hooks/catch/[0-9]+/[A-Za-z0-9]+"
        r"|https?://\S*?/(?:web)?hooks?/\S*?[A-Za-z0-9_-]{24,}"
        r"|[?&](?:token|key|sig|signature|auth)=[^&\s]{12,}",
    ),
}
CONTEXT = {kind: (words, re.compile(shape)) for kind, (words, shape) in _CONTEXT_SHAPES.items()}
# Placeholders people write in place of a secret: never one.
_PLACEHOLDER = re.compile(r"(?i)^(?:x+|\*+|\.+|-+|_+|changeme|redacted|none|null|example\w*)$")


def credential_shaped(candidate: str) -> bool:
    """Whether a captured value looks machine-made (letters with digits, or mixed case), not
    a word, and not a placeholder."""
    if _PLACEHOLDER.match(candidate):
        return False
    digits = sum(c.isdigit() for c in candidate)
    upper = sum(c.isupper() for c in candidate)
    lower = sum(c.islower() for c in candidate)
    return (digits > 0 and upper + lower > 0) or (upper >= 2 and lower >= 2)


# A 64-hex private key, unless its text says it is a digest.
HEX_KEY = re.compile(r"(?<![0-9A-Za-z])(?:0[xX])?[0-9a-fA-F]{64}(?![0-9A-Za-z])")
_DIGEST_BEFORE = re.compile(
    r"(?i)(?:sha-?(?:256|3|512)?|blake2b?|hash|digest|checksum|etag|sum)\W{0,6}$"
)


def digest_context(text: str, start: int) -> bool:
    return _DIGEST_BEFORE.search(text[max(0, start - 24) : start]) is not None


_BASE58 = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"
_BASE58_INDEX = {c: i for i, c in enumerate(_BASE58)}
WIF = re.compile(r"(?<![1-9A-Za-z])[5KLc9][1-9A-HJ-NP-Za-km-z]{50,51}(?![1-9A-Za-z])")
EXTENDED_KEY = re.compile(r"(?<![1-9A-Za-z])[xtyzuvYZUV]prv[1-9A-HJ-NP-Za-km-z]{100,112}")


def base58check(text: str) -> bytes | None:
    """The payload of a base58check string, or None when its checksum does not hold."""
    number = 0
    for char in text:
        digit = _BASE58_INDEX.get(char)
        if digit is None:
            return None
        number = number * 58 + digit
    raw = number.to_bytes((number.bit_length() + 7) // 8, "big")
    raw = b"\0" * (len(text) - len(text.lstrip("1"))) + raw
    if len(raw) < 5:
        return None
    payload, checksum = raw[:-4], raw[-4:]
    if hashlib.sha256(hashlib.sha256(payload).digest()).digest()[:4] != checksum:
        return None
    return payload


def wif_key(text: str) -> bool:
    """A wallet-import-format private key (version 0x80 or 0xef, a checksum that holds)."""
    payload = base58check(text)
    return payload is not None and payload[0] in (0x80, 0xEF) and len(payload) in (33, 34)


def private_key_der(data: bytes) -> bool:
    """Whether decoded bytes open like a private key's DER body (PKCS#1, PKCS#8 or SEC1: a
    sequence whose first element is version 0 or 1; a public key opens with a sequence)."""
    if len(data) < 40 or data[0] != 0x30:
        return False
    start = 2 if data[1] < 0x80 else 2 + (data[1] & 0x7F)
    return data[start : start + 3] in (b"\x02\x01\x00", b"\x02\x01\x01")


# Generic tokens: long runs of token characters that look random.
TOKEN_RUN = re.compile(r"(?<![A-Za-z0-9+/_=.-])[A-Za-z0-9+/_=.-]{24,}")
_SEGMENT = re.compile(r"[-_./]")


def looks_random(token: str) -> bool:
    """A 24 to 80 character token of mixed case with digits, whose characters are spread as a
    random key's are; slugs, paths and model names (short words between separators) are not."""
    core = token.strip("=")
    if not 24 <= len(core) <= 512:
        return False
    segments = _SEGMENT.split(core)
    if len(segments) >= 3 and max(map(len, segments)) < 14:
        return False
    upper = sum(c.isupper() for c in core)
    lower = sum(c.islower() for c in core)
    digits = sum(c.isdigit() for c in core)
    if upper and lower and digits >= 2:
        return _entropy(core) >= (3.9 if len(core) < 32 else 4.2)
    # Letters alone, of mixed case: a key's alphabet can lack digits; words run together
    # (CamelCase names) are rarely this long and this spread.
    return len(core) >= 30 and upper >= 4 and lower >= 4 and _entropy(core) >= 4.3


def _entropy(text: str) -> float:
    counts: dict[str, int] = {}
    for char in text:
        counts[char] = counts.get(char, 0) + 1
    size = len(text)
    return -sum(n / size * math.log2(n / size) for n in counts.values())


# Public material that looks like key material and is not: public key and certificate blocks,
# SSH public keys, and images sent as data URIs.
PUBLIC_BLOCK = re.compile(
    r"(?is)-{3,}\s*BEGIN\s+(?:[A-Z0-9]+\s+)?(?:PUBLIC\s+KEY|CERTIFICATE(?:\s+REQUEST)?)\s*-{3,}"
    r".*?-{3,}\s*END[^-]*-{3,}"
)
SSH_PUBLIC_KEY = re.compile(r"(?:ssh-(?:rsa|ed25519|dss)|ecdsa-sha2-nistp[0-9]+)\s+[A-Za-z0-9+/=]+")
_DATA_URI = re.compile(r"data:(image/[a-z0-9.+-]+);base64,([A-Za-z0-9+/=\s]+)")
_IMAGE_MAGIC = (b"\x89PNG", b"\xff\xd8\xff", b"GIF8", b"RIFF", b"<svg", b"<?xml", b"BM")


def without_images(text: str) -> str:
    """``text`` with every data-URI image that really is one (by its first bytes) removed."""

    def image(match: re.Match[str]) -> str:
        try:
            head = base64.b64decode(match.group(2)[:16] + "=" * (-len(match.group(2)[:16]) % 4))
        except (binascii.Error, ValueError):
            return match.group(0)
        return " " if head.startswith(_IMAGE_MAGIC) else match.group(0)

    return _DATA_URI.sub(image, text)


# A lowercase-insensitive look at prefixes: "SK-PROJ-…" and "Sk_Live_…" are "sk-proj-…" and
# "sk_live_…" with their case changed.
_CASED_PREFIX = re.compile(r"(?<![A-Za-z0-9])[A-Za-z]{2,8}[-_](?:[A-Za-z]{2,8}[-_])?")


def prefixes_lowered(text: str) -> str:
    return _CASED_PREFIX.sub(lambda match: match.group().lower(), text)


# 64 numbers from 0 to 255 in brackets: a 64-byte secret key written as an array (Solana's).
KEY_ARRAY = re.compile(r"\[\s*(?:[0-9]{1,3}\s*,\s*){31,63}[0-9]{1,3}\s*\]")


def key_array(items: list[object] | tuple[object, ...]) -> bool:
    """A list of 32 or 64 byte values: a secret key written out as numbers."""
    return (
        len(items) in (32, 64)
        and all(type(item) is int and 0 <= item <= 255 for item in items)
        and len(set(items)) > 8
    )
