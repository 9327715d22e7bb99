// The dashboard's only door to Flow Memory: the HTTP API, with the key the person pasted.
// The key lives in sessionStorage (gone when the tab closes); nothing else is stored.

const KEY_ITEM = "flow-memory.api-key";
const SCOPES_ITEM = "flow-memory.scopes";

export const ALL_SCOPES = [
  "inference:read",
  "inference:sell",
  "inference:buy",
  "inference:plan",
  "inference:audit",
  "inference:admin",
  "inference:proxy",
  "inference:validate",
  "inference:publish",
];

export const SAFETY_FIELDS = [
  ["dry_run_only", true],
  ["funds_moved", false],
  ["broadcast_allowed", false],
  ["private_key_required", false],
  ["live_trading_enabled", false],
  ["legal_review_required", true],
  ["compliance_review_required", true],
];

export const session = {
  key() {
    return sessionStorage.getItem(KEY_ITEM) || "";
  },
  scopes() {
    const raw = sessionStorage.getItem(SCOPES_ITEM);
    return raw ? raw.split(",").filter(Boolean) : [];
  },
  save(key, scopes) {
    if (key) sessionStorage.setItem(KEY_ITEM, key);
    if (scopes.length) sessionStorage.setItem(SCOPES_ITEM, scopes.join(","));
    else sessionStorage.removeItem(SCOPES_ITEM);
  },
  forget() {
    sessionStorage.removeItem(KEY_ITEM);
    sessionStorage.removeItem(SCOPES_ITEM);
  },
};

// Money arrives as exact JSON numbers ("0.00000075"). Where the browser can, non-integer and
// very large numbers are kept as their exact source text, so nothing is rounded on the way
// to the screen or back into a request.
const EXACT = typeof JSON.rawJSON === "function" && typeof JSON.isRawJSON === "function";

export function parseJSON(text) {
  if (!EXACT) return JSON.parse(text);
  return JSON.parse(text, (_key, value, context) => {
    if (typeof value !== "number" || !context || typeof context.source !== "string") return value;
    if (Number.isSafeInteger(value) && !/[.eE]/.test(context.source)) return value;
    return JSON.rawJSON(context.source);
  });
}

export function isDecimal(value) {
  return EXACT && value !== null && typeof value === "object" && JSON.isRawJSON(value);
}

/** The exact text of a number from the API (or of any scalar). */
export function numberText(value) {
  if (isDecimal(value)) return value.rawJSON;
  return String(value);
}

/** An approximate Number, for chart geometry only. */
export function approx(value) {
  return Number(isDecimal(value) ? value.rawJSON : value);
}

const NUMBER_PATTERN = /^-?\d+(\.\d+)?([eE][+-]?\d+)?$/;

/** A typed decimal as an exact JSON number; anything else is sent as typed for the API to judge. */
export function decimalField(text) {
  const trimmed = String(text).trim();
  if (!NUMBER_PATTERN.test(trimmed)) return trimmed;
  return EXACT ? JSON.rawJSON(trimmed) : Number(trimmed);
}

/** A typed whole number as a JSON integer; anything else is sent as typed for the API to judge. */
export function integerField(text) {
  const trimmed = String(text).trim();
  if (!/^-?\d+$/.test(trimmed)) return trimmed;
  const value = Number(trimmed);
  if (Number.isSafeInteger(value)) return value;
  return EXACT ? JSON.rawJSON(trimmed) : value;
}

/** Fill a literal route template such as /inference/providers/{provider_id}/health. */
export function fillTemplate(template, params = {}) {
  return template.replace(/\{(\w+)\}/g, (_match, name) => {
    const value = params[name];
    if (value === undefined || value === null || value === "") {
      throw new Error(`Enter ${name} first.`);
    }
    return encodeURIComponent(value);
  });
}

function queryString(query) {
  const search = new URLSearchParams();
  for (const [name, value] of Object.entries(query || {})) {
    if (value !== undefined && value !== null && value !== "") search.set(name, String(value));
  }
  const text = search.toString();
  return text ? `?${text}` : "";
}

function authHeaders() {
  const headers = {};
  const key = session.key();
  if (key) headers.authorization = `Bearer ${key}`;
  const scopes = session.scopes();
  if (scopes.length) headers["x-flow-memory-scopes"] = scopes.join(",");
  return headers;
}

/**
 * One API call. Resolves to {method, template, path, status, ok, data, text, networkError};
 * it never throws for an HTTP error: the caller shows the API's own answer.
 */
export async function request(method, template, { params, query, body, headers, raw } = {}) {
  const path = fillTemplate(template, params) + queryString(query);
  const init = { method, headers: { accept: "application/json", ...authHeaders(), ...headers } };
  if (body !== undefined) {
    init.headers["content-type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  const result = { method, template, path, status: 0, ok: false, data: null, text: "" };
  let response;
  try {
    response = await fetch(path, init);
  } catch (error) {
    result.networkError = `Flow Memory could not be reached (${error.message}).`;
    return result;
  }
  result.status = response.status;
  result.ok = response.ok;
  result.contentType = response.headers.get("content-type") || "";
  if (raw && response.ok) {
    result.blob = await response.blob();
    return result;
  }
  result.text = await response.text();
  if (result.contentType.includes("json") && result.text) {
    try {
      result.data = parseJSON(result.text);
    } catch {
      result.data = null;
    }
  }
  return result;
}

/** The safety fields of an answer: at the top level, or inside the proxy's flow_memory object. */
export function safetyOf(data) {
  if (!data || typeof data !== "object") return null;
  if ("dry_run_only" in data) return data;
  if (data.flow_memory && typeof data.flow_memory === "object") return data.flow_memory;
  if (data.safety_fields && typeof data.safety_fields === "object") return data.safety_fields;
  return null;
}

// Sums of amounts, exact: each one's text as a whole number of 10^-scale, added as BigInt.
function scaled(text, scale) {
  const [whole, fraction = ""] = text.replace(/^-/, "").split(".");
  const digits = BigInt(whole + fraction.padEnd(scale, "0"));
  return text.startsWith("-") ? -digits : digits;
}

/** The exact sum of amounts from the API (exact numbers or their text), as decimal text. */
export function sumDecimals(values) {
  const texts = values.map((v) => numberText(v ?? 0)).map((t) => (/[eE]/.test(t) ? Number(t).toFixed(20) : t));
  const scale = Math.max(0, ...texts.map((t) => (t.split(".")[1] || "").length));
  const total = texts.reduce((sum, t) => sum + scaled(t, scale), 0n);
  const negative = total < 0n;
  const digits = (negative ? -total : total).toString().padStart(scale + 1, "0");
  const whole = digits.slice(0, digits.length - scale);
  const fraction = scale ? digits.slice(digits.length - scale).replace(/0+$/, "") : "";
  return `${negative ? "-" : ""}${whole}${fraction ? `.${fraction}` : ""}`;
}
