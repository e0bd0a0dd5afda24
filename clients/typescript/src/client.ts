// The generic WitRPC client: one WebSocket, the protocol-3 (or, when asked, protocol-2)
// handshake, concurrent calls matched by envelope id, events to listeners and async
// iterators, reconnect with backoff and re-authorization.

import {
  ConnectionClosedError,
  ProtocolError,
  TimeoutError,
  UnauthorizedError,
  WitRpcError,
  responseError,
} from "./errors.js";
import { contractId as computeContractId, methodId as computeMethodId, parameterTypeByName } from "./ids.js";
import {
  MessageType,
  decodeAuthorizationReply,
  decodeEnvelope,
  decodeEvent,
  decodeInitializationReply,
  decodeResponse,
  replayBatchEntries,
  encodeAuthorization,
  encodeEnvelope,
  encodeInitialization,
  encodeRequest,
} from "./memorypack.js";
import { type Cipher, type RsaKey, cbcCipher, clientCipher, generateRsaKey, plainCipher, rsaDecrypt } from "./crypto.js";
import {
  decodeAuthorizationReplyV2,
  decodeInitializationReplyV2,
  decodeRequestV2,
  decodeResponseV2,
  encodeAuthorizationV2,
  encodeInitializationV2,
  encodeRequestV2,
  inferTypeV2,
  typeNameV2,
} from "./v2.js";
import { type Format, type ParameterSerializer, serializerFor } from "./serializer.js";
import { ResumeState } from "./resume.js";

export interface ReconnectOptions {
  /** First delay after a lost connection (default 100 ms); doubles per failed attempt. */
  initialDelayMs?: number;
  /** Longest delay between attempts (default 5000 ms). */
  maxDelayMs?: number;
  /** Attempts before giving up (default unlimited). */
  maxAttempts?: number;
}

export interface ClientOptions {
  /** Parameter serializer; must match the server's (default "json"). */
  format?: Format;
  /** Access token, re-read on every (re)connect and stamped on every request. */
  token?: string | (() => string | Promise<string>);
  /**
   * Gives a fresh access token: called at every (re)connect and, when the server says
   * the token expires (our `token-refresh` extension), again before it does; the new
   * token is sent in-band (no reconnect) at about 80 % of its lifetime (at most 5 s
   * before the expiry, at least half-way). Requests are stamped with it once the
   * server accepted it; a refused refresh closes the client with an
   * {@link UnauthorizedError}. Takes precedence over `token`.
   */
  tokenProvider?: () => string | Promise<string>;
  /**
   * Encryption via WebCrypto; must match the server (default false). Protocol 3:
   * RSA + HKDF + AES-256-GCM. Protocol 2: RSA + AES-256-CBC with a fixed IV (no MAC).
   */
  encryption?: boolean;
  /**
   * Wire protocol (default 3): 3 for witrpc and .NET WitRPC 3.x servers, 2 for .NET
   * WitRPC 2.x servers (and witrpc servers that accept protocol 2).
   */
  protocol?: 2 | 3;
  /** Default per-call timeout in ms (default 30000; 0 = none). */
  timeoutMs?: number;
  /** Reconnect after a lost connection (default on); `false` to stay closed. */
  reconnect?: false | ReconnectOptions;
  /** Time for the WebSocket open and the handshake, in ms (default 10000). */
  connectTimeoutMs?: number;
  /** WebSocket constructor where there is no global one (Node 20: the `ws` package). */
  WebSocket?: unknown;
}

export interface CallOptions {
  /** Aborts the call: the promise rejects with the signal's reason. */
  signal?: AbortSignal;
  /** Overrides the client's default timeout (0 = none). */
  timeoutMs?: number;
  /** The contract's full name (e.g. `WitRpc.Demo.IDemoService`), for the MethodId. */
  contract?: string;
  /**
   * .NET full names of the parameter types (e.g. `System.Int32`): for the MethodId
   * (protocol 3) or the `ParameterTypes` the server dispatches on (protocol 2; without
   * them protocol 2 infers the types of strings, booleans, numbers and byte arrays).
   */
  parameterTypes?: string[];
}

export type ConnectionState = "connecting" | "open" | "reconnecting" | "closed";

type Listener = (...args: any[]) => void;
type StateListener = (state: ConnectionState, error?: Error) => void;

/** What a reconnect did to one event's stream(s); see {@link WitRpcClient.onResumed}. */
export interface ResumeInfo {
  /**
   * `true`: every event missed while disconnected follows, once and in order, then live
   * ones. `false`: the server's history no longer covers the gap (or it restarted):
   * nothing of the gap is replayed, reload what those events describe. `null`: the
   * server does not resume this event (no history for it, or not a witrpc server),
   * events raised meanwhile are lost, as after any reconnect.
   */
  recovered: boolean | null;
}

type ResumeListener = (info: ResumeInfo) => void;

interface Pending {
  resolve(data: Uint8Array | null): void;
  reject(error: Error): void;
  /** The socket the request went out on; unset while it waits for the connection. */
  socket?: Socket;
}

/** The browser's WebSocket shape that both browsers and the `ws` package provide. */
interface Socket {
  binaryType: string;
  readyState: number;
  send(data: Uint8Array): void;
  close(code?: number, reason?: string): void;
  onopen: ((ev: unknown) => void) | null;
  onmessage: ((ev: { data: unknown }) => void) | null;
  onclose: ((ev: { code: number; reason: string }) => void) | null;
  onerror: ((ev: unknown) => void) | null;
}

type SocketConstructor = new (url: string) => Socket;

function hex(id: Uint8Array): string {
  let s = "";
  for (const b of id) s += b.toString(16).padStart(2, "0");
  return s;
}

function randomId(): Uint8Array {
  return globalThis.crypto.getRandomValues(new Uint8Array(16));
}

/** Reports an error thrown by a user's listener without breaking the connection. */
function reportListenerError(error: unknown): void {
  const report = (globalThis as { reportError?: (e: unknown) => void }).reportError;
  if (typeof report === "function") report(error);
  else console.error("witrpc-client: an event listener threw", error);
}

function abortReason(signal: AbortSignal): Error {
  const reason: unknown = signal.reason;
  if (reason instanceof Error) return reason;
  return new DOMException("the call was aborted", "AbortError");
}

/** Our wire extensions announced at Initialization (ARCHITECTURE.md, "Wire extensions of ours"). */
const ANNOUNCED_EXTENSIONS = "witrpc/1 token-refresh resume replay-batch";

/** Whether the server's `Extensions` answer accepts `feature` (`token-refresh`, `resume`, `replay-batch`). */
function accepts(extensions: string | null, feature: string): boolean {
  const tokens = (extensions ?? "").split(/\s+/).filter((t) => t.length > 0);
  return tokens[0] === "witrpc/1" && tokens.includes(feature);
}

/**
 * Wait before refreshing a token that expires in `remainingMs`: 80 % of it, at most
 * 5 s before the expiry, never before half-way (no refresh loop for short tokens).
 */
export function refreshDelayMs(remainingMs: number): number {
  const remaining = Math.max(0, remainingMs);
  const margin = Math.max(remaining / 5, Math.min(5000, remaining / 2));
  return Math.max(Math.min(100, remaining), remaining - margin);
}

/** What a .NET 2.x server's null Initialization reply tells a protocol-3 client. */
const SERVER_SPEAKS_2 = "the server speaks protocol 2 (WitRPC 2.x)";

/** An event's name and arguments from a protocol-2 Callback payload. */
function eventV2(data: Uint8Array): { name: string; parameters: Uint8Array[] } {
  const q = decodeRequestV2(data);
  return { name: q.methodName, parameters: q.parameters };
}

/**
 * The protocol-2 Initialization reply: `{SymmetricKey, Vector}`, RSA-wrapped when the
 * client sent a key. Returns the connection's cipher, or says why the server refused.
 */
async function initializeV2(reply: Uint8Array | null, rsa: RsaKey | undefined): Promise<Cipher> {
  if (!reply) {
    // What a protocol-2 server answers when it refuses: nothing says why.
    throw new ProtocolError(
      "the server refused the protocol-2 initialization (empty reply): its encryption setting may differ from `encryption`, or it does not accept protocol 2",
    );
  }
  let plain = reply;
  if (rsa) {
    try {
      plain = await rsaDecrypt(rsa, reply);
    } catch {
      // A clear reply: a server without encryption, or a protocol-3 refusal; read on.
    }
  }
  if (plain[0] !== 2) {
    let refusal: string | null = null;
    try {
      refusal = decodeInitializationReply(plain).errorMessage;
    } catch {
      throw new ProtocolError("the server's initialization reply is neither protocol 2 nor protocol 3");
    }
    throw new ProtocolError(`the server speaks protocol 3 (WitRPC 3.x): connect with \`protocol: 3\`${refusal ? ` (${refusal})` : ""}`);
  }
  const init = decodeInitializationReplyV2(plain);
  const key = init.symmetricKey ?? new Uint8Array();
  const vector = init.vector ?? new Uint8Array();
  if (rsa) {
    if (plain === reply) throw new ProtocolError("the server does not use encryption: connect without `encryption: true`");
    return cbcCipher(key, vector);
  }
  if (key.length > 1 || vector.length > 1) {
    throw new ProtocolError("the server requires encryption: connect with `encryption: true`");
  }
  return plainCipher;
}

/**
 * A connection to a WitRPC server. Create it with {@link WitRpcClient.connect}.
 *
 * ```ts
 * const client = await WitRpcClient.connect("ws://127.0.0.1:5000/ws", { token: "secret" });
 * const sum = await client.call<number>("Add", [2, 3]);
 * client.on("ProgressChanged", (percent: number) => console.log(percent));
 * ```
 */
export class WitRpcClient {
  private socket: Socket | undefined;
  private cipher: Cipher = plainCipher;
  private readonly pending = new Map<string, Pending>();
  private readonly listeners = new Map<string, Set<Listener>>();
  private readonly stateListeners = new Set<StateListener>();
  /** Ends each open `events()` iterator; run when the client closes for good. */
  private readonly iteratorEnds = new Set<() => void>();
  private readonly serializer: ParameterSerializer;
  private readonly SocketImpl: SocketConstructor;
  private sendChain: Promise<unknown> = Promise.resolve();
  private receiveChain: Promise<unknown> = Promise.resolve();
  private rsaKey: Promise<RsaKey> | undefined;
  private currentToken = "";
  /** The server accepted our `token-refresh` extension on the current connection. */
  private tokenRefresh = false;
  private refreshTimer: ReturnType<typeof setTimeout> | undefined;
  /** The server accepted our `resume` extension on the current connection. */
  private resume = false;
  /** The server accepted `replay-batch`: a resume's replay may come packed. */
  private replayBatch = false;
  /**
   * The last handshake found our extensions: the next one (protocol 3, unencrypted)
   * sends its Authorization right behind the Initialization, one round trip instead of
   * two. Every witrpc and .NET 3.x server reads a connection's messages in order.
   */
  private pipeline = false;
  /** Positions per stream; outlives the connections. */
  private readonly resumeState = new ResumeState();
  private readonly resumeListeners = new Map<string, Set<ResumeListener>>();
  /** A connection on which a gap was seen: nothing more of it is delivered. */
  private gapped: Socket | undefined;
  private stateValue: ConnectionState = "connecting";
  private closedByUser = false;
  private openWaiters: Array<() => void> = [];
  private readonly protocol: 2 | 3;

  private constructor(private readonly url: string, private readonly options: ClientOptions) {
    this.serializer = serializerFor(options.format ?? "json");
    const protocol = options.protocol ?? 3;
    if (protocol !== 2 && protocol !== 3) throw new TypeError(`unknown protocol ${JSON.stringify(protocol)}; use 2 or 3`);
    this.protocol = protocol;
    const ctor = options.WebSocket ?? (globalThis as { WebSocket?: unknown }).WebSocket;
    if (typeof ctor !== "function") {
      throw new TypeError("no WebSocket implementation: pass one as `WebSocket` (e.g. from the `ws` package)");
    }
    this.SocketImpl = ctor as SocketConstructor;
  }

  /** Connects, runs the handshake (encryption, token) and resolves when calls can be made. */
  static async connect(url: string, options: ClientOptions = {}): Promise<WitRpcClient> {
    const client = new WitRpcClient(url, options);
    try {
      await client.attempt();
    } catch (error) {
      client.closedByUser = true;
      client.setState("closed", error as Error);
      throw error;
    }
    client.setState("open");
    return client;
  }

  /** The wire protocol this client speaks (the `protocol` option). */
  get protocolVersion(): 2 | 3 {
    return this.protocol;
  }

  /** Where the connection is. */
  get state(): ConnectionState {
    return this.stateValue;
  }

  /** Calls `listener` whenever the state changes; returns the unsubscribe function. */
  onStateChange(listener: StateListener): () => void {
    this.stateListeners.add(listener);
    return () => this.stateListeners.delete(listener);
  }

  /** Calls `listener` with the arguments of every `event`; returns the unsubscribe function. */
  on(event: string, listener: Listener): () => void {
    let set = this.listeners.get(event);
    if (!set) this.listeners.set(event, (set = new Set()));
    set.add(listener);
    return () => {
      set.delete(listener);
    };
  }

  /**
   * Calls `listener` after every reconnect with whether the events of `event` missed
   * meanwhile follow ({@link ResumeInfo}); it runs before any event of the new
   * connection is delivered. Against a server that keeps history of `event` (our
   * `resume` extension) the client resumes by itself: it remembers the last position of
   * each stream, asks for what followed, drops duplicates, and drops the connection (to
   * resume) when a running stream skips an event. Returns the unsubscribe function.
   *
   * ```ts
   * client.onResumed("PriceChanged", ({ recovered }) => {
   *   if (recovered !== true) void reloadPrices(); // the gap is not replayed
   * });
   * ```
   */
  onResumed(event: string, listener: ResumeListener): () => void {
    let set = this.resumeListeners.get(event);
    if (!set) this.resumeListeners.set(event, (set = new Set()));
    set.add(listener);
    return () => {
      set.delete(listener);
    };
  }

  /** Whether the server accepted our `resume` extension on the current connection. */
  get resumeAccepted(): boolean {
    return this.resume;
  }

  /** The arguments of every `event`, in arrival order, until `signal` aborts or the loop breaks. */
  events(event: string, options: { signal?: AbortSignal } = {}): AsyncIterableIterator<unknown[]> {
    const queue: unknown[][] = [];
    let wake: ((r: IteratorResult<unknown[]>) => void) | undefined;
    let done = false;
    const finish = () => {
      done = true;
      this.iteratorEnds.delete(finish);
      off();
      options.signal?.removeEventListener("abort", finish);
      wake?.({ value: undefined, done: true });
      wake = undefined;
    };
    const off = this.on(event, (...args: unknown[]) => {
      if (wake) {
        const w = wake;
        wake = undefined;
        w({ value: args, done: false });
      } else {
        queue.push(args);
      }
    });
    this.iteratorEnds.add(finish);
    if (options.signal?.aborted || this.stateValue === "closed") finish();
    options.signal?.addEventListener("abort", finish);
    const iterator: AsyncIterableIterator<unknown[]> = {
      next: () => {
        const value = queue.shift();
        if (value) return Promise.resolve({ value, done: false });
        if (done) return Promise.resolve({ value: undefined, done: true });
        return new Promise((resolve) => (wake = resolve));
      },
      return: () => {
        finish();
        return Promise.resolve({ value: undefined, done: true });
      },
      [Symbol.asyncIterator]: () => iterator,
    };
    return iterator;
  }

  /**
   * Calls `method` with `args`; resolves with the decoded result (`null` for void).
   * Rejects with a {@link WitRpcError} subclass, or the signal's reason when aborted.
   */
  async call<T = unknown>(method: string, args: unknown[], options: CallOptions = {}): Promise<T> {
    const timeoutMs = options.timeoutMs ?? this.options.timeoutMs ?? 30_000;
    if (options.signal?.aborted) throw abortReason(options.signal);
    if (this.stateValue === "closed") throw new ConnectionClosedError("the client is closed");
    const parameters = args.map((a) => this.serializer.encode(a));
    const types = options.parameterTypes ?? [];
    const contract = options.contract;
    // Protocol 2 dispatches on the .NET parameter types: known (generated clients) or inferred.
    const typesV2 =
      this.protocol === 2 ? (options.parameterTypes?.map(typeNameV2) ?? args.map((a, i) => inferTypeV2(a, method, i))) : [];
    const id = randomId();
    const key = hex(id);
    return new Promise<T>((resolve, reject) => {
      let timer: ReturnType<typeof setTimeout> | undefined;
      const cleanup = () => {
        this.pending.delete(key);
        if (timer !== undefined) clearTimeout(timer);
        options.signal?.removeEventListener("abort", onAbort);
      };
      const onAbort = () => {
        cleanup();
        reject(abortReason(options.signal as AbortSignal));
      };
      options.signal?.addEventListener("abort", onAbort);
      if (timeoutMs > 0) {
        timer = setTimeout(() => {
          cleanup();
          reject(new TimeoutError(`${method} did not answer within ${timeoutMs} ms`));
        }, timeoutMs);
      }
      this.pending.set(key, {
        resolve: (data) => {
          cleanup();
          try {
            resolve(this.readResponse(method, data) as T);
          } catch (e) {
            reject(e);
          }
        },
        reject: (e) => {
          cleanup();
          reject(e);
        },
      });
      void this.whenOpen()
        .then(() => {
          const entry = this.pending.get(key);
          if (!entry) return;
          entry.socket = this.socket;
          const payload =
            this.protocol === 2
              ? encodeRequestV2({ token: this.currentToken, methodName: method, parameters, parameterTypes: typesV2 })
              : encodeRequest({
                  token: this.currentToken,
                  methodName: method,
                  parameters,
                  parameterTypesByName: types.map(parameterTypeByName),
                  invocationId: randomId(),
                  contractId: contract ? computeContractId(contract) : 0n,
                  methodId: contract && options.parameterTypes ? computeMethodId(contract, method, types) : 0n,
                });
          this.send(id, MessageType.Request, payload, true).catch((e) => this.pending.get(key)?.reject(e));
        })
        .catch((e) => this.pending.get(key)?.reject(e));
    });
  }

  /** Closes the connection; pending calls reject with {@link ConnectionClosedError}. */
  async close(): Promise<void> {
    if (this.closedByUser && this.stateValue === "closed") return;
    this.closedByUser = true;
    clearTimeout(this.refreshTimer);
    this.refreshTimer = undefined;
    const socket = this.socket;
    this.failPending(new ConnectionClosedError("the client was closed"));
    this.setState("closed");
    for (const w of this.openWaiters.splice(0)) w();
    if (socket && socket.readyState < 2) {
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, 1000);
        socket.onclose = () => {
          clearTimeout(timer);
          resolve();
        };
        socket.close(1000, "client closed");
      });
    }
  }

  // ---- internals ------------------------------------------------------------------

  private setState(state: ConnectionState, error?: Error): void {
    if (this.stateValue === state && !error) return;
    this.stateValue = state;
    if (state === "open") for (const w of this.openWaiters.splice(0)) w();
    if (state === "closed") for (const end of [...this.iteratorEnds]) end();
    for (const l of [...this.stateListeners]) {
      try {
        l(state, error);
      } catch {
        // A listener's failure is its own.
      }
    }
  }

  private whenOpen(): Promise<void> {
    if (this.stateValue === "open") return Promise.resolve();
    if (this.stateValue === "closed") return Promise.reject(new ConnectionClosedError("the client is closed"));
    return new Promise((resolve, reject) =>
      this.openWaiters.push(() =>
        this.stateValue === "open" ? resolve() : reject(new ConnectionClosedError("the client is closed")),
      ),
    );
  }

  private readResponse(method: string, data: Uint8Array | null): unknown {
    if (!data) throw new ProtocolError(`empty response to ${method}`);
    const response = this.protocol === 2 ? decodeResponseV2(data) : decodeResponse(data);
    const error = responseError(response);
    if (error) throw error;
    return response.data && response.data.length > 0 ? this.serializer.decode(response.data) : null;
  }

  /** Rejects the calls sent on `socket` (every call when no socket is given). */
  private failPending(error: Error, socket?: Socket): void {
    for (const [key, p] of [...this.pending]) {
      if (socket && p.socket !== socket) continue;
      this.pending.delete(key);
      p.reject(error);
    }
  }

  /** Queues one envelope; sealing and sending keep call order (AEAD counters). */
  private send(id: Uint8Array, type: number, payload: Uint8Array | null, seal: boolean): Promise<void> {
    const socket = this.socket;
    const cipher = this.cipher;
    const next = this.sendChain.then(async () => {
      if (!socket || socket.readyState !== 1 || socket !== this.socket) {
        throw new ConnectionClosedError("the connection is not open");
      }
      const data = payload && seal ? await cipher.seal(payload) : payload;
      socket.send(encodeEnvelope({ id, type, data }));
    });
    this.sendChain = next.catch(() => undefined);
    return next;
  }

  /**
   * Sends a handshake message and waits for the reply with the same id; `onReply` runs
   * on it synchronously, before the next inbound message is handled.
   */
  private exchange(
    type: number,
    payload: Uint8Array,
    seal: boolean,
    onReply?: (reply: Uint8Array | null) => void,
  ): Promise<Uint8Array | null> {
    const id = randomId();
    const key = hex(id);
    return new Promise((resolve, reject) => {
      this.pending.set(key, {
        resolve: (d) => {
          this.pending.delete(key);
          try {
            onReply?.(d);
          } catch (e) {
            reject(e);
            return;
          }
          resolve(d);
        },
        reject: (e) => {
          this.pending.delete(key);
          reject(e);
        },
        socket: this.socket,
      });
      this.send(id, type, payload, seal).catch(reject);
    });
  }

  /** One connection attempt: socket, Initialization, Authorization. */
  private async attempt(): Promise<void> {
    const timeoutMs = this.options.connectTimeoutMs ?? 10_000;
    let timer: ReturnType<typeof setTimeout> | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => {
        reject(new TimeoutError(`no connection to ${this.url} within ${timeoutMs} ms`));
        this.socket?.close();
      }, timeoutMs);
    });
    try {
      await Promise.race([this.handshake(), timeout]);
    } finally {
      clearTimeout(timer);
    }
  }

  private async handshake(): Promise<void> {
    const token = await this.freshToken();
    const encryption = this.options.encryption ?? false;
    // A fresh key pair per connection: one is made when none is kept, and it is kept
    // only until a socket opens (it is sent then). An attempt whose socket never opened
    // leaves it to the next one.
    if (encryption) this.rsaKey ??= generateRsaKey(this.protocol === 2);
    const rsa = encryption
      ? await this.rsaKey?.catch((e: unknown) => {
          this.rsaKey = undefined;
          throw e;
        })
      : undefined;
    this.cipher = plainCipher;
    const socket = new this.SocketImpl(this.url);
    socket.binaryType = "arraybuffer";
    this.socket = socket;
    let closeInfo = "";
    await new Promise<void>((resolve, reject) => {
      socket.onopen = () => {
        if (rsa) this.rsaKey = undefined; // sent on this connection: the next one makes its own
        resolve();
      };
      socket.onerror = () => reject(new ConnectionClosedError(`cannot connect to ${this.url}`));
      socket.onclose = (ev) => reject(new ConnectionClosedError(`cannot connect to ${this.url} (close ${ev.code})`));
    });
    socket.onmessage = (ev) => {
      const data = ev.data;
      const bytes =
        data instanceof ArrayBuffer
          ? new Uint8Array(data)
          : ArrayBuffer.isView(data)
            ? new Uint8Array(data.buffer, data.byteOffset, data.byteLength)
            : new TextEncoder().encode(String(data));
      this.receiveChain = this.receiveChain.then(() => this.receive(socket, bytes)).catch((e) => this.protocolFailure(socket, e));
    };
    socket.onclose = (ev) => {
      closeInfo = ev.reason ? `${ev.code}: ${ev.reason}` : String(ev.code);
      // After the messages that arrived before the close (still being decrypted): a
      // refusal the server sends just before closing must win over "closed".
      this.receiveChain = this.receiveChain.then(() => this.onSocketClosed(socket, closeInfo));
    };
    socket.onerror = () => undefined;
    const describe = (e: unknown) =>
      e instanceof ConnectionClosedError && closeInfo ? new ConnectionClosedError(`${e.message} (server closed: ${closeInfo})`) : e;
    const v2 = this.protocol === 2;
    const pipelined = this.pipeline && !v2 && !rsa;
    try {
      const publicKey = rsa ? rsa.publicJson : new Uint8Array([0]);
      // Our extensions are announced to every protocol-3 server; .NET ones skip them.
      const initRequest = v2 ? encodeInitializationV2(publicKey) : encodeInitialization(publicKey, ANNOUNCED_EXTENSIONS);
      this.tokenRefresh = false;
      this.resume = false;
      this.replayBatch = false;
      const readInit = (plain: Uint8Array | null) => {
        // A .NET 2.x server answers every protocol-3 Initialization with a null Data.
        if (!plain) throw new ProtocolError(`${SERVER_SPEAKS_2}: connect with \`protocol: 2\``);
        const init = decodeInitializationReply(plain);
        if (init.errorMessage) throw new ProtocolError(`the server refused the connection: ${init.errorMessage}`);
        this.tokenRefresh = accepts(init.extensions, "token-refresh");
        this.resume = accepts(init.extensions, "resume");
        this.replayBatch = this.resume && accepts(init.extensions, "replay-batch");
        return init;
      };
      // An unencrypted reply is read as it arrives: a pipelined Authorization's answer,
      // right behind it, finds the accepted extensions in place.
      let init: ReturnType<typeof readInit> | undefined;
      const initExchange = this.exchange(MessageType.Initialization, initRequest, false, v2 || rsa ? undefined : (reply) => {
        init = readInit(reply);
      });
      // The answer is taken in as it arrives: the replayed events right behind it must
      // find the positions and markers in place.
      const authorize = (resumeRequest: string | undefined) =>
        this.exchange(MessageType.Authorization, v2 ? encodeAuthorizationV2(token) : encodeAuthorization(token, resumeRequest), true, (reply) => {
          const answer = reply ? (v2 ? decodeAuthorizationReplyV2 : decodeAuthorizationReply)(reply) : null;
          const resumed = answer && "resumed" in answer && this.resume ? (answer.resumed as string | null) : null;
          if (answer?.isAuthorized) this.resumed(resumed);
        });
      // Pipelined, the positions always go: a server that does not accept `resume`
      // skips the trailing member.
      const early = pipelined ? authorize(this.resumeState.request() ?? undefined) : undefined;
      early?.catch(() => undefined); // awaited below, unless the Initialization fails first
      const initReply = await initExchange;
      if (v2) {
        this.cipher = await initializeV2(initReply, rsa);
      } else {
        init ??= readInit(rsa && initReply ? await rsaDecrypt(rsa, initReply) : initReply);
        if (rsa) {
          this.cipher = await clientCipher(init.symmetricKey ?? new Uint8Array(), init.vector ?? new Uint8Array());
        } else if ((init.symmetricKey?.length ?? 0) > 1) {
          throw new ProtocolError("the server requires encryption: connect with `encryption: true`");
        }
      }
      const authReply = await (early ?? authorize(this.resume ? (this.resumeState.request() ?? undefined) : undefined));
      const auth = authReply ? (v2 ? decodeAuthorizationReplyV2 : decodeAuthorizationReply)(authReply) : { isAuthorized: false, message: null };
      if (!auth.isAuthorized) {
        throw new UnauthorizedError("the server rejected the access token");
      }
      this.currentToken = token;
      const expiresAt = "expiresAtUnixMs" in auth ? (auth.expiresAtUnixMs as number | null) : null;
      // Closed right behind the answer (e.g. a gap in the replay): this attempt failed.
      if (socket.readyState !== 1) throw new ConnectionClosedError("the connection closed during the handshake");
      if (this.tokenRefresh && expiresAt) this.scheduleRefresh(socket, expiresAt, null);
      this.pipeline = !v2 && (this.tokenRefresh || this.resume);
    } catch (e) {
      // A server that failed the handshake is waited for at each step next time (what
      // every server takes); one never reached (the socket did not open) says nothing.
      this.pipeline = false;
      socket.close();
      throw describe(e);
    }
  }

  /** Handles one inbound message, in arrival order. */
  private async receive(socket: Socket, bytes: Uint8Array): Promise<void> {
    if (socket !== this.socket || bytes.length === 0) return;
    const envelope = decodeEnvelope(bytes);
    if (envelope.type === MessageType.Callback && this.protocol === 2) {
      // A .NET 2.x server sends events to every connection, even before the handshake
      // and under a key this client does not have yet: one that does not open or decode
      // is dropped, as a .NET client drops it (no counter to keep in step in protocol 2).
      let event: { name: string; parameters: Uint8Array[] } | undefined;
      try {
        event = envelope.data ? eventV2(await this.cipher.open(envelope.data)) : undefined;
      } catch {
        return;
      }
      if (event) this.deliver(event);
      return;
    }
    const sealed = envelope.type !== MessageType.Initialization;
    const data = envelope.data && sealed ? await this.cipher.open(envelope.data) : envelope.data;
    if (envelope.type === MessageType.Callback) {
      if (!data || socket === this.gapped) return;
      this.receiveEvent(socket, decodeEvent(data));
      return;
    }
    if (envelope.type === MessageType.ReplayBatch && this.replayBatch) {
      if (socket === this.gapped) return;
      let entries: Uint8Array[];
      try {
        entries = replayBatchEntries(data ?? new Uint8Array());
      } catch (e) {
        return this.stopDelivering(socket, (e as Error).message);
      }
      for (const entry of entries) {
        const event = decodeEvent(entry);
        if (event.position === null) return this.stopDelivering(socket, "a replayed event has no position");
        if (!this.receiveEvent(socket, event)) return;
      }
      return;
    }
    this.pending.get(hex(envelope.id))?.resolve(data);
  }

  /**
   * Delivers one event, minding its position on a `resume` connection: a duplicate is
   * dropped; a gap stops this connection (false), so the reconnect resumes it.
   */
  private receiveEvent(socket: Socket, event: ReturnType<typeof decodeEvent>): boolean {
    if (event.position !== null && this.resume) {
      const seen = this.resumeState.observe(event.name, event.position);
      if (seen.kind === "duplicate") return true;
      if (seen.kind === "gap") {
        this.stopDelivering(socket, `events of stream ${seen.stream.slice(0, 60)} were skipped`);
        return false;
      }
    }
    this.deliver(event);
    return true;
  }

  /** Never a silent hole: this connection delivers nothing more, the reconnect resumes. */
  private stopDelivering(socket: Socket, reason: string): void {
    this.gapped = socket;
    try {
      socket.close(4000, reason.slice(0, 60));
    } catch {
      try {
        socket.close(4000); // a reason longer than 123 UTF-8 bytes is refused
      } catch {
        // Already closing.
      }
    }
  }

  /**
   * Takes in a new connection's `Resumed` answer (null: no resume) and, on a reconnect,
   * tells every `onResumed` listener whether its event was recovered.
   */
  private resumed(answer: string | null): void {
    const outcome = this.resumeState.connected(answer);
    if (!outcome.reconnect) return;
    for (const [event, set] of this.resumeListeners) {
      const info: ResumeInfo = { recovered: this.resumeState.recovered(outcome, event) };
      for (const l of [...set]) {
        try {
          l(info);
        } catch (e) {
          reportListenerError(e);
        }
      }
    }
  }

  /** Hands one event to its listeners. */
  private deliver(event: { name: string; parameters: Uint8Array[] }): void {
    const set = this.listeners.get(event.name);
    if (!set || set.size === 0) return;
    let args: unknown[];
    try {
      args = event.parameters.map((p) => this.serializer.decode(p));
    } catch (e) {
      // One unreadable event (e.g. a format mismatch) does not end the connection.
      console.warn(`witrpc-client: event ${event.name} has unreadable arguments and was skipped:`, e);
      return;
    }
    for (const l of [...set]) {
      try {
        l(...args);
      } catch (e) {
        reportListenerError(e);
      }
    }
  }

  private protocolFailure(socket: Socket, error: unknown): void {
    const e = error instanceof WitRpcError ? error : new ProtocolError(String(error));
    this.failPending(e, socket);
    try {
      socket.close(4002, "protocol error"); // browsers allow only 1000 and 3000-4999 here
    } catch {
      // Already closing.
    }
  }

  /** A token from `tokenProvider`, or `token`. */
  private async freshToken(): Promise<string> {
    if (this.options.tokenProvider) return this.options.tokenProvider();
    return typeof this.options.token === "function" ? this.options.token() : (this.options.token ?? "");
  }

  /** Plans the in-band refresh of a token that expires at `expiresAt` (ms since the epoch). */
  private scheduleRefresh(socket: Socket, expiresAt: number, previous: number | null): void {
    clearTimeout(this.refreshTimer);
    this.refreshTimer = undefined;
    const refreshable = this.options.tokenProvider !== undefined || typeof this.options.token === "function";
    // A refresh that did not move the expiry hands out the same token: stop there.
    if (!refreshable || (previous !== null && expiresAt <= previous)) return;
    const delay = refreshDelayMs(expiresAt - Date.now());
    this.refreshTimer = setTimeout(() => void this.refresh(socket, expiresAt), delay);
  }

  /** Sends a fresh token on the open connection; a refusal closes the client. */
  private async refresh(socket: Socket, expiresAt: number): Promise<void> {
    this.refreshTimer = undefined;
    if (socket !== this.socket || this.stateValue !== "open") return;
    let token: string;
    try {
      token = await this.freshToken();
    } catch {
      // The provider failed: ask again in a second (the server closes at the expiry).
      this.refreshTimer = setTimeout(() => void this.refresh(socket, expiresAt), 1000);
      return;
    }
    let reply: Uint8Array | null;
    try {
      reply = await this.exchange(MessageType.Authorization, encodeAuthorization(token), true);
    } catch {
      return; // the connection closed meanwhile: the reconnect path takes over
    }
    if (socket !== this.socket) return;
    const answer = reply ? decodeAuthorizationReply(reply) : { isAuthorized: false, expiresAtUnixMs: null };
    if (!answer.isAuthorized) {
      const error = new UnauthorizedError("the server refused the refreshed access token and closed the connection");
      this.closedByUser = true;
      this.failPending(error);
      this.setState("closed", error);
      for (const w of this.openWaiters.splice(0)) w();
      socket.close();
      return;
    }
    this.currentToken = token;
    if (answer.expiresAtUnixMs) this.scheduleRefresh(socket, answer.expiresAtUnixMs, expiresAt);
  }

  private onSocketClosed(socket: Socket, info: string): void {
    if (socket === this.socket) {
      clearTimeout(this.refreshTimer);
      this.refreshTimer = undefined;
    }
    // Calls still waiting for a connection keep waiting (bounded by their timeout).
    this.failPending(new ConnectionClosedError(`the connection closed (${info})`), socket);
    if (socket !== this.socket) return;
    if (this.closedByUser || this.stateValue !== "open") return;
    if (this.options.reconnect === false) {
      this.setState("closed", new ConnectionClosedError(`the connection closed (${info})`));
      for (const w of this.openWaiters.splice(0)) w();
      return;
    }
    void this.reconnectLoop();
  }

  private async reconnectLoop(): Promise<void> {
    const policy = this.options.reconnect || {};
    let delay = policy.initialDelayMs ?? 100;
    const maxDelay = policy.maxDelayMs ?? 5000;
    const maxAttempts = policy.maxAttempts ?? Infinity;
    this.setState("reconnecting");
    for (let attempt = 1; attempt <= maxAttempts && !this.closedByUser; attempt++) {
      await new Promise((r) => setTimeout(r, delay));
      if (this.closedByUser) return;
      try {
        await this.attempt();
        if (this.closedByUser) {
          this.socket?.close();
          return;
        }
        this.setState("open");
        return;
      } catch (error) {
        if (error instanceof UnauthorizedError) {
          this.setState("closed", error);
          for (const w of this.openWaiters.splice(0)) w();
          return;
        }
        this.setState("reconnecting", error as Error);
        delay = Math.min(delay * 2, maxDelay);
      }
    }
    if (!this.closedByUser) {
      this.setState("closed", new ConnectionClosedError(`gave up reconnecting to ${this.url}`));
      for (const w of this.openWaiters.splice(0)) w();
    }
  }
}
