from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel

from flow_memory.kit.money import Amount, UnitPrice
from flow_memory.kit.schemas import Identifier, RequestModel, SafetyFields, Text
from flow_memory.providers.schemas import UnitType


class ListPriceSet(RequestModel):
    model: Identifier
    unit_type: UnitType = "token"
    unit_price: UnitPrice
    note: Text = ""


class ListPriceRead(BaseModel):
    model: str
    unit_type: str
    unit_price: Amount
    set_by: str
    note: str
    updated_at: datetime


class ListPriceResponse(SafetyFields):
    ok: Literal[True] = True
    list_price: ListPriceRead


class ListPricesResponse(SafetyFields):
    ok: Literal[True] = True
    list_prices: list[ListPriceRead]
    count: int
