// Market depth (chart, spread, last fill, reservations), orders with cancel, and reservations.

import { decimalField, integerField, numberText, request } from "./api.js";
import { depthChart, depthLegend } from "./charts.js";
import {
  badge,
  code,
  emptyState,
  fillField,
  formValues,
  h,
  kv,
  onSubmit,
  remember,
  replace,
  show,
  table,
  tile,
  time,
  units,
  value,
} from "./views.js";

const ROUTES = {
  marketDepth: "/inference/market/depth",
  marketOrders: "/inference/market/orders",
  marketOrderCancel: "/inference/market/orders/{order_id}/cancel",
  marketReservations: "/inference/market/reservations",
};

const $ = (id) => document.getElementById(id);

// Exact decimal difference of two API numbers (ask - bid), without floating point.
function decimalParts(v) {
  const text = numberText(v);
  if (!/^\d+(\.\d+)?$/.test(text)) return null;
  const [whole, fraction = ""] = text.split(".");
  return { digits: BigInt(whole + fraction), scale: fraction.length };
}

export function exactSpread(bid, ask) {
  const a = decimalParts(ask);
  const b = decimalParts(bid);
  if (!a || !b) return null;
  const scale = Math.max(a.scale, b.scale);
  let diff = a.digits * 10n ** BigInt(scale - a.scale) - b.digits * 10n ** BigInt(scale - b.scale);
  const negative = diff < 0n;
  if (negative) diff = -diff;
  let text = diff.toString().padStart(scale + 1, "0");
  if (scale) text = `${text.slice(0, -scale)}.${text.slice(-scale)}`.replace(/\.?0+$/, "");
  return (negative ? "-" : "") + text;
}

function orDash(v) {
  return v === null || v === undefined ? "—" : value(v);
}

function levelsTable(levels, side) {
  return table(
    [
      { label: `${side} price`, num: true, cell: (l) => value(l.unit_price) },
      { label: "Units", num: true, cell: (l) => units(l.available_units) },
      { label: "Orders", num: true, cell: (l) => units(l.order_count) },
    ],
    levels,
    { empty: `No ${side.toLowerCase()}s rest in this market.` },
  );
}

function depthView(data) {
  const spread = data.spread || {};
  const difference =
    spread.best_bid !== null && spread.best_ask !== null ? exactSpread(spread.best_bid, spread.best_ask) : null;
  const last = data.last_fill;
  const held = data.active_reservations || { count: 0, held_units: 0 };
  return h(
    "div",
    { class: "stack", "data-testid": "depth" },
    h(
      "div",
      { class: "tiles wide" },
      tile("Best bid", orDash(spread.best_bid), { tone: "bid", sub: spread.best_bid === null ? "no bids" : "per unit" }),
      tile("Best ask", orDash(spread.best_ask), { tone: "ask", sub: spread.best_ask === null ? "no asks" : "per unit" }),
      tile("Spread", difference === null ? "—" : difference, {
        sub: difference === null ? "needs a bid and an ask" : spread.crossed ? "crossed" : "per unit",
      }),
      tile("Last fill", last ? value(last.unit_price) : "—", {
        testid: "last-fill",
        sub: last ? h("span", {}, units(last.units), " units · ", time(last.created_at)) : "no fill yet",
      }),
      tile("Active reservations", units(held.count), { sub: h("span", {}, units(held.held_units), " units held") }),
    ),
    h("div", { class: "wide chart-frame" }, depthChart(data), depthLegend()),
    h(
      "div",
      { class: "grid-2" },
      h("div", { "data-testid": "depth-bids" }, h("h3", {}, "Bids"), levelsTable(data.bids, "Bid")),
      h("div", { "data-testid": "depth-asks" }, h("h3", {}, "Asks"), levelsTable(data.asks, "Ask")),
    ),
    h(
      "div",
      { class: "wide", "data-testid": "depth-fills" },
      h("h3", {}, "Recent dry-run fills"),
      table(
        [
          { label: "Fill", cell: (f) => code(f.fill_id) },
          { label: "Price", num: true, cell: (f) => value(f.unit_price) },
          { label: "Units", num: true, cell: (f) => units(f.units) },
          { label: "Provider", cell: (f) => code(f.provider_id) },
          { label: "At", cell: (f) => time(f.created_at) },
        ],
        data.recent_fills,
        { empty: "No fills yet." },
      ),
    ),
  );
}

let lastDepth = null;

export function loadDepth(button) {
  const v = formValues($("depth-form"));
  if (!v.model) {
    replace($("depth-result"), emptyState("Choose a model to see its depth."));
    return Promise.resolve(null);
  }
  lastDepth = { model: v.model, unit_type: v.unit_type };
  return show(
    $("depth-result"),
    () => request("GET", ROUTES.marketDepth, { query: { model: v.model, unit_type: v.unit_type, levels: v.levels } }),
    depthView,
    { button },
  );
}

const history = [];

function historyView() {
  const target = $("order-history");
  replace(
    target,
    table(
      [
        { label: "Order", cell: (o) => code(o.order_id) },
        { label: "Side", cell: (o) => badge(o.side, o.side) },
        { label: "Market", cell: (o) => `${o.model} · ${o.unit_type}` },
        { label: "Units", num: true, cell: (o) => h("span", {}, units(o.filled_units), " / ", units(o.units)) },
        { label: "Limit", num: true, cell: (o) => value(o.limit_unit_price) },
        { label: "Status", cell: (o) => badge(o.status) },
        {
          label: "",
          cell: (o) =>
            o.status === "open" || o.status === "partially_filled"
              ? h(
                  "button",
                  {
                    type: "button",
                    class: "danger small",
                    onclick: () => {
                      fillField("cancel-form", "order_id", o.order_id);
                      $("cancel-form").requestSubmit();
                    },
                  },
                  "Cancel",
                )
              : null,
        },
      ],
      history,
      { empty: "No orders placed from this tab yet." },
    ),
  );
}

function track(order) {
  const index = history.findIndex((o) => o.order_id === order.order_id);
  if (index >= 0) history[index] = order;
  else history.unshift(order);
  historyView();
}

const NO_FILL = {
  open: "No fill yet: the order rests in the book.",
  cancelled: "No fill before the cancel.",
  expired: "No fill: an ioc or fok order that cannot fill expires at once.",
};

function orderView(data) {
  const o = data.order;
  return h(
    "div",
    { class: "stack" },
    h(
      "div",
      { class: "wide" },
      kv([
        ["Order id", code(o.order_id)],
        ["Status", badge(o.status)],
        ["Side", badge(o.side, o.side)],
        ["Market", `${o.model} · ${o.unit_type}`],
        ["Filled", h("span", {}, units(o.filled_units), " of ", units(o.units))],
        ["Remaining", units(o.remaining_units)],
        ["Limit price", value(o.limit_unit_price)],
        ["Time in force", o.time_in_force],
        [o.side === "bid" ? "Buyer" : "Provider", o.side === "bid" ? o.buyer_id : code(o.provider_id)],
        o.cancel_reason ? ["Cancel reason", o.cancel_reason] : null,
      ]),
    ),
    data.fills
      ? h(
          "div",
          { class: "wide" },
          h("h3", {}, "Fills"),
          table(
            [
              { label: "Fill", cell: (f) => code(f.fill_id) },
              { label: "Units", num: true, cell: (f) => units(f.units) },
              { label: "Price", num: true, cell: (f) => value(f.unit_price) },
              { label: "Provider", cell: (f) => code(f.provider_id) },
              { label: "Against", cell: (f) => code(o.side === "bid" ? f.ask_order_id : f.bid_order_id) },
            ],
            data.fills,
            { empty: NO_FILL[o.status] || "No fill." },
          ),
        )
      : null,
  );
}

function reservationView(data) {
  return h(
    "div",
    { class: "stack" },
    h(
      "div",
      { class: "wide" },
      kv([
        ["Reservation id", code(data.reservation_id)],
        ["Status", badge(data.reservation.status)],
        ["Held units", units(data.held_units)],
        ["Requested", units(data.reservation.requested_units)],
        ["Max price", value(data.reservation.max_unit_price)],
        ["Expires", time(data.expires_at)],
        ["Replay of an earlier request", value(data.idempotent_replay)],
      ]),
    ),
    h(
      "div",
      { class: "wide" },
      h("h3", {}, "Matched orders"),
      table(
        [
          { label: "Order", cell: (m) => code(m.order_id) },
          { label: "Provider", cell: (m) => code(m.provider_id) },
          { label: "Units", num: true, cell: (m) => units(m.units) },
          { label: "Price", num: true, cell: (m) => value(m.unit_price) },
        ],
        data.matched_orders,
        { empty: "Nothing held." },
      ),
    ),
  );
}

function marketChanged() {
  document.dispatchEvent(new CustomEvent("fm:market-changed"));
}

function newIdempotencyKey() {
  const bytes = crypto.getRandomValues(new Uint8Array(6));
  return `dashboard-${[...bytes].map((b) => b.toString(16).padStart(2, "0")).join("")}`;
}

export function init() {
  onSubmit("depth-form", (_form, button) => loadDepth(button));
  document.addEventListener("fm:market-changed", () => {
    if (lastDepth) loadDepth();
  });

  const orderForm = $("order-form");
  const syncSide = () => {
    const side = formValues(orderForm).side;
    $("order-party-buyer").hidden = side !== "bid";
    $("order-party-provider").hidden = side !== "ask";
  };
  for (const radio of orderForm.querySelectorAll("input[name=side]")) radio.addEventListener("change", syncSide);

  onSubmit("order-form", async (form, button) => {
    const v = formValues(form);
    const body = {
      side: v.side,
      model: v.model,
      unit_type: v.unit_type,
      units: integerField(v.units),
      limit_unit_price: decimalField(v.limit_unit_price),
      time_in_force: v.time_in_force,
    };
    if (v.min_fill_units) body.min_fill_units = integerField(v.min_fill_units);
    if (v.side === "bid" && v.buyer_id) body.buyer_id = v.buyer_id;
    if (v.side === "ask" && v.provider_id) body.provider_id = v.provider_id;
    const result = await show($("order-result"), () => request("POST", ROUTES.marketOrders, { body }), orderView, {
      button,
    });
    if (result.ok) {
      const order = result.data.order;
      track(order);
      remember("dl-orders", order.order_id, `${order.side} ${order.model} ${order.status}`);
      fillField("payment-form", "order_id", order.order_id);
      if (!lastDepth || lastDepth.model !== order.model || lastDepth.unit_type !== order.unit_type) {
        fillField("depth-form", "model", order.model);
        fillField("depth-form", "unit_type", order.unit_type);
        lastDepth = { model: order.model, unit_type: order.unit_type };
      }
      marketChanged();
    }
  });

  onSubmit("cancel-form", async (form, button) => {
    const v = formValues(form);
    const result = await show(
      $("cancel-result"),
      () =>
        request("POST", ROUTES.marketOrderCancel, {
          params: { order_id: v.order_id },
          body: { cancel_reason: v.cancel_reason },
        }),
      orderView,
      { button },
    );
    if (result.ok) {
      track(result.data.order);
      marketChanged();
    }
  });

  $("reservation-key").value = newIdempotencyKey();
  onSubmit("reservation-form", async (form, button) => {
    const v = formValues(form);
    const body = {
      model: v.model,
      unit_type: v.unit_type,
      requested_units: integerField(v.requested_units),
      max_unit_price: decimalField(v.max_unit_price),
      hold_seconds: integerField(v.hold_seconds || "300"),
      allow_partial: v.allow_partial,
      idempotency_key: v.idempotency_key,
    };
    if (v.provider_id) body.provider_id = v.provider_id;
    const result = await show(
      $("reservation-result"),
      () => request("POST", ROUTES.marketReservations, { body }),
      reservationView,
      { button },
    );
    if (result.ok) {
      remember("dl-reservations", result.data.reservation_id);
      fillField("payment-form", "reservation_id", result.data.reservation_id);
      $("reservation-key").value = newIdempotencyKey();
      marketChanged();
    }
  });
  historyView();
}

export function refreshDepth() {
  if (formValues($("depth-form")).model) loadDepth();
}
