"""Value-transfer material: instructions to move funds, and where funds would go.

Flow Memory records dry-run credits and never moves value, so nothing that asks for a transfer
or names a destination for one is accepted: transfer instructions in free text, wallet
addresses (checked by their checksums where the format has one), bank account numbers (IBANs,
checked by their check digits), wire details, raw signed transactions and unlimited token
approvals.
"""

from __future__ import annotations

import re

from flow_memory.kit.safety.credentials import base58check

# Currencies and crypto assets (not "tokens": in an inference market those are what a model
# reads and writes).
_ASSETS = r"(?:btc|eth|usdt|usdc|sol|xmr|bnb|dai|matic|sats?|eur|usd|gbp|coins?)"
_TRANSFER_VERBS = ("send", "transfer", "wire", "move", "pay", "withdraw", "sweep", "bridge",
                   "swap", "remit", "deposit")  # fmt: skip
_INSTRUCTION = re.compile(
    r"(?i)\b(?:send|transfer|wire|move|pay|withdraw|sweep|bridge|swap|remit|deposit)\b"
    r"(?:\s+(?:the|all|my|your|our|some|any|\d[\d,.]*\s*[kmb]?))*\s*"
    r"(?:[$€£]\s?\d|\d[\d,.]*\s*" + _ASSETS + r"\b|" + _ASSETS + r"\b|funds\b|money\b|crypto\b"
    r"|balance\b|payment\b|assets\b)"
)
_WIRE_DETAILS = re.compile(
    r"(?i)\b(?:swift|bic|iban|routing(?:\s+number)?|aba|sort\s+code"
    r"|account(?:\s+(?:number|no\.?))?)\b\s*[:#=]?\s*[0-9][0-9 -]{5,}"
    r"|\b(?:swift|bic|iban)\b\s*[:#=]?\s*[A-Z0-9]{6,}"
)
_APPROVAL = re.compile(
    r"(?i)\b(?:approve|approval|allowance|setapprovalforall)\b.{0,40}"
    r"\b(?:unlimited|infinite|max(?:imum)?|2\s*\^\s*256|uint256|0x[f]{16,}|true)\b"
)
_SIGNED_TRANSACTION = re.compile(
    r"(?i)(?<![0-9a-z])(?:0x)?(?:0[1-4])?f8[0-9a-f]{2}[0-9a-f]{120,}(?![0-9a-z])"
    r"|\braw[_\s-]?(?:signed[_\s-]?)?(?:tx|transaction)\b\W{0,6}(?:0x)?[0-9a-f]{100,}"
    # A Bitcoin transaction in hex (version 1 or 2, then its inputs), a partly signed one
    # (PSBT, in base64), and a Lightning payment request.
    r"|(?<![0-9a-z])0[12]000000(?:0001)?0[1-9a-f][0-9a-f]{64}[0-9a-f]{60,}(?![0-9a-z])"
    r"|(?<![A-Za-z0-9+/])cHNidP8[A-Za-z0-9+/=]{40,}"
    r"|(?<![0-9a-z])ln(?:bc|tb|bcrt)[0-9]*[munp]?1[02-9ac-hj-np-z]{50,}"
)
_EVM_ADDRESS = re.compile(r"(?<![0-9A-Za-z])0x[0-9a-fA-F]{40}(?![0-9A-Za-z])")
_BASE58_ADDRESS = re.compile(r"(?<![0-9A-Za-z])[13][1-9A-HJ-NP-Za-km-z]{25,34}(?![0-9A-Za-z])")
_BECH32_ADDRESS = re.compile(r"(?i)(?<![0-9a-z])(?:bc|tb|ltc)1[02-9ac-hj-np-z]{11,71}(?![0-9a-z])")
_IBAN = re.compile(
    r"(?<![A-Z0-9])[A-Z]{2}[0-9]{2}(?: ?[A-Z0-9]{4}){2,7}(?: ?[A-Z0-9]{1,4})?(?![A-Z0-9])"
)


def transfer_kind(text: str, folded: str) -> str | None:
    """The kind of value-transfer material ``text`` holds (``folded``: it lower-cased)."""
    if any(verb in folded for verb in _TRANSFER_VERBS) and _INSTRUCTION.search(text):
        return "value_transfer_instruction"
    if ("approv" in folded or "allowance" in folded) and _APPROVAL.search(text):
        return "value_transfer_instruction"
    if ("f8" in folded or "000000" in folded or "chnidp8" in folded or "ln" in folded) and (
        _SIGNED_TRANSACTION.search(text)
    ):
        return "signed_transaction"
    if "0x" in folded and _EVM_ADDRESS.search(text):
        return "wallet_address"
    for match in _BASE58_ADDRESS.finditer(text):
        payload = base58check(match.group())
        if payload is not None and len(payload) == 21 and payload[0] in (0x00, 0x05):
            return "wallet_address"
    if "1" in text:
        for match in _BECH32_ADDRESS.finditer(text):
            if _bech32_valid(match.group().lower()):
                return "wallet_address"
    for match in _IBAN.finditer(text):
        if _iban_valid(match.group().replace(" ", "")):
            return "bank_account"
    if _WIRE_DETAILS.search(text):
        return "value_transfer_instruction"
    return None


_BECH32_CHARSET = "qpzry9x8gf2tvdw0s3jn54khce6mua7l"


def _bech32_valid(address: str) -> bool:
    human, _, data = address.rpartition("1")
    if not human or len(data) < 6:
        return False
    values = [_BECH32_CHARSET.find(c) for c in data]
    if -1 in values:
        return False
    generators = (0x3B6A57B2, 0x26508E6D, 0x1EA119FA, 0x3D4233DD, 0x2A1462B3)
    check = 1
    for value in [ord(c) >> 5 for c in human] + [0] + [ord(c) & 31 for c in human] + values:
        top = check >> 25
        check = (check & 0x1FFFFFF) << 5 ^ value
        for index, generator in enumerate(generators):
            check ^= generator if (top >> index) & 1 else 0
    return check in (1, 0x2BC830A3)  # bech32, bech32m


def _iban_valid(iban: str) -> bool:
    if not 15 <= len(iban) <= 34:
        return False
    rearranged = iban[4:] + iban[:4]
    digits = "".join(str(int(c, 36)) for c in rearranged)
    return int(digits) % 97 == 1
