// The sockplay admin page: one Server-Sent Events stream (/api/stream)
// brings the status ("status"), each event ("event") and each trace record
// ("trace"); nothing is loaded from anywhere else.
"use strict";

const scope = location.pathname.startsWith("/plugins/") ? decodeURIComponent(location.pathname.slice(9)) : "";
const $ = (sel) => document.querySelector(sel);
const MAX_EVENTS = 200, MAX_TRACE_CONNS = 40, MAX_TRACE_RECS = 200;
let serverSkew = 0; // server time minus ours, so that ages are right

function el(tag, attrs, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (k === "class") e.className = v; else if (k === "text") e.textContent = v; else e.setAttribute(k, v);
  }
  for (const c of children) e.append(c);
  return e;
}

function bytes(n) {
  if (n === undefined || n === null) return "–";
  if (n < 1024) return n + " B";
  const u = ["KiB", "MiB", "GiB", "TiB"];
  let i = -1;
  do { n /= 1024; i++; } while (n >= 1024 && i < u.length - 1);
  return n.toFixed(n < 10 ? 1 : 0) + " " + u[i];
}

function age(seconds) {
  if (seconds < 0) seconds = 0;
  if (seconds < 1) return Math.round(seconds * 1000) + " ms";
  if (seconds < 60) return seconds.toFixed(seconds < 10 ? 1 : 0) + " s";
  const m = Math.floor(seconds / 60);
  if (m < 60) return m + " min " + Math.floor(seconds % 60) + " s";
  const h = Math.floor(m / 60);
  return h + " h " + (m % 60) + " min";
}

function now() { return Date.now() + serverSkew; }
function clock(t) { return new Date(t).toTimeString().slice(0, 8) + "." + String(new Date(t).getMilliseconds()).padStart(3, "0"); }

function renderStatus(msg) {
  serverSkew = Date.parse(msg.now) - Date.now();
  const st = msg.status;
  const state = st.host_state || "running";
  $("#host").textContent = "host pid " + st.host_pid + (state !== "running" ? " (" + state + ")" : "") +
    (st.admin ? " · " + st.admin : "");
  const tbody = $("#plugins tbody");
  tbody.replaceChildren();
  for (const p of st.plugins || []) {
    if (scope && p.name !== scope) continue;
    const up = p.started && p.state === "running" ? age((now() - Date.parse(p.started)) / 1000) : "–";
    const refused = Object.values(p.refused || {}).reduce((a, b) => a + b, 0);
    const tr = el("tr", { "data-plugin": p.name },
      el("td", {}, el("a", { href: "/plugins/" + encodeURIComponent(p.name), text: p.name })),
      el("td", {}, el("span", { class: "state " + p.state, text: p.state })),
      el("td", { text: p.pid || "–" }),
      el("td", { text: p.version }),
      el("td", { text: p.transport + " " + p.addr }),
      el("td", { class: "num conns-active", text: p.conns_active ?? 0 }),
      el("td", { class: "num conns-total", text: p.conns_total ?? 0 }),
      el("td", { class: "num", text: bytes(p.bytes_in) }),
      el("td", { class: "num", text: bytes(p.bytes_out) }),
      el("td", { class: "num", text: p.restarts }),
      el("td", { class: "num", text: p.panics ?? 0 }),
      el("td", { class: "num", text: refused }),
      el("td", { text: up }),
      el("td", { text: (p.events || "–") + (p.trace ? ", trace" : "") }));
    tbody.append(tr);
  }
  const conns = $("#conns tbody");
  conns.replaceChildren();
  for (const c of msg.connections || []) {
    conns.append(el("tr", { "data-conn": c.plugin + "/" + c.pid + "/" + c.conn },
      el("td", { text: c.plugin }),
      el("td", { class: "num", text: c.conn }),
      el("td", { text: c.peer }),
      el("td", { text: age((now() - Date.parse(c.opened)) / 1000) }),
      el("td", { class: "num", text: c.traced_in ? bytes(c.traced_in) + "+" : "–" }),
      el("td", { class: "num", text: c.traced_out ? bytes(c.traced_out) + "+" : "–" })));
  }
  const shown = (msg.connections || []).length, count = msg.open_count ?? shown;
  $("#conns-count").textContent = "(" + count + (count > shown ? ", the oldest " + shown + " shown" : "") + ")";
}

function describe(e) {
  switch (e.kind) {
    case "open": return "conn " + e.conn + " from " + e.peer;
    case "close": return "conn " + e.conn + " " + e.peer + ": " + e.reason + ", " + age(e.duration_seconds || 0) +
      ", " + bytes(e.bytes_in || 0) + " in, " + bytes(e.bytes_out || 0) + " out";
    case "refused": return e.peer + ": " + e.reason;
    case "exit": return "pid " + e.pid + " exited: " + (e.detail || "");
    case "restart": return "pid " + e.pid + " serves" + (e.detail ? " (" + e.detail + ")" : "");
    case "failed": return e.detail || "";
  }
  return e.detail || "";
}

function addEvent(e) {
  const list = $("#events");
  const li = el("li", { class: "ev " + e.kind, "data-kind": e.kind },
    el("span", { class: "t", text: clock(Date.parse(e.time)) }),
    el("span", { class: "p", text: e.plugin }),
    el("span", { class: "k " + e.kind, text: e.kind }),
    el("span", { class: "d", text: describe(e) }));
  list.prepend(li);
  while (list.children.length > MAX_EVENTS) list.lastChild.remove();
}

function decode(b64) {
  const s = atob(b64 || "");
  const b = new Uint8Array(s.length);
  for (let i = 0; i < s.length; i++) b[i] = s.charCodeAt(i);
  return b;
}

// escaped shows bytes as text the way `sockplay trace` does: printable
// ASCII as itself, \n \r \t \\ and \xNN for everything else.
function escaped(b) {
  const out = el("pre", { class: "text" });
  let run = "";
  const flush = () => { if (run) { out.append(run); run = ""; } };
  for (const c of b) {
    if (c >= 0x20 && c < 0x7f && c !== 0x5c) { run += String.fromCharCode(c); continue; }
    flush();
    const name = c === 0x0a ? "\\n" : c === 0x0d ? "\\r" : c === 0x09 ? "\\t" : c === 0x5c ? "\\\\" : "\\x" + c.toString(16).padStart(2, "0");
    out.append(el("span", { class: "esc", text: name }));
    if (c === 0x0a) out.append("\n");
  }
  flush();
  return out;
}

function hexdump(b, offset) {
  const lines = [];
  for (let i = 0; i < b.length; i += 16) {
    const row = Array.from(b.slice(i, i + 16));
    const hex = row.map((x) => x.toString(16).padStart(2, "0")).join(" ");
    const asc = row.map((x) => (x >= 0x20 && x < 0x7f ? String.fromCharCode(x) : ".")).join("");
    lines.push((offset + i).toString(16).padStart(8, "0") + "  " + hex.padEnd(47) + "  " + asc);
  }
  return el("pre", { class: "hex", text: lines.join("\n") });
}

function addTrace(t) {
  $("#trace-section").hidden = false;
  const box = $("#trace");
  const key = t.plugin + "/" + t.pid + "/" + t.conn + (t.conn ? "" : "/" + t.peer);
  let conn = box.querySelector('[data-key="' + CSS.escape(key) + '"]');
  if (!conn) {
    conn = el("div", { class: "tconn", "data-key": key },
      el("h3", { text: t.plugin + (t.conn ? " · conn " + t.conn : " · datagrams") + " · " + t.peer }));
    box.prepend(conn);
    while (box.children.length > MAX_TRACE_CONNS) box.lastChild.remove();
  }
  const data = decode(t.data);
  const arrow = t.direction === "in" ? "▶ client → plugin" : "◀ plugin → client";
  conn.append(el("div", { class: "trec " + t.direction, "data-dir": t.direction },
    el("div", { class: "meta", text: clock(Date.parse(t.time)) + "  " + arrow + "  " + data.length + " bytes at " + t.offset }),
    escaped(data), hexdump(data, t.offset)));
  while (conn.querySelectorAll(".trec").length > MAX_TRACE_RECS) conn.querySelector(".trec").remove();
}

function connect() {
  if (scope) {
    $("#scope").textContent = " / " + scope;
    document.title = scope + " · sockplay";
  }
  const es = new EventSource("/api/stream" + (scope ? "?plugin=" + encodeURIComponent(scope) : ""));
  const live = $("#live");
  es.onopen = () => {
    live.textContent = "● live"; live.className = "live on";
    // A reconnected stream sends the recent history again.
    $("#events").replaceChildren();
    $("#trace").replaceChildren();
  };
  es.onerror = () => { live.textContent = "○ reconnecting"; live.className = "live off"; };
  es.addEventListener("status", (m) => renderStatus(JSON.parse(m.data)));
  es.addEventListener("event", (m) => addEvent(JSON.parse(m.data)));
  es.addEventListener("trace", (m) => addTrace(JSON.parse(m.data)));
}

connect();
