// The dashboard page: connects to the WitRPC endpoint on the page's own origin with the
// TypeScript client and the types generated from `src/dashboard.rs`.
//
// On load the page asks the server (`/settings.json`) whether an access token is needed
// and which format and encryption it uses; when no token is needed it connects at once.
// Query parameters preset the connection form: `?token=…&format=msgpack&encryption=1`,
// and `&connect=1` connects at once. `console_token=…` opens the server's console
// (shown beside the job demo) with its own token.

import { WitRpcClient, type ConnectionState } from "../../../../clients/typescript/src/index.js";
import { DashboardServiceClient, type MetricsSample, type JobProgress } from "./generated/dashboard_service.js";

const $ = <T extends HTMLElement = HTMLElement>(id: string): T => {
  const element = document.getElementById(id);
  if (!element) throw new Error(`missing #${id}`);
  return element as T;
};

const WINDOW = 300; // samples on the chart: 30 s at 10 Hz
const LOG_LIMIT = 200;

let client: WitRpcClient | undefined;
let service: DashboardServiceClient | undefined;
let unsubscribe: Array<() => void> = [];
const samples: MetricsSample[] = [];

function log(kind: "call" | "event" | "error", text: string): void {
  const item = document.createElement("li");
  item.className = kind;
  const time = document.createElement("span");
  time.className = "time";
  time.textContent = new Date().toLocaleTimeString();
  item.append(time, `${kind === "event" ? "◀ " : kind === "call" ? "▶ " : "✖ "}${text}`);
  const list = $("log");
  list.prepend(item);
  while (list.children.length > LOG_LIMIT) list.lastElementChild?.remove();
}

function showError(message: string | undefined): void {
  const banner = $("error");
  banner.textContent = message ?? "";
  banner.hidden = !message;
}

function setState(state: ConnectionState | "closed", detail?: string): void {
  const status = $("status");
  status.dataset.state = state;
  const names: Record<string, string> = { connecting: "connecting…", open: "connected", reconnecting: "reconnecting…", closed: "disconnected" };
  $("status-text").textContent = names[state] ?? state;
  const open = state === "open";
  for (const id of ["start-job", "add"]) $<HTMLButtonElement>(id).disabled = !open;
  $<HTMLButtonElement>("disconnect").disabled = !client;
  $<HTMLButtonElement>("connect").disabled = state === "open" || state === "connecting";
  if (detail) log("error", detail);
}

function drawChart(): void {
  const width = 600;
  const height = 200;
  const points = (value: (s: MetricsSample) => number, max: number) =>
    samples
      .map((s, i) => {
        const x = (width * (i + WINDOW - samples.length)) / (WINDOW - 1);
        const y = height - (height * Math.min(value(s), max)) / max;
        return `${x.toFixed(1)},${y.toFixed(1)}`;
      })
      .join(" ");
  $("cpu-line").setAttribute("points", points((s) => s.CpuPercent, 100));
  $("rps-line").setAttribute("points", points((s) => s.RequestsPerSecond, 2000));
  $("chart").dataset.samples = String(samples.length);
}

function onMetrics(sample: MetricsSample): void {
  samples.push(sample);
  if (samples.length > WINDOW) samples.splice(0, samples.length - WINDOW);
  $("cpu").textContent = `${sample.CpuPercent.toFixed(1)}%`;
  $("memory").textContent = `${sample.MemoryMb.toFixed(0)} MB`;
  $("rps").textContent = sample.RequestsPerSecond.toFixed(0);
  $("clients").textContent = String(sample.ConnectedClients);
  drawChart();
}

function onProgress(progress: JobProgress): void {
  $("progress-bar").style.width = `${progress.Percent}%`;
  $("job-status").textContent = `Job #${progress.JobId}: ${progress.Percent.toFixed(0)}% (${progress.Stage})`;
  log("event", `JobProgress #${progress.JobId} ${progress.Percent.toFixed(0)}% ${progress.Stage}`);
}

async function connect(): Promise<void> {
  await disconnect();
  showError(undefined);
  const token = $<HTMLInputElement>("token").value;
  const format = $<HTMLSelectElement>("format").value as "json" | "msgpack";
  const encryption = $<HTMLInputElement>("encryption").checked;
  const url = `${location.protocol === "https:" ? "wss" : "ws"}://${location.host}/ws`;
  setState("connecting");
  try {
    const connected = await WitRpcClient.connect(url, { token, format, encryption, timeoutMs: 10_000 });
    client = connected;
    service = new DashboardServiceClient(connected);
    unsubscribe = [
      connected.onStateChange((state, error) => setState(state, error ? `connection: ${error.message}` : undefined)),
      service.on("Metrics", onMetrics),
      service.on("JobProgress", onProgress),
      service.on("JobCompleted", (jobId, elapsedMs) => {
        $("job-status").textContent = `Job #${jobId} done in ${elapsedMs.toFixed(0)} ms`;
        log("event", `JobCompleted #${jobId} after ${elapsedMs.toFixed(0)} ms`);
      }),
    ];
    setState("open");
    log("call", `connected to ${url} (${format}${encryption ? ", encrypted" : ""})`);
    const info = await service.getInfo();
    $("server-info").textContent = `${info.Name} ${info.Version} · ${info.Format}${info.Encrypted ? " · encrypted" : ""}`;
    log("call", `GetInfo() → up ${info.UptimeSeconds.toFixed(1)} s`);
    for (const sample of await service.history(WINDOW)) onMetrics(sample);
  } catch (error) {
    const message = error instanceof Error ? `${error.name}: ${error.message}` : String(error);
    client = undefined;
    service = undefined;
    setState("closed");
    showError(`Cannot connect: ${message}`);
    log("error", message);
  }
}

async function disconnect(): Promise<void> {
  for (const off of unsubscribe) off();
  unsubscribe = [];
  const old = client;
  client = undefined;
  service = undefined;
  if (old) {
    await old.close();
    log("call", "disconnected");
  }
  setState("closed");
}

async function add(): Promise<void> {
  if (!service) return;
  const a = Number($<HTMLInputElement>("a").value);
  const b = Number($<HTMLInputElement>("b").value);
  try {
    const sum = await service.add(a, b);
    $("sum").textContent = String(sum);
    log("call", `Add(${a}, ${b}) → ${sum}`);
  } catch (error) {
    log("error", `Add failed: ${(error as Error).message}`);
  }
}

async function startJob(): Promise<void> {
  if (!service) return;
  const steps = Number($<HTMLInputElement>("steps").value);
  try {
    $("progress-bar").style.width = "0%";
    const id = await service.startJob(steps, 50);
    log("call", `StartJob(${steps}, 50) → #${id}`);
  } catch (error) {
    showError(`StartJob failed: ${(error as Error).message}`);
    log("error", `StartJob failed: ${(error as Error).message}`);
  }
}

interface Settings {
  token_required: boolean;
  format: "json" | "msgpack";
  encryption: boolean;
  console_token_required: boolean;
}

/** What the server says the page needs; `undefined` when it does not say. */
async function settings(): Promise<Settings | undefined> {
  try {
    const response = await fetch("/settings.json", { cache: "no-store" });
    return response.ok ? ((await response.json()) as Settings) : undefined;
  } catch {
    return undefined;
  }
}

/** The console page in its frame; the token travels in the fragment, never to the server's logs. */
function openConsole(token: string | null): void {
  $<HTMLIFrameElement>("console").src = token ? `console/#token=${encodeURIComponent(token)}` : "console/";
}

async function init(): Promise<void> {
  const params = new URLSearchParams(location.search);
  $<HTMLInputElement>("token").value = params.get("token") ?? "";
  $<HTMLSelectElement>("format").value = params.get("format") === "msgpack" ? "msgpack" : "json";
  $<HTMLInputElement>("encryption").checked = params.get("encryption") === "1";
  $("connect-form").addEventListener("submit", (e) => {
    e.preventDefault();
    void connect();
  });
  $("disconnect").addEventListener("click", () => void disconnect());
  $("add").addEventListener("click", () => void add());
  $("start-job").addEventListener("click", () => void startJob());
  setState("closed");
  openConsole(params.get("console_token"));
  if (params.get("connect") === "1") return connect();
  const server = await settings();
  if (!server) return;
  if (!params.has("format")) $<HTMLSelectElement>("format").value = server.format;
  if (!params.has("encryption")) $<HTMLInputElement>("encryption").checked = server.encryption;
  if (!server.token_required || params.has("token")) await connect();
}

void init();
