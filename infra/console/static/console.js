// Prism's operator console: reads the console's data route and the operations API, and calls the operations API
// for its actions. Built with the DOM (text is set as text, never as HTML); no build step.
"use strict";

const CSRF = document.querySelector('meta[name="prism-csrf"]').content;
const REFRESH_MS = 2000;
const PALETTE = ["#2450b2", "#c2410c", "#1f6b2e", "#7e22ce", "#a4001d", "#0e7490", "#8a5a00", "#4a5368"];
const expanded = new Set();
const charts = {};

async function api(method, path) {
  const response = await fetch(path, {
    method,
    credentials: "same-origin",
    headers: { "X-Prism-CSRF": CSRF, Accept: "application/json" },
  });
  if (response.status === 401) {
    window.location.assign("/console"); // the session ended: sign in again
    throw new Error("signed out");
  }
  const body = response.status === 204 ? null : await response.json();
  if (!response.ok) throw new Error(body && body.message ? body.message : `${method} ${path}: ${response.status}`);
  return body;
}

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (value === undefined || value === null || value === false) continue;
    if (name === "onclick") node.addEventListener("click", value);
    else if (name === "className") node.className = value;
    else node.setAttribute(name, value === true ? "" : String(value));
  }
  for (const child of children) {
    if (child === null || child === undefined) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

const num = (n) => (n === null || n === undefined ? "–" : Number(n).toLocaleString("en"));
const secs = (s) => (s === null || s === undefined ? "–" : s < 10 ? `${Number(s).toFixed(2)}` : `${Math.round(s)}`);

function duration(s) {
  if (s === null || s === undefined) return "–";
  if (s < 90) return `${Math.round(s)} s`;
  if (s < 5400) return `${Math.round(s / 60)} min`;
  return `${(s / 3600).toFixed(1)} h`;
}

function say(message, isError = false) {
  const notice = document.getElementById("notice");
  notice.textContent = message;
  notice.className = isError ? "error" : "";
}

async function act(label, method, path, confirmText) {
  if (confirmText && !window.confirm(confirmText)) return;
  try {
    const answer = await api(method, path);
    say(`${label}: done${answer && answer.version ? ` (version ${answer.version})` : ""}${answer && answer.status ? ` (${answer.status})` : ""}`);
  } catch (error) {
    say(`${label}: ${error.message}`, true);
  }
  await refreshAfterAction();
}

function fill(tbody, rows) {
  tbody.replaceChildren(...rows);
}

function stateBadge(state) {
  return el("span", { className: `state state-${state.replace(/\s+/g, "-")}` }, state);
}

// A split version's own row has the partition "all" and rolls its partitions' rows up.
const ALL = "all";
const isPartition = (row) => Boolean(row.partition) && row.partition !== ALL;
const versionOf = (label) => label.split("/")[0];
const baseName = (label) => versionOf(label).split("@")[0];

function renderStores(stores) {
  const items = Object.entries(stores || {}).map(([name, problem]) =>
    el("li", { className: problem ? "down" : "up", title: problem || "answers", "data-store": name },
      problem ? `${name}: ${problem}` : name),
  );
  document.getElementById("stores").replaceChildren(...(items.length ? items : [el("li", {}, "no sample yet")]));
}

function projectionActions(row, roles) {
  if (isPartition(row)) return null;
  const name = baseName(row.projection);
  const own = roles[name] || {};
  const cell = el("td");
  if (row.role === "live" && !own.building) {
    cell.append(el("button", { type: "button", "data-action": "rebuild", "data-projection": name,
      "aria-label": `Rebuild ${name}`, onclick: () => act(`rebuild ${name}`, "POST", `/projections/${name}/rebuild`) }, "Rebuild"));
  }
  if (row.role === "previous" && !own.building) {
    cell.append(el("button", { type: "button", "data-action": "rollback", "data-projection": name,
      "aria-label": `Roll ${name} back to this version`, onclick: () => act(`roll back ${name}`, "POST", `/projections/${name}/rollback`) }, "Roll back"));
    cell.append(el("button", { type: "button", "data-action": "drop-previous", "data-projection": name,
      "aria-label": `Drop this previous version of ${name}`,
      onclick: () => act(`drop the previous version of ${name}`, "POST", `/projections/${name}/drop-previous`,
        `Drop the previous version of ${name}? No rollback is possible after this.`) }, "Drop"));
  }
  return cell;
}

function buildCell(row) {
  if (row.progress === null || row.progress === undefined) return el("td", {}, "–");
  const text = `${Math.round(row.progress * 100)}%` +
    (row.events_per_s ? ` · ${num(Math.round(row.events_per_s))} ev/s · ${duration(row.eta_seconds)} left` : "");
  return el("td", {}, el("progress", { max: 1, value: row.progress, "aria-label": `${row.projection} build progress` }), " ", text);
}

function projectionRow(row, roles, partitionCount) {
  const isPart = isPartition(row);
  const label = row.projection;
  const first = el("th", { scope: "row" }, isPart ? row.partition : row.projection);
  if (row.partition === ALL) {
    const open = expanded.has(row.projection);
    first.append(" ", el("button", { type: "button", className: "link", "aria-expanded": open,
      onclick: () => { open ? expanded.delete(row.projection) : expanded.add(row.projection); refresh(); } },
      `${partitionCount} partitions`));
  }
  const batch = row.last_batch_size === null || row.last_batch_size === undefined ? "–"
    : `${num(row.last_batch_size)} in ${secs(row.last_batch_seconds)} s`;
  const visible = row.visible && row.visible[0] !== null ? `${secs(row.visible[0])} / ${secs(row.visible[1])} s` : "–";
  return el("tr", { className: isPart ? "partition" : "", "data-label": label, "data-state": row.state,
    "data-projection": baseName(row.projection), "data-version": row.version, "data-partition": row.partition,
    "data-version-label": versionOf(row.projection), "data-role": row.role,
    title: row.problem || (row.holder ? `held by ${row.holder}` : undefined) },
    first, el("td", {}, stateBadge(row.state)), el("td", { className: "n" }, num(row.checkpoint)),
    el("td", { className: "n" }, num(row.head)), el("td", { className: "n" }, num(row.lag_events)),
    el("td", { className: "n" }, secs(row.lag_seconds)), el("td", { className: "n" }, batch),
    el("td", { className: "n visible" }, visible), el("td", { className: "n" }, num(row.dead_letters)),
    buildCell(row), projectionActions(row, roles) || el("td"));
}

function renderProjections(status) {
  const rows = (status && status.projections) || [];
  // Per projection: its live version, and whether another is being built (or rolled back to).
  const roles = {};
  for (const row of rows.filter((r) => !isPartition(r))) {
    const own = (roles[baseName(row.projection)] ||= {});
    if (row.role === "live") own.live = row.version;
    if (row.role === "next") own.building = true;
  }
  const parts = {};
  for (const row of rows) if (isPartition(row)) (parts[versionOf(row.projection)] ||= []).push(row);
  const shown = [];
  for (const row of rows) {
    if (isPartition(row)) {
      if (expanded.has(versionOf(row.projection))) shown.push(projectionRow(row, roles));
    } else {
      shown.push(projectionRow(row, roles, (parts[row.projection] || []).length));
    }
  }
  fill(document.querySelector("#projections tbody"), shown.length ? shown
    : [el("tr", {}, el("td", { colspan: 11 }, "no sample yet: the first comes within a few seconds of the start"))]);
  const problem = document.getElementById("status-problem");
  problem.hidden = !(status && status.problem);
  problem.textContent = status && status.problem ? `The last sample could not read every store: ${status.problem}` : "";
}

function aligned(series, field) {
  const labels = Object.keys(series).sort();
  const times = [...new Set(labels.flatMap((l) => series[l].t))].sort((a, b) => a - b);
  const index = new Map(times.map((t, i) => [t, i]));
  const columns = labels.map((l) => {
    const column = new Array(times.length).fill(null);
    series[l].t.forEach((t, i) => { column[index.get(t)] = series[l][field][i]; });
    return column;
  });
  return { labels, data: [times, ...columns] };
}

function renderChart(id, series, field, unit) {
  const { labels, data } = aligned(series, field);
  const box = document.getElementById(id);
  const points = data.slice(1).reduce((sum, column) => sum + column.filter((v) => v !== null).length, 0);
  box.dataset.points = String(points);
  box.dataset.series = labels.join(",");
  const key = labels.join(",");
  if (typeof uPlot === "undefined") return;
  if (!charts[id] || charts[id].key !== key) {
    if (charts[id]) charts[id].plot.destroy();
    const options = {
      width: Math.max(box.clientWidth, 400), height: 220,
      scales: { x: { time: true } },
      axes: [{}, { label: unit, size: 60 }],
      series: [{}, ...labels.map((label, i) => ({ label, stroke: PALETTE[i % PALETTE.length], width: 1.5, spanGaps: false }))],
    };
    charts[id] = { key, plot: new uPlot(options, data, box) };
  } else {
    charts[id].plot.setData(data);
  }
}

// The partitions of each version listed in the table, charted beside the versions: read when a new sample lands.
const partitionSeries = new Map();

function partitionFigure(version) {
  const box = document.getElementById("partition-charts");
  const found = [...box.children].find((figure) => figure.dataset.version === version);
  if (found) return found;
  const chart = (field, caption) => el("figure", {},
    el("figcaption", {}, `${version}, each partition: ${caption}`),
    el("div", { id: `partitions-${field}-${version}`, className: "chart", role: "img",
      "aria-label": `${caption} per partition of ${version} over the last hour` }));
  const figure = el("div", { className: "charts", "data-version": version },
    chart("lag_seconds", "seconds behind"), chart("lag_events", "events behind"));
  box.append(figure);
  return figure;
}

function dropChart(id) {
  if (charts[id]) charts[id].plot.destroy();
  delete charts[id];
}

async function renderPartitionCharts(sampledAt) {
  for (const figure of [...document.getElementById("partition-charts").children]) {
    if (expanded.has(figure.dataset.version)) continue;
    for (const field of ["lag_seconds", "lag_events"]) dropChart(`partitions-${field}-${figure.dataset.version}`);
    partitionSeries.delete(figure.dataset.version);
    figure.remove();
  }
  await Promise.all([...expanded].sort().map(async (version) => {
    let kept = partitionSeries.get(version);
    if (!kept || kept.sampledAt !== sampledAt) {
      const answer = await api("GET", `/console/api/partitions/${encodeURIComponent(version)}`);
      kept = { sampledAt, series: answer.series };
      partitionSeries.set(version, kept);
    }
    if (!expanded.has(version)) return; // folded while it was read
    partitionFigure(version);
    renderChart(`partitions-lag_seconds-${version}`, kept.series, "lag_seconds", "seconds");
    renderChart(`partitions-lag_events-${version}`, kept.series, "lag_events", "events");
  }));
}

const DEAD_LETTERS_SHOWN = 200;

function renderDeadLetters(letters) {
  const rows = letters.slice(0, DEAD_LETTERS_SHOWN).map((d) => el("tr", { "data-dead-letter": d.id },
    el("td", { className: "n" }, d.id), el("td", {}, d.projection), el("td", { className: "n" }, num(d.position)),
    el("td", {}, d.event_type), el("td", { className: "error-text" }, d.error), el("td", { className: "n" }, d.attempts),
    el("td", {}, d.last_failed_at ? new Date(d.last_failed_at).toLocaleString() : "–"),
    el("td", {},
      el("button", { type: "button", "data-action": "retry", "aria-label": `Retry dead letter ${d.id}`,
        onclick: () => act(`retry dead letter ${d.id}`, "POST", `/deadletters/${d.id}/retry`) }, "Retry"),
      el("button", { type: "button", "data-action": "discard", "aria-label": `Discard dead letter ${d.id}`,
        onclick: () => act(`discard dead letter ${d.id}`, "POST", `/deadletters/${d.id}/discard`,
          `Discard dead letter ${d.id}? Its event is then never applied to ${d.projection}.`) }, "Discard"))));
  if (letters.length > DEAD_LETTERS_SHOWN) {
    rows.push(el("tr", {}, el("td", { colspan: 8, className: "muted" },
      `and ${letters.length - DEAD_LETTERS_SHOWN} more: prism deadletters list`)));
  }
  fill(document.querySelector("#dead-letters tbody"), rows.length ? rows
    : [el("tr", {}, el("td", { colspan: 8, className: "muted" }, "nothing parked"))]);
}

function renderTenants(status) {
  const tenants = (status && status.tenants) || [];
  fill(document.querySelector("#tenants tbody"), tenants.map((t) => el("tr", { "data-tenant": t.tenant },
    el("th", { scope: "row" }, t.tenant), el("td", {}, t.name), el("td", { className: "n" }, num(t.orders)),
    el("td", { className: "n" }, num(t.lag_events)), el("td", { className: "n" }, num(t.dead)))));
}

function renderProcesses(hosts, now, every) {
  const rows = [];
  for (const host of hosts) {
    const gone = now - host.seen > Math.max(3 * every, 15);
    for (const p of host.processes) {
      rows.push(el("tr", { "data-process": `${host.host}/${p.name}` },
        el("td", {}, host.host + (gone ? " (not heard from)" : "")), el("th", { scope: "row" }, p.name),
        el("td", { className: "n" }, p.pid ?? "–"), el("td", {}, stateBadge(gone ? "unknown" : p.state)),
        el("td", { className: "n" }, p.restarts), el("td", { className: "n" }, p.state === "running" ? duration(now - p.since) : "–")));
    }
  }
  fill(document.querySelector("#processes tbody"), rows);
}

let refreshing = null;
async function refresh() {
  if (refreshing) return refreshing;
  refreshing = (async () => {
    try {
      // The dead letters are read live (a retry shows at once); their failure leaves the rest of the page to refresh.
      const [overview, letters] = await Promise.allSettled([api("GET", "/console/api/overview"), api("GET", "/deadletters")]);
      if (overview.status === "rejected") throw overview.reason;
      if (letters.status === "fulfilled") renderDeadLetters(letters.value);
      else say(`could not read the dead letters: ${letters.reason.message}`, true);
      const status = overview.value.status;
      renderStores(status && status.stores);
      renderProjections(status);
      renderChart("chart-seconds", overview.value.series, "lag_seconds", "seconds");
      renderChart("chart-events", overview.value.series, "lag_events", "events");
      await renderPartitionCharts(status ? status.sampled_at : null).catch((error) => {
        if (error.message !== "signed out") say(`could not read the partitions' lag: ${error.message}`, true);
      });
      renderTenants(status);
      renderProcesses(overview.value.hosts, overview.value.now, status ? status.every : 5);
      document.getElementById("sampled").textContent = status
        ? `sampled ${duration(Math.max(overview.value.now - status.sampled_at, 0))} ago, every ${status.every} s`
        : "waiting for the first sample";
      document.body.dataset.sampledAt = status ? String(status.sampled_at) : "";
      if (status && !performance.getEntriesByName("prism-console-data").length) performance.mark("prism-console-data");
    } catch (error) {
      if (error.message !== "signed out") say(`could not refresh: ${error.message}`, true);
    } finally {
      refreshing = null;
    }
  })();
  return refreshing;
}

// A refresh under way when an action ends may have read the state before it: the page is read once more after it.
let queued = null;
function refreshAfterAction() {
  if (!refreshing) return refresh();
  queued = queued || refreshing.then(() => { queued = null; return refresh(); });
  return queued;
}

document.getElementById("sign-out").addEventListener("click", async () => {
  try { await api("POST", "/console/session/end"); } finally { window.location.assign("/console"); }
});
refresh();
setInterval(refresh, REFRESH_MS);
