// Deployments: the caller's deployments, and one deployment's page (its pins and their terms,
// who serves it now, every revision, its calls and cost, and a call through it showing the
// cost and each royalty line). Pause, resume and delete are the API's own state changes.
// Deploying is deploy.js.

import { integerField, numberText, request } from "./api.js";
import { usageChart } from "./charts.js";
import { initDeployForm } from "./deploy.js";
import {
  badge,
  code,
  emptyState,
  fillField,
  formValues,
  h,
  kv,
  onSubmit,
  replace,
  show,
  table,
  tile,
  time,
  units,
  value,
} from "./views.js";

const ROUTES = {
  deployments: "/inference/deployments",
  deployment: "/inference/deployments/{deployment_id}",
  state: "/inference/deployments/{deployment_id}/{action}",
  usage: "/inference/analytics/usage",
  chat: "/v1/chat/completions",
};
const STATE_TONES = { active: "good", paused: "warn", deleted: "bad" };

const $ = (id) => document.getElementById(id);

function pinText(pin) {
  return pin ? `${pin.slug}@${pin.version}` : "—";
}

// One deployment.

function capacityView(capacity) {
  if (!capacity) return emptyState("The pinned model is no longer in the registry.");
  return h(
    "div",
    { "data-testid": "deployment-capacity" },
    h("p", { class: "hint" }, capacity.serving_now ? "Providers serve the pinned model version now." : `No provider serves it now: ${capacity.reasons.join("; ")}`),
    table(
      [
        { label: "Provider", cell: (p) => h("span", { title: p.provider_id }, p.provider_name) },
        { label: "Listed as", cell: (p) => code(p.model) },
        { label: "Unit", cell: (p) => p.unit_type },
        { label: "Now", cell: (p) => (p.serving_now ? badge("serving", "good") : badge(p.route_gate, "warn")) },
        { label: "Ask", num: true, cell: (p) => value(p.ask_unit_price) },
        { label: "Units", num: true, cell: (p) => units(p.available_units) },
      ],
      capacity.providers,
      { empty: "No provider's catalog names the pinned model version." },
    ),
  );
}

function termsTable(pins) {
  return table(
    [
      { label: "Pin", cell: (p) => badge(p.kind) },
      { label: "Version", cell: (p) => code(pinText(p)) },
      { label: "Publisher", cell: (p) => code(p.publisher_id) },
      { label: "Price", num: true, cell: (p) => (p.pricing ? `${numberText(p.pricing.price)} ${p.pricing.currency} ${p.pricing.model.replace("_", " ")}` : "—") },
      { label: "Royalty", num: true, cell: (p) => `${units(p.royalty_bps)} bps` },
    ],
    [pins.agent, pins.model],
  );
}

function revisionsTable(revisions) {
  return h(
    "div",
    { "data-testid": "deployment-revisions" },
    table(
      [
        { label: "Revision", num: true, cell: (r) => String(r.revision) },
        { label: "Agent", cell: (r) => code(pinText(r.agent)) },
        { label: "Model", cell: (r) => code(pinText(r.model)) },
        { label: "Royalties", cell: (r) => `${r.agent.royalty_bps} + ${r.model.royalty_bps} bps` },
        { label: "Configuration", cell: (r) => value(r.configuration.parameters) },
        { label: "By", cell: (r) => code(r.created_by) },
        { label: "When", cell: (r) => time(r.created_at) },
      ],
      [...revisions].reverse(),
    ),
  );
}

const given = (v) => v !== null && v !== undefined;

function requirementsText(r) {
  const latency = given(r.latency_ceiling_ms) ? `latency ceiling ${units(r.latency_ceiling_ms)} ms` : "no latency ceiling";
  const concurrency = given(r.concurrency) ? `${units(r.concurrency)} calls at once` : "no concurrency limit";
  return `context window ≥ ${units(r.min_context_window ?? 0)} tokens · ${concurrency} · ${latency}`;
}

function policyText(p) {
  const ceiling = given(p.max_unit_price) ? `price ceiling ${numberText(p.max_unit_price)}` : "no price ceiling";
  return `${ceiling} · min discount ${units(p.min_discount_bps)} bps · fallback ${p.allow_fallback ? "allowed" : "off"}`;
}

function stateButtons(d) {
  const act = (action, method, label) =>
    h("button", { type: "button", class: "secondary", "data-action": action, onclick: (event) => changeState(d.deployment_id, action, method, event.target) }, label);
  if (d.state === "deleted") return null;
  return h(
    "div",
    { class: "actions" },
    d.state === "active" ? act("pause", "POST", "Pause") : act("resume", "POST", "Resume"),
    act("delete", "DELETE", "Delete"),
  );
}

function deploymentView(data) {
  const d = data.deployment;
  const pins = d.pins;
  const configuration = pins.configuration;
  return h(
    "div",
    { class: "stack", "data-testid": "deployment" },
    h(
      "div",
      { class: "wide" },
      kv([
        ["Deployment", code(d.deployment_id)],
        ["Call it as", h("span", { "data-testid": "deployment-model" }, code(d.model))],
        ["State", h("span", { "data-testid": "deployment-state" }, badge(d.state, STATE_TONES[d.state]))],
        ["Revision", h("span", { "data-testid": "deployment-revision" }, String(d.revision))],
        ["From solution", pins.solution ? code(pinText(pins.solution)) : "—"],
        ["System prompt", configuration.system_prompt ? h("div", { class: "answer" }, configuration.system_prompt) : "—"],
        ["Parameters (ceilings for numbers)", value(configuration.parameters)],
        ["Requirements", requirementsText(pins.requirements)],
        ["Routing policy", policyText(pins.policy)],
        ["Updated", time(d.updated_at)],
      ]),
      stateButtons(d),
    ),
    h("div", { class: "wide", "data-testid": "deployment-terms" }, h("h3", {}, "Pinned versions and their terms"), termsTable(pins)),
    h("div", { class: "wide" }, h("h3", {}, "Who serves it now"), capacityView(data.capacity)),
    data.revisions ? h("div", { class: "wide" }, h("h3", {}, "Revisions, newest first"), revisionsTable(data.revisions)) : null,
  );
}

function usageView(id, data) {
  // A server whose usage API does not know the filter answers every record: show none then.
  if (!data.filters || data.filters.deployment_id !== id) {
    return emptyState("This server's usage analytics cannot select one deployment's calls.");
  }
  const sum = data.summary;
  return h(
    "div",
    { class: "stack", "data-testid": "deployment-usage" },
    h(
      "div",
      { class: "tiles wide" },
      tile("Billed calls", units(sum.billed_calls), { testid: "deployment-calls" }),
      tile("Units", units(sum.actual_units)),
      tile("Cost", value(sum.actual_cost), { sub: sum.currency, testid: "deployment-cost" }),
    ),
    h("div", { class: "wide chart-frame" }, usageChart(sum.by_day, "actual_cost", "Cost")),
    h(
      "div",
      { class: "wide" },
      table(
        [
          { label: "When", cell: (r) => time(r.created_at) },
          { label: "Provider", cell: (r) => code(r.provider_id) },
          { label: "Units", num: true, cell: (r) => units(r.actual_units) },
          { label: "Cost", num: true, cell: (r) => value(r.actual_cost) },
        ],
        data.records,
        { empty: "No call through this deployment yet." },
      ),
    ),
  );
}

function loadUsage(id) {
  return show($("deployment-usage-result"), () => request("GET", ROUTES.usage, { query: { deployment_id: id, limit: 20 } }), (data) => usageView(id, data));
}

export async function openDeployment(id, button) {
  fillField("deployment-form", "deployment_id", id);
  const result = await show($("deployment-result"), () => request("GET", ROUTES.deployment, { params: { deployment_id: id } }), deploymentView, { button });
  if (result.ok) {
    fillField("deployment-call-form", "model", result.data.deployment.model);
    loadUsage(id);
  }
  return result;
}

async function changeState(id, action, method, button) {
  const params = { deployment_id: id, action };
  const call = () => (action === "delete" ? request(method, ROUTES.deployment, { params }) : request(method, ROUTES.state, { params }));
  const result = await show($("deployment-state-result"), call, (data) => kv([["State", badge(data.deployment.state, STATE_TONES[data.deployment.state])]]), { button });
  if (result.ok) {
    openDeployment(id);
    loadList();
  }
}

// A call through it: the answer and the arithmetic its flow_memory object carries.

function arithmeticView(data) {
  const meta = data.flow_memory || {};
  const lines = meta.royalties || [];
  const answer = data.choices && data.choices[0] ? data.choices[0].message.content : "";
  return h(
    "div",
    { class: "stack", "data-testid": "deployment-call" },
    h("div", { class: "wide" }, h("h3", {}, "Answer"), h("div", { class: "answer" }, answer || "(empty)")),
    h(
      "div",
      { class: "wide", "data-testid": "deployment-arithmetic" },
      table(
        [
          { label: "Line", cell: (r) => r.label },
          { label: "Rule", cell: (r) => r.rule },
          { label: "Amount (USD_CREDIT)", num: true, cell: (r) => h("span", { "data-line": r.key }, value(r.amount)) },
        ],
        [
          { key: "cost", label: "Cost", rule: `${units(meta.usage?.units)} units × ${numberText(meta.unit_price)}`, amount: meta.cost },
          ...lines.map((l) => ({ key: l.kind, label: `Royalty to ${l.publisher_id} (${l.slug}@${l.version})`, rule: `cost × ${l.royalty_bps} bps`, amount: l.amount })),
          { key: "royalty_total", label: "Royalties", rule: "sum of the lines", amount: meta.royalty_total },
          { key: "total", label: "Total", rule: "cost + royalties", amount: meta.total },
        ],
      ),
      h("p", { class: "muted small" }, "Dry-run ledger records: the cost goes to the provider's owner, each royalty to its publisher. No funds move."),
    ),
  );
}

function callDeployment(form, button) {
  const v = formValues(form);
  const body = { model: v.model, messages: [{ role: "user", content: v.message }] };
  if (v.max_tokens) body.max_tokens = integerField(v.max_tokens);
  return show($("deployment-call-result"), () => request("POST", ROUTES.chat, { body }), arithmeticView, { button });
}

// The caller's deployments.

function listView(data) {
  return h(
    "div",
    { "data-testid": "deployment-list" },
    table(
      [
        { label: "Slug", cell: (d) => h("button", { type: "button", class: "link", "data-deployment": d.deployment_id, onclick: () => openDeployment(d.deployment_id) }, d.slug) },
        { label: "State", cell: (d) => badge(d.state, STATE_TONES[d.state]) },
        { label: "Revision", num: true, cell: (d) => String(d.revision) },
        { label: "Agent", cell: (d) => code(pinText(d.pins.agent)) },
        { label: "Model", cell: (d) => code(pinText(d.pins.model)) },
        { label: "Royalties", cell: (d) => `${d.pins.agent.royalty_bps} + ${d.pins.model.royalty_bps} bps` },
        { label: "Created", cell: (d) => time(d.created_at) },
      ],
      data.deployments,
      { empty: "No deployment yet: deploy an agent and a model above." },
    ),
  );
}

function loadList(button) {
  const includeDeleted = $("deployment-list-deleted").checked;
  return show($("deployment-list-result"), () => request("GET", ROUTES.deployments, { query: { include_deleted: includeDeleted || "" } }), listView, { button });
}

export function init() {
  initDeployForm((deployment) => {
    openDeployment(deployment.deployment_id);
    loadList();
  });
  onSubmit("deployment-form", (form, button) => openDeployment(formValues(form).deployment_id, button));
  onSubmit("deployment-call-form", callDeployment);
  $("deployment-list-load").addEventListener("click", (event) => loadList(event.target));
}

/** Called when the Deployments section is shown with a key. */
export function refresh() {
  loadList();
  if (!$("deployment-result").childElementCount) {
    replace($("deployment-result"), emptyState("Pick a deployment in the list, or type its id."));
  }
}
