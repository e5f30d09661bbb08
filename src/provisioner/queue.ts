/**
 * The provisioning queue: one global FIFO of actions, a bounded number of concurrent starts per host, and
 * per-key coalescing (a datapath that joins, leaves and joins again while its action waits yields one action:
 * the latest desired state wins). A key never runs two actions at once.
 * `QueueCore` is the pure, time-injected scheduler (tested without sleeping); `ActionQueue` drives it with real
 * promises/timers.
 */

/** ActionClass tells the scheduler where an action runs and whether it counts against the host's start limit. */
export interface ActionClass {
  /** host the action runs on; undefined for actions that need no host slot. */
  host?: string;
  /** limited actions (starts) count against `hostLimit(host)`; others (stop, remove) only against the global cap. */
  limited: boolean;
}

/** QueueItem is one pending or running action. */
export interface QueueItem<K, A> {
  key: K;
  action: A;
  cls: ActionClass;
  /** seq orders the global FIFO: the position of the key's first pending submission. */
  seq: number;
  firstSubmittedAt: number;
  lastSubmittedAt: number;
  /** coalesced counts the submissions this item absorbed (0 = none). */
  coalesced: number;
}

/** QueueCoreOptions configure the pure scheduler. */
export interface QueueCoreOptions<A> {
  classify: (action: A) => ActionClass;
  /** hostLimit returns the maximum concurrent limited actions on a host (maxConcurrentStarts). */
  hostLimit: (host: string) => number;
  /** globalLimit caps all running actions (default unbounded). */
  globalLimit?: number;
  /**
   * windowMs: an action becomes eligible only after this long without a newer submission for its key, so a
   * flapping switch settles first (default 0: eligible at once; coalescing still happens while it waits).
   */
  windowMs?: number;
}

/** SubmitResult tells whether a submission replaced a pending action (and which). */
export interface SubmitResult<A> {
  coalesced: boolean;
  replaced?: A;
  /** queuedBehindRunning: the key is running; this action waits for it. */
  queuedBehindRunning: boolean;
}

/** QueueCore is the deterministic scheduler: callers pass `now`, it returns what to run. */
export class QueueCore<K, A> {
  private readonly pending = new Map<K, QueueItem<K, A>>();
  private readonly running = new Map<K, QueueItem<K, A>>();
  private readonly hostRunning = new Map<string, number>();
  private seq = 0;

  constructor(private readonly opts: QueueCoreOptions<A>) {}

  /** submit records the desired action for a key; a pending action for the same key is replaced. */
  submit(key: K, action: A, now: number): SubmitResult<A> {
    const cls = this.opts.classify(action);
    const queuedBehindRunning = this.running.has(key);
    const prev = this.pending.get(key);
    if (prev) {
      const replaced = prev.action;
      prev.action = action;
      prev.cls = cls;
      prev.lastSubmittedAt = now;
      prev.coalesced++;
      return { coalesced: true, replaced, queuedBehindRunning };
    }
    this.pending.set(key, {
      key,
      action,
      cls,
      seq: this.seq++,
      firstSubmittedAt: now,
      lastSubmittedAt: now,
      coalesced: 0,
    });
    return { coalesced: false, queuedBehindRunning };
  }

  /** cancel drops a key's pending action (not a running one); returns it if there was one. */
  cancel(key: K): A | undefined {
    const p = this.pending.get(key);
    this.pending.delete(key);
    return p?.action;
  }

  /**
   * take returns the actions to start now, in FIFO order, and marks them running. An item whose host is full
   * waits without blocking items for other hosts (no head-of-line blocking across hosts).
   */
  take(now: number): QueueItem<K, A>[] {
    const out: QueueItem<K, A>[] = [];
    const window = this.opts.windowMs ?? 0;
    const global = this.opts.globalLimit ?? Number.POSITIVE_INFINITY;
    // Map iteration is insertion order and items are inserted once per pending episode: that is FIFO by seq.
    for (const item of this.pending.values()) {
      if (this.running.size >= global) break;
      if (this.running.has(item.key)) continue;
      if (now < item.lastSubmittedAt + window) continue;
      const host = item.cls.host;
      if (item.cls.limited && host !== undefined) {
        const used = this.hostRunning.get(host) ?? 0;
        if (used >= Math.max(1, this.opts.hostLimit(host))) continue;
        this.hostRunning.set(host, used + 1);
      }
      this.pending.delete(item.key);
      this.running.set(item.key, item);
      out.push(item);
    }
    return out;
  }

  /** done marks a key's running action finished, freeing its host slot. */
  done(key: K): QueueItem<K, A> | undefined {
    const item = this.running.get(key);
    if (!item) return undefined;
    this.running.delete(key);
    const host = item.cls.host;
    if (item.cls.limited && host !== undefined) {
      const n = (this.hostRunning.get(host) ?? 1) - 1;
      if (n <= 0) this.hostRunning.delete(host);
      else this.hostRunning.set(host, n);
    }
    return item;
  }

  /** nextEligibleAt is the earliest time a waiting (windowed) item becomes eligible, if any waits on time. */
  nextEligibleAt(now: number): number | undefined {
    const window = this.opts.windowMs ?? 0;
    let best: number | undefined;
    for (const item of this.pending.values()) {
      const at = item.lastSubmittedAt + window;
      if (at > now && (best === undefined || at < best)) best = at;
    }
    return best;
  }

  /** pendingOf returns the key's pending action, if any. */
  pendingOf(key: K): A | undefined {
    return this.pending.get(key)?.action;
  }

  /** runningOf returns the key's running action, if any. */
  runningOf(key: K): A | undefined {
    return this.running.get(key)?.action;
  }

  /** hostLoad is the number of limited actions running on a host. */
  hostLoad(host: string): number {
    return this.hostRunning.get(host) ?? 0;
  }

  /** size reports pending and running counts. */
  get size(): { pending: number; running: number } {
    return { pending: this.pending.size, running: this.running.size };
  }
}

/** QueueOutcome is how a submission ended: its action ran (ok or failed), or a later submission replaced it. */
export type QueueOutcome<R> =
  | { status: "done"; result: R }
  | { status: "failed"; error: unknown }
  | { status: "superseded" }
  | { status: "cancelled" };

/** ActionHandler executes one action; `info` says how many submissions it absorbed and how long it waited. */
export type ActionHandler<K, A, R> = (
  key: K,
  action: A,
  info: { coalesced: number; waitedMs: number },
) => Promise<R>;

/** ActionQueueOptions configure the driver. */
export interface ActionQueueOptions<K, A, R> extends QueueCoreOptions<A> {
  handler: ActionHandler<K, A, R>;
  /** now returns milliseconds (default performance.now); injectable for tests. */
  now?: () => number;
  /** onError is told about failed actions (they are also reported through the submission's outcome). */
  onError?: (key: K, action: A, error: unknown) => void;
}

/**
 * ActionQueue runs submitted actions through `QueueCore` with a handler. `submit` returns a promise of the
 * submission's outcome; it never rejects (a failed action resolves with `status: "failed"`).
 */
export class ActionQueue<K, A, R = unknown> {
  private readonly core: QueueCore<K, A>;
  private readonly now: () => number;
  private readonly waiters = new Map<K, ((o: QueueOutcome<R>) => void)[]>();
  private readonly runningWaiters = new Map<K, ((o: QueueOutcome<R>) => void)[]>();
  private timer: NodeJS.Timeout | undefined;
  private idleWaiters: (() => void)[] = [];
  private closed = false;

  constructor(private readonly opts: ActionQueueOptions<K, A, R>) {
    this.core = new QueueCore<K, A>(opts);
    this.now = opts.now ?? (() => performance.now());
  }

  /** submit queues the desired action for a key (coalescing with a pending one) and resolves when it settles. */
  submit(key: K, action: A): Promise<QueueOutcome<R>> {
    if (this.closed) return Promise.resolve({ status: "cancelled" });
    const r = this.core.submit(key, action, this.now());
    if (r.coalesced) {
      // The replaced submissions are superseded: tell their callers now rather than leave them waiting.
      for (const w of this.waiters.get(key) ?? []) w({ status: "superseded" });
      this.waiters.delete(key);
    }
    const p = new Promise<QueueOutcome<R>>((res) => {
      const list = this.waiters.get(key) ?? [];
      list.push(res);
      this.waiters.set(key, list);
    });
    this.pump();
    return p;
  }

  /** cancel drops a key's pending action; its submitters get `cancelled`. */
  cancel(key: K): boolean {
    const a = this.core.cancel(key);
    for (const w of this.waiters.get(key) ?? []) w({ status: "cancelled" });
    this.waiters.delete(key);
    this.checkIdle();
    return a !== undefined;
  }

  private pump(): void {
    if (this.closed) {
      // Closed: nothing new runs, and idle() resolves once the actions under way have ended.
      this.checkIdle();
      return;
    }
    const now = this.now();
    for (const item of this.core.take(now)) {
      const ws = this.waiters.get(item.key) ?? [];
      this.waiters.delete(item.key);
      this.runningWaiters.set(item.key, ws);
      void this.execute(item, now - item.firstSubmittedAt);
    }
    this.arm(now);
    this.checkIdle();
  }

  private arm(now: number): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    const at = this.core.nextEligibleAt(now);
    if (at !== undefined) {
      this.timer = setTimeout(() => this.pump(), Math.max(0, at - now));
      this.timer.unref?.();
    }
  }

  private async execute(item: QueueItem<K, A>, waitedMs: number): Promise<void> {
    let outcome: QueueOutcome<R>;
    try {
      const result = await this.opts.handler(item.key, item.action, { coalesced: item.coalesced, waitedMs });
      outcome = { status: "done", result };
    } catch (error) {
      outcome = { status: "failed", error };
      this.opts.onError?.(item.key, item.action, error);
    }
    this.core.done(item.key);
    for (const w of this.runningWaiters.get(item.key) ?? []) w(outcome);
    this.runningWaiters.delete(item.key);
    this.pump();
  }

  private checkIdle(): void {
    const s = this.core.size;
    if (s.pending === 0 && s.running === 0) {
      const ws = this.idleWaiters;
      this.idleWaiters = [];
      for (const w of ws) w();
    }
  }

  /** idle resolves when nothing is pending or running. */
  idle(): Promise<void> {
    const s = this.core.size;
    if (s.pending === 0 && s.running === 0) return Promise.resolve();
    return new Promise((res) => this.idleWaiters.push(res));
  }

  /** stats reports queue sizes (for metrics and status). */
  get stats(): { pending: number; running: number } {
    return this.core.size;
  }

  /** pendingOf / runningOf expose a key's actions (status display, tests). */
  pendingOf(key: K): A | undefined {
    return this.core.pendingOf(key);
  }
  /** runningOf returns the key's running action, if any. */
  runningOf(key: K): A | undefined {
    return this.core.runningOf(key);
  }

  /** close stops dispatching; pending submissions resolve `cancelled`, running ones finish on their own. */
  close(): void {
    this.closed = true;
    if (this.timer) clearTimeout(this.timer);
    for (const [key, ws] of this.waiters) {
      this.core.cancel(key);
      for (const w of ws) w({ status: "cancelled" });
    }
    this.waiters.clear();
  }
}
