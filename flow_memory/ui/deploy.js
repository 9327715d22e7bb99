// Deploying: a solution, or an agent and a model that fits it, as a proxy route (dep/<slug>).
// The registry's pages fill this form (deployFrom); "Find compatible models" lists the models
// that fit the agent typed, each one a button that picks it.

import { decimalField, integerField, request } from "./api.js";
import { code, fillField, formValues, h, kv, onSubmit, show, table, value } from "./views.js";

const ROUTES = {
  deployments: "/inference/deployments",
  compatible: "/inference/registry/agents/{publisher_id}/{name}/compatible-models",
};

const $ = (id) => document.getElementById(id);

function splitSlug(slug) {
  const [publisher_id, name] = String(slug).split("/");
  return { publisher_id, name };
}

/** "temperature=0.1, stream=false, stop=END": numbers stay exact, true/false are booleans. */
function parametersField(text) {
  const parameters = {};
  for (const part of String(text || "").split(",")) {
    if (!part.trim()) continue;
    const [name, ...rest] = part.split("=");
    const raw = rest.join("=").trim();
    if (raw === "true" || raw === "false") parameters[name.trim()] = raw === "true";
    else parameters[name.trim()] = decimalField(raw);
  }
  return parameters;
}

function ref(slug, version) {
  return version ? { slug, version } : { slug };
}

function deployBody(v) {
  const body = {};
  if (v.name) body.name = v.name;
  if (v.source === "solution") body.solution = ref(v.solution, v.solution_version);
  else {
    body.agent = ref(v.agent, v.agent_version);
    body.model = ref(v.model, v.model_version);
  }
  const configuration = {};
  if (v.system_prompt) configuration.system_prompt = v.system_prompt;
  const parameters = parametersField(v.parameters);
  if (Object.keys(parameters).length) configuration.parameters = parameters;
  body.configuration = configuration;
  const requirements = {};
  if (v.min_context_window) requirements.min_context_window = integerField(v.min_context_window);
  if (v.concurrency) requirements.concurrency = integerField(v.concurrency);
  if (v.latency_ceiling_ms) requirements.latency_ceiling_ms = integerField(v.latency_ceiling_ms);
  body.requirements = requirements;
  const policy = { allow_fallback: v.allow_fallback };
  if (v.max_unit_price) policy.max_unit_price = decimalField(v.max_unit_price);
  if (v.min_discount_bps) policy.min_discount_bps = integerField(v.min_discount_bps);
  body.policy = policy;
  body.wait_for_capacity = v.wait_for_capacity;
  return body;
}

function showSource() {
  const source = formValues($("deploy-form")).source;
  for (const node of $("deploy-form").querySelectorAll("[data-source]")) {
    const hidden = node.dataset.source !== source;
    node.hidden = hidden;
    for (const input of node.querySelectorAll("input")) input.disabled = hidden;
  }
}

/** Fill the deploy form from the registry: a solution, or an agent (and a model) to deploy. */
export function deployFrom({ solution, agent, model }) {
  const form = $("deploy-form");
  fillField("deploy-form", "source", solution ? "solution" : "agent");
  if (solution) {
    fillField("deploy-form", "solution", solution.slug);
    fillField("deploy-form", "solution_version", solution.version || "");
  }
  if (agent) {
    fillField("deploy-form", "agent", agent.slug);
    fillField("deploy-form", "agent_version", agent.version || "");
  }
  if (model) {
    fillField("deploy-form", "model", model.slug);
    fillField("deploy-form", "model_version", model.version || "");
  }
  showSource();
  location.hash = "#deployments";
  form.scrollIntoView({ block: "start" });
}

function compatibleView(data) {
  return h(
    "div",
    { "data-testid": "deploy-compatible" },
    h("h3", {}, `Models that fit ${data.subject.slug}@${data.subject.version}`),
    table(
      [
        { label: "Model", cell: (c) => code(`${c.slug}@${c.version}`) },
        { label: "Name", cell: (c) => c.display_name },
        {
          label: "",
          cell: (c) =>
            h("button", { type: "button", class: "secondary", "data-model": c.slug, onclick: () => deployFrom({ model: c }) }, "Use this model"),
        },
      ],
      data.compatible,
      { empty: "No model in the registry fits this agent yet." },
    ),
  );
}

function findCompatible(button) {
  const v = formValues($("deploy-form"));
  return show(
    $("deploy-compatible-result"),
    () => request("GET", ROUTES.compatible, { params: splitSlug(v.agent), query: { version: v.agent_version } }),
    compatibleView,
    { button },
  );
}

function deployedView(data) {
  const d = data.deployment;
  const c = data.capacity;
  return kv([
    ["Deployed", code(d.slug)],
    ["Call it as", code(d.model)],
    ["Serving now", c ? value(c.serving_now) : "—"],
    c && c.reasons.length ? ["Why not", c.reasons.join("; ")] : null,
  ]);
}

/** Wire the deploy form; onDeployed(deployment) runs after the API answers 201. */
export function initDeployForm(onDeployed) {
  $("deploy-form").addEventListener("change", (event) => {
    if (event.target.name === "source") showSource();
  });
  showSource();
  $("deploy-compatible").addEventListener("click", (event) => findCompatible(event.target));
  onSubmit("deploy-form", async (form, button) => {
    const body = deployBody(formValues(form));
    const result = await show($("deploy-result"), () => request("POST", ROUTES.deployments, { body }), deployedView, { button });
    if (result.ok) onDeployed(result.data.deployment);
  });
}
