/**
 * Instruments for the provisioner bench: a VirshRunner wrapper that timestamps every call (and the moment
 * `virsh start` is issued), a stub runner that answers at once (no libvirt), a MongoStore wrapper that times
 * the calls the daemon awaits before starting a VM (lease claim, rfconfig upsert), and percentiles.
 */
import { EventEmitter } from "node:events";
import type { MongoStore } from "../../src/provisioner/index.js";
import { makeVirshError, type VirshRunner } from "../../src/provisioner/libvirt/virsh.js";

/** Call is one timed external call (virsh or MongoDB). */
export interface Call {
  what: string;
  t0: number;
  t1: number;
}

/** CallLog collects timed calls and the `virsh start` issue time per domain. */
export class CallLog {
  readonly calls: Call[] = [];
  /** sideCalls are timed calls the daemon does not await before `virsh start` (record patches). */
  readonly sideCalls: Call[] = [];
  readonly startIssued = new Map<string, number>();
  /** startCpu: process.cpuUsage() when `virsh start NAME` was issued. */
  readonly startCpu = new Map<string, NodeJS.CpuUsage>();
  private waiters = new Map<string, (t: number) => void>();

  /** started resolves with performance.now() when `virsh start NAME` is issued. */
  started(name: string): Promise<number> {
    const t = this.startIssued.get(name);
    if (t !== undefined) return Promise.resolve(t);
    return new Promise((r) => this.waiters.set(name, r));
  }

  /** noteStart records that `virsh start NAME` is being issued now. */
  noteStart(name: string, t: number): void {
    this.startIssued.set(name, t);
    this.startCpu.set(name, process.cpuUsage());
    this.waiters.get(name)?.(t);
    this.waiters.delete(name);
  }

  /** waitedBetween sums the durations of calls that ran entirely within [from, to]. */
  waitedBetween(from: number, to: number): number {
    let ms = 0;
    for (const c of this.calls) if (c.t0 >= from && c.t1 <= to) ms += c.t1 - c.t0;
    return ms;
  }
}

/** instrumentRunner wraps a runner: every call is timed into `log`; `start NAME` is noted when issued. */
export function instrumentRunner(run: VirshRunner, log: CallLog): VirshRunner {
  return async (uri, args, opts) => {
    const t0 = performance.now();
    if (args[0] === "start" && args[1]) log.noteStart(args[1], t0);
    try {
      return await run(uri, args, opts);
    } finally {
      // `start` itself is not waiting before the start: it is the end of the reaction.
      if (args[0] !== "start") log.calls.push({ what: `virsh ${args[0] ?? ""}`, t0, t1: performance.now() });
    }
  };
}

/**
 * stubRunner answers like libvirt would for brand-new domains, without any process: `domstate` says the
 * domain does not exist (so the daemon defines it), everything else succeeds with empty output.
 */
export function stubRunner(): VirshRunner {
  return (uri, args) => {
    if (args[0] === "domstate" || args[0] === "dominfo") {
      const name = args[1] ?? "";
      return Promise.reject(
        makeVirshError(
          uri,
          args,
          `error: failed to get domain '${name}'\nerror: Domain not found: no domain with matching name '${name}'\n`,
          1,
        ),
      );
    }
    return Promise.resolve({ stdout: "", stderr: "" });
  };
}

/** instrumentStore times the store calls the daemon awaits on its way to `virsh start`. */
export function instrumentStore(store: MongoStore, log: CallLog): void {
  const claim = store.claim.bind(store);
  const upsert = store.upsertRfconfigRows.bind(store);
  store.claim = async (...a: Parameters<MongoStore["claim"]>) => {
    const t0 = performance.now();
    try {
      return await claim(...a);
    } finally {
      log.calls.push({ what: "mongo claim", t0, t1: performance.now() });
    }
  };
  const patch = store.patchRecord.bind(store);
  store.patchRecord = async (...a: Parameters<MongoStore["patchRecord"]>) => {
    const t0 = performance.now();
    try {
      return await patch(...a);
    } finally {
      // Not counted as waiting before the start: the daemon does not await these on the way.
      log.sideCalls.push({ what: "mongo patchRecord", t0, t1: performance.now() });
    }
  };
  store.upsertRfconfigRows = async (...a: Parameters<MongoStore["upsertRfconfigRows"]>) => {
    const t0 = performance.now();
    try {
      return await upsert(...a);
    } finally {
      log.calls.push({ what: "mongo rfconfig", t0, t1: performance.now() });
    }
  };
}

/** percentile of a sample (nearest rank); NaN for an empty sample. */
export function percentile(xs: readonly number[], p: number): number {
  if (xs.length === 0) return NaN;
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.max(0, Math.ceil((p / 100) * s.length) - 1))]!;
}

/** summary gives p50/p90/p99/mean/min/max (ms, 2 decimals) of a sample. */
export function summary(xs: readonly number[]): Record<string, number> {
  const r = (x: number) => Math.round(x * 100) / 100;
  return {
    n: xs.length,
    p50: r(percentile(xs, 50)),
    p90: r(percentile(xs, 90)),
    p99: r(percentile(xs, 99)),
    mean: r(xs.reduce((a, b) => a + b, 0) / Math.max(1, xs.length)),
    min: r(Math.min(...xs)),
    max: r(Math.max(...xs)),
  };
}

/**
 * nullStore is a stand-in for MongoStore that answers at once and keeps nothing: with the stub runner it
 * leaves only rfboot's own work between FEATURES_REPLY and `virsh start` (no MongoDB, no libvirt). It has
 * exactly the methods the Daemon calls.
 */
export function nullStore(): MongoStore {
  const store = Object.assign(new EventEmitter(), {
    listRecords: () => Promise.resolve([]),
    patchRecord: () => Promise.resolve("written"),
    logEvent: () => Promise.resolve("written"),
    claim: () => Promise.resolve(true),
    renew: () => Promise.resolve(true),
    renewAll: (_owner: string, _ttl: number, _now?: Date, dpids: readonly string[] = []) =>
      Promise.resolve({ renewed: [...dpids], lost: [] }),
    release: () => Promise.resolve(true),
    upsertRfconfigRows: () => Promise.resolve("written"),
    getRecord: () => Promise.resolve(undefined),
    lease: () => Promise.resolve(undefined),
    stats: () => ({ pending: 0, written: 0, failed: 0, droppedEvents: 0, retries: 0, online: true }),
    watchPortRegister: () => ({ ready: new Promise(() => undefined), stop: () => undefined }),
    close: () => Promise.resolve(0),
  });
  return store as unknown as MongoStore;
}
