// The dashboard shell: the key panel, section navigation, and each section's first load.

import * as agents from "./agents.js";
import { ALL_SCOPES, session } from "./api.js";
import * as analytics from "./analytics.js";
import * as credentials from "./credentials.js";
import * as deployments from "./deployments.js";
import * as earnings from "./earnings.js";
import * as jobs from "./jobs.js";
import * as markets from "./markets.js";
import * as providers from "./providers.js";
import * as proxy from "./proxy.js";
import * as registry from "./registry.js";
import * as reputation from "./reputation.js";
import * as routing from "./routing.js";
import * as trading from "./trading.js";
import { emptyState, h, replace } from "./views.js";

const $ = (id) => document.getElementById(id);

const SECTIONS = {
  markets: markets.refresh,
  credentials: credentials.refresh,
  providers: providers.refresh,
  depth: trading.refreshDepth,
  orders: null,
  routing: null,
  payments: null,
  analytics: analytics.refresh,
  proxy: proxy.refresh,
  agents: agents.refresh,
  ledger: agents.refreshLedger,
  jobs: jobs.refresh,
  validators: reputation.refresh,
  registry: registry.refresh,
  deployments: deployments.refresh,
  earnings: earnings.refresh,
};

function keyState() {
  const key = session.key();
  const scopes = session.scopes();
  $("key-dot").classList.toggle("on", Boolean(key));
  $("key-label").textContent = key
    ? `Key …${key.slice(-4)}${scopes.length ? ` · ${scopes.length} scope${scopes.length > 1 ? "s" : ""}` : ""}`
    : "No API key";
  $("key-input").value = "";
  $("key-input").placeholder = key ? `fm_…${key.slice(-4)} (saved for this tab)` : "fm_…";
  for (const box of $("scope-checks").querySelectorAll("input")) box.checked = scopes.includes(box.value);
}

function togglePanel(open) {
  $("key-panel").hidden = !open;
  $("key-toggle").setAttribute("aria-expanded", String(open));
}

function current() {
  const name = location.hash.slice(1);
  return name in SECTIONS ? name : "markets";
}

function showSection() {
  const name = current();
  for (const id of Object.keys(SECTIONS)) $(id).hidden = id !== name;
  for (const link of document.querySelectorAll(".sidenav a")) {
    if (link.getAttribute("href") === `#${name}`) link.setAttribute("aria-current", "page");
    else link.removeAttribute("aria-current");
  }
  const refresh = SECTIONS[name];
  if (session.key() && refresh) refresh();
  if (!session.key()) {
    for (const result of $(name).querySelectorAll(".result")) {
      if (!result.childElementCount) {
        replace(result, emptyState("Paste a Flow Memory API key above to load this."));
        break;
      }
    }
  }
}

function init() {
  $("scope-checks").append(
    ...ALL_SCOPES.map((scope) =>
      h("label", { class: "check" }, h("input", { type: "checkbox", name: "scopes", value: scope }), scope),
    ),
  );
  $("key-form").addEventListener("submit", (event) => {
    event.preventDefault();
    const key = $("key-input").value.trim();
    const scopes = [...$("scope-checks").querySelectorAll("input:checked")].map((box) => box.value);
    session.save(key, scopes);
    keyState();
    if (session.key()) {
      togglePanel(false);
      for (const result of document.querySelectorAll(".result")) {
        if (result.querySelector(".state.empty")) result.replaceChildren();
      }
      showSection();
    }
  });
  $("key-forget").addEventListener("click", () => {
    session.forget();
    keyState();
    togglePanel(true);
    $("key-input").focus();
  });
  $("key-toggle").addEventListener("click", () => togglePanel($("key-panel").hidden));

  markets.init();
  credentials.init();
  providers.init();
  trading.init();
  routing.init();
  analytics.init();
  proxy.init();
  agents.init();
  jobs.init();
  reputation.init();
  registry.init();
  deployments.init();
  earnings.init();

  keyState();
  togglePanel(!session.key());
  window.addEventListener("hashchange", () => {
    showSection();
    $("main").focus({ preventScroll: true });
    window.scrollTo(0, 0);
  });
  showSection();
  document.body.dataset.ready = "true";
}

init();
