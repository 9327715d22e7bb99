// Usage analytics: summary, usage per day as a chart, cost and savings by model and provider,
// the records (cursor-paged), and the export downloaded with the key as a file.

import { parseJSON, request, safetyOf } from "./api.js";
import { usageChart } from "./charts.js";
import {
  badge,
  code,
  formValues,
  h,
  kv,
  onSubmit,
  replace,
  responseView,
  safetyRow,
  show,
  table,
  tile,
  time,
  units,
  value,
} from "./views.js";

const ROUTES = {
  analyticsUsage: "/inference/analytics/usage",
  analyticsExport: "/inference/analytics/export",
};

const METRICS = [
  ["actual_cost", "Actual cost"],
  ["actual_units", "Units"],
  ["savings", "Savings"],
  ["records", "Records"],
];

const $ = (id) => document.getElementById(id);
// Decisions of an answered call or fill; any other with no units is a failed attempt.
const ANSWERED = new Set(["market_fill", "selected", "fallback"]);
const failedAttempt = (r) => !ANSWERED.has(r.decision) && !Number(r.actual_units);

function filters() {
  const v = formValues($("usage-form"));
  return {
    model: v.model,
    provider_id: v.provider_id,
    agent_id: v.agent_id,
    workspace_id: v.workspace_id,
    since: v.since ? `${v.since}T00:00:00Z` : "",
    until: v.until ? `${v.until}T00:00:00Z` : "",
  };
}

function totalsTable(rows, key, label) {
  return table(
    [
      { label, cell: (r) => (key === "provider_id" ? code(r[key]) : r[key]) },
      { label: "Billed calls", num: true, cell: (r) => units(r.billed_calls) },
      { label: "Failed attempts", num: true, cell: (r) => units(r.failed_attempts) },
      { label: "Units", num: true, cell: (r) => units(r.actual_units) },
      { label: "Actual cost", num: true, cell: (r) => value(r.actual_cost) },
      { label: "Reference cost", num: true, cell: (r) => value(r.reference_cost) },
      { label: "Savings", num: true, cell: (r) => value(r.savings) },
      { label: "Savings bps", num: true, cell: (r) => value(r.savings_bps) },
    ],
    rows,
    { empty: "No usage yet." },
  );
}

function recordsTable(records) {
  return table(
    [
      { label: "When", cell: (r) => time(r.created_at) },
      { label: "Source", cell: (r) => r.source },
      { label: "Outcome", cell: (r) => (failedAttempt(r) ? badge(`failed attempt: ${r.decision}`, "bad") : r.decision) },
      { label: "Model", cell: (r) => r.model },
      { label: "Provider", cell: (r) => code(r.provider_id) },
      { label: "Agent", cell: (r) => value(r.agent_id) },
      { label: "Units", num: true, cell: (r) => units(r.actual_units) },
      { label: "Unit price", num: true, cell: (r) => value(r.unit_price) },
      { label: "Cost", num: true, cell: (r) => value(r.actual_cost) },
      { label: "Savings", num: true, cell: (r) => value(r.savings) },
    ],
    records,
    { empty: "No usage records match these filters." },
  );
}

function recordsPager(initial, cursor) {
  const rows = [...initial];
  const list = h("div", {}, recordsTable(rows));
  const problem = h("div", {});
  const button = h("button", { type: "button", class: "secondary" }, "Load more records");
  let next = cursor;
  button.hidden = !next;
  button.addEventListener("click", async () => {
    button.disabled = true;
    const result = await request("GET", ROUTES.analyticsUsage, { query: { ...filters(), limit: 50, cursor: next } });
    button.disabled = false;
    if (!result.ok) {
      replace(problem, responseView(result));
      return;
    }
    rows.push(...result.data.records);
    replace(list, recordsTable(rows));
    next = result.data.next_cursor;
    button.hidden = !next;
  });
  return h("div", {}, list, h("div", { class: "actions" }, button), problem);
}

function usageView(data) {
  const sum = data.summary;
  const chartFrame = h("div", { class: "chart-frame" });
  const metric = h(
    "select",
    { "aria-label": "Chart metric", id: "usage-metric" },
    METRICS.map(([name, label]) => h("option", { value: name }, label)),
  );
  const draw = () => {
    const [name, label] = METRICS.find(([m]) => m === metric.value);
    replace(
      chartFrame,
      usageChart(sum.by_day, name, label),
      h("div", { class: "legend" }, h("span", {}, h("span", { class: "swatch bar" }), `${label} per UTC day`)),
    );
  };
  metric.addEventListener("change", draw);
  draw();
  return h(
    "div",
    { class: "stack", "data-testid": "usage" },
    h(
      "div",
      { class: "tiles wide" },
      tile("Billed calls", units(sum.billed_calls), { sub: h("span", {}, units(sum.records_with_reference), " of ", units(sum.records), " records with a reference price"), testid: "billed-calls" }),
      tile("Failed attempts", units(sum.failed_attempts), { sub: "no answer, nothing billed: kept for audit", testid: "failed-attempts" }),
      tile("Units", units(sum.actual_units), { sub: h("span", {}, "estimated ", units(sum.estimated_units)) }),
      tile("Actual cost", value(sum.actual_cost), { sub: sum.currency }),
      tile("Reference cost", value(sum.reference_cost), { sub: "where a reference price is known" }),
      tile("Savings", value(sum.savings), { sub: sum.savings_bps === null ? "no reference price" : `${sum.savings_bps} bps` }),
    ),
    h(
      "div",
      { class: "wide" },
      h("div", { class: "card-head" }, h("h3", {}, "Usage over time"), h("label", { class: "field" }, h("span", {}, "Metric"), metric)),
      chartFrame,
    ),
    h("div", { class: "wide" }, h("h3", {}, "Cost and savings by model"), totalsTable(sum.by_model, "model", "Model")),
    h("div", { class: "wide" }, h("h3", {}, "Cost and savings by provider"), totalsTable(sum.by_provider, "provider_id", "Provider")),
    h(
      "div",
      { class: "wide" },
      h("h3", {}, "Records, newest first"),
      recordsPager(data.records, data.next_cursor),
      h("p", { class: "muted small" }, `Summed from ${sum.computed_from}. ${data.savings_rule}`),
    ),
  );
}

export function loadUsage(button) {
  return show(
    $("usage-result"),
    () => request("GET", ROUTES.analyticsUsage, { query: { ...filters(), limit: 50 } }),
    usageView,
    { button },
  );
}

function exportSummary(format, text) {
  const parts = { header: null, footer: null, records: 0 };
  if (format === "ndjson") {
    for (const line of text.split("\n")) {
      if (!line.trim()) continue;
      const item = parseJSON(line);
      if (item.record_type === "header") parts.header = item;
      else if (item.record_type === "footer") parts.footer = item;
      else if (item.record_type === "usage_record") parts.records += 1;
    }
  } else {
    const doc = parseJSON(text);
    parts.header = doc;
    parts.footer = doc;
    parts.records = doc.records.length;
  }
  return parts;
}

async function downloadExport(form, button) {
  const format = formValues(form).format;
  const target = $("export-result");
  const result = await show(
    target,
    () => request("GET", ROUTES.analyticsExport, { query: { ...filters(), format }, raw: true }),
    null,
    { button },
  );
  if (!result.ok) return;
  const text = await result.blob.text();
  const stamp = new Date().toISOString().replace(/[:.]/g, "-");
  const filename = `flow-memory-usage-${stamp}.${format === "ndjson" ? "ndjson" : "json"}`;
  const url = URL.createObjectURL(result.blob);
  const link = h("a", { href: url, download: filename, class: "button secondary" }, "Save the file again");
  link.click();
  let parts;
  try {
    parts = exportSummary(format, text);
  } catch {
    parts = null;
  }
  const frame = target.querySelector(".response");
  const header = parts && parts.header;
  frame.append(
    h(
      "div",
      { "data-testid": "export-summary" },
      kv([
        ["File", code(filename)],
        ["Size", `${result.blob.size.toLocaleString("en-US")} bytes`],
        ["Usage records", parts ? units(parts.records) : "unreadable"],
        ["Schema", header ? code(header.schema_version) : value(null)],
        ["Complete", parts && parts.footer ? value(parts.footer.complete) : value(null)],
        ["Redaction applied", header && header.redaction ? value(header.redaction.applied) : value(null)],
      ]),
      header && safetyOf(header) ? safetyRow(header) : null,
      h("div", { class: "actions" }, link),
    ),
  );
}

export function init() {
  onSubmit("usage-form", (_form, button) => loadUsage(button));
  onSubmit("export-form", (form, button) => downloadExport(form, button));
}

export function refresh() {
  loadUsage();
}
