// The job board: post a whole inference job, the jobs listed (newest first, cursor-paged), and
// one job with its terms, escrow and award, the bids the caller may see (every bid with its
// reason once awarded), its timeline, the requester's early award and cancel while it is open,
// and its archived result; once awarded, the verdict and dispute forms and the verdicts and
// disputes the job has. Outputs and prompts are text, never markup.

import { decimalField, integerField, numberText, request } from "./api.js";
import { refreshStakes } from "./reputation.js";
import { isJudgingEvent, judgingView } from "./verdicts.js";
import {
  badge,
  code,
  emptyState,
  fillField,
  formValues,
  h,
  kv,
  onSubmit,
  remember,
  replace,
  responseView,
  show,
  table,
  textOf,
  time,
  units,
  value,
} from "./views.js";

const ROUTES = {
  jobs: "/inference/jobs",
  job: "/inference/jobs/{job_id}",
  jobAward: "/inference/jobs/{job_id}/award",
  jobCancel: "/inference/jobs/{job_id}/cancel",
  jobResultArchive: "/inference/results/{result_hash}",
};

const JOB_TONES = {
  open: "warn",
  awarded: "warn",
  submitted: "warn",
  completed: "good",
  rejected: "bad",
  cancelled: "bad",
  expired_unawarded: "bad",
  expired_no_show: "bad",
};
const BID_TONES = { live: "warn", won: "good", lost: "bad", no_show: "bad" };

const $ = (id) => document.getElementById(id);

/** Credits exactly as the API sent them: no grouping, no rounding. */
function money(amount) {
  return amount === null || amount === undefined ? value(amount) : numberText(amount);
}

function jobStatus(status) {
  return badge(status, JOB_TONES[status]);
}

// Posting.

function jobBody(form) {
  const v = formValues(form);
  const body = {
    request: {
      model_hint: v.model_hint,
      // The prompt goes as typed: its spaces and line breaks are part of the job.
      prompt: form.elements.prompt.value,
      max_tokens: integerField(v.max_tokens),
      quality_threshold: v.quality_threshold,
    },
    economics: { max_price: decimalField(v.max_price), payment_mode: v.payment_mode },
    bid_window_seconds: integerField(v.bid_window_seconds),
    deadline_seconds: integerField(v.deadline_seconds),
    visibility: v.visibility,
    reaward_on_no_show: v.reaward_on_no_show,
  };
  if (v.requester_id) body.requester_id = v.requester_id;
  return body;
}

function postedView(job) {
  return kv([
    ["Job", code(job.job_id)],
    ["Status", jobStatus(job.status)],
    ["Escrow held", money(job.economics.escrow)],
    ["Bids close", time(job.bids_close_at)],
  ]);
}

// Jobs listed.

const list = { cursor: null, rows: [] };

function jobsTable(jobs) {
  return table(
    [
      {
        label: "Job",
        cell: (j) =>
          h("button", { type: "button", class: "link", title: "Show this job", "data-job": j.job_id, onclick: () => openJob(j.job_id) }, j.job_id),
      },
      { label: "Status", cell: (j) => jobStatus(j.status) },
      { label: "Model hint", cell: (j) => code(j.request.model_hint) },
      { label: "Max price", num: true, cell: (j) => money(j.economics.max_price) },
      { label: "Mode", cell: (j) => j.economics.payment_mode },
      { label: "Visibility", cell: (j) => j.visibility },
      { label: "Bids", num: true, cell: (j) => units(j.bid_count) },
      { label: "Bids close", cell: (j) => time(j.bids_close_at) },
      { label: "Requester", cell: (j) => code(j.requester_id) },
      { label: "Posted", cell: (j) => time(j.created_at) },
    ],
    jobs,
    { empty: "No job matches. Post one above, or choose another status." },
  );
}

async function loadJobs(append) {
  const target = $("jobs-list-result");
  const more = $("jobs-more");
  const v = formValues($("jobs-list-form"));
  const query = { status: v.status, model_hint: v.model_hint, limit: v.limit, cursor: append ? list.cursor : "" };
  const call = () => request("GET", ROUTES.jobs, { query });
  const result = append ? await call() : await show(target, call, null, { button: more });
  if (!result.ok) {
    replace(target, responseView(result));
    more.hidden = true;
    return;
  }
  if (!append) list.rows = [];
  list.rows.push(...result.data.jobs);
  for (const j of result.data.jobs) remember("dl-jobs", j.job_id, `${j.job_id} · ${j.status}`);
  list.cursor = result.data.next_cursor;
  more.hidden = !list.cursor;
  replace(target, responseView(result, () => jobsTable(list.rows)));
}

// One job.

function requestView(job) {
  const r = job.request;
  if (r.prompt !== null && r.prompt !== undefined) {
    return h("div", { class: "answer", "data-testid": "job-prompt" }, r.prompt);
  }
  if (Array.isArray(r.messages)) {
    return h(
      "div",
      { class: "answer", "data-testid": "job-prompt" },
      r.messages.map((m) => h("div", {}, h("strong", {}, `${m.role}: `), m.content)),
    );
  }
  return h(
    "p",
    { class: "hint", "data-testid": "job-sealed" },
    "Sealed: the prompt is shown to no one here. Once the job is awarded its winner reads it at ",
    code(`GET /inference/jobs/${job.job_id}/assignment`),
    ".",
  );
}

function fieldsView(job) {
  const r = job.request;
  const e = job.economics;
  const a = job.award;
  return kv([
    ["Job", code(job.job_id)],
    ["Status", h("span", { "data-testid": "job-status" }, jobStatus(job.status))],
    ["Requester", code(job.requester_id)],
    ["Visibility", job.visibility],
    ["Model hint", code(r.model_hint)],
    ["Max tokens", units(r.max_tokens)],
    ["Quality", r.quality_threshold],
    ["Estimated tokens", h("span", {}, units(r.size.estimated_tokens), ` (${textOf(r.size.input_characters)} input characters)`)],
    ["Max price", h("span", { "data-testid": "job-max-price" }, money(e.max_price))],
    ["Currency", e.currency],
    ["Payment mode", e.payment_mode],
    ["Escrow", h("span", { "data-testid": "job-escrow" }, money(e.escrow))],
    ["Paid", h("span", { "data-testid": "job-paid" }, money(e.paid))],
    ["Validation", `${job.validation.mode} · ${textOf(job.validation.validators)} validators · fee ${numberText(job.validation.validator_fee)}`],
    ["Min reputation", h("span", { "data-testid": "job-min-reputation" }, value(job.min_reputation))],
    ["Bid window (s)", units(job.bid_window_seconds)],
    ["Deadline after award (s)", units(job.deadline_seconds)],
    ["Bids close", time(job.bids_close_at)],
    ["Expires", time(job.expires_at)],
    ["Re-award on no-show", value(job.reaward_on_no_show)],
    ["Bids (not withdrawn)", units(job.bid_count)],
    ["Award", a ? h("span", { "data-testid": "job-award" }, code(a.bidder_id), " at ", money(a.price), " · bid ", code(a.bid_id)) : "none yet"],
    a ? ["Award provider", h("span", {}, code(a.provider_id), " · ", code(a.model))] : null,
    a ? ["Awarded", time(a.awarded_at)] : null,
    a ? ["Result due", time(a.result_due_at)] : null,
    a ? ["Awards made", units(a.award_count)] : null,
    ["Result hash", code(job.result_hash)],
    job.cancel_reason ? ["Cancel reason", job.cancel_reason] : null,
    ["Posted", time(job.created_at)],
    ["Ended", time(job.ended_at)],
  ]);
}

function bidsTable(job) {
  const open = job.status === "open";
  const columns = [
    { label: "Bidder", cell: (b) => code(b.bidder_id) },
    { label: "Provider", cell: (b) => code(b.provider_id) },
    { label: "Model", cell: (b) => code(b.model) },
    { label: "Price", num: true, cell: (b) => money(b.price) },
    { label: "Est. time (s)", num: true, cell: (b) => units(b.estimated_time_s) },
    { label: "Status", cell: (b) => badge(b.status, BID_TONES[b.status]) },
    { label: "Reason", cell: (b) => (b.reason ? badge(b.reason) : "—") },
    { label: "Score", num: true, cell: (b) => money(b.score) },
    { label: "Revision", num: true, cell: (b) => units(b.revision) },
    { label: "Placed", cell: (b) => time(b.submitted_at) },
  ];
  if (open) {
    columns.push({
      label: "",
      cell: (b) =>
        b.status === "live"
          ? h(
              "button",
              { type: "button", class: "secondary small", "data-bid": b.bid_id, onclick: (event) => act(ROUTES.jobAward, job.job_id, { bid_id: b.bid_id }, event.currentTarget) },
              "Award this bid",
            )
          : "—",
    });
  }
  const empty = open
    ? "No bids yet. Bidders bid until the window closes; press Show job again to see new ones."
    : "No bids were placed on this job.";
  return h("div", { "data-testid": "job-bids" }, table(columns, job.bids, { empty }));
}

function eventDetails(payload) {
  const shown = Object.entries(payload || {}).filter(([name]) => name !== "job_id" && name !== "status");
  if (!shown.length) return "—";
  return shown.map(([name, item]) => `${name}: ${textOf(item)}`).join(" · ");
}

function timelineTable(events) {
  return h(
    "div",
    { "data-testid": "job-timeline" },
    table(
      [
        { label: "When", cell: (e) => time(e.created_at) },
        { label: "Event", cell: (e) => badge(e.kind, isJudgingEvent(e) && e.kind !== "job.completed" ? "warn" : undefined) },
        { label: "Status after", cell: (e) => (e.payload && e.payload.status ? jobStatus(e.payload.status) : "—") },
        { label: "Details", cell: (e) => eventDetails(e.payload) },
        { label: "Event id", num: true, cell: (e) => textOf(e.event_id) },
      ],
      events,
      { empty: "No events yet." },
    ),
  );
}

function actionsView(job) {
  if (job.status !== "open") return null;
  const reason = h("input", { type: "text", name: "cancel_reason", placeholder: "optional", "aria-label": "Cancel reason" });
  return h(
    "div",
    { class: "wide", "data-testid": "job-actions" },
    h("h3", {}, "While it is open"),
    h("p", { class: "hint" }, "For the job's requester: award now (the best score, or a bid picked in the table) or cancel and release the escrow. The API refuses anyone else."),
    h(
      "div",
      { class: "inline-form" },
      h("button", { type: "button", onclick: (event) => act(ROUTES.jobAward, job.job_id, undefined, event.currentTarget) }, "Award best score now"),
      h("label", { class: "field" }, h("span", {}, "Cancel reason"), reason),
      h(
        "button",
        { type: "button", class: "danger", onclick: (event) => act(ROUTES.jobCancel, job.job_id, reason.value.trim() ? { reason: reason.value.trim() } : undefined, event.currentTarget) },
        "Cancel job",
      ),
    ),
  );
}

function jobView(job) {
  const sealedBids = job.status === "open" && !job.award;
  return h(
    "div",
    { class: "stack", "data-testid": "job" },
    h("div", { class: "wide" }, fieldsView(job)),
    h("div", { class: "wide" }, h("h3", {}, "Request"), requestView(job)),
    actionsView(job),
    h(
      "div",
      { class: "wide" },
      h("h3", {}, "Bids"),
      sealedBids
        ? h("p", { class: "hint" }, "Bids are sealed until the award: a bidder sees only its own bid, the requester every bid. Reasons appear once the job is awarded.")
        : null,
      bidsTable(job),
    ),
    h("div", { class: "wide" }, h("h3", {}, "Timeline, oldest first"), timelineTable(job.events)),
    judgingView(job, $("job-action-result"), () => showJob(job.job_id)),
  );
}

const CHECK_NAMES = {
  model_awarded: "Model is the one awarded",
  completion_tokens_plausible: "Completion tokens plausible for the output",
  prompt_tokens_plausible: "Prompt tokens plausible for the request",
  on_time: "Arrived before the deadline",
};

function checkDetail(name, check) {
  if (name === "model_awarded") return `awarded ${check.awarded}, claimed ${check.claimed}`;
  if (name === "on_time") return `arrived ${textOf(check.arrived_at)}, due ${textOf(check.result_due_at)}`;
  return `reported ${textOf(check.reported)}, plausible ${textOf(check.plausible_from)} to ${textOf(check.plausible_to)}`;
}

function checksView(checks) {
  if (!checks) return null;
  const rows = Object.entries(CHECK_NAMES).map(([name, label]) => ({ name, label, check: checks[name] }));
  return h(
    "div",
    { class: "wide", "data-testid": "job-result-checks" },
    h("h3", {}, "Automatic checks ", badge(checks.passed ? "all passed" : "failed", checks.passed ? "good" : "bad")),
    h("p", { class: "hint" }, "Counted by Flow Memory from the archived result, not taken from the bidder: shown to whoever judges it."),
    table(
      [
        { label: "Check", cell: (r) => r.label },
        { label: "Result", cell: (r) => badge(r.check.passed ? "passed" : "failed", r.check.passed ? "good" : "bad") },
        { label: "Detail", cell: (r) => checkDetail(r.name, r.check) },
      ],
      rows,
    ),
  );
}

function resultView(result) {
  const usage = Object.entries(result.usage || {}).map(([name, n]) => `${name} ${textOf(n)}`);
  const timings = Object.entries(result.timings || {}).map(([name, s]) => `${name} ${numberText(s)}`);
  return h(
    "div",
    { class: "stack", "data-testid": "job-result" },
    h("div", { class: "wide" }, h("h3", {}, "Output"), h("div", { class: "answer", "data-testid": "job-output" }, result.output)),
    h(
      "div",
      { class: "wide" },
      kv([
        ["Result hash", code(result.result_hash)],
        ["Encoding", result.encoding],
        ["Model", code(result.model)],
        ["Bidder", code(result.bidder_id)],
        ["Bid", code(result.bid_id)],
        ["Usage", usage.length ? usage.join(" · ") : "—"],
        ["Timings (s)", timings.length ? timings.join(" · ") : "—"],
        ["Size (bytes)", units(result.size_bytes)],
        ["Archived", time(result.created_at)],
      ]),
    ),
    checksView(result.checks),
  );
}

function noResult(job) {
  if (job.status === "open") {
    return "No result yet: the job is open for bids. Once it is awarded, its winner uploads the result here.";
  }
  if (job.status === "awarded" && job.award) {
    return `No result yet: the winner uploads it by ${textOf(job.award.result_due_at)}. Press Show job again to check.`;
  }
  return "This job ended without a result.";
}

async function showJob(jobId, button) {
  const output = $("job-output-result");
  const shown = await show(
    $("job-result"),
    () => request("GET", ROUTES.job, { params: { job_id: jobId } }),
    (data) => jobView(data.job),
    { button },
  );
  if (!shown.ok) {
    output.replaceChildren();
    return;
  }
  const job = shown.data.job;
  remember("dl-jobs", job.job_id, `${job.job_id} · ${job.status}`);
  if (!job.result_hash) {
    replace(output, emptyState(noResult(job)));
    return;
  }
  show(
    output,
    () => request("GET", ROUTES.jobResultArchive, { params: { result_hash: job.result_hash } }),
    (data) => resultView(data.result),
  );
}

/** Award or cancel; when the API says yes the job and the list are shown again. */
async function act(template, jobId, body, button) {
  const result = await show(
    $("job-action-result"),
    () => request("POST", template, { params: { job_id: jobId }, body }),
    (data) => kv([["Status", jobStatus(data.job.status)], ["Award", data.job.award ? code(data.job.award.bid_id) : "none"]]),
    { button },
  );
  if (!result.ok) return;
  showJob(jobId);
  loadJobs(false);
}

function openJob(jobId) {
  fillField("job-form", "job_id", jobId);
  $("job-form").requestSubmit();
  $("job-card").scrollIntoView({ block: "start" });
}

export function init() {
  onSubmit("job-post-form", async (form, button) => {
    const result = await show(
      $("job-post-result"),
      () => request("POST", ROUTES.jobs, { body: jobBody(form) }),
      (data) => postedView(data.job),
      { button },
    );
    if (!result.ok) return;
    const job = result.data.job;
    remember("dl-jobs", job.job_id, `${job.job_id} · ${job.status}`);
    fillField("job-form", "job_id", job.job_id);
    loadJobs(false);
  });
  onSubmit("jobs-list-form", () => loadJobs(false));
  $("jobs-more").addEventListener("click", () => loadJobs(true));
  onSubmit("job-form", (form, button) => {
    $("job-action-result").replaceChildren();
    showJob(form.elements.job_id.value.trim(), button);
  });
}

/** Called when the Jobs section is shown with a key: the list loads by itself. */
export function refresh() {
  if (!$("jobs-list-result").childElementCount) loadJobs(false);
  refreshStakes();
}
