/**
 * DaemonStore is the part of the store the daemon uses: records, the event log, RouteFlow's rfconfig rows,
 * leases, the PortRegister watch and the outbox's state. MongoStore implements it; unit tests and benches
 * pass their own implementation, so the daemon's logic runs without a MongoDB server.
 */
import type { OutboxStats } from "./outbox.js";
import type { PortRegisterResult, PortRegisterWatchOptions } from "./readiness.js";
import type { Lease, RecordPatch, RfconfigRow, StoreEvent, VmRecord, WriteOutcome } from "./types.js";

/** PortRegisterWatch is a running watch for one VM's PortRegister messages. */
export interface PortRegisterWatch {
  /** ready resolves when every expected port registered; rejects on timeout or stop(). */
  readonly ready: Promise<PortRegisterResult>;
  stop(): void;
}

/** DaemonStore lists the store operations the daemon calls; see MongoStore for their semantics. */
export interface DaemonStore {
  /** listRecords returns every record, including writes still buffered. */
  listRecords(): Promise<VmRecord[]>;
  /** getRecord returns one record (buffered writes applied), or undefined. */
  getRecord(dpidHex: string): Promise<VmRecord | undefined>;
  /** patchRecord `$set`s the patch on a dpid's record (created if absent). */
  patchRecord(dpidHex: string, patch: RecordPatch): Promise<WriteOutcome>;
  /** logEvent appends to the event log (`at` defaults to now). */
  logEvent(event: Omit<StoreEvent, "at"> & { at?: Date }): Promise<WriteOutcome>;
  /** upsertRfconfigRows writes RouteFlow's rows of one VM, keyed by (vm_id, vm_port). */
  upsertRfconfigRows(rows: readonly RfconfigRow[]): Promise<WriteOutcome>;
  /** deleteRfconfigRows deletes one row equal in all five fields per row given; resolves how many went. */
  deleteRfconfigRows(rows: readonly RfconfigRow[]): Promise<number>;
  /**
   * holdBookkeeping keeps record patches and events waiting (at most the outbox's maxHoldMs each) until the
   * returned function is called: a VM start on its way must not wait behind them. Optional: a store without
   * it writes them at once.
   */
  holdBookkeeping?(): () => void;
  /** claim is true when `owner` holds the dpid's lease for ttlMs from now. */
  claim(dpidHex: string, owner: string, ttlMs: number): Promise<boolean>;
  /**
   * renewAll extends the leases of `owner` among `dpids`; `lost` lists those it no longer holds, `wanted`
   * those of the renewed that another instance asked for (want).
   */
  renewAll(
    owner: string,
    ttlMs: number,
    now?: Date,
    dpids?: readonly string[],
  ): Promise<{ renewed: string[]; lost: string[]; wanted?: string[] }>;
  /** release gives up `owner`'s lease of a dpid; true when it held one. */
  release(dpidHex: string, owner: string): Promise<boolean>;
  /**
   * want asks the holder of a dpid's lease to give it up (its switch joined `owner` and the claim was
   * refused); unwant withdraws it. Optional: without them a lease held ahead is never asked for.
   */
  want?(dpidHex: string, owner: string): Promise<void>;
  unwant?(dpidHex: string, owner: string): Promise<void>;
  /** lease returns the current holder of a dpid's lease, if any. */
  lease(dpidHex: string): Promise<Lease | undefined>;
  /** watchPortRegister watches RouteFlow's IPC channel, read-only, for a VM's PortRegister messages. */
  watchPortRegister(vmId: string, since: Date, options?: PortRegisterWatchOptions): PortRegisterWatch;
  /** stats: the outbox counters; `online` is false while MongoDB is known to be unreachable. */
  stats(): OutboxStats;
  /** pending counts writes not yet confirmed by MongoDB. */
  pending(): number;
  /** on: `offline` (MongoDB became unreachable; writes are buffered) and `online` (reachable again). */
  on(event: "offline", listener: (err: unknown) => void): this;
  on(event: "online", listener: () => void): this;
  /** close flushes what it can and closes the connection; resolves the number of writes left. */
  close(): Promise<number>;
}
