// The chat page: signs in with the token `user:<name>`, joins rooms and shows their
// messages and members live, with the TypeScript client and the types generated from
// `examples/chat/service.rs`.
//
// `?name=alice` presets the name field.

import { WitRpcClient, UnauthorizedError, type ConnectionState } from "../../../../clients/typescript/src/index.js";
import { ChatServiceClient } from "./generated/chat_service.js";

const $ = <T extends HTMLElement = HTMLElement>(id: string): T => {
  const element = document.getElementById(id);
  if (!element) throw new Error(`missing #${id}`);
  return element as T;
};

/** Lines kept per room: the page never grows without bound. */
const LINES_PER_ROOM = 200;

type Line = { kind: "message"; user: string; text: string } | { kind: "system"; text: string };

interface Room {
  name: string;
  members: Set<string>;
  lines: Line[];
  unread: number;
  /** While a Join is in flight: the room's events, applied after the member snapshot. */
  pending: Array<() => void> | null;
}

let client: WitRpcClient | undefined;
let chat: ChatServiceClient | undefined;
let me = "";
let unsubscribe: Array<() => void> = [];
const rooms = new Map<string, Room>();
let active: string | undefined;
/** Chat events this page received, for every room: what the browser test counts. */
let received = 0;

function counted<A extends unknown[]>(listener: (...args: A) => void): (...args: A) => void {
  return (...args: A) => {
    received += 1;
    document.body.dataset.events = String(received);
    listener(...args);
  };
}

function showError(message: string | undefined): void {
  const banner = $("error");
  banner.textContent = message ?? "";
  banner.hidden = !message;
}

function describe(error: unknown): string {
  if (error instanceof UnauthorizedError) return "the server refused that name; use 1 to 32 characters, no spaces around it";
  if (error && typeof error === "object" && "details" in error && typeof error.details === "string") return error.details;
  return error instanceof Error ? error.message : String(error);
}

function setState(state: ConnectionState | "closed"): void {
  $("status").dataset.state = state;
  const names: Record<string, string> = {
    connecting: "connecting…",
    open: `signed in as ${me}`,
    reconnecting: "reconnecting…",
    closed: "signed out",
  };
  $("status-text").textContent = names[state] ?? state;
  $("login").hidden = state !== "closed";
  $("chat").hidden = state === "closed";
  $<HTMLButtonElement>("login-button").disabled = state === "connecting";
  renderRoom();
}

function push(room: Room, line: Line): void {
  room.lines.push(line);
  if (room.lines.length > LINES_PER_ROOM) room.lines.splice(0, room.lines.length - LINES_PER_ROOM);
  if (room.name !== active) room.unread += 1;
}

/** Applies `change` to `room` now, or after its Join returns. */
function onRoom(name: string, change: (room: Room) => void): void {
  const room = rooms.get(name);
  if (!room) return; // not (or no longer) in it: the server does not send these
  if (room.pending) room.pending.push(() => change(room));
  else change(room);
  renderRooms();
  if (name === active) renderRoom();
}

function renderRooms(): void {
  const list = $("rooms");
  list.replaceChildren(
    ...[...rooms.values()].map((room) => {
      const item = document.createElement("li");
      item.dataset.room = room.name;
      item.setAttribute("aria-current", String(room.name === active));
      const name = document.createElement("span");
      name.textContent = `# ${room.name}`;
      const unread = document.createElement("span");
      unread.className = "unread";
      unread.textContent = room.unread > 0 ? String(room.unread) : "";
      item.append(name, unread);
      item.addEventListener("click", () => select(room.name));
      return item;
    }),
  );
}

function renderRoom(): void {
  const room = active ? rooms.get(active) : undefined;
  $("room-title").textContent = room ? `# ${room.name}` : "Join a room";
  $("chat").dataset.room = room?.name ?? "";
  const ready = !!room && !room.pending && client?.state === "open";
  for (const id of ["text", "send", "leave"]) $<HTMLInputElement>(id).disabled = !ready;
  const messages = $("messages");
  messages.replaceChildren(
    ...(room?.lines ?? []).map((line) => {
      const item = document.createElement("li");
      if (line.kind === "system") {
        item.className = "system";
        item.textContent = line.text;
        return item;
      }
      item.dataset.user = line.user;
      if (line.user === me) item.className = "mine";
      const user = document.createElement("span");
      user.className = "user";
      user.textContent = line.user;
      const text = document.createElement("span");
      text.className = "text";
      text.textContent = line.text;
      item.append(user, text);
      return item;
    }),
  );
  messages.scrollTop = messages.scrollHeight;
  $("members").replaceChildren(
    ...[...(room?.members ?? [])].sort().map((name) => {
      const item = document.createElement("li");
      item.dataset.user = name;
      item.textContent = name === me ? `${name} (you)` : name;
      return item;
    }),
  );
}

function select(name: string | undefined): void {
  active = name;
  const room = name ? rooms.get(name) : undefined;
  if (room) room.unread = 0;
  renderRooms();
  renderRoom();
}

/** Joins `room` (again, after a reconnect): the member snapshot, then the events that came meanwhile. */
async function enter(room: Room): Promise<void> {
  if (!chat) return;
  room.pending = [];
  renderRoom();
  const members = await chat.join(room.name);
  room.members = new Set(members);
  const pending = room.pending ?? [];
  room.pending = null;
  for (const change of pending) change();
  renderRooms();
  renderRoom();
}

async function join(name: string): Promise<void> {
  showError(undefined);
  const existing = rooms.get(name);
  if (existing) return select(name);
  const room: Room = { name, members: new Set(), lines: [], unread: 0, pending: [] };
  rooms.set(name, room);
  try {
    await enter(room);
    select(name);
  } catch (error) {
    rooms.delete(name);
    renderRooms();
    showError(`Cannot join: ${describe(error)}`);
  }
}

async function leave(): Promise<void> {
  const name = active;
  if (!chat || !name) return;
  try {
    await chat.leave(name);
    rooms.delete(name);
    select(rooms.keys().next().value);
  } catch (error) {
    showError(`Cannot leave: ${describe(error)}`);
  }
}

async function send(): Promise<void> {
  const input = $<HTMLInputElement>("text");
  const name = active;
  if (!chat || !name || !input.value.trim()) return;
  const text = input.value;
  try {
    await chat.send(name, text);
    input.value = "";
  } catch (error) {
    showError(`Not sent: ${describe(error)}`);
  }
}

async function signIn(): Promise<void> {
  await signOut();
  showError(undefined);
  me = $<HTMLInputElement>("name").value.trim();
  const url = `${location.protocol === "https:" ? "wss" : "ws"}://${location.host}/ws`;
  setState("connecting");
  try {
    const connected = await WitRpcClient.connect(url, { token: `user:${me}`, timeoutMs: 10_000 });
    client = connected;
    chat = new ChatServiceClient(connected);
    let wasReconnecting = false;
    unsubscribe = [
      connected.onStateChange((state) => {
        setState(state);
        if (state === "reconnecting") wasReconnecting = true;
        // A new connection is in no room: join them all again.
        if (state === "open" && wasReconnecting) {
          wasReconnecting = false;
          for (const room of rooms.values()) enter(room).catch((e) => showError(`Cannot rejoin ${room.name}: ${describe(e)}`));
        }
      }),
      chat.on(
        "Message",
        counted((room, user, text) => onRoom(room, (r) => push(r, { kind: "message", user, text }))),
      ),
      chat.on(
        "Joined",
        counted((room, user) =>
          onRoom(room, (r) => {
            r.members.add(user);
            push(r, { kind: "system", text: `${user} joined` });
          }),
        ),
      ),
      chat.on(
        "Left",
        counted((room, user) =>
          onRoom(room, (r) => {
            r.members.delete(user);
            push(r, { kind: "system", text: `${user} left` });
          }),
        ),
      ),
    ];
    $("me").textContent = me;
    setState("open");
    $("room").focus();
  } catch (error) {
    client = undefined;
    chat = undefined;
    setState("closed");
    showError(`Cannot sign in: ${describe(error)}`);
  }
}

async function signOut(): Promise<void> {
  for (const off of unsubscribe) off();
  unsubscribe = [];
  const old = client;
  client = undefined;
  chat = undefined;
  rooms.clear();
  active = undefined;
  renderRooms();
  if (old) await old.close();
  setState("closed");
}

function form(id: string, action: () => Promise<void>): void {
  $<HTMLFormElement>(id).addEventListener("submit", (event) => {
    event.preventDefault();
    void action();
  });
}

form("login-form", signIn);
form("join-form", async () => {
  const input = $<HTMLInputElement>("room");
  const name = input.value.trim();
  if (!name) return;
  await join(name);
  if (rooms.has(name)) input.value = "";
});
form("send-form", send);
$("leave").addEventListener("click", () => void leave());
$("logout").addEventListener("click", () => void signOut());
$<HTMLInputElement>("name").value = new URLSearchParams(location.search).get("name") ?? "";
setState("closed");
