// The registry: search models, agents and solutions (ranked, with facet counts that narrow the
// search when picked), one entry's page (the latest active version or a pinned one, every
// version with its terms, and its compatible counterparts), and a publish form for models and
// agents. An agent, a solution, or an agent with a model that fits it, is deployed from here
// (the Deployments section's form, filled). Publishers' descriptions are their own text:
// shown as text, never markup.

import { decimalField, integerField, numberText, request } from "./api.js";
import { deployFrom } from "./deploy.js";
import {
  badge,
  code,
  emptyState,
  fillField,
  formValues,
  h,
  kv,
  listField,
  onSubmit,
  replace,
  show,
  table,
  time,
  units,
  value,
} from "./views.js";

const ROUTES = {
  search: "/inference/registry/search",
  models: "/inference/registry/models",
  agents: "/inference/registry/agents",
  entry: "/inference/registry/{plural}/{publisher_id}/{name}",
  compatible: "/inference/registry/{plural}/{publisher_id}/{name}/{counterparts}",
};
const PLURAL = { model: "models", agent: "agents", solution: "solutions" };
const COUNTERPARTS = { model: "compatible-agents", agent: "compatible-models" };
const STATUS_TONES = { active: "good", deprecated: "warn", yanked: "bad" };
const FACET_FILTERS = { kind: "kind", license: "license", publisher: "publisher", modality: "capability", pricing_model: "pricing_model" };
const FACET_LABELS = { kind: "Kind", publisher: "Publisher", license: "License", modality: "Modality", pricing_model: "Pricing", tool_calling: "Tool calling" };

const $ = (id) => document.getElementById(id);

function money(amount) {
  return amount === null || amount === undefined ? value(amount) : numberText(amount);
}

function pricingText(pricing) {
  if (!pricing) return "—";
  return h("span", {}, money(pricing.price), ` ${pricing.currency} ${pricing.model.replace("_", " ")}`);
}

function royaltyText(bps) {
  return bps === null || bps === undefined ? "—" : `${units(bps)} bps`;
}

function splitSlug(slug) {
  const [publisher_id, name] = String(slug).split("/");
  return { publisher_id, name };
}

// Search.

function searchQuery() {
  const v = formValues($("registry-search-form"));
  return {
    q: v.q,
    kind: v.kind,
    capability: v.capability,
    api: v.api,
    min_context_window: v.min_context_window,
    max_price: v.max_price,
    license: v.license,
    publisher: v.publisher,
    limit: v.limit,
  };
}

function hitsTable(results) {
  return h(
    "div",
    { "data-testid": "registry-hits" },
    table(
      [
        {
          label: "Entry",
          cell: (r) =>
            h(
              "button",
              { type: "button", class: "link", "data-slug": r.entry.slug, onclick: () => openEntry(r.entry.kind, r.entry.slug) },
              r.entry.slug,
            ),
        },
        { label: "Kind", cell: (r) => badge(r.entry.kind) },
        { label: "Name", cell: (r) => r.entry.display_name },
        { label: "Version", cell: (r) => code(r.entry.latest_version) },
        { label: "Price", cell: (r) => pricingText(r.pricing) },
        { label: "Royalty", num: true, cell: (r) => royaltyText(r.royalty_bps) },
        { label: "Context", num: true, cell: (r) => units(r.facts.context_window) },
        { label: "License", cell: (r) => r.entry.license },
        { label: "Tags", cell: (r) => r.entry.tags.join(", ") || "—" },
      ],
      results,
      { empty: "Nothing in the registry matches. Try fewer words or fewer filters." },
    ),
  );
}

function facetsView(facets) {
  const groups = Object.entries(facets).filter(([, values]) => values.length);
  return h(
    "div",
    { class: "facets", "data-testid": "registry-facets" },
    groups.map(([name, values]) =>
      h(
        "div",
        { class: "facet", "data-facet": name },
        h("h3", {}, FACET_LABELS[name] || name),
        h(
          "ul",
          {},
          values.map((item) =>
            h(
              "li",
              {},
              FACET_FILTERS[name]
                ? h(
                    "button",
                    { type: "button", class: "link", "data-value": item.value, onclick: () => narrow(FACET_FILTERS[name], item.value) },
                    item.value,
                  )
                : item.value,
              " ",
              h("span", { class: "count" }, units(item.count)),
            ),
          ),
        ),
      ),
    ),
  );
}

function narrow(field, chosen) {
  fillField("registry-search-form", field, chosen);
  runSearch();
}

// A total past the hits ranked is a lower bound on PostgreSQL: "1001+ found".
function foundText(data) {
  return `${data.total}${data.total_exact ? "" : "+"} found`;
}

function runSearch(button) {
  return show(
    $("registry-search-result"),
    () => request("GET", ROUTES.search, { query: searchQuery() }),
    (data) =>
      h(
        "div",
        { class: "stack" },
        h("p", { class: "hint wide", "data-testid": "registry-total" }, foundText(data)),
        h("div", { class: "wide" }, hitsTable(data.results)),
        h("div", { class: "wide" }, facetsView(data.facets)),
        data.facets_exact
          ? null
          : h(
              "p",
              { class: "hint wide", "data-testid": "registry-facets-over" },
              `Counts cover the best ${units(data.facets_over)} matches.`,
            ),
      ),
    { button },
  );
}

// One entry.

function specView(kind, spec) {
  if (kind === "model") {
    return kv([
      ["Modality", spec.modality],
      ["APIs", spec.compatible_api.join(", ")],
      ["Context window", units(spec.context_window)],
      ["Tool calling", value(spec.tool_calling)],
      ["Family", code(spec.family)],
      ["Lineage", spec.lineage ? h("span", {}, code(spec.lineage.base_model), ` (${spec.lineage.derivation})`) : "—"],
    ]);
  }
  if (kind === "agent") {
    const r = spec.requirements;
    const c = spec.config_template;
    return kv([
      ["Speaks", r.apis.join(", ") || "any API"],
      ["Min context window", units(r.min_context_window)],
      ["Needs tool calling", value(r.tool_calling)],
      ["Families allowed", r.families.join(", ") || "any"],
      ["Modalities allowed", r.modalities.join(", ") || "any"],
      ["System prompt", c.system_prompt ? h("div", { class: "answer" }, c.system_prompt) : "—"],
      ["Tools (metadata only)", c.tools.map((t) => t.name).join(", ") || "—"],
    ]);
  }
  return kv([
    ["Agent", h("button", { type: "button", class: "link", onclick: () => openEntry("agent", spec.agent.slug) }, `${spec.agent.slug}@${spec.agent.version}`)],
    ["Model", h("button", { type: "button", class: "link", onclick: () => openEntry("model", spec.model.slug) }, `${spec.model.slug}@${spec.model.version}`)],
    ["System prompt", spec.configuration.system_prompt ? h("div", { class: "answer" }, spec.configuration.system_prompt) : "—"],
  ]);
}

function versionsTable(versions) {
  return h(
    "div",
    { "data-testid": "registry-versions" },
    table(
      [
        { label: "Version", cell: (v) => code(v.version) },
        { label: "Status", cell: (v) => badge(v.status, STATUS_TONES[v.status]) },
        { label: "Price", cell: (v) => pricingText(v.pricing) },
        { label: "Royalty", num: true, cell: (v) => royaltyText(v.royalty_bps) },
        { label: "Published", cell: (v) => time(v.published_at) },
      ],
      versions,
    ),
  );
}

function servingView(data) {
  return h(
    "div",
    { class: "wide", "data-testid": "registry-serving" },
    h("h3", {}, `Served now by providers (${data.served_by_count} naming it)`),
    h("p", { class: "hint" }, "Providers whose catalog names a version of this model: serving now when routing would send them calls and their published capacity has units left. Depth sums those providers' units and takes their best ask."),
    table(
      [
        { label: "Unit", cell: (d) => d.unit_type },
        { label: "Providers", num: true, cell: (d) => String(d.providers) },
        { label: "Units on offer", num: true, cell: (d) => units(d.available_units) },
        { label: "Best ask", num: true, cell: (d) => (d.best_ask_unit_price === null ? "—" : numberText(d.best_ask_unit_price)) },
      ],
      data.depth,
      { empty: "No provider serves it now." },
    ),
    table(
      [
        { label: "Provider", cell: (s) => h("span", { title: s.provider_id }, s.provider_name) },
        { label: "Listed as", cell: (s) => code(s.model) },
        { label: "Version", cell: (s) => code(s.version) },
        { label: "Unit", cell: (s) => s.unit_type },
        { label: "Now", cell: (s) => (s.serving_now ? badge("serving", "good") : badge(s.route_gate, "warn")) },
        { label: "Ask", num: true, cell: (s) => (s.ask_unit_price === null ? "—" : numberText(s.ask_unit_price)) },
        { label: "Units", num: true, cell: (s) => units(s.available_units) },
      ],
      data.served_by,
      { empty: "No provider's catalog names this model yet." },
    ),
  );
}

function entryView(data) {
  const e = data.entry;
  const v = data.version;
  return h(
    "div",
    { class: "stack", "data-testid": "registry-entry" },
    h(
      "div",
      { class: "wide" },
      kv([
        ["Slug", h("span", { "data-testid": "registry-slug" }, code(e.slug))],
        ["Kind", badge(e.kind)],
        ["Name", e.display_name],
        ["Publisher", code(e.publisher_id)],
        ["Description (the publisher's)", h("div", { class: "answer", "data-testid": "registry-description" }, e.description || "—")],
        ["Tags", e.tags.join(", ") || "—"],
        ["License", e.license],
        ["Version shown", h("span", { "data-testid": "registry-version" }, code(v.version))],
        ["Status", h("span", { "data-testid": "registry-status" }, badge(v.status, STATUS_TONES[v.status]))],
        v.status_reason ? ["Reason", v.status_reason] : null,
        ["Price", h("span", { "data-testid": "registry-price" }, pricingText(v.pricing))],
        ["Royalty", royaltyText(v.royalty_bps)],
        ["Published", time(v.published_at)],
      ]),
    ),
    h("div", { class: "wide" }, h("h3", {}, "This version"), specView(e.kind, v.spec), deployButton(e, v)),
    e.kind === "model" && data.served_by ? servingView(data) : null,
    h(
      "div",
      { class: "wide" },
      h("h3", {}, "Versions, newest first"),
      h("p", { class: "hint" }, "A published version never changes, its price and royalty included; a deployment keeps the terms of the version it pinned."),
      versionsTable(data.versions),
    ),
  );
}

function deployButton(entry, version) {
  if (entry.kind === "model") return null;
  const pin = { slug: entry.slug, version: version.version };
  const label = entry.kind === "agent" ? "Deploy this agent" : "Deploy this solution";
  const source = entry.kind === "agent" ? { agent: pin } : { solution: pin };
  return h("div", { class: "actions" }, h("button", { type: "button", class: "secondary", "data-testid": "registry-deploy", onclick: () => deployFrom(source) }, label));
}

function deployPair(kind, subject, counterpart) {
  const pair = kind === "model" ? { agent: counterpart, model: subject } : { agent: subject, model: counterpart };
  return h("button", { type: "button", class: "secondary", "data-deploy": counterpart.slug, onclick: () => deployFrom(pair) }, "Deploy the pair");
}

function counterpartsView(kind, data) {
  const what = kind === "model" ? "Agents this model fits" : "Models that fit this agent";
  return h(
    "div",
    { "data-testid": "registry-compatible" },
    h("h3", {}, `${what} (${data.subject.slug}@${data.subject.version})`),
    table(
      [
        { label: "Slug", cell: (c) => h("button", { type: "button", class: "link", onclick: () => openEntry(kind === "model" ? "agent" : "model", c.slug) }, c.slug) },
        { label: "Version", cell: (c) => code(c.version) },
        { label: "Name", cell: (c) => c.display_name },
        { label: "", cell: (c) => deployPair(kind, data.subject, c) },
      ],
      data.compatible,
      { empty: "Nothing listed fits yet." },
    ),
  );
}

async function showEntry(kind, slug, version, button) {
  const parts = splitSlug(slug);
  const params = { plural: PLURAL[kind], ...parts };
  const query = { version };
  const shown = await show($("registry-entry-result"), () => request("GET", ROUTES.entry, { params, query }), entryView, { button });
  const target = $("registry-compatible-result");
  if (!shown.ok || !COUNTERPARTS[kind]) {
    target.replaceChildren();
    return;
  }
  show(
    target,
    () => request("GET", ROUTES.compatible, { params: { ...params, counterparts: COUNTERPARTS[kind] }, query: { version: shown.data.version.version } }),
    (data) => counterpartsView(kind, data),
  );
}

function openEntry(kind, slug) {
  fillField("registry-entry-form", "kind", kind);
  fillField("registry-entry-form", "slug", slug);
  fillField("registry-entry-form", "version", "");
  $("registry-entry-form").requestSubmit();
  $("registry-entry-card").scrollIntoView({ block: "start" });
}

// Publishing.

function publishBody(v) {
  const body = {
    slug: v.slug,
    display_name: v.display_name,
    description: v.description,
    tags: listField(v.tags),
    license: v.license,
    version: v.version,
    pricing: { model: v.pricing_model, price: decimalField(v.price) },
    royalty_bps: integerField(v.royalty_bps),
  };
  if (v.kind === "model") {
    body.model = {
      modality: v.modality,
      compatible_api: listField(v.apis),
      context_window: integerField(v.context_window),
      tool_calling: v.tool_calling,
      family: v.family,
    };
  } else {
    body.agent = {
      requirements: {
        apis: listField(v.apis),
        min_context_window: integerField(v.context_window || "0"),
        tool_calling: v.tool_calling,
        families: listField(v.family),
      },
    };
  }
  return body;
}

export function init() {
  onSubmit("registry-search-form", (_form, button) => runSearch(button));
  onSubmit("registry-entry-form", (form, button) => {
    const v = formValues(form);
    showEntry(v.kind, v.slug, v.version, button);
  });
  onSubmit("registry-publish-form", async (form, button) => {
    const v = formValues(form);
    const result = await show(
      $("registry-publish-result"),
      () => request("POST", v.kind === "model" ? ROUTES.models : ROUTES.agents, { body: publishBody(v) }),
      (data) => kv([["Published", code(`${data.entry.slug}@${data.version.version}`)], ["Status", badge(data.version.status)]]),
      { button },
    );
    if (result.ok) openEntry(v.kind, result.data.entry.slug);
  });
}

/** Called when the Registry section is shown with a key: everything listed loads by itself. */
export function refresh() {
  if (!$("registry-search-result").childElementCount) runSearch();
  if (!$("registry-entry-result").childElementCount) {
    replace($("registry-entry-result"), emptyState("Pick an entry in the search results, or type its slug."));
  }
}
