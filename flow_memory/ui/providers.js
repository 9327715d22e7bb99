// Provider runtime: enroll, pairing token, heartbeat, catalog, capacity and health.

import { decimalField, integerField, request } from "./api.js";
import {
  badge,
  code,
  fillField,
  formValues,
  h,
  kv,
  onSubmit,
  remember,
  show,
  table,
  time,
  units,
  value,
} from "./views.js";

const ROUTES = {
  providerEnroll: "/inference/providers/enroll",
  providerPairingToken: "/inference/providers/{provider_id}/pairing-token",
  providerHeartbeat: "/inference/providers/{provider_id}/heartbeat",
  providerCatalog: "/inference/providers/{provider_id}/catalog",
  providerCapacity: "/inference/providers/{provider_id}/capacity",
  providerHealth: "/inference/providers/{provider_id}/health",
  marketList: "/inference/market/list",
  modelDetail: "/inference/market/models/{model}",
};

const UNIT_TYPES = ["token", "request", "second", "image"];
const COMPATIBLE_APIS = ["chat_completions", "chat_responses", "responses", "messages", "embeddings"];
const TOOL_CALLING = ["none", "metadata_only", "native"];
const HIDDEN_TOKEN = "[kept in this page's memory until the first heartbeat; not shown]";

const $ = (id) => document.getElementById(id);

// The pairing token is a one-time secret: held here only until the heartbeat that uses it.
const pairing = { providerId: null, token: null };

// Providers enrolled from this tab, listed even before they publish a catalog.
const enrolledHere = new Map();

const CREDENTIAL_HINTS = {
  rotated:
    "The credential reference was rotated after this provider enrolled: re-enroll it (same provider name) to pick up the new pointer.",
  revoked: "The credential reference is revoked: enroll with another reference.",
};

function providerId() {
  return $("runtime-provider").value.trim();
}

function select(name, options, selected) {
  return h(
    "select",
    { name },
    options.map((option) => h("option", { selected: option === selected }, option)),
  );
}

function field(label, control) {
  return h("label", { class: "field" }, h("span", {}, label), control);
}

function removeButton(row) {
  return h(
    "button",
    {
      type: "button",
      class: "secondary small",
      "aria-label": "Remove this row",
      onclick: () => {
        if (row.parentElement.children.length > 1) row.remove();
      },
    },
    "Remove",
  );
}

function catalogRow() {
  const row = h("fieldset", { class: "row-item", "data-row": "catalog" });
  row.append(
    field("Model", h("input", { type: "text", name: "model", list: "dl-models", required: true, placeholder: "flow-memory-orchestrator" })),
    field("Compatible API", select("compatible_api", COMPATIBLE_APIS, "chat_completions")),
    h(
      "fieldset",
      { class: "field" },
      h("legend", {}, "Unit types"),
      h(
        "div",
        { class: "checks" },
        UNIT_TYPES.map((unit) =>
          h("label", { class: "check" }, h("input", { type: "checkbox", name: "unit_types", value: unit, checked: unit === "token" }), unit),
        ),
      ),
    ),
    field("Context window", h("input", { type: "number", name: "context_window", value: "8192", min: "1", required: true })),
    field("Tool calling", select("tool_calling", TOOL_CALLING, "none")),
    field("Reference price per unit (optional)", h("input", { type: "text", inputmode: "decimal", name: "reference_unit_price", placeholder: "0.000001" })),
  );
  row.append(h("div", { class: "actions" }, removeButton(row)));
  return row;
}

function inADay() {
  return new Date(Date.now() + 24 * 3600 * 1000).toISOString().replace(/\.\d+Z$/, "Z");
}

function capacityRow() {
  const row = h("fieldset", { class: "row-item", "data-row": "capacity" });
  row.append(
    field("Model", h("input", { type: "text", name: "model", list: "dl-models", required: true, placeholder: "flow-memory-orchestrator" })),
    field("Unit type", select("unit_type", UNIT_TYPES, "token")),
    field("Available units", h("input", { type: "text", inputmode: "numeric", name: "available_units", required: true, placeholder: "2500000" })),
    field("Ask price per unit", h("input", { type: "text", inputmode: "decimal", name: "ask_unit_price", required: true, placeholder: "0.00000075" })),
    field("Minimum order units", h("input", { type: "text", inputmode: "numeric", name: "min_order_units", value: "1" })),
    field("Quality score", h("input", { type: "text", inputmode: "decimal", name: "quality_score", value: "1.0" })),
    field("Reliability score", h("input", { type: "text", inputmode: "decimal", name: "reliability_score", value: "1.0" })),
    field("Expires at (UTC)", h("input", { type: "text", name: "expires_at", value: inADay(), required: true, spellcheck: "false" })),
  );
  row.append(h("div", { class: "actions" }, removeButton(row)));
  return row;
}

function rowValue(row, name) {
  return row.querySelector(`[name="${name}"]`).value.trim();
}

function catalogBody() {
  const models = [...$("catalog-rows").children].map((row) => {
    const unitTypes = [...row.querySelectorAll("input[name=unit_types]:checked")].map((i) => i.value);
    const reference = rowValue(row, "reference_unit_price");
    return {
      model: rowValue(row, "model"),
      compatible_api: rowValue(row, "compatible_api"),
      unit_types: unitTypes,
      context_window: integerField(rowValue(row, "context_window")),
      tool_calling: rowValue(row, "tool_calling"),
      reference_unit_prices: reference
        ? Object.fromEntries(unitTypes.map((unit) => [unit, decimalField(reference)]))
        : {},
    };
  });
  return { catalog_version: new Date().toISOString(), models };
}

function capacityBody() {
  const inventory = [...$("capacity-rows").children].map((row) => ({
    model: rowValue(row, "model"),
    unit_type: rowValue(row, "unit_type"),
    available_units: integerField(rowValue(row, "available_units")),
    ask_unit_price: decimalField(rowValue(row, "ask_unit_price")),
    min_order_units: integerField(rowValue(row, "min_order_units") || "1"),
    quality_score: decimalField(rowValue(row, "quality_score") || "1"),
    reliability_score: decimalField(rowValue(row, "reliability_score") || "1"),
    expires_at: rowValue(row, "expires_at"),
  }));
  return { capacity_version: new Date().toISOString(), inventory };
}

function providerView(data) {
  const p = data.provider;
  return h(
    "div",
    { class: "stack" },
    h(
      "div",
      { class: "wide" },
      kv([
        ["Provider id", code(p.provider_id)],
        ["Enrollment", data.enrollment],
        ["Runtime status", badge(p.runtime_status)],
        ["Route gate", badge(p.route_gate)],
        ["Base URL", code(p.base_url)],
        ["Credential ref", code(p.credential_ref_id)],
        ["Reference", code(p.credential_ref)],
        ["Units", p.supported_units.join(", ")],
      ]),
    ),
    h(
      "div",
      { class: "wide" },
      h("h3", {}, "Next steps"),
      h("ol", { class: "steps" }, data.pairing.steps.map((step) => h("li", {}, code(step)))),
    ),
  );
}

function healthView(data) {
  const checks = [
    ["Heartbeat", data.heartbeat_status],
    ["Catalog", data.catalog_status],
    ["Capacity", data.capacity_status],
    ["Credential reference", data.credential_ref_status],
  ];
  return h(
    "div",
    { class: "stack" },
    h(
      "div",
      { class: `gate wide ${data.route_gate}`, "data-testid": "route-gate" },
      h("span", {}, "Route gate"),
      h("strong", {}, data.route_gate),
      h("span", {}, `· status ${data.status}`),
    ),
    h(
      "div",
      { class: "wide" },
      kv([
        ...checks.map(([label, status]) => [label, badge(status)]),
        ["Last heartbeat", time(data.last_heartbeat_at)],
        ["Checked", time(data.checked_at)],
        ["Provider", code(data.provider_id)],
      ]),
    ),
    CREDENTIAL_HINTS[data.credential_ref_status]
      ? h("p", { class: "wide hint", "data-testid": "credential-hint" }, CREDENTIAL_HINTS[data.credential_ref_status])
      : null,
    h(
      "div",
      { class: "wide" },
      h("h3", {}, "Reasons"),
      data.reasons.length
        ? h("ul", { class: "list" }, data.reasons.map((reason) => h("li", {}, code(reason))))
        : h("p", { class: "muted" }, "None: nothing keeps this provider from trading."),
    ),
  );
}

/**
 * The providers the API can show this key: no route lists a key's own providers, so they are
 * gathered from the market (each listed model's offers), plus those enrolled from this tab,
 * each with its health where the key may read it (its own, or any with inference:admin).
 */
async function gatherProviders() {
  const list = await request("GET", ROUTES.marketList);
  if (!list.ok) return list;
  const found = new Map();
  const entry = (id, name) => {
    if (!found.has(id)) found.set(id, { provider_id: id, provider_name: name, models: [] });
    return found.get(id);
  };
  for (const [id, name] of enrolledHere) entry(id, name);
  const models = [...new Set(list.data.markets.map((m) => m.model))];
  const details = await Promise.all(
    models.map((model) => request("GET", ROUTES.modelDetail, { params: { model } })),
  );
  for (const detail of details) {
    if (!detail.ok) continue;
    for (const offer of detail.data.offers) entry(offer.provider_id, offer.provider_name).models.push(detail.data.model);
  }
  const providers = [...found.values()].sort(
    (a, b) => a.provider_name.localeCompare(b.provider_name) || a.provider_id.localeCompare(b.provider_id),
  );
  const healths = await Promise.all(
    providers.map((p) => request("GET", ROUTES.providerHealth, { params: { provider_id: p.provider_id } })),
  );
  providers.forEach((p, index) => {
    p.health_status = healths[index].status;
    p.health = healths[index].ok ? healths[index].data : null;
  });
  return { ...list, data: { ...list.data, providers } };
}

function pickProvider(provider) {
  $("runtime-provider").value = provider.provider_id;
  remember("dl-providers", provider.provider_id, provider.provider_name);
  checkHealth();
  $("runtime-form").scrollIntoView({ behavior: "smooth", block: "start" });
}

function healthCell(provider, render) {
  if (provider.health) return render(provider.health);
  const status = provider.health_status;
  if (status === 404) return h("span", { class: "muted small" }, "another owner's");
  return h("span", { class: "muted small" }, status ? `HTTP ${status}` : "no answer");
}

function providersTable(data) {
  return h(
    "div",
    { class: "stack" },
    h(
      "div",
      { class: "wide", "data-testid": "provider-list" },
      table(
        [
          {
            label: "Provider",
            cell: (p) => h("div", { "data-provider": p.provider_id }, p.provider_name, h("div", { class: "muted small" }, code(p.provider_id))),
          },
          { label: "Models", cell: (p) => (p.models.length ? [...p.models].sort().join(", ") : h("span", { class: "muted" }, "no catalog yet")) },
          { label: "Route gate", cell: (p) => healthCell(p, (health) => badge(health.route_gate)) },
          { label: "Status", cell: (p) => healthCell(p, (health) => badge(health.status)) },
          { label: "Credential reference", cell: (p) => healthCell(p, (health) => badge(health.credential_ref_status)) },
          { label: "Last heartbeat", cell: (p) => healthCell(p, (health) => time(health.last_heartbeat_at)) },
          {
            label: "",
            cell: (p) => h("button", { type: "button", class: "secondary small", onclick: () => pickProvider(p) }, "Select"),
          },
        ],
        data.providers,
        { empty: "No provider yet. Enroll one below; it is listed here once it publishes a catalog." },
      ),
    ),
    h(
      "p",
      { class: "wide muted small" },
      "Gathered from the market list, each model's offers and each provider's health.",
    ),
  );
}

export async function loadProviders() {
  const result = await show($("provider-list-result"), gatherProviders, providersTable, {
    button: $("provider-list-load"),
  });
  if (result.ok) {
    for (const p of result.data.providers) remember("dl-providers", p.provider_id, p.provider_name);
  }
  return result;
}

export function checkHealth(button) {
  const id = providerId();
  return show(
    $("health-result"),
    () => request("GET", ROUTES.providerHealth, { params: { provider_id: id } }),
    healthView,
    { button },
  );
}

export function init() {
  $("catalog-rows").append(catalogRow());
  $("capacity-rows").append(capacityRow());
  $("catalog-add").addEventListener("click", () => $("catalog-rows").append(catalogRow()));
  $("capacity-add").addEventListener("click", () => $("capacity-rows").append(capacityRow()));
  $("provider-list-load").addEventListener("click", loadProviders);

  onSubmit("enroll-form", async (form, button) => {
    const v = formValues(form);
    const body = {
      provider_name: v.provider_name,
      base_url: v.base_url,
      credential_ref_id: v.credential_ref_id,
      workspace_id: v.workspace_id || undefined,
      supported_units: v.supported_units,
    };
    const result = await show(
      $("enroll-result"),
      () => request("POST", ROUTES.providerEnroll, { body }),
      providerView,
      { button },
    );
    if (result.ok) {
      const p = result.data.provider;
      remember("dl-providers", p.provider_id, p.provider_name);
      $("runtime-provider").value = p.provider_id;
      enrolledHere.set(p.provider_id, p.provider_name);
      loadProviders();
    }
  });

  $("pairing-button").addEventListener("click", async (event) => {
    const id = providerId();
    const result = await show(
      $("pairing-result"),
      () =>
        request("POST", ROUTES.providerPairingToken, { params: { provider_id: id } }).then((r) => {
          if (r.ok && r.data.pairing_token) {
            pairing.providerId = r.data.provider_id;
            pairing.token = r.data.pairing_token;
            r.data.pairing_token = HIDDEN_TOKEN;
          }
          return r;
        }),
      (data) =>
        kv([
          ["Token preview", code(data.token_preview)],
          ["Expires", time(data.expires_at)],
          ["Lifetime (s)", units(data.ttl_seconds)],
          ["Sent in header", code(data.pairing_header)],
          ["Full token", h("span", { class: "muted" }, "held in memory for the first heartbeat, never shown")],
        ]),
      { button: event.currentTarget },
    );
    return result;
  });

  $("heartbeat-button").addEventListener("click", async (event) => {
    const id = providerId();
    const v = formValues($("runtime-form"));
    const headers = {};
    const usesToken = pairing.token && pairing.providerId === id;
    if (usesToken) headers["x-flow-memory-pairing-token"] = pairing.token;
    const body = { runtime_status: v.runtime_status, agent_version: v.agent_version || null };
    const result = await show(
      $("heartbeat-result"),
      () => request("POST", ROUTES.providerHeartbeat, { params: { provider_id: id }, body, headers }),
      (data) =>
        kv([
          ["Runtime status", badge(data.runtime_status)],
          ["Reported", data.reported_status],
          ["Paired", value(data.paired)],
          ["Last heartbeat", time(data.last_heartbeat_at)],
          ["Next due by", time(data.next_heartbeat_due_by)],
          ["Pairing token sent", usesToken ? "yes, then forgotten" : "no"],
        ]),
      { button: event.currentTarget },
    );
    if (result.ok && usesToken) {
      pairing.token = null;
      pairing.providerId = null;
    }
  });

  $("health-button").addEventListener("click", (event) => {
    checkHealth(event.currentTarget);
    $("health-result").scrollIntoView({ behavior: "smooth", block: "nearest" });
  });

  onSubmit("catalog-form", async (_form, button) => {
    const id = providerId();
    const body = catalogBody();
    const result = await show(
      $("catalog-result"),
      () => request("POST", ROUTES.providerCatalog, { params: { provider_id: id }, body }),
      (data) =>
        table(
          [
            { label: "Model", cell: (m) => m.model },
            { label: "API", cell: (m) => m.compatible_api },
            { label: "Units", cell: (m) => m.unit_types.join(", ") },
            { label: "Context", num: true, cell: (m) => units(m.context_window) },
            { label: "Reference prices", cell: (m) => Object.entries(m.reference_unit_prices || {}).map(([u, p]) => `${u} ${value(p)}`).join(", ") || "—" },
          ],
          data.models,
        ),
      { button },
    );
    if (result.ok) {
      for (const m of result.data.models) remember("dl-models", m.model);
      const firstCapacity = $("capacity-rows").querySelector("input[name=model]");
      if (firstCapacity && !firstCapacity.value) firstCapacity.value = result.data.models[0]?.model || "";
    }
  });

  onSubmit("capacity-form", async (_form, button) => {
    const id = providerId();
    const body = capacityBody();
    const result = await show(
      $("capacity-result"),
      () => request("POST", ROUTES.providerCapacity, { params: { provider_id: id }, body }),
      (data) =>
        h(
          "div",
          { class: "stack" },
          h("p", { class: "wide" }, "Total available: ", h("strong", {}, units(data.total_available_units)), " units"),
          h(
            "div",
            { class: "wide" },
            table(
              [
                { label: "Model", cell: (c) => c.model },
                { label: "Unit", cell: (c) => c.unit_type },
                { label: "Available", num: true, cell: (c) => units(c.available_units) },
                { label: "Ask price", num: true, cell: (c) => value(c.ask_unit_price) },
                { label: "Min order", num: true, cell: (c) => units(c.min_order_units) },
                { label: "Expires", cell: (c) => time(c.expires_at) },
              ],
              data.inventory,
            ),
          ),
        ),
      { button },
    );
    if (result.ok) {
      const first = result.data.inventory[0];
      if (first) {
        for (const formId of ["order-form", "reservation-form", "policy-form", "depth-form"]) {
          const form = $(formId);
          if (!form.elements.model.value) {
            fillField(formId, "model", first.model);
            fillField(formId, "unit_type", first.unit_type);
          }
        }
      }
      document.dispatchEvent(new CustomEvent("fm:market-changed"));
    }
  });
}

export function refresh() {
  loadProviders();
  if (providerId() && !$("health-result").childElementCount) checkHealth();
}
