// Routing preview (quote and route under a policy) and the disabled payment challenge preview.

import { decimalField, integerField, request } from "./api.js";
import {
  badge,
  code,
  formValues,
  h,
  kv,
  listField,
  onSubmit,
  s,
  show,
  table,
  time,
  units,
  value,
} from "./views.js";

const ROUTES = {
  quote: "/inference/quote",
  route: "/inference/route",
  paymentChallengePreview: "/inference/market/payment-challenge/preview",
};

const $ = (id) => document.getElementById(id);

function policyBody(v) {
  const policy = {
    allowed_models: listField(v.allowed_models),
    min_discount_bps: integerField(v.min_discount_bps || "0"),
    allow_fallback: v.allow_fallback,
    allow_external_providers: v.allow_external_providers,
    require_healthy_provider: v.require_healthy_provider,
  };
  if (v.max_unit_price) policy.max_unit_price = decimalField(v.max_unit_price);
  const body = {
    model: v.model,
    unit_type: v.unit_type,
    estimated_units: integerField(v.estimated_units),
    market_policy: policy,
  };
  if (v.agent_id) body.agent_id = v.agent_id;
  if (v.task_id) body.task_id = v.task_id;
  return body;
}

function quotesTable(quotes) {
  return table(
    [
      { label: "#", num: true, cell: (q) => q.rank },
      { label: "Provider", cell: (q) => h("div", {}, q.provider_name, h("div", { class: "muted small" }, code(q.provider_id))) },
      { label: "Unit price", num: true, cell: (q) => value(q.unit_price) },
      { label: "Est. cost", num: true, cell: (q) => value(q.estimated_cost) },
      { label: "Discount", num: true, cell: (q) => (q.discount_bps === null ? value(null) : `${q.discount_bps} bps`) },
      { label: "Reference", cell: (q) => (q.reference_source ? `${value(q.reference_unit_price)} (${q.reference_source})` : value(null)) },
      { label: "Available", num: true, cell: (q) => units(q.available_units) },
      { label: "Gate", cell: (q) => badge(q.route_gate) },
      { label: "Why", cell: (q) => h("span", { class: "small muted" }, q.score_explanation) },
    ],
    quotes,
    { empty: "No eligible quote under this policy." },
  );
}

function rejectionsView(data) {
  const rejected = data.rejected_routes || [];
  if (!rejected.length) return h("p", { class: "muted" }, "No route was rejected.");
  const left = data.rejected_count - rejected.length;
  return h(
    "div",
    {},
    h(
      "ul",
      { class: "list", "data-testid": "rejected-routes" },
      rejected.map((r) =>
        h(
          "li",
          { class: "rejection", "data-code": r.code },
          h(
            "div",
            { class: "line" },
            badge(r.code, "warn"),
            h("strong", {}, r.provider_name || r.provider_id),
            r.provider_id ? h("span", { class: "muted small" }, code(r.provider_id)) : null,
            r.ask_count ? h("span", { class: "muted small" }, `${r.ask_count} ask(s)`) : null,
          ),
          h("div", {}, r.message),
          h("div", { class: "next" }, h("strong", {}, "Next action: "), r.next_action),
        ),
      ),
    ),
    left > 0 ? h("p", { class: "muted small" }, `${left} more rejected (raise max_rejected_routes to list them).`) : null,
  );
}

function warningsView(warnings) {
  if (!warnings || !warnings.length) return null;
  return h("div", { class: "wide" }, h("h3", {}, "Warnings"), h("ul", {}, warnings.map((w) => h("li", {}, value(w)))));
}

function quoteView(data) {
  return h(
    "div",
    { class: "stack" },
    h(
      "div",
      { class: "wide" },
      kv([
        ["Market", `${data.model} · ${data.unit_type}`],
        ["Estimated units", units(data.estimated_units)],
        ["Eligible", units(data.eligible_count)],
        ["Rejected", units(data.rejected_count)],
      ]),
    ),
    h("div", { class: "wide" }, h("h3", {}, "Quotes"), quotesTable(data.quotes)),
    h("div", { class: "wide" }, h("h3", {}, "Rejected routes"), rejectionsView(data)),
    warningsView(data.warnings),
  );
}

function routeView(data) {
  const selected = data.decision === "selected";
  const route = data.route;
  return h(
    "div",
    { class: "stack" },
    h(
      "div",
      { class: `gate wide ${selected ? "eligible" : "blocked"}`, "data-testid": "route-decision" },
      h("span", {}, "Decision"),
      h("strong", {}, data.decision),
      route ? h("span", {}, "route ", code(route.route_id)) : null,
    ),
    route
      ? h(
          "div",
          { class: "wide" },
          kv([
            ["Provider", code(route.provider_id)],
            ["Unit price", value(route.unit_price)],
            ["Estimated cost", value(route.estimated_cost)],
            ["Discount", route.discount_bps === null ? value(null) : `${route.discount_bps} bps`],
            ["Estimated units", units(route.estimated_units)],
            ["Expires", time(route.expires_at)],
          ]),
        )
      : null,
    data.fallbacks && data.fallbacks.length
      ? h("div", { class: "wide" }, h("h3", {}, "Fallbacks in order"), quotesTable(data.fallbacks))
      : null,
    h("div", { class: "wide" }, h("h3", {}, "Rejected routes"), rejectionsView(data)),
    warningsView(data.warnings),
  );
}

function lockIcon() {
  return s(
    "svg",
    { viewBox: "0 0 24 24", fill: "none", stroke: "currentColor", "stroke-width": "2", "aria-hidden": "true" },
    s("rect", { x: "4", y: "11", width: "16", height: "10", rx: "2" }),
    s("path", { d: "M8 11V7a4 4 0 0 1 8 0v4" }),
  );
}

function paymentView(data) {
  const p = data.payment_challenge_preview;
  return h(
    "div",
    { class: "blocked-panel", "data-testid": "payment-blocked" },
    lockIcon(),
    h(
      "div",
      {},
      h("h3", {}, "Blocked: execution is disabled"),
      h("p", {}, "This is a preview recorded for audit. Nothing is signed, broadcast or paid."),
      kv([
        ["Status", badge(p.status, "bad")],
        ["Execution enabled", value(p.execution_enabled)],
        ["Requires signature", value(p.requires_signature)],
        ["Requires signing material", value(p.requires_sensitive_signing_material)],
        ["Broadcast allowed", value(p.broadcast_allowed)],
        ["Challenge id", code(p.challenge_id)],
        ["Order", code(p.order_id)],
        ["Reservation", code(p.reservation_id)],
        ["Audit recorded", time(p.audit_recorded_at)],
      ]),
      h("h3", {}, "Next safe actions"),
      h("ul", {}, p.next_safe_actions.map((action) => h("li", {}, action))),
    ),
  );
}

export function init() {
  onSubmit("policy-form", (form, button) => {
    const v = formValues(form);
    const action = button && button.value === "quote" ? "quote" : "route";
    const body = policyBody(v);
    show(
      $("routing-result"),
      () => request("POST", ROUTES[action], { body }),
      action === "quote" ? quoteView : routeView,
      { button },
    );
  });

  onSubmit("payment-form", (form, button) => {
    const v = formValues(form);
    const body = { acknowledge_disabled_execution: v.acknowledge_disabled_execution };
    if (v.order_id) body.order_id = v.order_id;
    if (v.reservation_id) body.reservation_id = v.reservation_id;
    if (v.estimated_total_cost) body.estimated_total_cost = decimalField(v.estimated_total_cost);
    show(
      $("payment-result"),
      () => request("POST", ROUTES.paymentChallengePreview, { body }),
      paymentView,
      { button },
    );
  });
}
