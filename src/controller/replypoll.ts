/**
 * ReplyPoll: after the relay passes on a request whose reply comes back through it (ECHO, BARRIER,
 * FEATURES, GET_CONFIG, STATS/MULTIPART, QUEUE_GET_CONFIG, ROLE, GET_ASYNC), in either direction, the
 * relay process keeps polling its sockets instead of going to sleep, until the reply has passed back
 * or `windowUs` has gone by.
 *
 * Why: a relayed round trip crosses the relay process twice. Each time it is asleep, the kernel has to
 * wake it, and on a virtual machine that is the relay's whole cost: measured on the lab VM (2 vCPUs),
 * a bare Node forwarder added 0.15-0.56 ms to an echo's p50, of which the relay's own work is a few
 * microseconds; polling through the wait for the reply removed nearly all of it (bench/controller.ts).
 * The request's way out still wakes the relay; the reply's way back finds it awake.
 *
 * Cost, bounded: polling spends CPU time. It stops as soon as no reply is outstanding, lasts at most
 * `windowUs` after the last request, and draws on a budget of `cpuShare` of one core (a bucket that
 * holds `cpuShare` seconds and refills at `cpuShare` seconds per second): when the budget is spent
 * the relay sleeps between messages as before until it refills. A switch probed every 5 s costs
 * about 0.02% of a core per switch; a controller hammering requests costs at most `cpuShare`.
 *
 * How: while polling, a setImmediate chain is pending, which makes libuv poll the sockets without
 * blocking (epoll with a zero timeout) and run the read callbacks as soon as data is there.
 */

import { OFPT10, OFPT11, OFP_VERSIONS } from "./codec/index.js";

/** ReplyPollOptions: 0 windowUs or 0 cpuShare turns polling off. */
export interface ReplyPollOptions {
  /** Longest poll after a request (µs). */
  windowUs: number;
  /** Share of one core polling may use (0..1), also the bucket's size in seconds. */
  cpuShare: number;
}

/** DEFAULT_REPLY_POLL: polls up to 1 ms for a reply, with at most a quarter of one core. */
export const DEFAULT_REPLY_POLL: ReplyPollOptions = Object.freeze({ windowUs: 1000, cpuShare: 0.25 });

/** ReplyPollStats counts, for benches and tests. */
export interface ReplyPollStats {
  /** Polls started (a request passed while none was running). */
  polls: number;
  /** Polls that ended because the reply passed back. */
  answered: number;
  /** Polls that ended at the window's end with a reply still outstanding. */
  expired: number;
  /** Requests that found the budget spent (no poll). */
  overBudget: number;
  /** Time spent polling (ms). */
  polledMs: number;
}

type Pairs<T> = readonly (readonly [request: keyof T, reply: keyof T])[];

// The requests whose reply comes back on the same connection, per version table (OpenFlow 1.0.0 §5.1,
// 1.5.1 §7.1). ERROR counts as a reply: a request's failure answers it.
const PAIRS_10: Pairs<typeof OFPT10> = [
  ["ECHO_REQUEST", "ECHO_REPLY"],
  ["FEATURES_REQUEST", "FEATURES_REPLY"],
  ["GET_CONFIG_REQUEST", "GET_CONFIG_REPLY"],
  ["STATS_REQUEST", "STATS_REPLY"],
  ["BARRIER_REQUEST", "BARRIER_REPLY"],
  ["QUEUE_GET_CONFIG_REQUEST", "QUEUE_GET_CONFIG_REPLY"],
];
const PAIRS_11: Pairs<typeof OFPT11> = [
  ["ECHO_REQUEST", "ECHO_REPLY"],
  ["FEATURES_REQUEST", "FEATURES_REPLY"],
  ["GET_CONFIG_REQUEST", "GET_CONFIG_REPLY"],
  ["MULTIPART_REQUEST", "MULTIPART_REPLY"],
  ["BARRIER_REQUEST", "BARRIER_REPLY"],
];
/** Pairs of some 1.1+ versions: QUEUE_GET_CONFIG until 1.3 (a multipart request from 1.4), ROLE from 1.2, GET_ASYNC from 1.3. */
const PAIRS_BY_VERSION: readonly { from: number; until?: number; pair: Pairs<typeof OFPT11>[number] }[] = [
  {
    from: OFP_VERSIONS["1.1"],
    until: OFP_VERSIONS["1.3"],
    pair: ["QUEUE_GET_CONFIG_REQUEST", "QUEUE_GET_CONFIG_REPLY"],
  },
  { from: OFP_VERSIONS["1.2"], pair: ["ROLE_REQUEST", "ROLE_REPLY"] },
  { from: OFP_VERSIONS["1.3"], pair: ["GET_ASYNC_REQUEST", "GET_ASYNC_REPLY"] },
];

/** KIND_REQUEST is what messageKind says of a request whose reply comes back the same way. */
export const KIND_REQUEST = 1;
/** KIND_REPLY is what messageKind says of a reply (or an ERROR). */
export const KIND_REPLY = 2;

/** kindTable is one version's lookup, indexed by the header's type byte: KIND_REQUEST, KIND_REPLY or 0. */
function kindTable<T extends Readonly<Record<string, number>>>(table: T, pairs: Pairs<T>): Uint8Array {
  const kinds = new Uint8Array(256);
  kinds[table.ERROR!] = KIND_REPLY;
  for (const [req, rep] of pairs) {
    kinds[table[req]!] = KIND_REQUEST;
    kinds[table[rep]!] = KIND_REPLY;
  }
  return kinds;
}

// Per wire version byte: that version's lookup (built once here, read per relayed frame).
const KIND: Uint8Array[] = [];
for (const version of Object.values(OFP_VERSIONS)) {
  if (version === OFP_VERSIONS["1.0"]) {
    KIND[version] = kindTable(OFPT10, PAIRS_10);
    continue;
  }
  const extra = PAIRS_BY_VERSION.filter(
    (p) => version >= p.from && (p.until === undefined || version <= p.until),
  );
  KIND[version] = kindTable(OFPT11, [...PAIRS_11, ...extra.map((p) => p.pair)]);
}

/** MessageKind is KIND_REQUEST, KIND_REPLY, or 0 for neither. */
export type MessageKind = 0 | typeof KIND_REQUEST | typeof KIND_REPLY;

/** messageKind says whether a frame (by its header's version and type) is a request, a reply or neither. */
export function messageKind(version: number, type: number): MessageKind {
  return (KIND[version]?.[type] ?? 0) as MessageKind;
}

/** ReplyPoll is shared by all relay connections of a process (one event loop, one budget). */
export class ReplyPoll {
  private outstanding = 0;
  private deadline = 0;
  private running = false;
  private lastTick = 0;
  private tokensMs: number;
  private refilledAt: number;
  private readonly windowMs: number;
  private readonly bucketMs: number;
  readonly stats: ReplyPollStats = { polls: 0, answered: 0, expired: 0, overBudget: 0, polledMs: 0 };

  constructor(
    private readonly options: ReplyPollOptions = DEFAULT_REPLY_POLL,
    private readonly now: () => number = () => performance.now(),
  ) {
    this.windowMs = options.windowUs / 1000;
    this.bucketMs = options.cpuShare * 1000;
    this.tokensMs = this.bucketMs;
    this.refilledAt = now();
  }

  /** enabled says whether polling can happen at all. */
  get enabled(): boolean {
    return this.windowMs > 0 && this.bucketMs > 0;
  }

  /** sawRequests notes `n` requests passed on; polls until their replies pass or the window ends. */
  sawRequests(n: number): void {
    if (n <= 0 || !this.enabled) return;
    const t = this.now();
    this.refill(t);
    if (this.tokensMs <= 0) {
      this.stats.overBudget += n;
      return;
    }
    this.outstanding += n;
    this.deadline = t + this.windowMs;
    if (!this.running) {
      this.running = true;
      this.lastTick = t;
      this.stats.polls++;
      setImmediate(this.tick);
    }
  }

  /** sawReplies notes `n` replies passed back; polling stops once none is outstanding. */
  sawReplies(n: number): void {
    if (n <= 0 || this.outstanding === 0) return;
    this.outstanding = Math.max(0, this.outstanding - n);
  }

  private refill(t: number): void {
    this.tokensMs = Math.min(this.bucketMs, this.tokensMs + (t - this.refilledAt) * this.options.cpuShare);
    this.refilledAt = t;
  }

  private readonly tick = (): void => {
    const t = this.now();
    const spent = t - this.lastTick;
    this.lastTick = t;
    this.stats.polledMs += spent;
    this.refill(t);
    this.tokensMs -= spent;
    if (this.outstanding === 0) {
      this.stats.answered++;
    } else if (t >= this.deadline || this.tokensMs <= 0) {
      this.stats.expired++;
      this.outstanding = 0;
    } else {
      setImmediate(this.tick);
      return;
    }
    this.running = false;
  };
}
