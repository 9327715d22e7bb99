from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator
from pydantic_core import PydanticCustomError

from flow_memory.kit.actors import Actor
from flow_memory.kit.money import Amount, UnitPrice
from flow_memory.kit.schemas import Identifier, Metadata, Name, RequestModel, SafetyFields
from flow_memory.providers.schemas import UnitType

Units = Annotated[int, Field(ge=1, le=10**15)]
# An order's value bounds every cost derived from it (fills, usage records, their sums).
MAX_ORDER_VALUE = Decimal(10**12)
OrderStatus = Literal["open", "partially_filled", "filled", "cancelled", "expired"]


class RoutingPolicy(RequestModel):
    """A bid's routing preferences; the safety flags may only hold their dry-run values."""

    min_discount_bps: Annotated[int, Field(ge=0, le=10_000)] = 0
    allow_fallback: bool = True
    dry_run_required: Literal[True] = True
    raw_credentials_allowed: Literal[False] = False
    broadcast_enabled: Literal[False] = False
    sensitive_signing_inputs_allowed: Literal[False] = False


class OrderCreate(RequestModel):
    # What pydantic cannot say in the schema itself: an ask names its provider and carries no
    # routing policy. (min_fill_units <= units and the order's value bound are in descriptions.)
    model_config = ConfigDict(
        json_schema_extra={
            "if": {"properties": {"side": {"const": "ask"}}, "required": ["side"]},
            "then": {
                "required": ["provider_id"],
                "properties": {
                    "provider_id": {"type": "string"},
                    "routing_policy": {"type": "null"},
                },
            },
        }
    )

    side: Literal["bid", "ask"]
    model: Identifier
    unit_type: UnitType
    units: Units
    limit_unit_price: UnitPrice = Field(
        description=f"units * limit_unit_price may not exceed {MAX_ORDER_VALUE:,} credits"
    )
    currency: Literal["USD_CREDIT"] = "USD_CREDIT"
    min_fill_units: Units = Field(default=1, description="At most units")
    time_in_force: Literal["gtc", "ioc", "fok"] = "gtc"
    buyer_id: Actor = None
    provider_id: Identifier | None = Field(
        default=None,
        description="The provider that sells: required on an ask, and one of the key owner's "
        "providers (another owner's is not found, 404) unless the key holds inference:admin; "
        "not used on a bid",
    )
    routing_policy: RoutingPolicy | None = Field(default=None, description="Bids only")
    metadata: Metadata = Field(default_factory=dict)

    @model_validator(mode="after")
    def _side_fields(self) -> OrderCreate:
        # Each rule names the fields it concerns (``fields``): the error names them, where a
        # model's own rule would otherwise name only "body".
        if self.side == "ask" and self.provider_id is None:
            raise _rule("an ask needs provider_id", "provider_id")
        if self.side == "ask" and self.routing_policy is not None:
            raise _rule("routing_policy belongs to bids", "routing_policy")
        if self.min_fill_units > self.units:
            raise _rule("min_fill_units cannot exceed units", "min_fill_units", "units")
        if self.units * self.limit_unit_price > MAX_ORDER_VALUE:
            raise _rule(
                f"units * limit_unit_price must not exceed {MAX_ORDER_VALUE:,} credits",
                "units",
                "limit_unit_price",
            )
        return self


def _rule(message: str, *fields: str) -> PydanticCustomError:
    """A broken rule between fields, naming them (``flow_memory.kit.http`` renders a problem
    for each)."""
    return PydanticCustomError("value_error", message, {"fields": fields})


class OrderCancel(RequestModel):
    cancel_reason: Name
    requested_by: Actor = None


class FillRead(BaseModel):
    fill_id: str
    bid_order_id: str
    ask_order_id: str
    provider_id: str | None
    units: int
    unit_price: Amount
    created_at: datetime


class OrderRead(BaseModel):
    order_id: str
    side: Literal["bid", "ask"]
    model: str
    unit_type: str
    owner_id: str
    buyer_id: str | None
    provider_id: str | None
    units: int
    filled_units: int
    remaining_units: int
    limit_unit_price: Amount
    currency: str
    min_fill_units: int
    time_in_force: str
    status: OrderStatus
    source: str
    metadata: dict[str, object]
    expires_at: datetime | None
    cancel_reason: str | None
    created_at: datetime
    updated_at: datetime


class OrderResponse(SafetyFields):
    ok: Literal[True] = True
    order: OrderRead
    fills: list[FillRead]


class PriceLevelRead(BaseModel):
    unit_price: Amount
    available_units: int
    order_count: int


class Spread(BaseModel):
    best_bid: Amount | None
    best_ask: Amount | None
    crossed: bool


class ActiveReservations(BaseModel):
    count: int
    held_units: int


class DepthResponse(SafetyFields):
    ok: Literal[True] = True
    model: str
    unit_type: str
    bids: list[PriceLevelRead]
    asks: list[PriceLevelRead]
    spread: Spread
    last_fill: FillRead | None
    recent_fills: list[FillRead]
    active_reservations: ActiveReservations


class ReservationCreate(RequestModel):
    buyer_id: Actor = None
    provider_id: Identifier | None = Field(
        default=None, description="Hold only this provider's asks (any provider when left out)"
    )
    model: Identifier
    unit_type: UnitType
    requested_units: Units
    max_unit_price: UnitPrice
    hold_seconds: Annotated[int, Field(ge=1, le=3600)] = 300
    allow_partial: bool = True
    idempotency_key: Annotated[
        str,
        Field(
            min_length=1,
            max_length=128,
            description="One reservation per key owner and idempotency_key: the same body "
            "again replays it (200), another body is refused (409 idempotency_key_reused)",
        ),
    ]


class MatchedOrder(BaseModel):
    order_id: str
    provider_id: str | None
    units: int
    unit_price: Amount


class ReservationRead(BaseModel):
    reservation_id: str
    buyer_id: str
    model: str
    unit_type: str
    provider_id: str | None
    requested_units: int
    held_units: int
    max_unit_price: Amount
    status: Literal["active", "expired", "released"]
    expires_at: datetime
    created_at: datetime
    idempotency_key: str
    matched_orders: list[MatchedOrder]


class ReservationResponse(SafetyFields):
    ok: Literal[True] = True
    reservation_id: str
    held_units: int
    expires_at: datetime
    matched_orders: list[MatchedOrder]
    reservation: ReservationRead
    idempotent_replay: bool
