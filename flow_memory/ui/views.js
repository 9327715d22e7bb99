// Small DOM builders and the views every section shares: the response frame with its safety
// fields, the API error exactly as given, tables, key-value lists and the loading/empty states.

import { SAFETY_FIELDS, isDecimal, numberText, safetyOf } from "./api.js";

const SVG_NS = "http://www.w3.org/2000/svg";

function append(node, children) {
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    node.append(child instanceof Node ? child : String(child));
  }
  return node;
}

function setAttributes(node, attrs) {
  for (const [name, value] of Object.entries(attrs || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (name === "class") node.setAttribute("class", value);
    else if (name === "dataset") Object.assign(node.dataset, value);
    else if (name.startsWith("on") && typeof value === "function") {
      node.addEventListener(name.slice(2), value);
    } else node.setAttribute(name, value === true ? "" : String(value));
  }
}

/** h("td", {class: "num"}, "12") builds an element; children may be strings, nodes or arrays. */
export function h(tag, attrs, ...children) {
  const node = document.createElement(tag);
  setAttributes(node, attrs);
  return append(node, children);
}

export function s(tag, attrs, ...children) {
  const node = document.createElementNS(SVG_NS, tag);
  setAttributes(node, attrs);
  return append(node, children);
}

export function replace(target, ...children) {
  target.replaceChildren();
  append(target, children);
}

// Formatting. Numbers from the API are shown exactly as sent.

const NULL = () => h("span", { class: "null" }, "null");

export function value(v) {
  if (v === null || v === undefined) return NULL();
  if (isDecimal(v)) return v.rawJSON;
  if (typeof v === "number") return Number.isInteger(v) ? v.toLocaleString("en-US") : String(v);
  if (typeof v === "boolean") return String(v);
  if (Array.isArray(v)) return v.length ? v.map((item) => textOf(item)).join(", ") : "—";
  if (typeof v === "object") return h("code", {}, JSON.stringify(v));
  return String(v);
}

export function textOf(v) {
  if (v === null || v === undefined) return "null";
  if (isDecimal(v)) return v.rawJSON;
  if (typeof v === "object") return JSON.stringify(v);
  return String(v);
}

export function units(v) {
  if (v === null || v === undefined) return NULL();
  if (typeof v === "number") return v.toLocaleString("en-US");
  return numberText(v);
}

export function time(iso) {
  if (!iso) return NULL();
  const text = String(iso).replace("T", " ").replace(/\.\d+/, "").replace("Z", " UTC");
  return h("time", { datetime: iso, title: iso }, text);
}

export function code(text) {
  return text === null || text === undefined ? NULL() : h("code", {}, text);
}

const GOOD = new Set([
  "active",
  "eligible",
  "healthy",
  "filled",
  "current",
  "selected",
  "paired",
  "ready",
  "answered",
]);
const WARN = new Set([
  "pending",
  "pending_pairing",
  "stale",
  "partially_filled",
  "open",
  "rotated",
  "degraded",
  "draining",
  "busy",
]);
const BAD = new Set([
  "revoked",
  "blocked",
  "cancelled",
  "expired",
  "unhealthy",
  "no_valid_inference_route",
  "disabled_preview_only",
]);

export function badge(text, tone) {
  const label = textOf(text);
  const kind =
    tone || (GOOD.has(label) ? "good" : WARN.has(label) ? "warn" : BAD.has(label) ? "bad" : "");
  return h("span", { class: `badge ${kind}`.trim() }, label);
}

export function kv(pairs) {
  return h(
    "dl",
    { class: "kv" },
    pairs
      .filter(Boolean)
      .map(([label, content]) => h("div", {}, h("dt", {}, label), h("dd", {}, content))),
  );
}

/** columns: [{label, cell: row => node|string, num?: true}] */
export function table(columns, rows, { empty = "Nothing to show yet.", caption } = {}) {
  if (!rows || rows.length === 0) return emptyState(empty);
  return h(
    "div",
    { class: "table-wrap" },
    h(
      "table",
      {},
      caption ? h("caption", { class: "skip-link" }, caption) : null,
      h(
        "thead",
        {},
        h(
          "tr",
          {},
          columns.map((c) => h("th", { scope: "col", class: c.num ? "num" : null }, c.label)),
        ),
      ),
      h(
        "tbody",
        {},
        rows.map((row) =>
          h(
            "tr",
            {},
            columns.map((c) =>
              h("td", { class: c.num ? "num" : null, "data-label": c.label || null }, c.cell(row)),
            ),
          ),
        ),
      ),
    ),
  );
}

export function loadingState(label = "Loading…") {
  return h("div", { class: "state", role: "status" }, h("span", { class: "spinner" }), label);
}

export function emptyState(message) {
  return h("div", { class: "state empty" }, message);
}

export function tile(label, content, { sub, tone, testid } = {}) {
  return h(
    "div",
    { class: `tile ${tone || ""}`.trim(), "data-testid": testid },
    h("div", { class: "label" }, label),
    h("div", { class: "value" }, content),
    sub ? h("div", { class: "sub" }, sub) : null,
  );
}

/** The seven safety fields as a badge row; a value other than the required one is shown red. */
export function safetyRow(data) {
  const fields = safetyOf(data);
  if (!fields) return null;
  return h(
    "ul",
    { class: "safety", "aria-label": "Safety fields", "data-testid": "safety" },
    h("span", { class: "safety-label", "aria-hidden": "true" }, "Safety"),
    SAFETY_FIELDS.map(([name, required]) => {
      const present = name in fields;
      const actual = fields[name];
      const kind = !present ? "missing" : actual === required ? "" : "unsafe";
      const shown = present ? String(actual) : "missing";
      return h(
        "li",
        { class: kind || null, "data-field": name },
        kind ? `${name}: ${shown} (required: ${required})` : `${name}: ${shown}`,
      );
    }),
  );
}

/** An API error exactly as the API gave it: code, message, field and hint. */
export function errorBox(result) {
  if (result.clientError) {
    return h(
      "div",
      { class: "api-error", role: "alert" },
      h("div", { class: "api-error-title" }, "Not sent"),
      h("p", {}, result.clientError),
    );
  }
  if (result.networkError) {
    return h(
      "div",
      { class: "api-error", role: "alert" },
      h("div", { class: "api-error-title" }, "Network error"),
      h("p", {}, result.networkError),
    );
  }
  const error = result.data && result.data.error;
  if (!error) {
    return h(
      "div",
      { class: "api-error", role: "alert" },
      h("div", { class: "api-error-title" }, `HTTP ${result.status}`),
      h("pre", { class: "mono small" }, result.text || "(empty body)"),
    );
  }
  const row = (name) => [h("dt", {}, name), h("dd", { "data-error": name }, value(error[name]))];
  const problems = Array.isArray(error.problems) && error.problems.length > 1 ? error.problems : null;
  return h(
    "div",
    { class: "api-error", role: "alert", "data-testid": "api-error" },
    h("div", { class: "api-error-title" }, result.status >= 500 ? "The request failed" : "The API refused this request"),
    h("dl", {}, row("code"), row("message"), row("field"), row("hint")),
    problems
      ? h(
          "div",
          { "data-testid": "api-problems" },
          h("h3", {}, `Every problem (${problems.length})`),
          h("ul", {}, problems.map((p) => h("li", { "data-field": p.field || "" }, `${p.code}: ${p.message}`))),
        )
      : null,
  );
}

const STATUS_TEXT = {
  200: "OK",
  201: "Created",
  400: "Bad Request",
  401: "Unauthorized",
  403: "Forbidden",
  404: "Not Found",
  409: "Conflict",
  413: "Payload Too Large",
  422: "Unprocessable Content",
  502: "Bad Gateway",
  503: "Service Unavailable",
  504: "Gateway Timeout",
};

function rawJSON(result) {
  if (!result.data) return null;
  return h(
    "details",
    { class: "raw" },
    h("summary", {}, "Response JSON"),
    h("pre", {}, JSON.stringify(result.data, null, 2)),
  );
}

/** The frame around every answer: method, path, status, safety fields, then content or error. */
export function responseView(result, render) {
  const failed = !result.ok;
  const status = result.status
    ? `${result.status} ${STATUS_TEXT[result.status] || ""}`.trim()
    : result.clientError
      ? "not sent"
      : "no answer";
  let body;
  if (failed) body = errorBox(result);
  else {
    try {
      body = render ? render(result.data, result) : null;
    } catch (error) {
      body = h("div", { class: "api-error", role: "alert" }, `Could not display: ${error.message}`);
    }
  }
  return h(
    "div",
    {
      class: `response ${failed ? "failed" : "succeeded"}`,
      "data-status": result.status,
      "data-testid": "response",
    },
    h(
      "div",
      { class: "response-head" },
      result.method ? h("span", { class: "method" }, result.method) : null,
      result.path ? h("code", {}, result.path) : null,
      h("span", { class: `status-code ${failed ? "error" : ""}`.trim() }, status),
    ),
    safetyRow(result.data),
    body,
    rawJSON(result),
  );
}

/**
 * Show a call's loading state in target, then its answer. Returns the result so a caller can
 * chain (fill an id into the next form) only when the API said yes.
 */
export async function show(target, call, render, { button } = {}) {
  replace(target, loadingState());
  target.setAttribute("aria-busy", "true");
  if (button) button.disabled = true;
  let result;
  try {
    result = await call();
  } catch (error) {
    result = { method: "", path: "", status: 0, ok: false, clientError: error.message };
  } finally {
    target.removeAttribute("aria-busy");
    if (button) button.disabled = false;
  }
  replace(target, responseView(result, render));
  return result;
}

// Forms and the links between them.

/** A form's fields by name: text trimmed, checkboxes as booleans, repeated names as arrays. */
export function formValues(form) {
  const values = {};
  for (const element of form.elements) {
    if (!element.name || element.disabled) continue;
    if (element.type === "checkbox") {
      const group = form.querySelectorAll(`input[type=checkbox][name="${element.name}"]`);
      if (group.length > 1) {
        values[element.name] = values[element.name] || [];
        if (element.checked) values[element.name].push(element.value);
      } else values[element.name] = element.checked;
    } else if (element.type === "radio") {
      if (element.checked) values[element.name] = element.value;
    } else if (element.tagName !== "BUTTON" && element.tagName !== "FIELDSET") {
      values[element.name] = element.value.trim();
    }
  }
  return values;
}

/** Comma-separated text as a list of non-empty names. */
export function listField(text) {
  return String(text || "")
    .split(",")
    .map((item) => item.trim())
    .filter(Boolean);
}

/** Offer a value the API returned in a datalist, so later forms can pick it. */
export function remember(listId, value, label) {
  if (!value) return;
  const list = document.getElementById(listId);
  if (!list) return;
  for (const option of list.options) if (option.value === value) return;
  list.append(h("option", { value }, label || value));
}

/** Put a value the API just returned into another form's field. */
export function fillField(formId, name, value) {
  const form = document.getElementById(formId);
  const field = form && form.elements.namedItem(name);
  if (field && value !== undefined && value !== null) field.value = String(value);
}

/** Run handler on submit with the submitting button, never letting the browser navigate. */
export function onSubmit(formId, handler) {
  const form = document.getElementById(formId);
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    handler(form, event.submitter || form.querySelector("button[type=submit]"));
  });
  return form;
}
