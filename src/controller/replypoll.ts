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

// Per OpenFlow version (index: wire version): 1 request, 2 reply, 0 neither. ERROR counts as a reply
// (a request's failure answers it).
const KIND: Uint8Array[] = [];
{
  const of10 = new Uint8Array(256);
  of10[1] = 2;
  for (const [req, rep] of [
    [2, 3], // ECHO
    [5, 6], // FEATURES
    [7, 8], // GET_CONFIG
    [16, 17], // STATS
    [18, 19], // BARRIER
    [20, 21], // QUEUE_GET_CONFIG
  ] as const) {
    of10[req] = 1;
    of10[rep] = 2;
  }
  KIND[1] = of10;
  for (let v = 2; v <= 6; v++) {
    const t = new Uint8Array(256);
    t[1] = 2;
    const pairs: [number, number][] = [
      [2, 3], // ECHO
      [5, 6], // FEATURES
      [7, 8], // GET_CONFIG
      [18, 19], // STATS / MULTIPART
      [20, 21], // BARRIER
    ];
    if (v <= 4) pairs.push([22, 23]); // QUEUE_GET_CONFIG (1.1-1.3; a multipart request from 1.4)
    if (v >= 3) pairs.push([24, 25]); // ROLE
    if (v >= 4) pairs.push([26, 27]); // GET_ASYNC
    for (const [req, rep] of pairs) {
      t[req] = 1;
      t[rep] = 2;
    }
    KIND[v] = t;
  }
}

/** messageKind says whether a frame (by its header's version and type) is a request (1), a reply (2) or neither (0). */
export function messageKind(version: number, type: number): 0 | 1 | 2 {
  return (KIND[version]?.[type] ?? 0) as 0 | 1 | 2;
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
