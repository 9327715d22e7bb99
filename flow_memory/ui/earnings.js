// Creators' earnings: the royalty report (a publisher's own; every publisher's for admins and
// auditors) as totals, royalties per UTC day as a chart, revenue per version over time (a chart
// for each version), the rows with the calls and cost behind them, and the NDJSON export.
// Sums are exact (decimal text added as whole numbers); only chart geometry is approximate.

import { request, sumDecimals } from "./api.js";
import { usageChart } from "./charts.js";
import { badge, code, formValues, h, kv, onSubmit, show, table, tile, units, value } from "./views.js";

const ROUTES = {
  royalties: "/inference/royalties",
  export: "/inference/royalties/export",
};

const $ = (id) => document.getElementById(id);

function filters() {
  const v = formValues($("earnings-form"));
  return { publisher_id: v.publisher_id, kind: v.kind, slug: v.slug, day_from: v.day_from, day_to: v.day_to };
}

/** Rows summed per UTC day: {day, royalty, cost, usage_records}, exact. */
function byDay(rows) {
  const days = new Map();
  for (const row of rows) {
    const list = days.get(row.day) || [];
    list.push(row);
    days.set(row.day, list);
  }
  return [...days].map(([day, list]) => ({
    day,
    royalty: sumDecimals(list.map((r) => r.royalty)),
    cost: sumDecimals(list.map((r) => r.cost)),
    usage_records: list.reduce((n, r) => n + r.usage_records, 0),
  }));
}

/** Rows grouped by version, in the report's order (newest day first). */
function byVersion(rows) {
  const versions = new Map();
  for (const row of rows) {
    const key = row.version_id;
    if (!versions.has(key)) versions.set(key, { first: row, rows: [] });
    versions.get(key).rows.push(row);
  }
  return [...versions.values()];
}

function chart(rows, label, testid) {
  const svg = usageChart(rows, "royalty", label);
  svg.setAttribute("data-testid", testid);
  return h("div", { class: "chart-frame" }, svg);
}

function versionView({ first, rows }) {
  return h(
    "div",
    { class: "wide", "data-testid": "earnings-version", "data-version": `${first.slug}@${first.version}` },
    h("h3", {}, `${first.slug}@${first.version}`, " ", badge(first.kind), ` ${units(first.royalty_bps)} bps · publisher ${first.publisher_id}`),
    kv([
      ["Royalties", h("span", { "data-testid": "earnings-version-total" }, sumDecimals(rows.map((r) => r.royalty)))],
      ["Calls", units(rows.reduce((n, r) => n + r.usage_records, 0))],
      ["Their cost", sumDecimals(rows.map((r) => r.cost))],
    ]),
    chart(rows, `Royalties of ${first.slug}@${first.version}`, "earnings-version-chart"),
  );
}

function rowsTable(rows) {
  return table(
    [
      { label: "Day", cell: (r) => r.day },
      { label: "Kind", cell: (r) => badge(r.kind) },
      { label: "Version", cell: (r) => code(`${r.slug}@${r.version}`) },
      { label: "Publisher", cell: (r) => code(r.publisher_id) },
      { label: "Royalty bps", num: true, cell: (r) => units(r.royalty_bps) },
      { label: "Calls", num: true, cell: (r) => units(r.usage_records) },
      { label: "Cost", num: true, cell: (r) => value(r.cost) },
      { label: "Royalty", num: true, cell: (r) => value(r.royalty) },
      { label: "Cost × bps", num: true, cell: (r) => value(r.royalty_of_cost) },
    ],
    rows,
    { empty: "No royalty yet: a royalty is paid by each call through a deployment that pins your version." },
  );
}

function reportView(data) {
  const rows = data.rows;
  const versions = byVersion(rows);
  return h(
    "div",
    { class: "stack", "data-testid": "earnings" },
    h(
      "div",
      { class: "tiles wide" },
      tile("Royalties", value(data.totals.royalty), { sub: "USD_CREDIT, dry-run ledger records", testid: "earnings-total" }),
      tile("Calls behind them", units(data.totals.usage_records), { sub: "a call counts once per version it pinned", testid: "earnings-calls" }),
      tile("Versions earning", units(versions.length), { testid: "earnings-versions" }),
    ),
    h("div", { class: "wide" }, h("h3", {}, "Royalties per UTC day"), chart(byDay(rows), "Royalties", "earnings-chart")),
    h("div", { class: "wide" }, h("h2", {}, "Revenue per version over time")),
    versions.map(versionView),
    h(
      "div",
      { class: "wide" },
      h("h3", {}, "Days and versions, newest first"),
      rowsTable(rows),
      h("p", { class: "muted small" }, "Each call's royalty line is its cost × royalty bps / 10,000 (rounded half-to-even at 18 decimals); Cost × bps is the day's summed cost × bps, unrounded: the two differ only by that rounding."),
    ),
  );
}

function loadReport(button) {
  return show($("earnings-result"), () => request("GET", ROUTES.royalties, { query: { ...filters(), limit: 1000 } }), reportView, { button });
}

async function downloadExport(button) {
  const target = $("earnings-export-result");
  const result = await show(target, () => request("GET", ROUTES.export, { query: filters(), raw: true }), null, { button });
  if (!result.ok) return;
  const text = await result.blob.text();
  const lines = text.split("\n").filter((line) => line.trim());
  const stamp = new Date().toISOString().replace(/[:.]/g, "-");
  const filename = `flow-memory-royalties-${stamp}.ndjson`;
  const link = h("a", { href: URL.createObjectURL(result.blob), download: filename, class: "button secondary" }, "Save the file");
  target.querySelector(".response").append(
    h("div", { "data-testid": "earnings-export" }, kv([["File", code(filename)], ["Royalty days", units(Math.max(0, lines.length - 2))]]), h("div", { class: "actions" }, link)),
  );
  link.click();
}

export function init() {
  onSubmit("earnings-form", (_form, button) => loadReport(button));
  $("earnings-export").addEventListener("click", (event) => downloadExport(event.target));
}

/** Called when the Earnings section is shown with a key. */
export function refresh() {
  loadReport();
}
