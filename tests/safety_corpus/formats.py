"""Fake values in the formats that real credentials, signing keys and payment details take.

Every value comes from a generator seeded with the case's id: the same on every run and on every
machine, random-looking, and never a real credential. Values are built when the corpus is
imported rather than written down as literals, so no file in the repository holds a string that
a secret scanner or a push protection would take for a live key; the prefixes alone are written
here, and they are public knowledge (gitleaks' rules list them).
"""

from __future__ import annotations

import base64
import hashlib
import json
import random
import string
from collections.abc import Sequence

from mnemonic import Mnemonic

LOWER = string.ascii_lowercase
UPPER = string.ascii_uppercase
DIGITS = string.digits
ALNUM = LOWER + UPPER + DIGITS
LOWER_ALNUM = LOWER + DIGITS
UPPER_ALNUM = UPPER + DIGITS
HEX = "0123456789abcdef"
URLSAFE = ALNUM + "-_"
BASE64 = ALNUM + "+/"
BASE58 = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"
BECH32 = "qpzry9x8gf2tvdw0s3jn54khce6mua7l"

# DER openings of private-key structures (PKCS#8 RSA 2048, PKCS#1 RSA, SEC1 P-256, PKCS#8
# Ed25519): what the base64 body of a real PEM key starts with.
RSA_PKCS8_HEAD = bytes.fromhex(
    "308204bd020100300d06092a864886f70d0101010500048204a7308204a30201000282010100"
)
RSA_PKCS1_HEAD = bytes.fromhex("308204a40201000282010100")
EC_SEC1_HEAD = bytes.fromhex("30770201010420")
EC_SEC1_MIDDLE = bytes.fromhex("a00a06082a8648ce3d030107a144034200")
ED25519_PKCS8_HEAD = bytes.fromhex("302e020100300506032b657004220420")
OPENSSH_MAGIC = b"openssh-key-v1\x00"


class Fakes:
    """A seeded source of fake values; one per corpus case."""

    def __init__(self, seed: str) -> None:
        self.rng = random.Random(seed)

    # -- characters -------------------------------------------------------------------------

    def chars(self, alphabet: str, count: int) -> str:
        return "".join(self.rng.choice(alphabet) for _ in range(count))

    def alnum(self, count: int) -> str:
        """Mixed-case letters and digits, with at least one of each (high entropy)."""
        while True:
            text = self.chars(ALNUM, count)
            if count < 3 or (
                any(c in LOWER for c in text)
                and any(c in UPPER for c in text)
                and any(c in DIGITS for c in text)
            ):
                return text

    def hex(self, count: int) -> str:
        return self.chars(HEX, count)

    def digits(self, count: int) -> str:
        return self.chars("123456789", 1) + self.chars(DIGITS, count - 1)

    def urlsafe(self, count: int) -> str:
        return self.chars(ALNUM, 1) + self.chars(URLSAFE, count - 2) + self.chars(ALNUM, 1)

    def raw(self, count: int) -> bytes:
        return self.rng.randbytes(count)

    def b64(self, count: int) -> str:
        return base64.b64encode(self.raw(count)).decode()

    def b64url(self, count: int) -> str:
        return base64.urlsafe_b64encode(self.raw(count)).decode().rstrip("=")

    def password(self) -> str:
        """A human-made password: words, digits and a symbol (low entropy per character)."""
        words = ["Tr0ub4dor", "Correct", "Horse", "Battery", "Staple", "Winter", "Falcon"]
        return f"{self.rng.choice(words)}{self.rng.choice('!#%&*?')}{self.digits(4)}{self.alnum(4)}"

    # -- keys and signing material -------------------------------------------------------------

    def base58check(self, payload: bytes) -> str:
        checksum = hashlib.sha256(hashlib.sha256(payload).digest()).digest()[:4]
        return base58(payload + checksum)

    def wif(self, *, compressed: bool = True, testnet: bool = False) -> str:
        """A private key in wallet import format (base58check, 0x80 or 0xEF version)."""
        payload = (b"\xef" if testnet else b"\x80") + self.raw(32)
        return self.base58check(payload + (b"\x01" if compressed else b""))

    def extended_private_key(self, version: str = "0488ade4") -> str:
        """An extended private key (BIP-32): xprv by default, tprv/yprv/zprv by version."""
        payload = (
            bytes.fromhex(version)
            + b"\x03"
            + self.raw(4)
            + self.raw(4)
            + self.raw(32)
            + b"\x00"
            + self.raw(32)
        )
        return self.base58check(payload)

    def mnemonic(self, language: str, words: int = 12) -> str:
        """A valid BIP-39 phrase (checksum included) from the language's wordlist."""
        entropy = self.raw(words * 4 // 3)
        return str(Mnemonic(language).to_mnemonic(entropy))

    def bech32(self, hrp: str, data: bytes) -> str:
        return bech32_encode(hrp, convert_bits(data, 8, 5))

    def pem_body(self, head: bytes, random_bytes: int, tail: bytes = b"") -> str:
        return base64.b64encode(head + self.raw(random_bytes) + tail).decode()

    def rsa_pkcs8_body(self) -> str:
        return self.pem_body(RSA_PKCS8_HEAD, 1190)

    def rsa_pkcs1_body(self) -> str:
        return self.pem_body(RSA_PKCS1_HEAD, 1180)

    def ec_sec1_body(self) -> str:
        return base64.b64encode(
            EC_SEC1_HEAD + self.raw(32) + EC_SEC1_MIDDLE + b"\x04" + self.raw(64)
        ).decode()

    def ed25519_body(self) -> str:
        return self.pem_body(ED25519_PKCS8_HEAD, 32)

    def openssh_body(self) -> str:
        return base64.b64encode(
            OPENSSH_MAGIC + b"\x00\x00\x00\x04none\x00\x00\x00\x04none" + self.raw(360)
        ).decode()

    def jwt(self, header: dict[str, object], claims: dict[str, object], signature: int) -> str:
        """A compact JWS; ``signature`` random bytes (0 gives the empty signature of alg none)."""
        parts = [b64url_json(header), b64url_json(claims)]
        parts.append(self.b64url(signature) if signature else "")
        return ".".join(parts)

    # -- payment targets -------------------------------------------------------------------------

    def eth_address(self) -> str:
        body = self.hex(40)
        # A mixed-case spelling, as wallets print them (not a real EIP-55 checksum).
        return "0x" + "".join(c.upper() if self.rng.random() < 0.5 else c for c in body)

    def btc_segwit_address(self) -> str:
        return bech32_encode("bc", [0, *convert_bits(self.raw(20), 8, 5)])

    def btc_legacy_address(self) -> str:
        return self.base58check(b"\x00" + self.raw(20))

    def tron_address(self) -> str:
        return self.base58check(b"\x41" + self.raw(20))

    def solana_address(self) -> str:
        return base58(self.raw(32))

    def iban(self, country: str) -> str:
        """An IBAN with valid mod-97 check digits (the account itself is random)."""
        bban = {
            "DE": lambda: self.chars(DIGITS, 18),
            "FR": lambda: self.chars(DIGITS, 10) + self.chars(UPPER_ALNUM, 11) + self.digits(2),
            "GB": lambda: self.chars(UPPER, 4) + self.chars(DIGITS, 14),
            "NL": lambda: self.chars(UPPER, 4) + self.chars(DIGITS, 10),
            "ES": lambda: self.chars(DIGITS, 20),
        }[country]()
        rearranged = bban + country + "00"
        number = int("".join(str(int(c, 36)) for c in rearranged))
        return f"{country}{98 - number % 97:02d}{bban}"

    def eth_legacy_signed_tx(self) -> str:
        """A legacy signed transaction (RLP: nonce, gas price, gas, to, value, data, v, r, s)."""
        fields: list[object] = [
            int_bytes(self.rng.randrange(1, 500)),
            int_bytes(20_000_000_000),
            int_bytes(21_000),
            self.raw(20),
            int_bytes(10**18),
            b"",
            int_bytes(37),
            self.raw(32),
            self.raw(32),
        ]
        return "0x" + rlp(fields).hex()

    def eth_1559_signed_tx(self) -> str:
        """An EIP-1559 signed transaction (type 2): 0x02 || RLP(...), with r and s."""
        fields = [
            int_bytes(1),
            int_bytes(self.rng.randrange(1, 500)),
            int_bytes(1_500_000_000),
            int_bytes(30_000_000_000),
            int_bytes(65_000),
            self.raw(20),
            b"",
            bytes.fromhex("a9059cbb")
            + bytes(12)
            + self.raw(20)
            + int_bytes(10_000_000).rjust(32, b"\0"),
            [],
            int_bytes(1),
            self.raw(32),
            self.raw(32),
        ]
        return "0x02" + rlp(fields).hex()

    def btc_signed_tx(self) -> str:
        """A signed one-input, one-output transaction in raw hex."""
        script_sig = b"\x47\x30\x44\x02\x20" + self.raw(32) + b"\x02\x20" + self.raw(32)
        script_sig += b"\x01\x21\x02" + self.raw(32)
        raw = (
            bytes.fromhex("02000000")
            + b"\x01"
            + self.raw(32)
            + bytes(4)
            + bytes([len(script_sig)])
            + script_sig
            + b"\xff\xff\xff\xff"
            + b"\x01"
            + (50_000_000).to_bytes(8, "little")
            + b"\x16\x00\x14"
            + self.raw(20)
            + bytes(4)
        )
        return raw.hex()


# -- encodings ---------------------------------------------------------------------------------


def base58(data: bytes) -> str:
    number = int.from_bytes(data, "big")
    text = ""
    while number:
        number, digit = divmod(number, 58)
        text = BASE58[digit] + text
    return "1" * (len(data) - len(data.lstrip(b"\0"))) + text


def b64url_json(document: dict[str, object]) -> str:
    raw = json.dumps(document, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def convert_bits(data: bytes, source: int, target: int) -> list[int]:
    accumulator, bits, out = 0, 0, []
    for value in data:
        accumulator = (accumulator << source) | value
        bits += source
        while bits >= target:
            bits -= target
            out.append((accumulator >> bits) & ((1 << target) - 1))
    if bits:
        out.append((accumulator << (target - bits)) & ((1 << target) - 1))
    return out


def _bech32_polymod(values: list[int]) -> int:
    generator = [0x3B6A57B2, 0x26508E6D, 0x1EA119FA, 0x3D4233DD, 0x2A1462B3]
    checksum = 1
    for value in values:
        top = checksum >> 25
        checksum = (checksum & 0x1FFFFFF) << 5 ^ value
        for i in range(5):
            checksum ^= generator[i] if (top >> i) & 1 else 0
    return checksum


def bech32_encode(hrp: str, data: list[int]) -> str:
    expanded = [ord(c) >> 5 for c in hrp] + [0] + [ord(c) & 31 for c in hrp]
    polymod = _bech32_polymod([*expanded, *data, 0, 0, 0, 0, 0, 0]) ^ 1
    checksum = [(polymod >> 5 * (5 - i)) & 31 for i in range(6)]
    return hrp + "1" + "".join(BECH32[d] for d in data + checksum)


def int_bytes(value: int) -> bytes:
    return value.to_bytes((value.bit_length() + 7) // 8, "big") if value else b""


def rlp(item: bytes | Sequence[object]) -> bytes:
    """Recursive-length-prefix encoding of bytes and nested lists of bytes."""
    if isinstance(item, bytes):
        if len(item) == 1 and item[0] < 0x80:
            return item
        return _rlp_length(len(item), 0x80) + item
    payload = b"".join(rlp(part) for part in item)  # type: ignore[arg-type]
    return _rlp_length(len(payload), 0xC0) + payload


def _rlp_length(length: int, offset: int) -> bytes:
    if length < 56:
        return bytes([offset + length])
    encoded = int_bytes(length)
    return bytes([offset + 55 + len(encoded)]) + encoded


def pem(label: str, body: str, *, width: int = 64, newline: str = "\n") -> str:
    """A PEM block: ``-----BEGIN <label>-----``, the body wrapped, ``-----END <label>-----``."""
    lines = [body[i : i + width] for i in range(0, len(body), width)]
    return newline.join([f"-----BEGIN {label}-----", *lines, f"-----END {label}-----"])


def fullwidth(text: str) -> str:
    """``text`` with every printable ASCII character as its fullwidth form (U+FF01-U+FF5E)."""
    return "".join(chr(ord(c) + 0xFEE0) if "!" <= c <= "~" else c for c in text)


def wrap(body: str, width: int = 64) -> str:
    return "\n".join(body[i : i + width] for i in range(0, len(body), width))
