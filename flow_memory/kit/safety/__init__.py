"""The safety boundary: the dry-run envelope and the forbidden-material scanner.

Pure logic, no web or database imports. The HTTP guard in ``kit.http`` calls ``find_forbidden``
on every request body and query string before anything is validated, stored or logged. What it
refuses, by kind: credentials (provider keys of many vendors, bearer and session material, JWTs,
passwords in URLs, secrets assigned in text, webhook URLs that carry a token, long random
tokens under any name), private keys and signing material (PEM blocks and their bodies, raw
hex keys, WIF and extended keys, recovery phrases in any BIP-39 language), value-transfer
material (instructions, wallet addresses, bank accounts, signed transactions, unlimited
approvals), secret-like field names holding text, safety flags set to anything but their safe
value, and a secret split over two fields of one object. Each string is judged with its
disguises off (look-alike and fullwidth letters, invisible characters, marks) and with what it
carries encoded (base64, hex, percent-escapes).
"""

from flow_memory.kit.safety.envelope import SAFETY_ENVELOPE
from flow_memory.kit.safety.names import (
    is_safety_flag,
    name_words,
    normalized_name,
    secret_like_name,
    unsafe_flag,
)
from flow_memory.kit.safety.scan import (
    REDACTED_KEY,
    Finding,
    field_segment,
    find_forbidden,
    find_forbidden_in_query,
)
from flow_memory.kit.safety.text import secret_kind_in_text

__all__ = [
    "REDACTED_KEY",
    "SAFETY_ENVELOPE",
    "Finding",
    "field_segment",
    "find_forbidden",
    "find_forbidden_in_query",
    "is_safety_flag",
    "name_words",
    "normalized_name",
    "secret_kind_in_text",
    "secret_like_name",
    "unsafe_flag",
]
