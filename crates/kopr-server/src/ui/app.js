// kopr's web UI: a small single-page application over Kopia's JSON API (/api/v1/...) and
// kopr's own (/api/v1/kopr/...). Plain JavaScript, no build step; routes live in the URL hash.
"use strict";

const main = document.getElementById("main");

function esc(s) {
  return String(s == null ? "" : s).replace(/[&<>"']/g, (c) =>
    ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c]);
}

function bytes(n) {
  n = Number(n || 0);
  if (n < 1000) return n + " B";
  const u = ["KB", "MB", "GB", "TB", "PB"];
  let i = -1;
  do { n /= 1000; i++; } while (n >= 1000 && i < u.length - 1);
  return n.toFixed(1).replace(/\.0$/, "") + " " + u[i];
}

// A Go duration in nanoseconds (as Kopia's JSON has them) as Go prints it: 1h0m0s, 24h0m0s.
function goDuration(ns) {
  let s = Math.round(Number(ns || 0) / 1e9);
  const h = Math.floor(s / 3600), m = Math.floor(s / 60) % 60;
  s %= 60;
  return h ? h + "h" + m + "m" + s + "s" : m ? m + "m" + s + "s" : s + "s";
}

function when(t) {
  if (!t) return "";
  const d = new Date(t);
  if (isNaN(d) || d.getFullYear() < 1971) return "";
  return d.toLocaleString();
}

async function api(path, opts) {
  opts = opts || {};
  opts.headers = Object.assign({ "X-Requested-With": "kopr" }, opts.headers || {});
  const r = await fetch(path, opts);
  if (r.status === 401) { location.href = "/login"; throw new Error("not logged in"); }
  const text = await r.text();
  let body = null;
  try { body = text ? JSON.parse(text) : null; } catch (e) { body = text; }
  if (!r.ok) throw new Error((body && body.error) || r.statusText);
  return body;
}

function post(path, body) {
  return api(path, { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body || {}) });
}

function qs(o) {
  return Object.keys(o).map((k) => encodeURIComponent(k) + "=" + encodeURIComponent(o[k])).join("&");
}

function sourceName(s) { return s.userName + "@" + s.host + ":" + s.path; }

function setActive(id) {
  document.querySelectorAll("header nav a").forEach((a) => a.classList.toggle("active", a.id === id));
}

function fail(e) {
  main.innerHTML = '<p class="error" id="page-error">' + esc(e.message || e) + "</p>";
}

// ---------- sources and snapshots ----------

async function pageSources() {
  setActive("nav-sources");
  const d = await api("/api/v1/sources");
  let h = '<h1>Snapshots</h1><div class="row"><input id="new-path" size="50" placeholder="/path/to/snapshot">' +
    '<button id="start-snapshot">Snapshot now</button><span id="start-error" class="error"></span></div>';
  if (!d.sources.length) h += '<p class="muted" id="no-sources">No snapshots yet.</p>';
  else {
    h += '<table id="sources"><tr><th>Source</th><th>Last snapshot</th><th class="num">Size</th><th class="num">Files</th><th>Status</th><th></th></tr>';
    for (const s of d.sources) {
      const last = s.lastSnapshot || {};
      const summ = (last.rootEntry && last.rootEntry.summ) || {};
      const q = qs({ userName: s.source.userName, host: s.source.host, path: s.source.path });
      h += "<tr><td><a class=\"source-link\" href=\"#/snapshots?" + esc(q) + "\">" + esc(sourceName(s.source)) + "</a></td>" +
        "<td>" + esc(when(last.startTime)) + "</td><td class=\"num\">" + esc(bytes(summ.size)) + "</td>" +
        "<td class=\"num\">" + esc(summ.files || 0) + "</td><td>" +
        (s.currentTask ? '<a href="#/task/' + esc(s.currentTask) + '">' + esc(s.status) + "</a>" : esc(s.status)) + "</td>" +
        '<td><button class="secondary snap-again" data-path="' + esc(s.source.path) + '">Snapshot now</button></td></tr>';
    }
    h += "</table>";
  }
  main.innerHTML = h;
  const start = async (path) => {
    try {
      const r = await post("/api/v1/sources", { path: path, createSnapshot: true });
      location.hash = "#/task/" + encodeURIComponent(r.taskID);
    } catch (e) { document.getElementById("start-error").textContent = e.message; }
  };
  document.getElementById("start-snapshot").onclick = () => start(document.getElementById("new-path").value.trim());
  document.querySelectorAll(".snap-again").forEach((b) => { b.onclick = () => start(b.dataset.path); });
}

async function pageSnapshots(params) {
  setActive("nav-sources");
  const d = await api("/api/v1/snapshots?" + params.toString());
  const src = params.get("userName") + "@" + params.get("host") + ":" + params.get("path");
  let h = '<div class="crumbs"><a href="#/">Snapshots</a> › ' + esc(src) + "</div><h1>" + esc(src) + "</h1>";
  h += '<table id="snapshots"><tr><th>Start</th><th>ID</th><th class="num">Size</th><th class="num">Files</th><th class="num">Dirs</th><th>Retention</th><th></th></tr>';
  for (const s of d.snapshots.slice().reverse()) {
    const summ = s.summary || {};
    const name = s.rootName || "snapshot";
    const browse = s.rootType === "d"
      ? '<a class="browse" href="#/browse/' + esc(s.rootID) + "?" + esc(qs({ path: name, snap: s.id })) + '">Browse</a>'
      : '<a class="download" href="/api/v1/objects/' + esc(s.rootID) + "?" + esc(qs({ fname: name })) + '">Download</a>';
    h += "<tr><td>" + esc(when(s.startTime)) + (s.incomplete ? ' <span class="error">(' + esc(s.incomplete) + ")</span>" : "") +
      '</td><td class="mono">' + esc(s.id) + '</td><td class="num">' + esc(bytes(summ.size)) + '</td><td class="num">' + esc(summ.files || 0) +
      '</td><td class="num">' + esc(summ.dirs || 0) + "</td><td>" + esc((s.retention || []).join(", ")) + "</td><td>" + browse + "</td></tr>";
  }
  main.innerHTML = h + "</table>";
}

async function pageBrowse(oid, params) {
  setActive("nav-sources");
  const dir = await api("/api/v1/objects/" + encodeURIComponent(oid));
  const path = params.get("path") || "";
  const parts = path.split("/");
  const name = parts[parts.length - 1] || "snapshot";
  let h = '<div class="crumbs"><a href="#/">Snapshots</a> › <span id="browse-path">' + esc(path) + "</span></div>";
  h += '<div class="row"><h1 style="margin:0">' + esc(name) + '</h1><a id="download-tar" href="/api/v1/objects/' + esc(oid) + "?" +
    esc(qs({ format: "tar", fname: name + ".tar" })) + '">Download as .tar</a>' +
    '<span class="muted">Restore to</span><input id="restore-target" size="30" placeholder="/restore/here"><button id="restore" class="secondary">Restore</button><span id="restore-error" class="error"></span></div>';
  h += '<table id="entries"><tr><th>Name</th><th class="num">Size</th><th>Modified</th><th>Mode</th><th></th></tr>';
  const entries = (dir && dir.entries) || [];
  for (const e of entries) {
    const child = path + "/" + e.name;
    let link = esc(e.name), action = "";
    if (e.type === "d") {
      link = '<a class="dir" href="#/browse/' + esc(e.obj) + "?" + esc(qs({ path: child })) + '">' + esc(e.name) + "/</a>";
      action = '<a href="/api/v1/objects/' + esc(e.obj) + "?" + esc(qs({ format: "tar", fname: e.name + ".tar" })) + '">.tar</a>';
    } else if (e.type === "f") {
      action = '<a class="file-download" data-name="' + esc(e.name) + '" href="/api/v1/objects/' + esc(e.obj) + "?" + esc(qs({ fname: e.name })) + '">Download</a>';
    } else if (e.type === "s") {
      link = esc(e.name) + ' <span class="muted">→ symlink</span>';
    }
    const size = e.type === "d" ? ((e.summ && e.summ.size) || 0) : (e.size || 0);
    h += "<tr><td>" + link + '</td><td class="num">' + esc(bytes(size)) + "</td><td>" + esc(when(e.mtime)) +
      '</td><td class="mono">' + esc(e.mode || "") + "</td><td>" + action + "</td></tr>";
  }
  if (!entries.length) h += '<tr><td colspan="5" class="muted">Empty directory</td></tr>';
  main.innerHTML = h + "</table>";
  document.getElementById("restore").onclick = async () => {
    try {
      const t = await post("/api/v1/restore", { root: oid, fsOutput: { targetPath: document.getElementById("restore-target").value.trim() }, options: {} });
      location.hash = "#/task/" + encodeURIComponent(t.id);
    } catch (e) { document.getElementById("restore-error").textContent = e.message; }
  };
}

// ---------- tasks ----------

let taskTimer = null;

function taskHtml(t) {
  let h = '<dl id="task"><dt>Task</dt><dd>' + esc(t.kind) + " " + esc(t.id) + "</dd><dt>What</dt><dd>" + esc(t.description) +
    '</dd><dt>Status</dt><dd><span id="task-status" class="status-' + esc(t.status) + '">' + esc(t.status) + "</span></dd>" +
    "<dt>Started</dt><dd>" + esc(when(t.startTime)) + "</dd><dt>Ended</dt><dd>" + esc(when(t.endTime)) + "</dd>" +
    '<dt>Progress</dt><dd id="task-progress">' + esc(t.progressInfo) + "</dd>";
  if (t.errorMessage) h += '<dt>Error</dt><dd class="error" id="task-error">' + esc(t.errorMessage) + "</dd>";
  if (t.snapshotID) h += '<dt>Snapshot</dt><dd class="mono" id="task-snapshot">' + esc(t.snapshotID) + "</dd>";
  h += "</dl>";
  const c = t.counters || {};
  const names = Object.keys(c);
  if (names.length) {
    h += '<table id="counters" style="margin-top:12px"><tr><th>Counter</th><th class="num">Value</th></tr>';
    for (const n of names) h += "<tr><td>" + esc(n) + '</td><td class="num">' + esc(c[n].units === "bytes" ? bytes(c[n].value) : c[n].value) + "</td></tr>";
    h += "</table>";
  }
  return h;
}

async function pageTask(id) {
  setActive("nav-tasks");
  const t = await api("/api/v1/tasks/" + encodeURIComponent(id));
  main.innerHTML = '<div class="crumbs"><a href="#/tasks">Tasks</a> › ' + esc(id) + "</div><h1>" + esc(t.kind) + "</h1>" + taskHtml(t) +
    (t.status === "RUNNING" ? '<p><button id="cancel-task" class="secondary">Cancel</button></p>' : '<p><a href="#/">Back to snapshots</a></p>');
  const cancel = document.getElementById("cancel-task");
  if (cancel) cancel.onclick = () => post("/api/v1/tasks/" + encodeURIComponent(id) + "/cancel");
  if (t.status === "RUNNING" || t.status === "CANCELING") {
    taskTimer = setTimeout(() => { if (location.hash === "#/task/" + id) route(); }, 500);
  }
}

async function pageTasks() {
  setActive("nav-tasks");
  const d = await api("/api/v1/tasks");
  let h = '<h1>Tasks</h1><table id="tasks"><tr><th>ID</th><th>Kind</th><th>What</th><th>Status</th><th>Started</th><th>Progress</th></tr>';
  for (const t of d.tasks) {
    h += '<tr><td><a href="#/task/' + esc(t.id) + '">' + esc(t.id) + "</a></td><td>" + esc(t.kind) + "</td><td>" + esc(t.description) +
      '</td><td class="status-' + esc(t.status) + '">' + esc(t.status) + "</td><td>" + esc(when(t.startTime)) + "</td><td>" + esc(t.progressInfo) + "</td></tr>";
  }
  if (!d.tasks.length) h += '<tr><td colspan="6" class="muted">No tasks since the server started.</td></tr>';
  main.innerHTML = h + "</table>";
}

// ---------- charts ----------

function svg(w, h, body, id) {
  return '<svg class="chart" id="' + esc(id) + '" width="' + w + '" height="' + h + '" viewBox="0 0 ' + w + " " + h + '" xmlns="http://www.w3.org/2000/svg">' + body + "</svg>";
}

function histogramChart(buckets) {
  const W = 640, H = 240, L = 50, B = 50, T = 16;
  const max = Math.max(1, ...buckets.map((b) => b.count));
  const bw = (W - L - 16) / buckets.length;
  let s = '<line class="axis" x1="' + L + '" y1="' + (H - B) + '" x2="' + (W - 8) + '" y2="' + (H - B) + '"/>';
  s += '<line class="axis" x1="' + L + '" y1="' + T + '" x2="' + L + '" y2="' + (H - B) + '"/>';
  s += '<text x="' + (L - 6) + '" y="' + (T + 4) + '" text-anchor="end">' + max + "</text>";
  s += '<text x="' + (L - 6) + '" y="' + (H - B) + '" text-anchor="end">0</text>';
  buckets.forEach((b, i) => {
    const h = (H - B - T) * b.count / max;
    const x = L + 4 + i * bw;
    s += '<rect class="bar" x="' + x.toFixed(1) + '" y="' + (H - B - h).toFixed(1) + '" width="' + (bw - 8).toFixed(1) + '" height="' + h.toFixed(1) +
      '" fill="#2f6fdb"><title>' + esc(b.count + " contents of " + bytes(b.min) + " to " + bytes(b.max) + " (" + bytes(b.totalSize) + ")") + "</title></rect>";
    if (b.count) s += '<text x="' + (x + (bw - 8) / 2).toFixed(1) + '" y="' + (H - B - h - 3).toFixed(1) + '" text-anchor="middle">' + b.count + "</text>";
    s += '<text x="' + (x + (bw - 8) / 2).toFixed(1) + '" y="' + (H - B + 14) + '" text-anchor="middle">&lt; ' + esc(bytes(b.max)) + "</text>";
  });
  s += '<text x="' + (W / 2) + '" y="' + (H - 10) + '" text-anchor="middle">packed size of contents</text>';
  return svg(W, H, s, "histogram");
}

function timeAxis(t0, t1, x0, x1, y, ticks) {
  let s = '<line class="axis" x1="' + x0 + '" y1="' + y + '" x2="' + x1 + '" y2="' + y + '"/>';
  for (let i = 0; i <= ticks; i++) {
    const t = t0 + (t1 - t0) * i / ticks;
    const x = x0 + (x1 - x0) * i / ticks;
    const d = new Date(t);
    s += '<line class="axis" x1="' + x.toFixed(1) + '" y1="' + y + '" x2="' + x.toFixed(1) + '" y2="' + (y + 4) + '"/>';
    const anchor = i === 0 ? "start" : i === ticks ? "end" : "middle";
    s += '<text x="' + x.toFixed(1) + '" y="' + (y + 16) + '" text-anchor="' + anchor + '">' + esc(d.toLocaleDateString(undefined, { month: "short", day: "numeric" }) + " " + d.toLocaleTimeString(undefined, t1 - t0 < 3600000 ? { hour: "2-digit", minute: "2-digit", second: "2-digit" } : { hour: "2-digit", minute: "2-digit" })) + "</text>";
  }
  return s;
}

function sizeChart(points) {
  const W = 640, H = 240, L = 70, R = 30, T = 16, B = 40;
  if (!points.length) return '<p class="muted">No snapshots yet.</p>';
  const ts = points.map((p) => new Date(p.time).getTime());
  let t0 = Math.min(...ts), t1 = Math.max(...ts);
  if (t1 - t0 < 60000) { t0 -= 30000; t1 += 30000; }
  const max = Math.max(1, ...points.map((p) => p.totalPackedBytes));
  const x = (t) => L + (W - L - R) * (t - t0) / (t1 - t0);
  const y = (v) => H - B - (H - B - T) * v / max;
  let s = '<line class="axis" x1="' + L + '" y1="' + T + '" x2="' + L + '" y2="' + (H - B) + '"/>';
  s += '<text x="' + (L - 6) + '" y="' + (T + 4) + '" text-anchor="end">' + esc(bytes(max)) + "</text>";
  s += '<text x="' + (L - 6) + '" y="' + (H - B) + '" text-anchor="end">0</text>';
  s += timeAxis(t0, t1, L, W - R, H - B, 3);
  let d = "";
  points.forEach((p, i) => { d += (i ? " L " : "M ") + x(ts[i]).toFixed(1) + " " + y(p.totalPackedBytes).toFixed(1); });
  s += '<path d="' + d + '" fill="none" stroke="#2f6fdb" stroke-width="2"/>';
  points.forEach((p, i) => {
    s += '<circle class="point" cx="' + x(ts[i]).toFixed(1) + '" cy="' + y(p.totalPackedBytes).toFixed(1) + '" r="4" fill="#2f6fdb"><title>' +
      esc(when(p.time) + " " + p.source + ": +" + bytes(p.addedPackedBytes) + ", total " + bytes(p.totalPackedBytes)) + "</title></circle>";
  });
  return svg(W, H, s, "size-chart");
}

// ---------- repository ----------

async function pageStatus() {
  setActive("nav-status");
  const [st, cs, hist] = await Promise.all([api("/api/v1/repo/status"), api("/api/v1/kopr/content-stats"), api("/api/v1/kopr/size-history")]);
  let h = '<h1>Repository</h1><div class="grid"><div class="card"><h2 style="margin-top:0">Status</h2><dl id="repo-status">' +
    "<dt>Storage</dt><dd>" + esc(st.storage) + "</dd><dt>Format version</dt><dd>" + esc(st.formatVersion) + "</dd>" +
    "<dt>Hash</dt><dd>" + esc(st.hash) + "</dd><dt>Encryption</dt><dd>" + esc(st.encryption) + "</dd>" +
    "<dt>Splitter</dt><dd>" + esc(st.splitter) + "</dd><dt>ECC</dt><dd>" + esc(st.ecc ? st.ecc + " (" + st.eccOverheadPercent + "%)" : "none") + "</dd>" +
    "<dt>Max pack size</dt><dd>" + esc(bytes(st.maxPackSize)) + "</dd><dt>Connected as</dt><dd>" + esc(st.username + "@" + st.hostname) +
    (st.readonly ? " (read-only)" : "") + "</dd></dl></div>";
  h += '<div class="card"><h2 style="margin-top:0">Contents</h2><dl id="content-stats"><dt>Count</dt><dd id="content-count">' + esc(cs.count) +
    "</dd><dt>Total bytes</dt><dd>" + esc(bytes(cs.totalOriginalSize)) + "</dd><dt>Packed</dt><dd>" + esc(bytes(cs.totalPackedSize)) + "</dd>";
  for (const m of Object.keys(cs.byMethod)) {
    const t = cs.byMethod[m];
    h += "<dt>" + esc(m) + "</dt><dd>" + esc(t.count + " contents, " + bytes(t.originalSize) + " → " + bytes(t.packedSize)) + "</dd>";
  }
  h += "</dl></div></div>";
  h += "<h2>Sizes of contents</h2>" + histogramChart(cs.histogram);
  h += "<h2>Repository size over time</h2><p class=\"muted\">Packed bytes of the contents the live snapshots added, at each snapshot's end.</p>" + sizeChart(hist.points);
  main.innerHTML = h;
}

// ---------- maintenance ----------

const RULES = {
  minContentAgeSubjectToGc: "younger than a day: not collected yet",
  awaitingNextGc: "waiting for the next full cycle to mark it",
  requireTwoGcCycles: "marked; waiting for a second GC",
  blobDeleteMinAge: "forgotten; pack younger than 24 hours",
  sessionExpirationAge: "written by a live session",
  newerThanMaintenanceStart: "newer than the maintenance start",
  sharesPackWithLiveContents: "shares its pack with live contents",
  partlyUnusedRewrite: "live contents copied out first",
  fullMaintenanceDisabled: "full maintenance is disabled",
};

function explainTimeline(ex) {
  const now = new Date(ex.now).getTime();
  const rows = [];
  for (const d of ex.deletedSnapshots) {
    rows.push({ kind: "snapshot", label: "snapshot " + d.id.slice(0, 8) + " " + d.source, start: new Date(d.deletedAt).getTime(),
      mid: d.oldDataGoneBy ? new Date(d.oldDataGoneBy).getTime() : null, end: d.newDataGoneBy ? new Date(d.newDataGoneBy).getTime() : null,
      tip: "deleted " + when(d.deletedAt) + "; old data leaves " + (when(d.oldDataGoneBy) || "?") + ", newest data " + (when(d.newDataGoneBy) || "?") });
  }
  for (const p of ex.packs) {
    rows.push({ kind: "pack", label: "pack " + p.blobId.slice(0, 12) + " " + bytes(p.bytes), start: now,
      mid: p.rewriteAt ? new Date(p.rewriteAt).getTime() : null, end: p.earliestDeletion ? new Date(p.earliestDeletion).getTime() : null,
      tip: bytes(p.garbageBytes) + " garbage, " + p.unusedPercent.toFixed(1) + "% unused; " + (RULES[p.rule] || p.rule) + "; leaves " + (when(p.earliestDeletion) || "not within the schedule") });
  }
  if (!rows.length) return '<p class="muted" id="timeline-empty">Nothing is waiting to leave the bucket.</p>';
  const times = [now];
  rows.forEach((r) => { times.push(r.start); if (r.end) times.push(r.end); if (r.mid) times.push(r.mid); });
  let t0 = Math.min(...times), t1 = Math.max(...times);
  if (t1 - t0 < 3600000) t1 = t0 + 3600000;
  t1 += (t1 - t0) * 0.04;
  const W = 960, L = 300, R = 20, T = 24, RH = 22;
  const shown = rows.slice(0, 60);
  const H = T + shown.length * RH + 44;
  const x = (t) => L + (W - L - R) * (t - t0) / (t1 - t0);
  let s = "";
  shown.forEach((r, i) => {
    const y = T + i * RH;
    const color = r.kind === "snapshot" ? "#c0392b" : "#2f6fdb";
    const end = r.end || t1;
    s += '<g class="timeline-row timeline-' + r.kind + '"><title>' + esc(r.label + ": " + r.tip) + "</title>";
    s += '<text x="' + (L - 8) + '" y="' + (y + 14) + '" text-anchor="end">' + esc(r.label.length > 44 ? r.label.slice(0, 43) + "…" : r.label) + "</text>";
    s += '<rect x="' + x(r.start).toFixed(1) + '" y="' + (y + 4) + '" width="' + Math.max(2, x(end) - x(r.start)).toFixed(1) + '" height="12" rx="3" fill="' + color + '" fill-opacity="' + (r.end ? 0.75 : 0.25) + '"/>';
    if (r.mid) s += '<line x1="' + x(r.mid).toFixed(1) + '" y1="' + (y + 2) + '" x2="' + x(r.mid).toFixed(1) + '" y2="' + (y + 18) + '" stroke="#1d2430" stroke-width="2"/>';
    if (r.end) s += '<circle cx="' + x(r.end).toFixed(1) + '" cy="' + (y + 10) + '" r="4" fill="#1d2430"/>';
    else s += '<text x="' + (W - R - 2) + '" y="' + (y + 14) + '" text-anchor="end">?</text>';
    s += "</g>";
  });
  const axisY = T + shown.length * RH + 6;
  s += timeAxis(t0, t1, L, W - R, axisY, 4);
  s += '<line x1="' + x(now).toFixed(1) + '" y1="' + (T - 8) + '" x2="' + x(now).toFixed(1) + '" y2="' + axisY + '" stroke="#1e8e3e" stroke-dasharray="4 3"/>';
  s += '<text x="' + x(now).toFixed(1) + '" y="' + (T - 10) + '" text-anchor="middle" fill="#1e8e3e">now</text>';
  let out = svg(W, H, s, "explain-timeline");
  if (rows.length > shown.length) out += '<p class="muted">' + (rows.length - shown.length) + " more rows are not drawn.</p>";
  out += '<p class="muted">Red: deleted snapshots, from deletion to when the newest of their data leaves (the bar marks when data older than a day before deletion leaves). Blue: packs holding garbage, from now to their earliest deletion (the bar marks when a rewrite copies their live contents out). A faint bar with “?” does not leave within the simulated schedule.</p>';
  return out;
}

function cycle(name, c, next) {
  return "<dt>" + name + "</dt><dd>" + (c.enabled ? "every " + esc(goDuration(c.interval)) + ", next " + esc(when(next) || "now") : "disabled") + "</dd>";
}

async function pageMaintenance() {
  setActive("nav-maintenance");
  const [m, x] = await Promise.all([api("/api/v1/kopr/maintenance"), api("/api/v1/kopr/maintenance/explain")]);
  let h = '<h1>Maintenance</h1><div class="card"><dl id="maintenance-info"><dt>Owner</dt><dd id="maintenance-owner">' + esc(m.owner) + "</dd>" +
    cycle("Quick cycle", m.quick, m.schedule.nextQuickMaintenance) + cycle("Full cycle", m.full, m.schedule.nextFullMaintenance) +
    "<dt>Packs emptied when unused beyond</dt><dd>" + esc(m.maxUnusedPercentEffective) + "%</dd></dl></div>";
  h += '<h2>Recent runs</h2><table id="maintenance-runs"><tr><th>Task</th><th>Started</th><th>Took</th><th>Result</th></tr>';
  let any = false;
  for (const task of Object.keys(m.schedule.runs || {})) {
    (m.schedule.runs[task] || []).forEach((r, i) => {
      any = true;
      const took = ((new Date(r.end) - new Date(r.start)) / 1000).toFixed(1) + " s";
      const msg = (m.runMessages[task] || [])[i] || "";
      h += "<tr><td>" + esc(task) + "</td><td>" + esc(when(r.start)) + "</td><td>" + esc(took) + '</td><td class="' + (r.success ? "ok" : "error") + '">' + esc(msg) + "</td></tr>";
    });
  }
  if (!any) h += '<tr><td colspan="4" class="muted">No maintenance has run yet.</td></tr>';
  h += "</table>";
  h += "<h2>When deleted data leaves the bucket</h2>";
  h += '<p id="explain-summary">Safety ' + esc(x.safety) + "; full maintenance " + (x.fullEnabled ? "every " + esc(x.fullInterval) + ", next " + esc(when(x.nextFullCycle) || "now") : "disabled") +
    "; " + esc(x.gcRuns) + " snapshot GC runs on record. A full cycle now would delete " + esc(x.fullCycleNow.blobs) + " blobs (" + esc(bytes(x.fullCycleNow.bytes)) +
    "); with safety none " + esc(x.fullCycleNowSafetyNone.blobs) + " (" + esc(bytes(x.fullCycleNowSafetyNone.bytes)) + ").</p>";
  h += explainTimeline(x);
  if (x.byRule.length) {
    h += '<h2>Held back, by rule</h2><table id="explain-rules"><tr><th>Rule</th><th class="num">Blobs</th><th class="num">Bytes</th><th>Earliest deletion</th></tr>';
    for (const t of x.byRule) h += "<tr><td>" + esc(t.description) + '</td><td class="num">' + esc(t.blobs) + '</td><td class="num">' + esc(bytes(t.bytes)) + "</td><td>" + esc(when(t.earliestDeletion) || "not within the schedule") + "</td></tr>";
    h += "</table>";
  }
  main.innerHTML = h;
}

// ---------- routing ----------

async function route() {
  if (taskTimer) { clearTimeout(taskTimer); taskTimer = null; }
  const hash = location.hash.replace(/^#/, "") || "/";
  const [path, query] = hash.split("?");
  const params = new URLSearchParams(query || "");
  try {
    if (path === "/") await pageSources();
    else if (path === "/snapshots") await pageSnapshots(params);
    else if (path.startsWith("/browse/")) await pageBrowse(decodeURIComponent(path.slice(8)), params);
    else if (path.startsWith("/task/")) await pageTask(decodeURIComponent(path.slice(6)));
    else if (path === "/tasks") await pageTasks();
    else if (path === "/status") await pageStatus();
    else if (path === "/maintenance") await pageMaintenance();
    else main.innerHTML = '<p class="error">No such page.</p>';
    document.body.dataset.page = path.split("/")[1] || "sources";
    document.body.dataset.loaded = String(Date.now());
  } catch (e) { fail(e); }
}

window.addEventListener("hashchange", route);
route();
