"""``POST /inference/market/orders`` at the edge (``flow_memory.kit.edge``): the order route is
the market's hottest, and at thousands of orders a second the generic request machinery costs
more than placing the order. The edge places well-formed orders through the same market as the
route (``flow_memory.market.gateway``); the full stack answers every other order request."""

from __future__ import annotations

import re

from starlette.datastructures import State

from flow_memory.kit.deps import Principal
from flow_memory.kit.edge import Answer, EdgeRoute
from flow_memory.market.api import TRADER_SCOPES
from flow_memory.market.orders import PlaceOrder
from flow_memory.market.schemas import OrderCreate

PATH = "/inference/market/orders"


async def _place(
    state: State, principal: Principal, order: OrderCreate, _params: dict[str, str]
) -> Answer:
    return 201, await state.market.run(PlaceOrder(principal, order))


ORDER_ROUTE = EdgeRoute(
    template=PATH,
    pattern=re.compile(re.escape(PATH)),
    scopes=TRADER_SCOPES,
    schema=OrderCreate,
    answer=_place,
)
