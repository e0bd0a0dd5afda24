// The witrpc console page: polls `figures` (next to this file) with the console token
// and charts the samples. No dependencies; served by the server it shows.

const KEEP = 300; // samples charted (five minutes at one a second)
const TOKEN_KEY = "witrpc-console-token";
const $ = (id) => document.getElementById(id);

const samples = [];
let lastSeq = 0;
let intervalMs = 1000;
let token = takeToken();
let timer;

/** The token from the URL fragment (`#token=...`, never sent to the server), else the session's. */
function takeToken() {
  const fromHash = new URLSearchParams(location.hash.slice(1)).get("token");
  if (fromHash !== null) {
    sessionStorage.setItem(TOKEN_KEY, fromHash);
    history.replaceState(null, "", location.pathname + location.search);
    return fromHash;
  }
  return sessionStorage.getItem(TOKEN_KEY) ?? "";
}

function setStatus(state, text) {
  $("status").dataset.state = state;
  $("status-text").textContent = text;
}

async function poll() {
  clearTimeout(timer);
  let response;
  try {
    response = await fetch(`figures?after=${lastSeq}`, {
      headers: token ? { Authorization: `Bearer ${token}` } : {},
      cache: "no-store",
    });
  } catch {
    setStatus("disconnected", "server unreachable; retrying");
    timer = setTimeout(poll, intervalMs * 2);
    return;
  }
  if (response.status === 401) {
    setStatus("unauthorized", "console token needed");
    $("token-form").hidden = false;
    $("token-error").textContent = token ? "this token was refused (the console has its own token)" : "";
    return; // until a token is entered
  }
  if (!response.ok) {
    setStatus("disconnected", `server answered ${response.status}; retrying`);
    timer = setTimeout(poll, intervalMs * 2);
    return;
  }
  const body = await response.json();
  intervalMs = body.interval_ms || 1000;
  for (const s of body.samples) {
    if (s.seq <= lastSeq) continue;
    samples.push(s);
    lastSeq = s.seq;
  }
  samples.splice(0, Math.max(0, samples.length - KEEP));
  $("token-form").hidden = true;
  setStatus("live", "live");
  render();
  timer = setTimeout(poll, intervalMs);
}

$("token-form").addEventListener("submit", (e) => {
  e.preventDefault();
  token = $("token").value;
  sessionStorage.setItem(TOKEN_KEY, token);
  poll();
});

// ---- formatting ----

function bytes(n) {
  if (n == null) return "–";
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let i = 0;
  while (Math.abs(n) >= 1024 && i < units.length - 1) { n /= 1024; i++; }
  return `${n.toFixed(i === 0 ? 0 : 1)} ${units[i]}`;
}
const fixed = (n, digits = 1) => (n == null ? "–" : n.toFixed(digits));
const ms = (n) => (n == null ? "–" : n < 1 ? `${(n * 1000).toFixed(0)} µs` : `${n.toFixed(n < 10 ? 2 : 0)} ms`);

function show(id, text, value) {
  const el = $(id);
  el.textContent = text;
  if (value !== undefined) el.dataset.value = value == null ? "" : String(value);
}

function render() {
  document.body.dataset.samples = String(samples.length);
  const s = samples[samples.length - 1];
  if (!s) return;
  show("v-connections", String(s.connections_authorized), s.connections_authorized);
  show("v-handshake", `${s.connections_in_handshake} in handshake, ${s.pending_upgrades} upgrading`);
  show("v-calls", fixed(s.calls_per_second), s.calls_per_second);
  show("v-calls-total", `${s.calls_total} total`, s.calls_total);
  show("v-latency", `${ms(s.latency_p50_ms)} / ${ms(s.latency_p99_ms)}`);
  show("v-errors", `${s.call_errors_total} failed calls`);
  show("v-events", fixed(s.events_per_second), s.events_per_second);
  show("v-slow", `${s.slow_consumer_disconnects} slow consumers closed`);
  show("v-bytes", `${bytes(s.bytes_in_per_second)}/s · ${bytes(s.bytes_out_per_second)}/s`);
  const totals = $("v-bytes-total");
  totals.textContent = `${bytes(s.bytes_in_total)} in, ${bytes(s.bytes_out_total)} out`;
  totals.dataset.in = String(s.bytes_in_total);
  totals.dataset.out = String(s.bytes_out_total);
  show("v-queue", bytes(s.outbound_queue_bytes), s.outbound_queue_bytes);
  show("v-buffered", `${bytes(s.write_buffered_bytes)} in socket buffers`);
  show("v-cpu", s.cpu_percent == null ? "n/a" : `${fixed(s.cpu_percent)}%`, s.cpu_percent);
  show("v-rss", s.rss_bytes == null ? "n/a" : bytes(s.rss_bytes), s.rss_bytes);

  const mib = (b) => (b == null ? null : b / 1048576);
  chart("connections", (x) => x.connections_authorized, (x) => x.connections_in_handshake);
  chart("rate", (x) => x.calls_per_second, (x) => x.events_per_second);
  chart("latency", (x) => x.latency_p50_ms, (x) => x.latency_p99_ms);
  chart("bytes", (x) => x.bytes_in_per_second, (x) => x.bytes_out_per_second);
  chart("queue", (x) => x.outbound_queue_bytes, (x) => x.write_buffered_bytes);
  chart("process", (x) => x.cpu_percent, (x) => mib(x.rss_bytes));
}

// ---- charts: two lines per canvas, scaled to the larger one's maximum ----

const colors = () => {
  const style = getComputedStyle(document.documentElement);
  return [style.getPropertyValue("--a").trim(), style.getPropertyValue("--b").trim()];
};

function niceMax(v) {
  if (!(v > 0)) return 1;
  const p = 10 ** Math.floor(Math.log10(v));
  return [1, 2, 5, 10].map((m) => m * p).find((m) => m >= v);
}

function chart(name, ...series) {
  const canvas = document.querySelector(`canvas[data-chart="${name}"]`);
  const ratio = window.devicePixelRatio || 1;
  const w = Math.max(1, Math.round(canvas.clientWidth * ratio));
  const h = Math.max(1, Math.round(canvas.clientHeight * ratio));
  if (canvas.width !== w || canvas.height !== h) { canvas.width = w; canvas.height = h; }
  const ctx = canvas.getContext("2d");
  ctx.clearRect(0, 0, w, h);
  const values = series.map((f) => samples.map(f));
  const max = niceMax(Math.max(0, ...values.flat().filter((v) => v != null)));
  const pad = 4 * ratio;
  ctx.strokeStyle = "#24304f";
  ctx.lineWidth = 1;
  for (const f of [0.25, 0.5, 0.75]) {
    ctx.beginPath(); ctx.moveTo(0, h * f); ctx.lineTo(w, h * f); ctx.stroke();
  }
  ctx.fillStyle = "#8a97b5";
  ctx.font = `${11 * ratio}px system-ui, sans-serif`;
  ctx.fillText(max >= 1024 * 16 && name !== "rate" ? bytes(max) : String(max), pad, 12 * ratio);
  const step = w / Math.max(1, KEEP - 1);
  const x0 = w - (samples.length - 1) * step;
  colors().forEach((color, k) => {
    ctx.strokeStyle = color;
    ctx.lineWidth = 2 * ratio;
    ctx.beginPath();
    let drawing = false;
    values[k].forEach((v, i) => {
      if (v == null) { drawing = false; return; }
      const x = x0 + i * step;
      const y = h - pad - (v / max) * (h - 2 * pad);
      if (drawing) ctx.lineTo(x, y); else ctx.moveTo(x, y);
      drawing = true;
    });
    ctx.stroke();
  });
  canvas.dataset.points = String(samples.length);
}

window.addEventListener("resize", render);
window.witrpcConsole = { samples };
poll();
