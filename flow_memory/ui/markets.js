// Marketplace discovery: market list, model detail, feed, profiles, provider-agent manifest.

import { request } from "./api.js";
import {
  badge,
  code,
  emptyState,
  fillField,
  h,
  kv,
  onSubmit,
  remember,
  replace,
  responseView,
  show,
  table,
  time,
  units,
  value,
} from "./views.js";

const ROUTES = {
  marketList: "/inference/market/list",
  modelDetail: "/inference/market/models/{model}",
  feed: "/inference/market/feed",
  buyerProfile: "/inference/buyers/{buyer_id}/profile",
  sellerProfile: "/inference/sellers/{seller_id}/profile",
  providerAgentManifest: "/inference/providers/agent/manifest",
};

const $ = (id) => document.getElementById(id);

function openModel(model) {
  fillField("model-form", "model", model);
  $("model-form").requestSubmit();
}

function showDepth(market) {
  fillField("depth-form", "model", market.model);
  fillField("depth-form", "unit_type", market.unit_type);
  location.hash = "#depth";
}

// A market of bids on a model no provider's catalog lists: demand for what is not offered yet.
function demandOnly() {
  return h(
    "span",
    { class: "badge", "data-testid": "demand-only", title: "Bids on a model no provider lists yet: no ask can fill them until one offers it" },
    "demand only",
  );
}

function marketTable(markets, { actions = true } = {}) {
  return table(
    [
      {
        label: "Model",
        cell: (m) =>
          actions
            ? h(
                "span",
                {},
                h("button", { type: "button", class: "link", title: "Show model detail", onclick: () => openModel(m.model) }, m.model),
                m.demand_only ? demandOnly() : null,
              )
            : h("span", {}, m.model, m.demand_only ? demandOnly() : null),
      },
      { label: "Unit", cell: (m) => m.unit_type },
      { label: "Best bid", num: true, cell: (m) => value(m.best_bid) },
      { label: "Best ask", num: true, cell: (m) => value(m.best_ask) },
      { label: "Bid units", num: true, cell: (m) => units(m.bid_units) },
      { label: "Ask units", num: true, cell: (m) => units(m.ask_units) },
      { label: "Providers", num: true, cell: (m) => units(m.provider_count) },
      { label: "Last fill", num: true, cell: (m) => value(m.last_fill_price) },
      {
        label: "",
        cell: (m) =>
          h("button", { type: "button", class: "secondary small", onclick: () => showDepth(m) }, "Depth"),
      },
    ],
    markets,
    { empty: "No markets yet. A provider's capacity or an order opens one." },
  );
}

export async function loadMarketList() {
  const result = await show(
    $("market-list-result"),
    () => request("GET", ROUTES.marketList),
    (data) => marketTable(data.markets),
    { button: $("market-list-load") },
  );
  if (result.ok) for (const m of result.data.markets) remember("dl-models", m.model);
  return result;
}

function offersTable(offers) {
  return table(
    [
      { label: "Provider", cell: (o) => h("div", {}, o.provider_name, h("div", { class: "muted small" }, code(o.provider_id))) },
      { label: "API", cell: (o) => o.compatible_api },
      { label: "Context", num: true, cell: (o) => units(o.context_window) },
      { label: "Tools", cell: (o) => o.tool_calling },
      {
        label: "Capacity",
        cell: (o) =>
          o.capacity.length
            ? h(
                "ul",
                { class: "list" },
                o.capacity.map((c) =>
                  h(
                    "li",
                    {},
                    h("div", { class: "line" }, h("strong", {}, units(c.available_units)), `${c.unit_type} at ${value(c.ask_unit_price)}`),
                    h("div", { class: "muted small" }, "min ", units(c.min_order_units), " · quality ", value(c.quality_score), " · reliability ", value(c.reliability_score), " · until ", time(c.expires_at)),
                  ),
                ),
              )
            : h("span", { class: "muted" }, "none published"),
      },
    ],
    offers,
    { empty: "No provider serves this model now." },
  );
}

function feedEvent(event) {
  const payload = event.payload || {};
  const flat = Object.entries(payload).filter(([, v]) => !Array.isArray(v));
  return h(
    "li",
    { "data-kind": event.kind },
    h(
      "div",
      { class: "line" },
      h("span", { class: "muted small mono" }, `#${event.event_id}`),
      badge(event.kind, event.kind === "fill" ? "good" : event.kind === "order_cancelled" ? "warn" : ""),
      event.model ? h("strong", {}, event.model) : null,
      event.unit_type ? h("span", { class: "muted" }, event.unit_type) : null,
      h("span", { class: "muted small" }, time(event.created_at)),
    ),
    h(
      "div",
      { class: "muted small" },
      code(event.subject_id),
      flat.length ? " · " : null,
      flat.map(([k, v], index) => [index ? ", " : "", `${k} `, value(v)]),
      Array.isArray(payload.lines) ? ` · ${payload.lines.length} capacity lines` : null,
    ),
  );
}

function feedState() {
  const state = { cursor: null, query: {} };
  const list = h("ul", { class: "list", "data-testid": "feed" });
  const more = $("feed-more");

  async function load(append) {
    const target = $("feed-result");
    // The next page continues in the chosen order: older events before the cursor when the
    // newest come first, newer ones after it otherwise.
    const page = state.query.order === "newest" ? "before" : "after";
    const query = { ...state.query, [page]: append ? state.cursor : undefined };
    const result = await (append
      ? request("GET", ROUTES.feed, { query })
      : show(target, () => request("GET", ROUTES.feed, { query }), null, { button: more }));
    if (!result.ok) {
      if (append) replace(target, responseView(result));
      more.hidden = true;
      return;
    }
    if (!append) list.replaceChildren();
    for (const event of result.data.events) list.append(feedEvent(event));
    state.cursor = result.data.next_cursor;
    more.hidden = result.data.next_cursor === null;
    const frame = responseView(result, () =>
      list.children.length ? list : emptyState("No events match. Orders, fills and capacity appear here."),
    );
    replace(target, frame);
  }

  onSubmit("feed-form", (form) => {
    const data = new FormData(form);
    state.query = {
      kind: data.get("kind"),
      model: data.get("model").trim(),
      order: data.get("order"),
      limit: data.get("limit"),
    };
    load(false);
  });
  more.addEventListener("click", () => load(true));
}

function profileView(data, kind) {
  const pairs =
    kind === "buyer"
      ? [
          ["Buyer", code(data.buyer_id)],
          ["Orders", units(data.order_count)],
          ["By status", Object.entries(data.orders_by_status || {}).map(([k, v]) => `${k} ${v}`).join(", ") || "—"],
          ["Reservations", units(data.reservation_count)],
          ["Held units", units(data.held_units)],
          ["Fills", units(data.fill_count)],
          ["Filled units", units(data.filled_units)],
          ["Notional (credits)", value(data.notional)],
          ["Models", value(data.models)],
          ["Last fill", time(data.last_fill_at)],
        ]
      : [
          ["Seller", code(data.seller_id)],
          ["Providers", units(data.provider_count)],
          ["Open asks", units(data.open_ask_count)],
          ["Open ask units", units(data.open_ask_units)],
          ["Published units", units(data.published_units)],
          ["Reliability", value(data.reliability_score)],
          ["Quality", value(data.quality_score)],
          ["Fills", units(data.fill_count)],
          ["Filled units", units(data.filled_units)],
          ["Notional (credits)", value(data.notional)],
          ["Models", value(data.models)],
          ["Last fill", time(data.last_fill_at)],
        ];
  return kv(pairs);
}

function manifestView(data) {
  return h(
    "div",
    { class: "stack" },
    h(
      "div",
      { class: "wide" },
      h("h3", {}, `Onboarding steps (manifest v${data.manifest_version})`),
      h(
        "ol",
        { class: "steps" },
        data.steps.map((step) => h("li", {}, h("code", {}, step.route), " — ", step.action)),
      ),
    ),
    h(
      "div",
      { class: "wide" },
      table(
        [
          { label: "Route key", cell: ([key]) => code(key) },
          { label: "Method", cell: ([, r]) => r.method },
          { label: "Template", cell: ([, r]) => code(r.path) },
        ],
        Object.entries(data.route_templates || {}),
      ),
    ),
    h(
      "div",
      { class: "wide" },
      h("h3", {}, "Scopes"),
      kv(Object.entries(data.scopes || {}).map(([scope, use]) => [scope, use])),
    ),
    h(
      "div",
      { class: "wide" },
      h("h3", {}, "Safety rules"),
      h("ul", {}, (data.safety_rules || []).map((rule) => h("li", {}, rule))),
    ),
  );
}

export function init() {
  $("market-list-load").addEventListener("click", loadMarketList);
  onSubmit("model-form", (form, button) => {
    const model = form.elements.model.value.trim();
    show(
      $("model-result"),
      () => request("GET", ROUTES.modelDetail, { params: { model } }),
      (data) =>
        h(
          "div",
          { class: "stack" },
          h("div", { class: "wide" }, marketTable(data.markets, { actions: false })),
          h("div", { class: "wide" }, h("h3", {}, "Offers"), offersTable(data.offers)),
        ),
      { button },
    ).then((result) => {
      if (result.ok) for (const o of result.data.offers) remember("dl-providers", o.provider_id, o.provider_name);
    });
  });
  feedState();
  onSubmit("buyer-form", (form, button) =>
    show(
      $("buyer-result"),
      () => request("GET", ROUTES.buyerProfile, { params: { buyer_id: form.elements.buyer_id.value.trim() } }),
      (data) => profileView(data, "buyer"),
      { button },
    ),
  );
  onSubmit("seller-form", (form, button) =>
    show(
      $("seller-result"),
      () => request("GET", ROUTES.sellerProfile, { params: { seller_id: form.elements.seller_id.value.trim() } }),
      (data) => profileView(data, "seller"),
      { button },
    ),
  );
  $("manifest-load").addEventListener("click", (event) =>
    show($("manifest-result"), () => request("GET", ROUTES.providerAgentManifest), manifestView, {
      button: event.currentTarget,
    }),
  );
}

/** Called when the section is shown with a key: load what needs no input. */
export function refresh() {
  loadMarketList();
  if (!$("manifest-result").childElementCount) $("manifest-load").click();
  if (!$("feed-result").childElementCount) $("feed-form").requestSubmit();
}
