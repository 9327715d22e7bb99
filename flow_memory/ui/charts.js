// Charts drawn as SVG by hand: cumulative market depth, usage per day, and an identity's
// outcomes and standing. Geometry uses approximate Numbers; every label printed on a chart is
// the API's exact text (a score worked back from the record says so).

import { approx, numberText } from "./api.js";
import { h, s } from "./views.js";

function shortUnits(n) {
  const abs = Math.abs(n);
  if (abs >= 1e12) return `${+(n / 1e12).toPrecision(3)}T`;
  if (abs >= 1e9) return `${+(n / 1e9).toPrecision(3)}B`;
  if (abs >= 1e6) return `${+(n / 1e6).toPrecision(3)}M`;
  if (abs >= 1e3) return `${+(n / 1e3).toPrecision(3)}k`;
  return String(+n.toPrecision(3));
}

// The smallest 1, 2, 2.5 or 5 times a power of ten at or above n: round axis labels.
function niceCeil(n) {
  if (!(n > 0)) return 1;
  const power = 10 ** Math.floor(Math.log10(n));
  const step = [1, 2, 2.5, 5, 10].find((f) => f * power >= n);
  return step * power;
}

// The width a chart label takes, in the drawing's units (its text is 11px, as dashboard.css
// sets); exact numbers such as 0.00007628 are long, and the axis makes room for them.
const LABEL_FONT_PX = 11;
let measurer = null;

function labelWidth(text) {
  if (!measurer) {
    measurer = document.createElement("canvas").getContext("2d");
    measurer.font = `${LABEL_FONT_PX}px ${getComputedStyle(document.body).fontFamily}`;
  }
  // A little over the measure: the drawing may be scaled, and fonts hint differently.
  return Math.ceil(measurer.measureText(text).width * 1.1);
}

// Narrow screens get a narrower drawing, so its text stays readable when scaled to fit.
function compactScreen() {
  return window.matchMedia("(max-width: 600px)").matches;
}

function cumulative(levels, order) {
  const sorted = [...levels].sort((a, b) => order * (approx(a.unit_price) - approx(b.unit_price)));
  let total = 0;
  return sorted.map((level) => {
    total += approx(level.available_units);
    return { price: approx(level.unit_price), text: numberText(level.unit_price), total };
  });
}

/** Cumulative bids (left, falling price) and asks (right, rising price) as stepped areas. */
export function depthChart(depth) {
  const compact = compactScreen();
  const width = compact ? 360 : 720;
  const height = compact ? 260 : 280;
  const pad = { left: compact ? 40 : 56, right: 14, top: compact ? 50 : 34, bottom: 34 };
  const plotW = width - pad.left - pad.right;
  const plotH = height - pad.top - pad.bottom;
  const bids = cumulative(depth.bids || [], -1);
  const asks = cumulative(depth.asks || [], 1);
  const prices = [...bids, ...asks].map((p) => p.price);
  const title = `Depth of ${depth.model} (${depth.unit_type})`;
  const summary = `${bids.length} bid levels and ${asks.length} ask levels; best bid ${
    bids.length ? bids[0].text : "none"
  }, best ask ${asks.length ? asks[0].text : "none"}.`;
  const svg = s("svg", {
    class: "chart",
    viewBox: `0 0 ${width} ${height}`,
    role: "img",
    "aria-label": `${title}. ${summary}`,
    "data-testid": "depth-chart",
  });
  svg.append(s("title", {}, title), s("desc", {}, summary));
  const baseline = pad.top + plotH;
  if (prices.length === 0) {
    svg.append(
      s("line", { class: "axis", x1: pad.left, x2: width - pad.right, y1: baseline, y2: baseline }),
      s("text", { x: width / 2, y: height / 2, "text-anchor": "middle" }, "No resting orders"),
    );
    return svg;
  }
  let lo = Math.min(...prices);
  let hi = Math.max(...prices);
  const spanPad = hi > lo ? (hi - lo) * 0.12 : lo * 0.1 || 1e-9;
  lo -= spanPad;
  hi += spanPad;
  const maxTotal = niceCeil(Math.max(bids.at(-1)?.total || 0, asks.at(-1)?.total || 0) * 1.05);
  const x = (price) => pad.left + ((price - lo) / (hi - lo)) * plotW;
  const y = (total) => baseline - (total / maxTotal) * plotH;

  for (const fraction of [0.5, 1]) {
    const gy = y(maxTotal * fraction);
    svg.append(
      s("line", { class: "grid", x1: pad.left, x2: width - pad.right, y1: gy, y2: gy }),
      s(
        "text",
        { x: pad.left - 8, y: gy + 4, "text-anchor": "end" },
        shortUnits(maxTotal * fraction),
      ),
    );
  }
  svg.append(
    s("line", { class: "axis", x1: pad.left, x2: width - pad.right, y1: baseline, y2: baseline }),
    s("line", { class: "axis", x1: pad.left, x2: pad.left, y1: pad.top, y2: baseline }),
    s("text", { x: pad.left - 8, y: baseline + 4, "text-anchor": "end" }, "0"),
  );

  const stepPath = (levels, edge) => {
    const points = [`M${x(levels[0].price)},${baseline}`];
    let previous = 0;
    for (const level of levels) {
      points.push(`L${x(level.price)},${y(previous)}`, `L${x(level.price)},${y(level.total)}`);
      previous = level.total;
    }
    points.push(`L${x(edge)},${y(previous)}`, `L${x(edge)},${baseline}`, "Z");
    return points.join(" ");
  };
  if (bids.length) svg.append(s("path", { class: "bid-area", d: stepPath(bids, lo) }));
  if (asks.length) svg.append(s("path", { class: "ask-area", d: stepPath(asks, hi) }));

  const marker = (level, side, preferred, row) => {
    const mx = x(level.price);
    const label = `${side === "bid" ? "best bid" : "best ask"} ${level.text}`;
    const textWidth = labelWidth(label);
    let anchor = preferred;
    let tx = mx + (anchor === "end" ? -4 : 4);
    if (anchor === "end" && tx - textWidth < 2) [anchor, tx] = ["start", Math.max(2, mx - 4)];
    if (anchor === "start" && tx + textWidth > width - 2) [anchor, tx] = ["end", Math.min(width - 2, mx + 4)];
    svg.append(
      s("line", { class: `marker ${side}`, x1: mx, x2: mx, y1: pad.top - 6, y2: baseline }),
      s("text", { x: tx, y: row, "text-anchor": anchor }, label),
    );
  };
  if (bids.length) marker(bids[0], "bid", "end", compact ? 14 : pad.top - 12);
  if (asks.length) marker(asks[0], "ask", "start", compact ? 32 : pad.top - 12);

  const lowest = bids.length ? bids.at(-1) : asks[0];
  const highest = asks.length ? asks.at(-1) : bids[0];
  // A price label sits under its price, moved inwards where it would run off the drawing.
  const priceLabel = (level) => {
    const half = labelWidth(level.text) / 2;
    const lx = Math.min(Math.max(x(level.price), half + 2), width - half - 2);
    return s("text", { x: lx, y: baseline + 18, "text-anchor": "middle" }, level.text);
  };
  svg.append(priceLabel(lowest));
  if (highest !== lowest) svg.append(priceLabel(highest));
  return svg;
}

export function depthLegend() {
  return h(
    "div",
    { class: "legend" },
    h("span", {}, h("span", { class: "swatch bid" }), "Cumulative bids"),
    h("span", {}, h("span", { class: "swatch ask" }), "Cumulative asks"),
    h("span", {}, "Price per unit on the horizontal axis, units on the vertical"),
  );
}

function dayRange(first, last) {
  const days = [];
  const cursor = new Date(`${first}T00:00:00Z`);
  const end = new Date(`${last}T00:00:00Z`);
  while (cursor <= end && days.length < 400) {
    days.push(cursor.toISOString().slice(0, 10));
    cursor.setUTCDate(cursor.getUTCDate() + 1);
  }
  return days;
}

/** Bars of one metric per UTC day; days without records between the first and last show 0. */
export function usageChart(byDay, metric, label) {
  const compact = compactScreen();
  const width = compact ? 360 : 720;
  const height = compact ? 220 : 240;
  const rows = [...byDay].sort((a, b) => (a.day < b.day ? -1 : 1));
  let top = null;
  for (const row of rows) {
    const v = row[metric];
    if (v !== null && v !== undefined && (top === null || approx(v) > approx(top))) top = v;
  }
  const topLabel = top === null ? "" : numberText(top);
  // The vertical axis is as wide as its longest label needs, so no digit is cut off.
  const pad = {
    left: Math.max(compact ? 52 : 64, labelWidth(topLabel) + 14),
    right: 12,
    top: 18,
    bottom: 34,
  };
  const plotW = width - pad.left - pad.right;
  const plotH = height - pad.top - pad.bottom;
  const byKey = new Map(rows.map((row) => [row.day, row]));
  const days = rows.length ? dayRange(rows[0].day, rows.at(-1).day) : [];
  const title = `${label} per day`;
  const svg = s("svg", {
    class: "chart",
    viewBox: `0 0 ${width} ${height}`,
    role: "img",
    "aria-label": `${title}: ${rows
      .map((row) => `${row.day} ${numberText(row[metric] ?? 0)}`)
      .join("; ")}`,
    "data-testid": "usage-chart",
  });
  svg.append(s("title", {}, title));
  const baseline = pad.top + plotH;
  svg.append(
    s("line", { class: "axis", x1: pad.left, x2: width - pad.right, y1: baseline, y2: baseline }),
  );
  if (!days.length) {
    svg.append(s("text", { x: width / 2, y: height / 2, "text-anchor": "middle" }, "No usage"));
    return svg;
  }
  const max = top === null ? 0 : approx(top);
  const scale = max > 0 ? max * 1.1 : 1;
  if (top !== null) {
    const gy = baseline - (max / scale) * plotH;
    svg.append(
      s("line", { class: "grid", x1: pad.left, x2: width - pad.right, y1: gy, y2: gy }),
      s("text", { x: pad.left - 8, y: gy + 4, "text-anchor": "end" }, topLabel),
    );
  }
  svg.append(s("text", { x: pad.left - 8, y: baseline + 4, "text-anchor": "end" }, "0"));
  const slot = plotW / days.length;
  const barW = Math.max(2, Math.min(56, slot * 0.7));
  const every = Math.ceil(days.length / (compact ? 4 : 8));
  days.forEach((day, index) => {
    const row = byKey.get(day);
    const raw = row ? row[metric] : 0;
    const v = raw === null || raw === undefined ? 0 : approx(raw);
    const barH = (v / scale) * plotH;
    const bx = pad.left + slot * index + (slot - barW) / 2;
    svg.append(
      s(
        "rect",
        { class: "bar", x: bx, y: baseline - barH, width: barW, height: Math.max(barH, 0) },
        s("title", {}, `${day}: ${raw === null || raw === undefined ? "null" : numberText(raw)}`),
      ),
    );
    if (index % every === 0) {
      svg.append(
        s(
          "text",
          { x: bx + barW / 2, y: baseline + 18, "text-anchor": "middle" },
          day.slice(5),
        ),
      );
    }
  });
  return svg;
}

/**
 * An identity's outcomes oldest first, one slot each: what it added to good above the axis,
 * to bad below it (the undecayed weights the API answered). Each bar's title is exact.
 */
export function outcomeChart(history) {
  const compact = compactScreen();
  const width = compact ? 360 : 720;
  const height = compact ? 220 : 240;
  const rows = [...history].reverse();
  const heaviest = (side) =>
    rows.reduce((top, row) => (top === null || approx(row[side]) > approx(top) ? row[side] : top), null);
  const topGood = heaviest("good");
  const topBad = heaviest("bad");
  const goodLabel = topGood === null ? "" : numberText(topGood);
  const badLabel = topBad === null ? "" : `-${numberText(topBad)}`;
  const pad = {
    left: Math.max(compact ? 44 : 56, labelWidth(goodLabel) + 14, labelWidth(badLabel) + 14),
    right: 12,
    top: 14,
    bottom: 14,
  };
  const plotW = width - pad.left - pad.right;
  const plotH = height - pad.top - pad.bottom;
  const title = "Outcomes, oldest first: good above the line, bad below";
  const svg = s("svg", {
    class: "chart",
    viewBox: `0 0 ${width} ${height}`,
    role: "img",
    "aria-label": `${title}: ${rows
      .map((row) => `${row.kind} good ${numberText(row.good)} bad ${numberText(row.bad)}`)
      .join("; ")}`,
    "data-testid": "outcome-chart",
  });
  svg.append(s("title", {}, title));
  const span = Math.max(topGood === null ? 0 : approx(topGood), topBad === null ? 0 : approx(topBad)) || 1;
  const half = plotH / 2;
  const axis = pad.top + half;
  const scale = (half * 0.92) / span;
  svg.append(
    s("line", { class: "axis", x1: pad.left, x2: width - pad.right, y1: axis, y2: axis }),
    s("text", { x: pad.left - 8, y: axis + 4, "text-anchor": "end" }, "0"),
  );
  if (!rows.length) {
    svg.append(s("text", { x: width / 2, y: axis - 12, "text-anchor": "middle" }, "No outcomes yet"));
    return svg;
  }
  if (goodLabel && approx(topGood) > 0) {
    svg.append(s("text", { x: pad.left - 8, y: axis - approx(topGood) * scale + 4, "text-anchor": "end" }, goodLabel));
  }
  if (badLabel && approx(topBad) > 0) {
    svg.append(s("text", { x: pad.left - 8, y: axis + approx(topBad) * scale + 4, "text-anchor": "end" }, badLabel));
  }
  const slot = plotW / rows.length;
  const barW = Math.max(2, Math.min(40, slot * 0.7));
  rows.forEach((row, index) => {
    const bx = pad.left + slot * index + (slot - barW) / 2;
    const good = approx(row.good) * scale;
    const bad = approx(row.bad) * scale;
    const label = `${row.recorded_at} ${row.kind}${row.job_id ? ` (${row.job_id})` : ""}: good ${numberText(row.good)}, bad ${numberText(row.bad)}`;
    svg.append(
      s(
        "g",
        { "data-outcome": row.outcome_id, "data-kind": row.kind, "data-good": numberText(row.good), "data-bad": numberText(row.bad) },
        s("title", {}, label),
        good > 0 ? s("rect", { class: "bar", x: bx, y: axis - good, width: barW, height: good }) : null,
        bad > 0 ? s("rect", { class: "bar bad-weight", x: bx, y: axis, width: barW, height: bad }) : null,
      ),
    );
  });
  return svg;
}

const SECONDS_PER_DAY = 86400;

/**
 * Each role's score after each outcome the history holds, worked back from the record the API
 * answered: a record's sums are its outcomes' weights decayed to its latest outcome, so the
 * sums before an outcome are the sums after it, less its weights, grown back by the decay
 * between it and the outcome before (flow_memory.reputation.domain). Newest first in, one entry
 * per outcome out: { row, role, score, exact }, exact the API's score text for each role's
 * newest outcome (the record's score), null for the others.
 */
export function standingPath(history, rep) {
  const halfLife = approx(rep.half_life_days);
  const out = new Map();
  for (const role of ["bidder", "validator"]) {
    const rows = history.filter((row) => row.role === role);
    let good = approx(rep[role].good);
    let bad = approx(rep[role].bad);
    rows.forEach((row, index) => {
      out.set(row.outcome_id, { row, role, score: (good + 1) / (good + bad + 2), exact: index === 0 ? rep[role].score : null });
      const older = rows[index + 1];
      const seconds = older ? (Date.parse(row.recorded_at) - Date.parse(older.recorded_at)) / 1000 : 0;
      const grown = 2 ** (Math.max(seconds, 0) / SECONDS_PER_DAY / halfLife);
      good = Math.max((good - approx(row.good)) * grown, 0);
      bad = Math.max((bad - approx(row.bad)) * grown, 0);
    });
  }
  return history.map((row) => out.get(row.outcome_id));
}

/** Each role's score after each outcome, oldest first, as a line from 0 to 1 (the prior, 0.5, dashed). */
export function standingChart(history, rep) {
  const compact = compactScreen();
  const width = compact ? 360 : 720;
  const height = compact ? 200 : 220;
  const pad = { left: compact ? 36 : 44, right: 12, top: 12, bottom: 14 };
  const plotW = width - pad.left - pad.right;
  const plotH = height - pad.top - pad.bottom;
  const points = standingPath(history, rep).reverse();
  const title = "Score after each outcome, oldest first: as a bidder and as a validator";
  const svg = s("svg", {
    class: "chart",
    viewBox: `0 0 ${width} ${height}`,
    role: "img",
    "aria-label": `${title}: ${points.map((p) => `${p.role} ${p.score.toFixed(4)}`).join("; ")}`,
    "data-testid": "standing-chart",
  });
  svg.append(s("title", {}, title));
  const y = (score) => pad.top + (1 - score) * plotH;
  for (const [level, label] of [[0, "0"], [0.5, "0.5"], [1, "1"]]) {
    const line = s("line", { class: level === 0 ? "axis" : "grid", x1: pad.left, x2: width - pad.right, y1: y(level), y2: y(level) });
    if (level === 0.5) line.setAttribute("stroke-dasharray", "4 3");
    svg.append(line, s("text", { x: pad.left - 8, y: y(level) + 4, "text-anchor": "end" }, label));
  }
  if (!points.length) {
    svg.append(s("text", { x: width / 2, y: y(0.5) - 10, "text-anchor": "middle" }, "No outcomes yet: the prior"));
    return svg;
  }
  const slot = plotW / points.length;
  const x = (index) => pad.left + slot * index + slot / 2;
  for (const [role, tone] of [["bidder", "bid"], ["validator", "ask"]]) {
    const mine = points.map((p, index) => ({ ...p, index })).filter((p) => p.role === role);
    if (!mine.length) continue;
    const line = s("polyline", {
      class: `${tone}-area`,
      points: mine.map((p) => `${x(p.index)},${y(p.score)}`).join(" "),
      "data-role": role,
    });
    line.style.fill = "none"; // the area classes fill; a line does not (set here: the page's policy refuses style attributes)
    svg.append(line);
    for (const p of mine) {
      const shown = p.exact === null ? p.score.toFixed(6) : numberText(p.exact);
      const dot = s(
        "circle",
        { cx: x(p.index), cy: y(p.score), r: 3, "data-outcome": p.row.outcome_id, "data-role": role, "data-score": shown },
        s("title", {}, `${p.row.recorded_at} ${p.row.kind}: ${role} score ${shown}${p.exact === null ? " (worked back)" : " (as answered)"}`),
      );
      dot.style.fill = role === "bidder" ? "var(--bid)" : "var(--ask)";
      svg.append(dot);
    }
  }
  return svg;
}
