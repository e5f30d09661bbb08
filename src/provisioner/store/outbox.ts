/**
 * The outbox: every store write goes through it so that a MongoDB outage delays writes instead of losing
 * them: with MongoDB stopped for a while, nothing is lost and nothing duplicated.
 *
 * - Ordered: entries are applied in arrival order; entries of one lane (one record, all of rfconfig) never
 *   overlap, entries of different lanes run up to `concurrency` at a time.
 * - Bounded: a record's pending patches merge into one entry, a repeated rfconfig row or VM removal joins
 *   the pending one, and pending events are capped (the oldest are dropped and counted). Coalescing never
 *   changes the final result (checked against sequential application by a model test).
 * - Replay-safe: every operation is idempotent (a `$set`, an upsert, a delete, an insert with a fixed `_id`),
 *   so an operation retried after an unacknowledged success, or replayed from the state file after a
 *   restart, never duplicates anything.
 */
import { EventEmitter } from "node:events";
import { StoreError } from "../../common/errors.js";
import { isTransient, wrap } from "./errors.js";
import type { RecordPatch, RfconfigRow, StoreEvent, WriteOutcome } from "./types.js";

/** OutboxOp is one buffered write; a tagged union, one case per kind of write. */
export type OutboxOp =
  | { readonly type: "record"; readonly dpidHex: string; readonly patch: RecordPatch; readonly at: Date }
  | { readonly type: "record-delete"; readonly dpidHex: string }
  | { readonly type: "rfconfig-upsert"; readonly rows: readonly RfconfigRow[] }
  | { readonly type: "rfconfig-remove"; readonly vmId: string }
  | { readonly type: "event"; readonly id: string; readonly event: StoreEvent };

/**
 * OutboxBatch is several record patches (of distinct records) or several events applied as one: a burst of
 * joins then costs MongoDB one command per batch instead of one per write (what a burst of joins needs).
 */
export interface OutboxBatch {
  readonly type: "batch";
  readonly ops: readonly OutboxOp[];
}

/** OutboxOptions tune retries and bounds; all durations in milliseconds. */
export interface OutboxOptions {
  /**
   * apply performs one operation, or one batch, against MongoDB; it must be idempotent. A batch that fails
   * for good is retried entry by entry, so one bad write does not sink the others.
   */
  readonly apply: (op: OutboxOp | OutboxBatch) => Promise<void>;
  /** concurrency is how many entries (of distinct lanes) may be in flight at once (default 4). */
  readonly concurrency?: number;
  /** maxEvents bounds the pending events; beyond it the oldest pending event is dropped (default 10000). */
  readonly maxEvents?: number;
  /** writeWaitMs is how long a writer waits for its write before being told `queued` (default 3000). */
  readonly writeWaitMs?: number;
  /** backoffMs is the first retry delay after an outage, doubled up to backoffMaxMs (defaults 100, 5000). */
  readonly backoffMs?: number;
  readonly backoffMaxMs?: number;
  /**
   * stallMs bounds one apply (default 30000, above the driver's own socket and server-selection timeouts
   * with its one retry). Found under the MongoDB outage test: when MongoDB is killed while a write is in
   * flight, the driver (mongodb 7.9) can lose that operation: its promise never settles, so its lane, and
   * while offline the whole outbox (one probe at a time), would wait forever. A stalled apply counts as a
   * transient failure and is retried; the lost operation has no socket left to reach the server later.
   */
  readonly stallMs?: number;
  /**
   * hold, while it returns true, keeps batchable writes (record patches, events) waiting, up to maxHoldMs
   * each: the store holds its bookkeeping while a lease claim or an rfconfig write is under way, so those
   * (which a VM start waits for) do not queue behind it on a database that runs one write at a time
   * (FerretDB/SQLite), and the patches a burst makes to each record merge into one write. Call resume()
   * when it turns false.
   */
  readonly hold?: () => boolean;
  /** maxHoldMs bounds how long hold() may keep a write waiting (default 1000). */
  readonly maxHoldMs?: number;
}

interface Waiter {
  settled: boolean;
  resolve(outcome: WriteOutcome): void;
  reject(err: Error): void;
  timer?: NodeJS.Timeout;
}

interface Entry {
  op: OutboxOp;
  readonly lane: string;
  /** since: performance.now() when the entry was made (hold() keeps it at most maxHoldMs from then). */
  readonly since: number;
  inFlight: boolean;
  /** solo: applied on its own, not batched (it failed inside a batch). */
  solo?: boolean;
  waiters: Waiter[];
}

/** OutboxStats are counters for metrics and status output. */
export interface OutboxStats {
  readonly pending: number;
  readonly written: number;
  readonly failed: number;
  readonly droppedEvents: number;
  readonly retries: number;
  readonly online: boolean;
}

/** rowKey identifies an rfconfig row: the VM interface it describes. */
export function rowKey(r: RfconfigRow): string {
  return `${r.vm_id}/${r.vm_port}`;
}

function rowIdentity(r: RfconfigRow): string {
  return `${r.vm_id}/${r.vm_port}>${r.ct_id}/${r.dp_id}/${r.dp_port}`;
}

/** mergePatches merges two record patches: later fields win, `switch` merges field by field. */
export function mergePatches(a: RecordPatch, b: RecordPatch): RecordPatch {
  const out: RecordPatch = { ...a, ...b };
  if (a.switch !== undefined || b.switch !== undefined) out.switch = { ...a.switch, ...b.switch };
  return out;
}

/** MAX_BATCH_ROWS bounds one batched rfconfig write. */
const MAX_BATCH_ROWS = 4096;

/** MAX_BATCH_OPS bounds one batch of record patches or of events. */
const MAX_BATCH_OPS = 512;

/** BatchKind names the writes that are batched across lanes: record patches, events. */
type BatchKind = "record" | "event";

function laneOf(op: OutboxOp): string {
  switch (op.type) {
    case "record":
    case "record-delete":
      return `record:${op.dpidHex}`;
    case "rfconfig-upsert":
    case "rfconfig-remove":
      // One lane for all of rfconfig: a remapped switch port may move between VMs, so rows of different VMs
      // depend on each other; rfconfig writes are rare (one batch per VM), serialising them costs nothing.
      return "rfconfig";
    case "event":
      return `event:${op.id}`;
  }
}

/**
 * Outbox buffers writes and applies them in order, retrying with backoff while MongoDB is unreachable.
 * Events: `flushed` (the outbox became empty; payload: entries written since the previous `flushed`),
 * `offline` (first transient failure; payload: the error), `online`, `writeError` (a permanent failure:
 * the entry is dropped; payload: StoreError, op), `dropped` (a pending event dropped for the bound),
 * `stalled` (an apply did not settle within stallMs and is retried; payload: op).
 */
export class Outbox extends EventEmitter {
  private readonly entries: Entry[] = [];
  private readonly busyLanes = new Set<string>();
  /** batching: the kinds with a batch in flight; new writes of that kind wait and form the next batch. */
  private readonly batching = new Set<BatchKind>();
  private inFlight = 0;
  private online = true;
  private backoff: number;
  private retryTimer: NodeJS.Timeout | undefined;
  private closed = false;
  private moved: Waiter[] = [];
  private writtenSinceFlush = 0;
  private counters = { written: 0, failed: 0, droppedEvents: 0, retries: 0 };
  private readonly opts: Required<Omit<OutboxOptions, "hold">> & Pick<OutboxOptions, "hold">;
  private holdTimer: NodeJS.Timeout | undefined;

  constructor(options: OutboxOptions) {
    super();
    this.opts = {
      concurrency: 4,
      maxEvents: 10_000,
      writeWaitMs: 3_000,
      backoffMs: 100,
      backoffMaxMs: 5_000,
      stallMs: 30_000,
      maxHoldMs: 1_000,
      ...options,
    };
    this.backoff = this.opts.backoffMs;
  }

  /** pending counts the writes not yet confirmed by MongoDB (queued or in flight). */
  pending(): number {
    return this.entries.length;
  }

  /** stats returns the counters. */
  stats(): OutboxStats {
    return { pending: this.entries.length, online: this.online, ...this.counters };
  }

  /** isOnline is false between a transient failure and the next successful write. */
  isOnline(): boolean {
    return this.online;
  }

  /** oldestSince is when the oldest entry not yet confirmed was made (performance.now()); undefined when empty. */
  oldestSince(): number | undefined {
    let oldest: number | undefined;
    for (const e of this.entries) if (oldest === undefined || e.since < oldest) oldest = e.since;
    return oldest;
  }

  /** snapshot lists the operations not yet confirmed, in order (for the state file). */
  snapshot(): OutboxOp[] {
    return this.entries.map((e) => e.op);
  }

  /** pendingPatch returns the merged patch still waiting for a record (read-your-writes overlay). */
  pendingPatch(dpidHex: string): { patch: RecordPatch; at: Date } | undefined {
    let out: { patch: RecordPatch; at: Date } | undefined;
    for (const e of this.entries) {
      if (e.op.type === "record" && e.op.dpidHex === dpidHex) {
        out = out
          ? { patch: mergePatches(out.patch, e.op.patch), at: e.op.at }
          : { patch: e.op.patch, at: e.op.at };
      }
    }
    return out;
  }

  /**
   * enqueue adds a write and resolves `written` once MongoDB confirmed it, or `queued` when it is buffered
   * (server unreachable, or not confirmed within writeWaitMs); rejects with StoreError on a permanent failure.
   */
  enqueue(op: OutboxOp): Promise<WriteOutcome> {
    if (this.closed) {
      return Promise.reject(
        new StoreError("store is closed; the write was not accepted", `outbox.${op.type}`),
      );
    }
    return new Promise<WriteOutcome>((resolve, reject) => {
      const waiter: Waiter = { settled: false, resolve, reject };
      const entry = this.add(op);
      // Writers answered `queued` no longer wait: forget them so a long outage does not pile them up.
      entry.waiters = entry.waiters.filter((w) => !w.settled);
      entry.waiters.push(waiter);
      if (!this.online) {
        this.settle(waiter, "queued");
      } else {
        waiter.timer = setTimeout(() => this.settle(waiter, "queued"), this.opts.writeWaitMs);
        waiter.timer.unref();
      }
      this.emit("changed");
      this.pump();
    });
  }

  /** restore puts operations from a previous run (state file) in front of the queue, in their order. */
  restore(ops: readonly OutboxOp[]): void {
    const now = performance.now();
    const restored = ops.map((op): Entry => ({
      op,
      lane: laneOf(op),
      since: now,
      inFlight: false,
      waiters: [],
    }));
    this.entries.unshift(...restored);
    if (restored.length > 0) this.emit("changed");
    this.pump();
  }

  /** drain waits until nothing is pending; resolves false if timeoutMs passed first. */
  drain(timeoutMs: number): Promise<boolean> {
    if (this.entries.length === 0) return Promise.resolve(true);
    return new Promise((resolve) => {
      const done = (ok: boolean) => {
        clearTimeout(timer);
        this.off("flushed", onFlushed);
        resolve(ok);
      };
      const onFlushed = () => done(true);
      const timer = setTimeout(() => done(false), timeoutMs);
      this.on("flushed", onFlushed);
      // Retry at once rather than after the current backoff: the caller is waiting.
      this.retryNow();
    });
  }

  /** resume starts what hold() kept waiting (call it when hold() turns false). */
  resume(): void {
    this.pump();
  }

  /** retryNow cancels the backoff wait (e.g. the caller knows the server is back). */
  retryNow(): void {
    if (this.retryTimer) {
      clearTimeout(this.retryTimer);
      this.retryTimer = undefined;
      this.pump();
    }
  }

  /** close stops accepting writes and retrying; pending entries stay in snapshot() for the state file. */
  close(): void {
    this.closed = true;
    if (this.holdTimer) clearTimeout(this.holdTimer);
    if (this.retryTimer) clearTimeout(this.retryTimer);
    this.retryTimer = undefined;
    for (const e of this.entries) for (const w of e.waiters) this.settle(w, "queued");
  }

  private settle(waiter: Waiter, outcome: WriteOutcome | Error): void {
    if (waiter.settled) return;
    waiter.settled = true;
    if (waiter.timer) clearTimeout(waiter.timer);
    if (outcome instanceof Error) waiter.reject(outcome);
    else waiter.resolve(outcome);
  }

  private pendingEntries(): Entry[] {
    return this.entries.filter((e) => !e.inFlight);
  }

  /** add coalesces `op` into a pending entry when possible, else appends it; returns the entry to wait on. */
  private add(op: OutboxOp): Entry {
    const entry = this.addInner(op);
    entry.waiters.push(...this.moved);
    this.moved = [];
    return entry;
  }

  private addInner(op: OutboxOp): Entry {
    switch (op.type) {
      case "record": {
        // The newest patch merges into the record's last pending entry when that is a patch too; never into
        // one that a deletion follows (found by the model check: a patch that failed in flight is pending
        // again, ahead of a deletion made meanwhile, and a later patch must stay behind that deletion).
        const lane = laneOf(op);
        let last: Entry | undefined;
        for (let i = this.entries.length - 1; i >= 0 && !last; i--)
          if (this.entries[i]!.lane === lane) last = this.entries[i];
        const same = last && !last.inFlight && last.op.type === "record" ? last : undefined;
        if (same && same.op.type === "record") {
          same.op = {
            type: "record",
            dpidHex: op.dpidHex,
            patch: mergePatches(same.op.patch, op.patch),
            at: op.at,
          };
          return same;
        }
        break;
      }
      case "record-delete": {
        // Pending patches of a record about to be deleted need not be written; their writers wait on the delete.
        for (const e of this.pendingEntries()) {
          if (e.op.type === "record" && e.op.dpidHex === op.dpidHex) {
            this.entries.splice(this.entries.indexOf(e), 1);
            this.moved.push(...e.waiters);
          }
        }
        break;
      }
      case "rfconfig-upsert": {
        // Only an identical row (same VM interface, same switch port) is superseded: a row with another
        // switch side must still be applied, because writing it displaces whoever held that switch port.
        const same = new Set(op.rows.map(rowIdentity));
        this.stripRows((r) => same.has(rowIdentity(r)));
        this.compactRemovals();
        break;
      }
      case "rfconfig-remove": {
        const earlier = this.mergeableRemoval(op.vmId, this.pendingEntries().length);
        if (earlier) return earlier;
        break;
      }
      case "event": {
        const events = this.pendingEntries().filter((e) => e.op.type === "event");
        if (events.length >= this.opts.maxEvents) {
          const oldest = events[0]!;
          this.entries.splice(this.entries.indexOf(oldest), 1);
          this.counters.droppedEvents++;
          for (const w of oldest.waiters) this.settle(w, "queued");
          this.emit("dropped", oldest.op);
        }
        break;
      }
    }
    const entry: Entry = { op, lane: laneOf(op), since: performance.now(), inFlight: false, waiters: [] };
    this.entries.push(entry);
    return entry;
  }

  /**
   * stripRows removes superseded rows from pending rfconfig upserts (a later write of the very same row
   * repeats them); emptied entries go, their waiters move to the new write.
   */
  private stripRows(superseded: (r: RfconfigRow) => boolean): void {
    for (const e of this.pendingEntries()) {
      if (e.op.type !== "rfconfig-upsert") continue;
      const rows = e.op.rows.filter((r) => !superseded(r));
      if (rows.length === e.op.rows.length) continue;
      if (rows.length > 0) {
        e.op = { type: "rfconfig-upsert", rows };
        continue;
      }
      this.entries.splice(this.entries.indexOf(e), 1);
      // Their writers are answered when the superseding write is (add() attaches them to it).
      this.moved.push(...e.waiters);
    }
  }

  /**
   * mergeableRemoval finds a pending removal of `vmId`, among the first `before` pending entries, that a new
   * removal may join: no rfconfig upsert between them writes a row of that VM (it would be removed too).
   */
  private mergeableRemoval(vmId: string, before: number): Entry | undefined {
    const lane = this.pendingEntries()
      .slice(0, before)
      .filter((e) => e.lane === "rfconfig");
    for (let i = lane.length - 1; i >= 0; i--) {
      const e = lane[i]!;
      if (e.op.type === "rfconfig-remove" && e.op.vmId === vmId) return e;
      if (e.op.type === "rfconfig-upsert" && e.op.rows.some((r) => r.vm_id === vmId)) return undefined;
    }
    return undefined;
  }

  /** compactRemovals merges pending removals of one VM that stripped upserts left with nothing between. */
  private compactRemovals(): void {
    const pending = this.pendingEntries();
    for (const [i, e] of pending.entries()) {
      if (e.op.type !== "rfconfig-remove") continue;
      const earlier = this.mergeableRemoval(e.op.vmId, i);
      if (!earlier || !this.entries.includes(earlier)) continue;
      this.entries.splice(this.entries.indexOf(e), 1);
      earlier.waiters.push(...e.waiters);
    }
  }

  private pump(): void {
    if (this.closed || this.retryTimer) return;
    // While offline, probe with a single entry; full concurrency resumes after the first success.
    const limit = this.online ? this.opts.concurrency : 1;
    // passed: lanes with an entry left waiting in this round; their later entries must wait too (order).
    const passed = new Set<string>();
    const holding = this.opts.hold?.() === true;
    const now = performance.now();
    let wakeAt = Infinity;
    for (const e of this.entries) {
      if (this.inFlight >= limit) break;
      if (e.inFlight || this.busyLanes.has(e.lane) || passed.has(e.lane)) continue;
      const kind = this.batchKind(e);
      // Group commit: while a batch of this kind is in flight, the writes arriving meanwhile wait for it
      // and then go together; a lone write when nothing is in flight goes at once.
      if (kind && this.batching.has(kind)) {
        passed.add(e.lane);
        continue;
      }
      if (kind && holding && now - e.since < this.opts.maxHoldMs) {
        passed.add(e.lane);
        wakeAt = Math.min(wakeAt, e.since + this.opts.maxHoldMs);
        continue;
      }
      this.start(kind ? this.batchFrom(e, kind, passed) : this.groupFrom(e), kind);
    }
    if (wakeAt < Infinity && !this.holdTimer) {
      this.holdTimer = setTimeout(
        () => {
          this.holdTimer = undefined;
          this.pump();
        },
        Math.max(1, wakeAt - now),
      );
      this.holdTimer.unref();
    }
  }

  /** batchKind says whether `e` may be batched with writes of other lanes (online, not failed in a batch). */
  private batchKind(e: Entry): BatchKind | undefined {
    if (e.solo || !this.online) return undefined;
    if (e.op.type === "record") return "record";
    if (e.op.type === "event") return "event";
    return undefined;
  }

  /**
   * batchFrom collects the pending writes of `kind` from `e` on, at most one per lane, and only the first
   * pending entry of its lane: an entry behind another write of its lane (a record behind its deletion)
   * waits for it. `passed` holds the lanes already left waiting.
   */
  private batchFrom(e: Entry, kind: BatchKind, passed: ReadonlySet<string>): Entry[] {
    const group: Entry[] = [];
    const blocked = new Set(passed);
    for (const x of this.entries.slice(this.entries.indexOf(e))) {
      if (group.length >= MAX_BATCH_OPS) break;
      if (x.inFlight || this.busyLanes.has(x.lane) || blocked.has(x.lane)) continue;
      blocked.add(x.lane);
      if (this.batchKind(x) === kind) group.push(x);
    }
    return group;
  }

  /**
   * groupFrom returns the entries to apply as one: rfconfig upserts waiting back to back (a burst of joins)
   * go in one batch, so the store reads `rfconfig` once for all of them (a full scan on FerretDB). The batch
   * stops at a removal, keeping the order of the lane. Entries that failed inside a batch go alone.
   */
  private groupFrom(e: Entry): Entry[] {
    if (e.op.type !== "rfconfig-upsert" || e.solo || !this.online) return [e];
    const group = [e];
    let rows = e.op.rows.length;
    for (const x of this.entries) {
      if (x === e || x.inFlight || x.lane !== e.lane || this.entries.indexOf(x) < this.entries.indexOf(e))
        continue;
      if (x.op.type !== "rfconfig-upsert" || x.solo || rows + x.op.rows.length > MAX_BATCH_ROWS) break;
      group.push(x);
      rows += x.op.rows.length;
    }
    return group;
  }

  private start(group: Entry[], kind?: BatchKind): void {
    for (const e of group) {
      e.inFlight = true;
      this.busyLanes.add(e.lane);
    }
    this.inFlight++;
    if (kind) this.batching.add(kind);
    const op: OutboxOp | OutboxBatch =
      group.length === 1
        ? group[0]!.op
        : kind
          ? { type: "batch", ops: group.map((e) => e.op) }
          : {
              type: "rfconfig-upsert",
              rows: group.flatMap((e) => (e.op.type === "rfconfig-upsert" ? e.op.rows : [])),
            };
    let done = false;
    const stall = setTimeout(() => {
      if (done) return;
      done = true;
      this.emit("stalled", op);
      this.failed(
        group,
        new StoreError(
          `outbox.${op.type} did not settle within ${this.opts.stallMs} ms; retrying it`,
          `outbox.${op.type}`,
          { outage: true },
        ),
        true,
        kind,
      );
    }, this.opts.stallMs);
    stall.unref();
    this.opts.apply(op).then(
      () => {
        if (done) return;
        done = true;
        clearTimeout(stall);
        this.succeeded(group, kind);
      },
      (err: unknown) => {
        if (done) return;
        done = true;
        clearTimeout(stall);
        this.failed(group, err, isTransient(err), kind);
      },
    );
  }

  private finish(group: Entry[], kind: BatchKind | undefined): void {
    for (const e of group) {
      e.inFlight = false;
      this.busyLanes.delete(e.lane);
    }
    this.inFlight--;
    if (kind) this.batching.delete(kind);
  }

  private succeeded(group: Entry[], kind: BatchKind | undefined): void {
    this.finish(group, kind);
    for (const e of group) {
      this.entries.splice(this.entries.indexOf(e), 1);
      this.counters.written++;
      this.writtenSinceFlush++;
      for (const w of e.waiters) this.settle(w, "written");
    }
    if (!this.online) {
      this.online = true;
      this.backoff = this.opts.backoffMs;
      this.emit("online");
    }
    this.emit("changed");
    if (this.entries.length === 0) {
      const n = this.writtenSinceFlush;
      this.writtenSinceFlush = 0;
      this.emit("flushed", n);
    }
    this.pump();
  }

  private failed(group: Entry[], err: unknown, transient: boolean, kind: BatchKind | undefined): void {
    this.finish(group, kind);
    if (!transient && group.length > 1) {
      // One bad row must not sink the others: retry each entry of the batch on its own.
      for (const e of group) e.solo = true;
      this.pump();
      return;
    }
    const e = group[0]!;
    if (!transient) {
      this.entries.splice(this.entries.indexOf(e), 1);
      this.counters.failed++;
      const error = wrap(`outbox.${e.op.type}`, err);
      for (const w of e.waiters) this.settle(w, error);
      this.emit("writeError", error, e.op);
      this.emit("changed");
      if (this.entries.length === 0) this.emit("flushed", this.writtenSinceFlush);
      this.pump();
      return;
    }
    // A patch that arrived while this one was in flight waits behind it: fold it in so the record needs
    // one write when the server is back, keeping this entry's (earlier) position.
    for (const x of group) {
      if (x.op.type !== "record") continue;
      const later = this.entries.find((y) => y !== x && !y.inFlight && y.lane === x.lane);
      if (later && later.op.type === "record") {
        x.op = { ...later.op, patch: mergePatches(x.op.patch, later.op.patch) };
        x.waiters.push(...later.waiters);
        this.entries.splice(this.entries.indexOf(later), 1);
      }
    }
    for (const x of this.entries) {
      for (const w of x.waiters) this.settle(w, "queued");
      x.waiters = [];
    }
    if (this.online) {
      this.online = false;
      this.emit("offline", err);
    }
    this.counters.retries++;
    if (this.closed || this.retryTimer) return;
    const delay = this.backoff * (0.75 + Math.random() * 0.5);
    this.backoff = Math.min(this.backoff * 2, this.opts.backoffMaxMs);
    this.retryTimer = setTimeout(() => {
      this.retryTimer = undefined;
      this.pump();
    }, delay);
    this.retryTimer.unref();
  }
}
