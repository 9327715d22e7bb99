"""Request and response models of the ledger routes."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Annotated, Literal

from pydantic import BaseModel, Field, WithJsonSchema

from flow_memory.kit.money import UnitPrice
from flow_memory.kit.schemas import Identifier, RequestModel, SafetyFields, Text
from flow_memory.ledger.domain import MAX_GRANT

Currency = Literal["USD_CREDIT"]
# A signed amount of credits in an answer: an exact JSON number (a balance that is not enforced
# may be below zero; the issuance account always is).
Credits = Annotated[
    Decimal,
    WithJsonSchema(
        {"type": "number", "description": "An exact decimal number of USD_CREDIT, signed"}
    ),
]


class GrantCreate(RequestModel):
    """An admin's grant of dry-run credits from the issuance account to one holder."""

    holder_id: Identifier = Field(
        description="The owner or agent identity whose account receives the credits (opened "
        "on first need)"
    )
    amount: Annotated[UnitPrice, Field(le=MAX_GRANT)]
    idempotency_key: Identifier = Field(
        description="Names this grant: sending it again moves nothing and answers the first"
    )
    memo: Text = Field(default="", description="Why the credits are granted (kept for audit)")


class EnforcementUpdate(RequestModel):
    """Turn enforcement of a holder's account on (it may then not go below zero) or off."""

    holder_id: Identifier
    enforced: bool
    memo: Text = ""


class AccountRead(BaseModel):
    account_id: str
    holder_id: str
    holder_kind: Literal["owner", "agent", "system"]
    currency: Currency
    enforced: bool
    enforcement: Literal["off", "on", "always"]
    balance: Credits
    held: Credits
    available: Credits
    created_at: datetime


class CauseRead(BaseModel):
    kind: str
    id: str
    actor_id: str | None
    memo: str


class EntryRead(BaseModel):
    entry_id: str
    transfer_id: str
    account_id: str
    account_role: Literal["main", "hold"]
    amount: Credits = Field(description="Signed: negative left the account, positive entered it")
    currency: Currency
    cause: CauseRead
    created_at: datetime


class TransferRead(BaseModel):
    transfer_id: str
    idempotency_key: str
    cause: CauseRead
    created_at: datetime


class AccountResponse(SafetyFields):
    ok: Literal[True] = True
    account: AccountRead


class AccountListResponse(SafetyFields):
    ok: Literal[True] = True
    accounts: list[AccountRead]
    count: int


class EntriesResponse(SafetyFields):
    ok: Literal[True] = True
    account_id: str
    entries: list[EntryRead]
    count: int
    next_cursor: str | None


class GrantResponse(SafetyFields):
    ok: Literal[True] = True
    transfer: TransferRead
    replayed: bool = Field(description="True when this idempotency key had already granted")
    account: AccountRead


class EnforcementResponse(SafetyFields):
    ok: Literal[True] = True
    account: AccountRead


class LedgerExportHeader(SafetyFields):
    """The export's first NDJSON line; one ``ledger_entry`` line per entry follows, then a
    ``footer`` line with ``record_count`` and ``complete``."""

    record_type: Literal["header"] = "header"
    ok: Literal[True] = True
    schema_version: Literal["flow_memory.ledger_export.v1"] = "flow_memory.ledger_export.v1"
    format: Literal["ndjson"] = "ndjson"
    generated_at: datetime
    currency: Currency
    filters: dict[str, object]
    redaction: dict[str, object]
