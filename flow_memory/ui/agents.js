// Agent identities and the dry-run credit ledger: the agents listed (cursor-paged), one agent's
// public profile with its standing, its account's balance and entries, its metabolism (earned,
// spent and net a day, runway), its reputation (components, earned capacity, history), a form
// to register an agent, and a ledger lookup for admins and auditors.

import { request } from "./api.js";
import { usageChart } from "./charts.js";
import { showReputation } from "./reputation.js";
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
  remember,
  replace,
  responseView,
  show,
  table,
  tile,
  time,
  units,
  value,
} from "./views.js";

const ROUTES = {
  agents: "/inference/agents",
  agentProfile: "/inference/agents/{agent_id}",
  agentMetabolism: "/inference/agents/{agent_id}/metabolism",
  ledgerAccounts: "/inference/ledger/accounts",
  ledgerAccount: "/inference/ledger/accounts/{account_id}",
  ledgerAccountEntries: "/inference/ledger/accounts/{account_id}/entries",
};

const METRICS = [
  ["spent", "Credits spent"],
  ["earned", "Credits earned"],
  ["units_consumed", "Units consumed"],
];

const $ = (id) => document.getElementById(id);

// A signed amount is below zero when its exact text starts with a minus and is not all zeros.
function belowZero(amount) {
  const text = value(amount);
  return typeof text === "string" && /^-/.test(text) && /[1-9]/.test(text);
}

/** Credits exactly as sent; a negative amount carries a visible "below zero" badge. */
function credits(amount) {
  if (!belowZero(amount)) return value(amount);
  return h(
    "span",
    { class: "below-zero" },
    value(amount),
    " ",
    h("span", { class: "badge bad", "data-testid": "below-zero", title: "This account is not enforced and has gone below zero" }, "below zero"),
  );
}

// Agents listed.

const list = { cursor: null, rows: [] };

function agentsTable(agents) {
  return table(
    [
      {
        label: "Agent",
        cell: (a) =>
          h(
            "button",
            { type: "button", class: "link", title: "Show this agent", "data-agent": a.agent_id, onclick: () => openAgent(a.agent_id) },
            a.display_name,
          ),
      },
      { label: "Kind", cell: (a) => badge(a.kind) },
      { label: "Status", cell: (a) => badge(a.status) },
      { label: "Id", cell: (a) => code(a.agent_id) },
      { label: "Operator", cell: (a) => value(a.operator_id) },
      { label: "Account", cell: (a) => value(a.account_id) },
      { label: "Standing", num: true, cell: (a) => value(a.standing.bidder) },
      { label: "Created", cell: (a) => time(a.created_at) },
    ],
    agents,
    { empty: "No agent identities yet. Register one below." },
  );
}

async function loadAgents(append) {
  const target = $("agents-list-result");
  const more = $("agents-more");
  const v = formValues($("agents-list-form"));
  const query = { kind: v.kind, status: v.status, limit: v.limit, cursor: append ? list.cursor : "" };
  const call = () => request("GET", ROUTES.agents, { query });
  const result = append ? await call() : await show(target, call, null, { button: more });
  if (!result.ok) {
    replace(target, responseView(result));
    more.hidden = true;
    return;
  }
  if (!append) list.rows = [];
  list.rows.push(...result.data.agents);
  for (const a of result.data.agents) remember("dl-agents", a.agent_id, a.display_name);
  list.cursor = result.data.next_cursor;
  more.hidden = !list.cursor;
  replace(target, responseView(result, () => agentsTable(list.rows)));
}

// One agent.

function profileView(agent) {
  const activity = agent.activity || {};
  const profile = agent.profile || {};
  return kv([
    ["Agent", code(agent.agent_id)],
    ["Name", agent.display_name],
    ["Kind", badge(agent.kind)],
    ["Status", badge(agent.status)],
    ["Description", agent.description || "—"],
    ["Values", value(agent.values)],
    ["Models", value(agent.models)],
    ["Operator", value(agent.operator_id)],
    ["Own keys only", value(agent.self_keyed)],
    ["Memory reference", value(agent.memory_ref)],
    ["Account", value(agent.account_id)],
    profile.tagline ? ["Tagline", profile.tagline] : null,
    ["Usage records", units(activity.usage_records)],
    ["Units consumed", units(activity.units_consumed)],
    ["Active keys", units(activity.active_keys)],
    ["Bidder standing", h("span", { "data-testid": "agent-bidder-standing" }, value(agent.standing.bidder))],
    ["Validator standing", h("span", { "data-testid": "agent-validator-standing" }, value(agent.standing.validator))],
    ["Created", time(agent.created_at)],
    ["Suspended", time(agent.suspended_at)],
  ]);
}

function accountView(account) {
  const negative = belowZero(account.balance);
  return h(
    "div",
    { class: "stack", "data-testid": "account" },
    h(
      "div",
      { class: "tiles wide" },
      tile("Balance", credits(account.balance), { sub: account.currency, tone: negative ? "negative" : "", testid: "account-balance" }),
      tile("Held", credits(account.held), { sub: "set aside by holds", testid: "account-held" }),
      tile("Available", credits(account.available), { sub: "balance less held", testid: "account-available" }),
      tile("Enforcement", account.enforcement, {
        sub: account.enforced ? "may not go below zero" : "not enforced: may go below zero",
      }),
    ),
    h("div", { class: "wide" }, kv([["Account", code(account.account_id)], ["Holder", code(account.holder_id)], ["Holder kind", account.holder_kind], ["Opened", time(account.created_at)]])),
  );
}

function entriesTable(rows) {
  return table(
    [
      { label: "When", cell: (e) => time(e.created_at) },
      { label: "Amount", num: true, cell: (e) => credits(e.amount) },
      { label: "Part", cell: (e) => e.account_role },
      { label: "Cause", cell: (e) => badge(e.cause.kind) },
      { label: "Cause id", cell: (e) => code(e.cause.id) },
      { label: "By", cell: (e) => value(e.cause.actor_id) },
      { label: "Memo", cell: (e) => e.cause.memo || "—" },
      { label: "Transfer", cell: (e) => code(e.transfer_id) },
    ],
    rows,
    { empty: "No entries yet: credits enter by an admin's grant." },
  );
}

/** An account's entries, newest first, with a button for the next page. */
function showEntries(target, accountId) {
  const rows = [];
  let cursor = null;
  const more = h("button", { type: "button", class: "secondary", hidden: true }, "Load next page");
  const holder = h("div", { "data-testid": "entries" });
  const load = async (append) => {
    const call = () =>
      request("GET", ROUTES.ledgerAccountEntries, { params: { account_id: accountId }, query: { limit: 50, cursor: append ? cursor : "" } });
    const result = append ? await call() : await show(target, call, null);
    if (!result.ok) {
      replace(target, responseView(result));
      return;
    }
    rows.push(...result.data.entries);
    cursor = result.data.next_cursor;
    more.hidden = !cursor;
    replace(holder, entriesTable(rows));
    replace(target, responseView(result, () => h("div", {}, holder, h("div", { class: "actions" }, more))));
  };
  more.addEventListener("click", () => load(true));
  return load(false);
}

function metabolismView(m) {
  const chartFrame = h("div", { class: "chart-frame", "data-testid": "metabolism-chart" });
  const metric = h(
    "select",
    { "aria-label": "Metabolism chart metric", id: "metabolism-metric" },
    METRICS.map(([name, label]) => h("option", { value: name }, label)),
  );
  const draw = () => {
    const [name, label] = METRICS.find(([n]) => n === metric.value);
    replace(
      chartFrame,
      usageChart(m.days, name, label),
      h("div", { class: "legend" }, h("span", {}, h("span", { class: "swatch bar" }), `${label} per UTC day`)),
    );
  };
  metric.addEventListener("change", draw);
  draw();
  return h(
    "div",
    { class: "stack", "data-testid": "metabolism" },
    h(
      "div",
      { class: "tiles wide" },
      tile("Balance", credits(m.balance), { sub: m.currency, testid: "metabolism-balance" }),
      tile("Available", credits(m.available), { sub: h("span", {}, "held ", value(m.held)) }),
      tile("Earned", value(m.earned), { sub: `last ${m.days.length} days` }),
      tile("Spent", value(m.spent), { sub: `last ${m.days.length} days` }),
      tile("Net", credits(m.net), { sub: "earned less spent" }),
      tile("Units consumed", units(m.units_consumed)),
      tile("Burn rate a day", value(m.burn_rate_per_day), { sub: `over ${m.burn_window_days} days` }),
      tile("Runway (days)", m.runway_days === null ? "no spend" : value(m.runway_days), {
        sub: "available credits at the burn rate",
        testid: "metabolism-runway",
      }),
    ),
    h(
      "div",
      { class: "wide" },
      h("div", { class: "card-head" }, h("h3", {}, "Per day"), h("label", { class: "field" }, h("span", {}, "Metric"), metric)),
      chartFrame,
    ),
    h(
      "div",
      { class: "wide" },
      table(
        [
          { label: "Day", cell: (d) => d.day },
          { label: "Earned", num: true, cell: (d) => value(d.earned) },
          { label: "Spent", num: true, cell: (d) => value(d.spent) },
          { label: "Net", num: true, cell: (d) => credits(d.net) },
          { label: "Units", num: true, cell: (d) => units(d.units_consumed) },
        ],
        [...m.days].reverse(),
        { empty: "No days in the window." },
      ),
    ),
  );
}

async function showAgent(agentId, button) {
  const profile = await show(
    $("agent-result"),
    () => request("GET", ROUTES.agentProfile, { params: { agent_id: agentId } }),
    (data) => profileView(data.agent),
    { button },
  );
  const account = $("agent-account-result");
  const entries = $("agent-entries-result");
  const metabolism = $("agent-metabolism-result");
  const reputation = $("agent-reputation-result");
  if (!profile.ok) {
    for (const target of [account, entries, metabolism, reputation]) target.replaceChildren();
    return;
  }
  showReputation(reputation, agentId);
  const accountId = profile.data.agent.account_id;
  if (accountId) {
    show(account, () => request("GET", ROUTES.ledgerAccount, { params: { account_id: accountId } }), (data) => accountView(data.account));
    showEntries(entries, accountId);
  } else {
    replace(account, emptyState("No ledger account yet: it opens with the agent's first grant or charge."));
    entries.replaceChildren();
  }
  show(
    metabolism,
    () => request("GET", ROUTES.agentMetabolism, { params: { agent_id: agentId }, query: { days: $("agent-form").elements.days.value } }),
    (data) => metabolismView(data.metabolism),
  );
}

function openAgent(agentId) {
  fillField("agent-form", "agent_id", agentId);
  $("agent-form").requestSubmit();
  $("agent-card").scrollIntoView({ block: "start" });
}

// The ledger lookup.

function accountsTable(accounts) {
  return table(
    [
      { label: "Account", cell: (a) => code(a.account_id) },
      { label: "Holder", cell: (a) => code(a.holder_id) },
      { label: "Holder kind", cell: (a) => a.holder_kind },
      { label: "Enforcement", cell: (a) => a.enforcement },
      { label: "Balance", num: true, cell: (a) => credits(a.balance) },
      { label: "Held", num: true, cell: (a) => credits(a.held) },
      { label: "Available", num: true, cell: (a) => credits(a.available) },
      {
        label: "",
        cell: (a) =>
          h(
            "button",
            { type: "button", class: "secondary small", "data-account": a.account_id, onclick: () => showEntries($("ledger-entries-result"), a.account_id) },
            "Entries",
          ),
      },
    ],
    accounts,
    { empty: "No account matches (or it is not yours to see)." },
  );
}

export function init() {
  onSubmit("agents-list-form", () => loadAgents(false));
  $("agents-more").addEventListener("click", () => loadAgents(true));
  onSubmit("agent-register-form", async (form, button) => {
    const v = formValues(form);
    const body = { kind: v.kind, display_name: v.display_name, description: v.description };
    const values = String(v.values || "")
      .split("\n")
      .map((line) => line.trim())
      .filter(Boolean);
    if (values.length) body.values = values;
    const models = listField(v.models);
    if (models.length) body.models = models;
    const result = await show(
      $("agent-register-result"),
      () => request("POST", ROUTES.agents, { body }),
      (data) => profileView(data.agent),
      { button },
    );
    if (result.ok) {
      remember("dl-agents", result.data.agent.agent_id, result.data.agent.display_name);
      fillField("agent-form", "agent_id", result.data.agent.agent_id);
      loadAgents(false);
    }
  });
  onSubmit("agent-form", (form, button) => showAgent(form.elements.agent_id.value.trim(), button));
  onSubmit("ledger-form", (form, button) =>
    show(
      $("ledger-result"),
      () => request("GET", ROUTES.ledgerAccounts, { query: { holder_id: form.elements.holder_id.value.trim() } }),
      (data) => accountsTable(data.accounts),
      { button },
    ),
  );
}

/** Called when the Agents section is shown with a key: the list loads by itself. */
export function refresh() {
  if (!$("agents-list-result").childElementCount) loadAgents(false);
}

/** Called when the Ledger section is shown with a key: the visible accounts load by themselves. */
export function refreshLedger() {
  if (!$("ledger-result").childElementCount) $("ledger-form").requestSubmit();
}
