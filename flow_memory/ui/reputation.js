// Reputation, validators and stakes: an identity's score and the components it is made of, as
// bidder and as validator, the jobs it has earned to hold at once, and its outcomes (its score
// after each as a chart, their weights as another, and a table); the validators who opted in, with the form to join or withdraw; a bidder's stakes,
// placed and withdrawn. Every figure is the API's exact text.

import { approx, decimalField, request } from "./api.js";
import { outcomeChart, standingChart } from "./charts.js";
import {
  badge,
  code,
  formValues,
  h,
  kv,
  onSubmit,
  remember,
  replace,
  responseView,
  show,
  table,
  tile,
  time,
  units,
  value,
} from "./views.js";

const ROUTES = {
  reputation: "/inference/reputation/{identity_id}",
  stakes: "/inference/stakes",
  stake: "/inference/stakes/{stake_id}",
  validators: "/inference/validators",
  validatorWithdraw: "/inference/validators/{identity_id}/withdraw",
};

const GOOD_KINDS = new Set(["completion_good", "dispute_won", "known_answer_pass", "validator_agreed"]);

const $ = (id) => document.getElementById(id);

/** A figure in a span a reader (or a test) can find by name. */
function figure(name, content) {
  return h("span", { "data-figure": name }, content);
}

function outcomeBadge(kind) {
  return badge(kind, GOOD_KINDS.has(kind) ? "good" : "bad");
}

// An identity's page.

function bidderComponents(c) {
  return kv([
    ["Completions (accepted)", figure("completions", units(c.completions))],
    ["Results judged", figure("judged", units(c.judged))],
    ["Acceptance rate", figure("acceptance_rate", value(c.acceptance_rate))],
    ["On-time rate", figure("on_time_rate", value(c.on_time_rate))],
    ["Late", figure("late", units(c.late))],
    ["No-shows", figure("no_shows", units(c.no_shows))],
    ["Disputes won", figure("disputes_won", units(c.disputes_won))],
    ["Disputes lost", figure("disputes_lost", units(c.disputes_lost))],
    ["Known-answer jobs", figure("known_answer_jobs", units(c.known_answer_jobs))],
    ["Known-answer pass rate", figure("known_answer_pass_rate", value(c.known_answer_pass_rate))],
  ]);
}

function capacityView(c) {
  return kv([
    ["Counted for", code(c.counted_for)],
    ["Points", figure("points", units(c.points))],
    ["Earned (jobs at once)", figure("earned", units(c.earned))],
    ["Bid stake", figure("capacity_stake", value(c.stake))],
    ["Stake covers (jobs)", figure("stake_covers", c.stake_covers === null ? "unbounded" : units(c.stake_covers))],
    ["May hold at once", figure("limit", units(c.limit))],
    ["Holds now", figure("held", units(c.held))],
  ]);
}

function validatorComponents(v) {
  const c = v.components;
  return kv([
    ["Opted in", figure("opted_in", value(v.opted_in))],
    ["Validator stake", figure("validator_stake", value(v.stake))],
    ["Verdicts answered", figure("verdicts", units(c.verdicts))],
    ["Agreed with the consensus", figure("agreed", units(c.agreed))],
    ["Disagreed", figure("disagreed", units(c.disagreed))],
    ["Draws not answered", figure("no_answers", units(c.no_answers))],
    ["Agreement rate", figure("agreement_rate", value(c.agreement_rate))],
    ["Answer rate", figure("answer_rate", value(c.answer_rate))],
  ]);
}

function historyTable(rows) {
  return table(
    [
      { label: "When", cell: (o) => time(o.recorded_at) },
      { label: "Outcome", cell: (o) => outcomeBadge(o.kind) },
      { label: "Role", cell: (o) => o.role },
      { label: "Identity", cell: (o) => code(o.identity_id) },
      { label: "Job", cell: (o) => code(o.job_id) },
      { label: "Job value", num: true, cell: (o) => value(o.value) },
      { label: "Good", num: true, cell: (o) => value(o.good) },
      { label: "Bad", num: true, cell: (o) => value(o.bad) },
    ],
    rows,
    { empty: "No outcomes recorded yet: a new identity stands at the prior." },
  );
}

function historyView(rep) {
  const rows = [...rep.history];
  let cursor = rep.next_cursor;
  const chart = h("div", { class: "chart-frame" });
  const listing = h("div", { "data-testid": "reputation-history" });
  const more = h("button", { type: "button", class: "secondary", hidden: !cursor }, "Load older outcomes");
  const draw = () => {
    replace(
      chart,
      standingChart(rows, rep),
      h(
        "div",
        { class: "legend" },
        h("span", {}, h("span", { class: "swatch bid" }), "Bidder score"),
        h("span", {}, h("span", { class: "swatch ask" }), "Validator score"),
        h("span", {}, "After each outcome, worked back from the record; the newest point is the score above"),
      ),
      outcomeChart(rows),
      h(
        "div",
        { class: "legend" },
        h("span", {}, h("span", { class: "swatch bar" }), "Added to good"),
        h("span", {}, h("span", { class: "swatch bad-weight" }), "Added to bad"),
        h("span", {}, "Weights before decay, one slot per outcome"),
      ),
    );
    replace(listing, historyTable(rows));
  };
  more.addEventListener("click", async () => {
    more.disabled = true;
    const result = await request("GET", ROUTES.reputation, {
      params: { identity_id: rep.identity_id },
      query: { cursor },
    });
    more.disabled = false;
    if (!result.ok) {
      replace(listing, responseView(result));
      return;
    }
    rows.push(...result.data.reputation.history);
    cursor = result.data.reputation.next_cursor;
    more.hidden = !cursor;
    draw();
  });
  draw();
  return h("div", { class: "wide" }, h("h3", {}, "History: the chart oldest first, the table newest first"), chart, listing, h("div", { class: "actions" }, more));
}

/** An identity's reputation page: score, components, earned capacity and history. */
export function reputationView(rep) {
  const bidder = rep.bidder;
  const capacity = bidder.capacity;
  return h(
    "div",
    { class: "stack", "data-testid": "reputation" },
    h(
      "div",
      { class: "tiles wide" },
      tile("Bidder standing", figure("standing", value(bidder.standing)), {
        sub: rep.operator_id ? h("span", {}, "no higher than operator ", code(rep.operator_id)) : "what the job board reads",
        testid: "reputation-standing",
      }),
      tile("Bidder score", figure("score", value(bidder.score)), { sub: `its own record: outcomes ${bidder.outcomes}` }),
      tile("Validator score", figure("validator_score", value(rep.validator.score)), { sub: `outcomes ${rep.validator.outcomes}` }),
      tile("Jobs at once", figure("capacity_limit", units(capacity.limit)), {
        sub: h("span", {}, "earned ", units(capacity.earned), " · holds ", units(capacity.held)),
        testid: "reputation-capacity",
      }),
    ),
    h(
      "p",
      { class: "hint wide" },
      "Score = ",
      code(rep.formula),
      " over decayed sums of outcome weights (as a bidder: good ",
      figure("good", value(bidder.good)),
      ", bad ",
      figure("bad", value(bidder.bad)),
      "); prior ",
      value(rep.prior),
      ", half-life ",
      value(rep.half_life_days),
      " days. Identity kind: ",
      rep.identity_kind,
      ".",
    ),
    h("div", { "data-testid": "reputation-bidder" }, h("h3", {}, "As a bidder"), bidderComponents(bidder.components)),
    h("div", { "data-testid": "reputation-capacity-detail" }, h("h3", {}, "Earned capacity"), capacityView(capacity)),
    h("div", { "data-testid": "reputation-validator" }, h("h3", {}, "As a validator"), validatorComponents(rep.validator)),
    historyView(rep),
  );
}

/** Load an identity's reputation page into target. */
export function showReputation(target, identityId, button) {
  return show(
    target,
    () => request("GET", ROUTES.reputation, { params: { identity_id: identityId } }),
    (data) => reputationView(data.reputation),
    { button },
  );
}

// Validators.

/**
 * Each active validator's share of the draw weight, standing × √stake (flow_memory.reputation
 * .draw), among the validators listed: about its chance to be the first drawn for a job whose
 * parties stand behind none of them. Approximate: shown as a percentage to one place.
 */
function drawShares(rows) {
  const weight = (v) => (v.status === "active" ? Math.max(approx(v.standing), 0) * Math.sqrt(Math.max(approx(v.stake), 0)) : 0);
  const total = rows.reduce((sum, v) => sum + weight(v), 0);
  return new Map(rows.map((v) => [v.identity_id, total > 0 ? weight(v) / total : null]));
}

function validatorsTable(rows) {
  const shares = drawShares(rows);
  const share = (v) => {
    const found = shares.get(v.identity_id);
    return found === null || v.status !== "active" ? "—" : h("span", { "data-share": String(found) }, `≈ ${(found * 100).toFixed(1)} %`);
  };
  return table(
    [
      {
        label: "Validator",
        cell: (v) =>
          h(
            "button",
            { type: "button", class: "link", title: "Show its reputation", "data-validator": v.identity_id, onclick: () => openReputation(v.identity_id) },
            v.identity_id,
          ),
      },
      { label: "Status", cell: (v) => badge(v.status) },
      { label: "Standing", num: true, cell: (v) => value(v.standing) },
      { label: "Stake", num: true, cell: (v) => value(v.stake) },
      { label: "Share of draws", num: true, cell: share },
      { label: "Outcomes", num: true, cell: (v) => units(v.verdicts) },
      { label: "Joined", cell: (v) => time(v.joined_at) },
      { label: "Withdrawn", cell: (v) => time(v.withdrawn_at) },
    ],
    rows,
    { empty: "No validator has opted in yet. A key with inference:validate joins below." },
  );
}

function validatorView(v) {
  return kv([
    ["Validator", code(v.identity_id)],
    ["Status", badge(v.status)],
    ["Standing", figure("standing", value(v.standing))],
    ["Stake", figure("stake", value(v.stake))],
    ["Outcomes", units(v.verdicts)],
    ["Joined", time(v.joined_at)],
    ["Withdrawn", time(v.withdrawn_at)],
  ]);
}

function loadValidators(button) {
  return show(
    $("validators-result"),
    () => request("GET", ROUTES.validators, { query: { limit: formValues($("validators-list-form")).limit } }),
    (data) => validatorsTable(data.validators),
    { button },
  );
}

function openReputation(identityId) {
  const form = $("reputation-form");
  form.elements.identity_id.value = identityId;
  form.requestSubmit();
  $("reputation-card").scrollIntoView({ block: "start" });
}

// Stakes.

function stakesTable(rows) {
  return table(
    [
      { label: "Stake", cell: (st) => code(st.stake_id) },
      { label: "Identity", cell: (st) => code(st.identity_id) },
      { label: "Purpose", cell: (st) => st.purpose },
      { label: "Status", cell: (st) => badge(st.status) },
      { label: "Staked", num: true, cell: (st) => value(st.amount) },
      { label: "Slashed", num: true, cell: (st) => value(st.slashed) },
      { label: "Slashes", num: true, cell: (st) => units(st.slashes) },
      { label: "Paying account of", cell: (st) => code(st.payer_id) },
      { label: "Hold", cell: (st) => code(st.hold_id) },
      { label: "Placed", cell: (st) => time(st.created_at) },
      {
        label: "",
        cell: (st) =>
          st.status === "active" && st.purpose === "bid"
            ? h(
                "button",
                { type: "button", class: "secondary small", "data-stake": st.stake_id, onclick: (event) => withdrawStake(st.stake_id, event.currentTarget) },
                "Withdraw",
              )
            : "—",
      },
    ],
    rows,
    { empty: "No stakes. Bidding needs one: each job held at once needs its share." },
  );
}

function stakeView(st) {
  return kv([
    ["Stake", code(st.stake_id)],
    ["Identity", code(st.identity_id)],
    ["Status", badge(st.status)],
    ["Staked", figure("amount", value(st.amount))],
    ["Slashed", value(st.slashed)],
    ["Ledger hold", code(st.hold_id)],
    ["Withdrawn", time(st.withdrawn_at)],
  ]);
}

function loadStakes(button) {
  const v = formValues($("stakes-list-form"));
  return show(
    $("stakes-result"),
    () => request("GET", ROUTES.stakes, { query: { identity_id: v.identity_id } }),
    (data) => stakesTable(data.stakes),
    { button },
  );
}

async function withdrawStake(stakeId, button) {
  const result = await show(
    $("stake-action-result"),
    () => request("DELETE", ROUTES.stake, { params: { stake_id: stakeId } }),
    (data) => stakeView(data.stake),
    { button },
  );
  if (result.ok) loadStakes();
}

export function init() {
  onSubmit("reputation-form", (form, button) => {
    const identityId = form.elements.identity_id.value.trim();
    remember("dl-agents", identityId);
    showReputation($("reputation-result"), identityId, button);
  });
  onSubmit("validators-list-form", (_form, button) => loadValidators(button));
  onSubmit("validator-join-form", async (form, button) => {
    const v = formValues(form);
    const body = { stake: decimalField(v.stake) };
    if (v.identity_id) body.identity_id = v.identity_id;
    const result = await show($("validator-join-result"), () => request("POST", ROUTES.validators, { body }), (data) => validatorView(data.validator), { button });
    if (result.ok) loadValidators();
  });
  onSubmit("validator-withdraw-form", async (form, button) => {
    const identityId = form.elements.identity_id.value.trim();
    const result = await show(
      $("validator-join-result"),
      () => request("POST", ROUTES.validatorWithdraw, { params: { identity_id: identityId } }),
      (data) => validatorView(data.validator),
      { button },
    );
    if (result.ok) loadValidators();
  });
  onSubmit("stakes-list-form", (_form, button) => loadStakes(button));
  onSubmit("stake-place-form", async (form, button) => {
    const v = formValues(form);
    const body = { amount: decimalField(v.amount) };
    if (v.identity_id) body.identity_id = v.identity_id;
    const result = await show($("stake-action-result"), () => request("POST", ROUTES.stakes, { body }), (data) => stakeView(data.stake), { button });
    if (result.ok) {
      fillStakesFor(result.data.stake.identity_id);
      loadStakes();
    }
  });
}

function fillStakesFor(identityId) {
  const field = $("stakes-list-form").elements.identity_id;
  if (!field.value.trim()) field.value = identityId;
}

/** Called when the Validators section is shown with a key: the list loads by itself. */
export function refresh() {
  if (!$("validators-result").childElementCount) loadValidators();
}

/** Called when the Jobs section is shown with a key: a bidder's own stakes load by themselves. */
export function refreshStakes() {
  if (!$("stakes-result").childElementCount) loadStakes();
}
