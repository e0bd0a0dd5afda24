// Resumable event streams, client side (our `resume` wire extension, ARCHITECTURE.md
// "Wire extensions of ours"): the last position received per stream, the `Resume`
// request sent on a reconnect, and what the server's `Resumed` answer means for each
// event. A server that keeps history of an event stamps it with
// `<stream>\t<epoch>\t<offset>` (offsets 1, 2, 3… per epoch): an offset already seen is
// a duplicate (dropped), one that skips an offset is a gap (the connection is dropped
// so the reconnect resumes; a hole is never silent).

/** Streams tracked at once (the server reads at most as many from a resume request). */
export const MAX_STREAMS = 256;
/** Longest stream name tracked (longer ones are not resumable). */
const MAX_STREAM_NAME = 200;

const GUID = /^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$/;
const OFFSET = /^[0-9]{1,20}$/;

/** What one received position means. */
export type Observed = { kind: "next" } | { kind: "duplicate" } | { kind: "gap"; stream: string };

/** How a (re)connection went for the event streams. */
export interface Outcome {
  /** Not the first connection: subscribers are told. */
  reconnect: boolean;
  /** The server accepted `resume` (else nothing can be vouched for). */
  resumed: boolean;
  /** Streams whose missed events are not all replayed. */
  lost: Set<string>;
  /** A stream answered 0 that no event was seen on: counts for every event. */
  lostUnknown: boolean;
}

function parseOffset(text: string | undefined): bigint | null {
  return text !== undefined && OFFSET.test(text) ? BigInt(text) : null;
}

/** The resume state of a client; it outlives its connections. */
export class ResumeState {
  /** The id the server gave the last connection (lower case). */
  private lastId: string | null = null;
  /** Last position per stream. */
  private readonly streams = new Map<string, { epoch: string; offset: bigint }>();
  /** The streams each event name arrived on. */
  private readonly byEvent = new Map<string, Set<string>>();
  /** The streams named in the last resume request. */
  private asked: string[] = [];
  /** A connection was established before (the next one is a reconnect). */
  private connectedBefore = false;

  /** The `Resume` member for the next connection: null before a connection told us its id. */
  request(): string | null {
    const previous = this.lastId;
    if (previous === null) return null;
    const own = `c:${previous}`;
    // Another connection's own stream was resumed already (or is gone): only the last
    // connection's is asked for.
    for (const stream of [...this.streams.keys()]) {
      if (stream.startsWith("c:") && stream !== own) this.streams.delete(stream);
    }
    let text = previous;
    this.asked = [];
    for (const [stream, { epoch, offset }] of this.streams) {
      text += `\n${stream}\t${epoch}\t${offset}`;
      this.asked.push(stream);
    }
    return text;
  }

  /** Records a positioned event of `event`. */
  observe(event: string, position: string): Observed {
    const parts = position.split("\t");
    const offset = parseOffset(parts[2]);
    if (parts.length !== 3 || offset === null) return { kind: "next" }; // unreadable: delivered, not tracked
    const [stream, epoch] = parts as [string, string];
    if (stream.length > MAX_STREAM_NAME) return { kind: "next" };
    const seen = this.byEvent.get(event);
    if (seen) {
      if (!seen.has(stream) && seen.size < MAX_STREAMS) seen.add(stream);
    } else if (this.byEvent.size < MAX_STREAMS) {
      this.byEvent.set(event, new Set([stream]));
    }
    const known = this.streams.get(stream);
    if (known && known.epoch === epoch) {
      if (offset <= known.offset) return { kind: "duplicate" };
      if (offset > known.offset + 1n) return { kind: "gap", stream };
      known.offset = offset;
    } else if (known || this.streams.size < MAX_STREAMS) {
      // New, or a new epoch (the stream was recreated): it starts here.
      this.streams.set(stream, { epoch, offset });
    }
    return { kind: "next" };
  }

  /**
   * Takes in the server's `Resumed` answer of a new connection (null: the server does
   * not accept `resume`).
   */
  connected(answer: string | null): Outcome {
    const outcome: Outcome = { reconnect: this.connectedBefore, resumed: false, lost: new Set(), lostUnknown: false };
    this.connectedBefore = true;
    const asked = this.asked;
    this.asked = [];
    if (answer === null) {
      this.lastId = null;
      return outcome;
    }
    outcome.resumed = true;
    const lines = answer.split("\n");
    const first = lines.shift() ?? "";
    this.lastId = GUID.test(first) ? first.toLowerCase() : null;
    const answered = new Set<string>();
    for (const line of lines) {
      const parts = line.split("\t");
      const offset = parseOffset(parts[2]);
      if (parts.length !== 4 || offset === null) continue;
      const [stream, epoch, , flag] = parts as [string, string, string, string];
      answered.add(stream);
      if (flag === "1") continue; // the replay moves the position on
      // Not recovered: continue from where the stream stands now.
      if (this.streams.has(stream) || this.streams.size < MAX_STREAMS) this.streams.set(stream, { epoch, offset });
      if (![...this.byEvent.values()].some((s) => s.has(stream))) outcome.lostUnknown = true;
      outcome.lost.add(stream);
    }
    // A stream asked for and not answered was not recovered either.
    for (const stream of asked) {
      if (answered.has(stream)) continue;
      this.streams.delete(stream);
      outcome.lost.add(stream);
    }
    return outcome;
  }

  /**
   * Whether every missed event of `event` follows after `outcome`: null when the server
   * does not resume or the event never arrived with a position (nothing to vouch for).
   */
  recovered(outcome: Outcome, event: string): boolean | null {
    const streams = outcome.resumed ? this.byEvent.get(event) : undefined;
    if (!streams) return null;
    if (outcome.lostUnknown) return false;
    for (const s of streams) if (outcome.lost.has(s)) return false;
    return true;
  }
}
