// Credential references: create, list, rotate, revoke. The API never returns a secret value,
// and this page never asks for one.

import { request } from "./api.js";
import {
  badge,
  code,
  fillField,
  formValues,
  h,
  kv,
  listField,
  onSubmit,
  remember,
  show,
  table,
  time,
  value,
} from "./views.js";

const ROUTES = {
  credentialRefs: "/inference/credential-refs",
  credentialRefRotate: "/inference/credential-refs/{credential_ref_id}/rotate",
  credentialRefRevoke: "/inference/credential-refs/{credential_ref_id}/revoke",
};

const $ = (id) => document.getElementById(id);

function pick(ref, card) {
  fillField("rotate-form", "credential_ref_id", ref.credential_ref_id);
  fillField("revoke-form", "credential_ref_id", ref.credential_ref_id);
  $(card).scrollIntoView({ behavior: "smooth", block: "center" });
  $(card).querySelector("input[name=credential_ref_id]").focus({ preventScroll: true });
}

/**
 * A reference's state as provider health judges it: revoked; rotated (active, pointing at a new
 * secret version since rotated_at, so providers enrolled before then are stale until they
 * re-enroll); or active.
 */
function refState(ref) {
  if (ref.status === "revoked") {
    return h(
      "div",
      { "data-testid": "credref-state", "data-state": "revoked" },
      badge("revoked"),
      ref.provider_routes_disabled ? h("div", { class: "muted small" }, "routes disabled") : null,
    );
  }
  if (ref.rotated_at) {
    return h(
      "div",
      { "data-testid": "credref-state", "data-state": "rotated" },
      badge("rotated"),
      h("div", { class: "muted small" }, "active on the new pointer since ", time(ref.rotated_at)),
      h("div", { class: "muted small" }, "providers enrolled before then: re-enroll"),
    );
  }
  return h("div", { "data-testid": "credref-state", "data-state": "active" }, badge("active"));
}

function refView(ref) {
  return kv([
    ["Credential ref id", code(ref.credential_ref_id)],
    ["Reference", code(ref.credential_ref)],
    ["State", refState(ref)],
    ["Display name", ref.display_name],
    ["Owner", ref.owner_id],
    ["Workspace", ref.workspace_id],
    ["Allowed models", ref.allowed_models.length ? ref.allowed_models.join(", ") : "any"],
    ["Secret value", h("span", {}, "redacted: ", value(ref.secret_value_redacted))],
    ["Raw credentials accepted", value(ref.raw_credentials_accepted)],
    ["Provider routes disabled", value(ref.provider_routes_disabled)],
    ["Rotated", time(ref.rotated_at)],
    ["Updated", time(ref.updated_at)],
  ]);
}

function refsTable(refs) {
  return table(
    [
      { label: "Name", cell: (r) => h("div", {}, r.display_name, h("div", { class: "muted small" }, code(r.credential_ref_id))) },
      { label: "Reference", cell: (r) => code(r.credential_ref) },
      { label: "State", cell: (r) => refState(r) },
      { label: "Allowed models", cell: (r) => (r.allowed_models.length ? r.allowed_models.join(", ") : h("span", { class: "muted" }, "any")) },
      { label: "Owner", cell: (r) => r.owner_id },
      { label: "Updated", cell: (r) => time(r.updated_at) },
      {
        label: "",
        cell: (r) =>
          r.status === "revoked"
            ? h("span", { class: "muted small" }, r.revoke_reason || "")
            : h(
                "div",
                { class: "line nowrap" },
                h("button", { type: "button", class: "secondary small", onclick: () => pick(r, "rotate-card") }, "Rotate"),
                h("button", { type: "button", class: "danger small", onclick: () => pick(r, "revoke-card") }, "Revoke"),
              ),
      },
    ],
    refs,
    { empty: "No credential references yet. Create one above." },
  );
}

export async function loadRefs() {
  const form = $("credref-list-form");
  const result = await show(
    $("credref-list-result"),
    () => request("GET", ROUTES.credentialRefs, { query: { status: form.elements.status.value } }),
    (data) => refsTable(data.credential_refs),
    { button: form.querySelector("button") },
  );
  if (result.ok) {
    for (const ref of result.data.credential_refs) {
      if (ref.status !== "revoked") remember("dl-credrefs", ref.credential_ref_id, ref.display_name);
    }
  }
}

export function init() {
  onSubmit("credref-form", async (form, button) => {
    const v = formValues(form);
    const body = {
      credential_ref: v.credential_ref,
      display_name: v.display_name,
      workspace_id: v.workspace_id || undefined,
      allowed_models: listField(v.allowed_models),
    };
    const result = await show(
      $("credref-create-result"),
      () => request("POST", ROUTES.credentialRefs, { body }),
      (data) => refView(data.credential_ref),
      { button },
    );
    if (result.ok) {
      const ref = result.data.credential_ref;
      remember("dl-credrefs", ref.credential_ref_id, ref.display_name);
      fillField("enroll-form", "credential_ref_id", ref.credential_ref_id);
      loadRefs();
    }
  });
  onSubmit("credref-list-form", () => loadRefs());
  onSubmit("rotate-form", async (form, button) => {
    const v = formValues(form);
    const body = {
      rotation_reason: v.rotation_reason,
      new_credential_ref: v.new_credential_ref,
      operator_ticket: v.operator_ticket || null,
    };
    const result = await show(
      $("rotate-result"),
      () => request("PATCH", ROUTES.credentialRefRotate, { params: { credential_ref_id: v.credential_ref_id }, body }),
      (data) =>
        h(
          "div",
          { class: "stack" },
          h("div", { class: "wide" }, refView(data.credential_ref)),
          data.rotation
            ? h("div", { class: "wide" }, h("h3", {}, "Rotation record"), kv(Object.entries(data.rotation).map(([k, val]) => [k, value(val)])))
            : null,
        ),
      { button },
    );
    if (result.ok) loadRefs();
  });
  onSubmit("revoke-form", async (form, button) => {
    const v = formValues(form);
    const body = { revoke_reason: v.revoke_reason, disable_provider_routes: v.disable_provider_routes };
    const result = await show(
      $("revoke-result"),
      () => request("POST", ROUTES.credentialRefRevoke, { params: { credential_ref_id: v.credential_ref_id }, body }),
      (data) => refView(data.credential_ref),
      { button },
    );
    if (result.ok) loadRefs();
  });
}

export function refresh() {
  loadRefs();
}
