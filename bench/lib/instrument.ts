/**
 * Instruments for the provisioner bench: a VirshRunner wrapper that timestamps every call (and the moment
 * `virsh start` is issued), a stub runner that answers at once (no libvirt), a store wrapper that times
 * the calls the daemon awaits before starting a VM (lease claim, rfconfig upsert), and percentiles.
 */
import { EventEmitter } from "node:events";
import type {
  DaemonStore,
  Lease,
  OutboxStats,
  PortRegisterWatch,
  VmRecord,
  WriteOutcome,
} from "../../src/provisioner/index.js";
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

  /**
   * commands: the MongoDB commands the daemon's client started (performance.now() and `name collection`),
   * from the driver's command monitoring, so that the round trips before a `virsh start` can be counted.
   */
  readonly commands: { t: number; what: string }[] = [];

  /**
   * waitedBetween is the time within [from, to] during which at least one call that ran entirely in it was
   * in flight: calls run side by side (a lease claim beside `virsh domstate`) count once, so the rest of the
   * reaction is rfboot's own time whatever overlaps.
   */
  waitedBetween(from: number, to: number): number {
    const spans = this.calls
      .filter((c) => c.t0 >= from && c.t1 <= to)
      .map((c) => [c.t0, c.t1] as const)
      .sort((a, b) => a[0] - b[0]);
    let ms = 0;
    let end = -Infinity;
    for (const [t0, t1] of spans) {
      if (t1 <= end) continue;
      ms += t1 - Math.max(t0, end);
      end = t1;
    }
    return ms;
  }

  /** waitedByKind sums, per kind of call, the durations of the calls that ran entirely within [from, to]. */
  waitedByKind(from: number, to: number): Map<string, number> {
    const out = new Map<string, number>();
    for (const c of this.calls) {
      if (c.t0 >= from && c.t1 <= to) out.set(c.what, (out.get(c.what) ?? 0) + (c.t1 - c.t0));
    }
    return out;
  }

  /** commandsBetween lists the MongoDB commands started within [from, to]. */
  commandsBetween(from: number, to: number): string[] {
    return this.commands.filter((c) => c.t >= from && c.t <= to).map((c) => c.what);
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
export function instrumentStore(store: DaemonStore, log: CallLog): void {
  const claim = store.claim.bind(store);
  const upsert = store.upsertRfconfigRows.bind(store);
  store.claim = async (...a: Parameters<DaemonStore["claim"]>) => {
    const t0 = performance.now();
    try {
      return await claim(...a);
    } finally {
      log.calls.push({ what: "mongo claim", t0, t1: performance.now() });
    }
  };
  const patch = store.patchRecord.bind(store);
  store.patchRecord = async (...a: Parameters<DaemonStore["patchRecord"]>) => {
    const t0 = performance.now();
    try {
      return await patch(...a);
    } finally {
      // Not counted as waiting before the start: the daemon does not await these on the way.
      log.sideCalls.push({ what: "mongo patchRecord", t0, t1: performance.now() });
    }
  };
  store.upsertRfconfigRows = async (...a: Parameters<DaemonStore["upsertRfconfigRows"]>) => {
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
 * NullStore is a DaemonStore that answers at once and keeps nothing: with the stub runner it leaves only
 * rfboot's own work between FEATURES_REPLY and `virsh start` (no MongoDB, no libvirt). Every lease is
 * granted, no record exists, and a PortRegister never comes.
 */
export class NullStore extends EventEmitter implements DaemonStore {
  listRecords(): Promise<VmRecord[]> {
    return Promise.resolve([]);
  }
  getRecord(): Promise<VmRecord | undefined> {
    return Promise.resolve(undefined);
  }
  patchRecord(): Promise<WriteOutcome> {
    return Promise.resolve("written");
  }
  logEvent(): Promise<WriteOutcome> {
    return Promise.resolve("written");
  }
  upsertRfconfigRows(): Promise<WriteOutcome> {
    return Promise.resolve("written");
  }
  deleteRfconfigRows(rows: readonly unknown[]): Promise<number> {
    return Promise.resolve(rows.length);
  }
  claim(): Promise<boolean> {
    return Promise.resolve(true);
  }
  renewAll(
    _owner: string,
    _ttlMs: number,
    _now?: Date,
    dpids: readonly string[] = [],
  ): Promise<{ renewed: string[]; lost: string[] }> {
    return Promise.resolve({ renewed: [...dpids], lost: [] });
  }
  release(): Promise<boolean> {
    return Promise.resolve(true);
  }
  lease(): Promise<Lease | undefined> {
    return Promise.resolve(undefined);
  }
  watchPortRegister(): PortRegisterWatch {
    return { ready: new Promise<never>(() => undefined), stop: () => undefined };
  }
  stats(): OutboxStats {
    return { pending: 0, written: 0, failed: 0, droppedEvents: 0, retries: 0, online: true };
  }
  pending(): number {
    return 0;
  }
  close(): Promise<number> {
    return Promise.resolve(0);
  }
}

/** nullStore returns a new NullStore. */
export function nullStore(): DaemonStore {
  return new NullStore();
}
