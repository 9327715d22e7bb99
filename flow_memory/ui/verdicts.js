// A job's judging: the verdict form (the requester, or a validator drawn for the job), the
// winner's dispute form, and the verdicts and disputes the job has. The table shows the judging
// events on the job's timeline (which name no judge) and the verdicts and disputes the API
// answered to this page, each saying which; "Show the validation" reads the whole of it (GET
// /inference/jobs/{job_id}/validation: every verdict with its reason, the decision, the
// dispute and the fees paid), for those who may read it.

import { decimalField, request } from "./api.js";
import { badge, code, formValues, h, kv, show, table, textOf, time, units, value } from "./views.js";

const ROUTES = {
  jobVerdicts: "/inference/jobs/{job_id}/verdicts",
  jobDisputes: "/inference/jobs/{job_id}/disputes",
  jobValidation: "/inference/jobs/{job_id}/validation",
};

const TONES = {
  accept: "good",
  accepted: "good",
  won: "good",
  overturned: "good",
  answered: "good",
  reject: "bad",
  rejected: "bad",
  rejected_final: "bad",
  lost: "bad",
  upheld: "bad",
  missed: "bad",
  open: "warn",
  pending: "warn",
  disputed: "warn",
};

/**
 * Whether a job event is part of its judging: a verdict, a dispute, a validation, a rejection,
 * or the completion a decision (accepted, or a dispute overturned) led to.
 */
export function isJudgingEvent(event) {
  if (event.kind === "job.completed") return Boolean(event.payload && event.payload.decision);
  return /verdict|disput|validat|judg|reject/.test(event.kind);
}

// The verdicts and disputes the API answered to this page, per job.
const answered = new Map();

function answersOf(jobId) {
  if (!answered.has(jobId)) answered.set(jobId, []);
  return answered.get(jobId);
}

// Judging events name no judge and carry no reason (the validation shows them): "By" is the
// judge's role, and a decision is the verdict's or the rejection's.
const EVENT_DECISIONS = { "job.rejected": "rejected" };

function eventRow(event) {
  const p = event.payload || {};
  return {
    seen: "job event",
    kind: event.kind,
    at: event.created_at,
    by: p.judge_role ?? null,
    decision: p.decision ?? EVENT_DECISIONS[event.kind] ?? null,
    score: p.score ?? null,
    round: p.round ?? null,
    reason: null,
  };
}

function verdictRow(verdict) {
  return {
    seen: "answer to this page",
    kind: `verdict (${verdict.judge_role})`,
    at: verdict.created_at,
    by: verdict.judge_id,
    decision: verdict.decision,
    score: verdict.score,
    round: verdict.round,
    reason: verdict.reason,
  };
}

function disputeRow(dispute, validation) {
  return {
    seen: "answer to this page",
    kind: "dispute",
    at: dispute.opened_at,
    by: dispute.winner_id,
    decision: dispute.status,
    score: null,
    round: validation.round,
    reason: dispute.reason,
  };
}

function judgingTable(rows) {
  return h(
    "div",
    { "data-testid": "job-judging" },
    table(
      [
        { label: "When", cell: (r) => time(r.at) },
        { label: "Kind", cell: (r) => badge(r.kind) },
        { label: "By", cell: (r) => (r.by === null ? "—" : code(r.by)) },
        { label: "Decision", cell: (r) => (r.decision === null ? "—" : badge(r.decision, TONES[textOf(r.decision)])) },
        { label: "Score", num: true, cell: (r) => value(r.score) },
        { label: "Round", num: true, cell: (r) => value(r.round) },
        { label: "Reason", cell: (r) => r.reason ?? "—" },
        { label: "Seen in", cell: (r) => r.seen },
      ],
      rows,
      { empty: "No verdict or dispute yet." },
    ),
  );
}

/** A validation as the verdict and dispute routes answer it, with its drawn validators. */
function validationView(validation) {
  return h(
    "div",
    { class: "stack", "data-testid": "job-validation" },
    h(
      "div",
      { class: "wide" },
      kv([
        ["Mode", validation.mode],
        ["Status", h("span", { "data-testid": "validation-status" }, badge(validation.status, TONES[validation.status]))],
        ["Round", h("span", {}, units(validation.round), validation.round ? " (a dispute)" : " (the result)")],
        ["Score", h("span", { "data-testid": "validation-score" }, value(validation.score))],
        ["Due", time(validation.due_at)],
        ["Decided", time(validation.decided_at)],
      ]),
    ),
    h(
      "div",
      { class: "wide" },
      table(
        [
          { label: "Validator drawn", cell: (d) => code(d.validator_id) },
          { label: "Round", num: true, cell: (d) => units(d.round) },
          { label: "Status", cell: (d) => badge(d.status, TONES[d.status]) },
        ],
        validation.drawn,
        { empty: "No validator drawn: the requester judges." },
      ),
    ),
  );
}

/** The whole validation (GET): the view above, its verdicts with reasons and its fees. */
function validationDetail(validation) {
  return h(
    "div",
    { class: "stack", "data-testid": "job-validation-detail" },
    validationView(validation),
    h(
      "div",
      { class: "wide" },
      kv([
        ["Decision", validation.decision ? badge(validation.decision.status, TONES[validation.decision.status]) : "—"],
        ["Dispute", validation.dispute ? badge(validation.dispute.status, TONES[validation.dispute.status]) : "none"],
      ]),
    ),
    judgingTable(validation.verdicts.map(verdictRow).map((r) => ({ ...r, seen: "the validation" }))),
    h(
      "div",
      { class: "wide" },
      table(
        [
          { label: "Fee to", cell: (f) => code(f.payee_id) },
          { label: "Amount", num: true, cell: (f) => value(f.amount) },
          { label: "Round", num: true, cell: (f) => units(f.round) },
          { label: "Paid by", cell: (f) => f.paid_by },
        ],
        validation.fees,
        { empty: validation.settled ? "No fee: no validator answered." : "Fees are paid when the validation ends." },
      ),
    ),
  );
}

function validationButton(job, target) {
  const button = h("button", { type: "button", class: "secondary", "data-testid": "show-validation" }, "Show the validation");
  button.addEventListener("click", () =>
    show(
      target,
      () => request("GET", ROUTES.jobValidation, { params: { job_id: job.job_id } }),
      (data) => validationDetail(data.validation),
      { button },
    ),
  );
  return h("div", { class: "actions" }, button);
}

function field(label, control) {
  return h("label", { class: "field" }, h("span", {}, label), control);
}

function verdictForm(job, target, onAnswer) {
  const form = h(
    "form",
    { class: "fields", "data-testid": "verdict-form" },
    field("Judge id (optional)", h("input", { type: "text", name: "judge_id", list: "dl-agents", placeholder: "your key's owner" })),
    field("Decision", h("select", { name: "decision" }, h("option", {}, "accept"), h("option", {}, "reject"))),
    field("Score (0 to 1)", h("input", { type: "text", inputmode: "decimal", name: "score", required: true, placeholder: "0.9" })),
    h("label", { class: "field wide" }, h("span", {}, "Reason"), h("input", { type: "text", name: "reason", required: true, placeholder: "Checked against the request" })),
    h("div", { class: "actions" }, h("button", { type: "submit" }, "Record verdict")),
  );
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const v = formValues(form);
    const body = { decision: v.decision, score: decimalField(v.score), reason: v.reason };
    if (v.judge_id) body.judge_id = v.judge_id;
    const result = await show(
      target,
      () => request("POST", ROUTES.jobVerdicts, { params: { job_id: job.job_id }, body }),
      (data) => h("div", { class: "stack" }, h("div", { class: "wide" }, kv([["Verdict", code(data.verdict.verdict_id)], ["Decision", badge(data.verdict.decision, TONES[data.verdict.decision])]])), validationView(data.validation)),
      { button: event.submitter },
    );
    if (!result.ok) return;
    answersOf(job.job_id).push(verdictRow(result.data.verdict));
    onAnswer();
  });
  return form;
}

function disputeForm(job, target, onAnswer) {
  const form = h(
    "form",
    { class: "fields", "data-testid": "dispute-form" },
    h("label", { class: "field wide" }, h("span", {}, "Dispute reason"), h("input", { type: "text", name: "reason", required: true, placeholder: "The answer meets the request" })),
    h("div", { class: "actions" }, h("button", { type: "submit", class: "secondary" }, "Dispute the rejection")),
  );
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const result = await show(
      target,
      () => request("POST", ROUTES.jobDisputes, { params: { job_id: job.job_id }, body: { reason: formValues(form).reason } }),
      (data) => h("div", { class: "stack" }, h("div", { class: "wide" }, kv([["Dispute", badge(data.dispute.status, TONES[data.dispute.status])], ["Opened", time(data.dispute.opened_at)]])), validationView(data.validation)),
      { button: event.submitter },
    );
    if (!result.ok) return;
    answersOf(job.job_id).push(disputeRow(result.data.dispute, result.data.validation));
    onAnswer();
  });
  return form;
}

/**
 * The judging of an awarded job: its verdicts and disputes, and the forms to add one. Answers
 * go to target; onAnswer shows the job again.
 */
export function judgingView(job, target, onAnswer) {
  if (!job.award) return null;
  const rows = [...job.events.filter(isJudgingEvent).map(eventRow), ...answersOf(job.job_id)].sort((a, b) =>
    String(a.at) < String(b.at) ? -1 : String(a.at) > String(b.at) ? 1 : 0,
  );
  return h(
    "div",
    { class: "wide", "data-testid": "job-judging-panel" },
    h("h3", {}, "Verdicts and disputes"),
    h(
      "p",
      { class: "hint" },
      `Validation: ${job.validation.mode}. The requester judges in requester mode, validators drawn for the job otherwise (a key with inference:validate); a requester silent until the review window ends accepts; the winner may dispute a rejection within the dispute window. The API refuses anyone else, and any verdict before there is a result.`,
    ),
    judgingTable(rows),
    validationButton(job, target),
    verdictForm(job, target, onAnswer),
    disputeForm(job, target, onAnswer),
  );
}
