// The SDK-compatible proxy: the models served now, and one chat call with its flow_memory metadata.

import { request } from "./api.js";
import { badge, code, fillField, formValues, h, kv, onSubmit, remember, show, table, units, value } from "./views.js";

const ROUTES = {
  models: "/v1/models",
  chatCompletions: "/v1/chat/completions",
};

const $ = (id) => document.getElementById(id);

function modelsView(data) {
  return table(
    [
      { label: "Model", cell: (m) => code(m.id) },
      { label: "Eligible providers", num: true, cell: (m) => units(m.flow_memory?.eligible_providers) },
      { label: "Compatible APIs", cell: (m) => value(m.flow_memory?.compatible_apis) },
      { label: "Owned by", cell: (m) => m.owned_by },
    ],
    data.data,
    { empty: "No model is served by an eligible provider right now." },
  );
}

export async function loadModels(button) {
  const result = await show($("models-result"), () => request("GET", ROUTES.models), modelsView, { button });
  if (result.ok) {
    for (const m of result.data.data) remember("dl-proxy-models", m.id);
    const chatModel = $("chat-form").elements.model;
    if (!chatModel.value && result.data.data.length) fillField("chat-form", "model", result.data.data[0].id);
  }
  return result;
}

function metadataView(meta) {
  const usage = meta.usage || {};
  return h(
    "div",
    { class: "stack", "data-testid": "flow-memory-metadata" },
    h(
      "div",
      { class: "wide" },
      kv([
        ["Route", code(meta.route_id)],
        ["Provider", code(meta.provider_id)],
        ["Model", `${meta.model} · ${meta.unit_type}`],
        ["Unit price", value(meta.unit_price)],
        ["Reference price", value(meta.reference_unit_price)],
        ["Units", h("span", {}, units(usage.units), usage.estimated ? " (estimated)" : "")],
        ["Tokens in / out", h("span", {}, units(usage.input_tokens), " / ", units(usage.output_tokens))],
        ["Cost", value(meta.cost)],
        ["Reference cost", value(meta.reference_cost)],
        ["Savings", h("span", {}, value(meta.savings), meta.savings_bps === null || meta.savings_bps === undefined ? "" : ` (${meta.savings_bps} bps)`)],
        ["Usage record", code(meta.usage_id)],
      ]),
    ),
    h(
      "div",
      { class: "wide" },
      h("h3", {}, "Attempts"),
      table(
        [
          { label: "Provider", cell: (a) => code(a.provider_id) },
          { label: "Outcome", cell: (a) => badge(a.outcome) },
          { label: "Detail", cell: (a) => a.detail },
        ],
        meta.attempts || [],
        { empty: "No attempt recorded." },
      ),
    ),
    meta.warnings && meta.warnings.length
      ? h("div", { class: "wide" }, h("h3", {}, "Warnings"), h("ul", {}, meta.warnings.map((w) => h("li", {}, value(w)))))
      : null,
  );
}

// What a person can do about a failed call, by the error's code (the error itself is shown
// below the advice exactly as the API gave it).
const ADVICE = {
  upstream_unavailable:
    "No provider answered the call (the message lists each attempt). A provider whose model server is down or unreachable cannot answer: choose a model with a live provider from the list above (in the demo, flow-memory-local-chat), or start the provider's model server and its provider agent.",
  upstream_invalid_response:
    "The provider answered, but not with a valid answer. Try again, or choose another model.",
  model_not_found: "No provider lists this model. Load the models above and pick one (the hint names similar ones).",
  api_not_served: "This model is not served for chat. Pick a model whose compatible APIs include chat (see the list above).",
  no_valid_inference_route:
    "Providers list this model, but none can take the call now (not eligible, no capacity, or over the policy). Check the provider's health under Providers, or quote the model under Routing to see each rejection.",
  invalid_request: "Fix the fields the error names and send again.",
  invalid_json: "Fix the body and send again.",
  unknown_field: "Remove the field the error names and send again.",
  unauthenticated: "Paste a key under Credentials first (the demo prints a buyer key).",
  missing_scope: "This key lacks inference:proxy: use a key with it (the demo's buyer key has it).",
  database_unavailable: "Flow Memory's database is unavailable for a moment: send again shortly.",
};

export function adviceFor(result) {
  if (result.ok) return null;
  const code = result.data && result.data.error && result.data.error.code;
  const text =
    ADVICE[code] ||
    (result.status >= 500 ? "Flow Memory or a provider failed: the error below says which. Try again shortly." : null);
  return text ? h("p", { class: "advice", "data-testid": "sdk-advice" }, h("strong", {}, "What to do: "), text) : null;
}

function chatView(data) {
  const message = data.choices && data.choices[0] && data.choices[0].message;
  return h(
    "div",
    { class: "stack" },
    h("div", { class: "wide" }, h("h3", {}, "Answer"), h("div", { class: "answer", "data-testid": "chat-answer" }, message ? message.content : value(null))),
    h("div", { class: "wide" }, h("h3", {}, "flow_memory metadata"), data.flow_memory ? metadataView(data.flow_memory) : value(null)),
  );
}

export function init() {
  $("sdk-base").textContent = `${location.origin}/v1`;
  $("models-load").addEventListener("click", (event) => loadModels(event.currentTarget));
  onSubmit("chat-form", (form, button) => {
    const v = formValues(form);
    const body = {
      model: v.model,
      messages: [{ role: "user", content: v.message }],
      max_tokens: Number(v.max_tokens) || undefined,
    };
    show($("chat-result"), () => request("POST", ROUTES.chatCompletions, { body }), chatView, { button }).then((result) => {
      const advice = adviceFor(result);
      if (advice) $("chat-result").prepend(advice);
    });
  });
}

export function refresh() {
  loadModels();
}
