/**
 * MongoStore: everything rfboot reads from and writes to MongoDB (README, "MongoDB records").
 *
 * - RouteFlow's `rfconfig` (rows in RouteFlow's exact format) and rfboot's own `<prefix>vms` records and
 *   `<prefix>events` log are written through the Outbox, so an outage delays writes instead of failing the
 *   daemon; the outbox can be kept in `<stateDir>` so a restart during an outage loses nothing either.
 * - Leases (`<prefix>leases`) and reads go straight to the server: they need an answer now.
 * - RouteFlow's IPC channel is only ever read (readiness.ts).
 * Verified against FerretDB 1.24/SQLite, which lacks transactions, TTL indexes, atomic conditional updates
 * and eager capped collections; the design uses none of them (see leases.ts and the notes below).
 */
import { EventEmitter } from "node:events";
import { chmodSync, existsSync, mkdirSync, readFileSync, renameSync, rmSync, writeFileSync } from "node:fs";
import { chmod, mkdir, rename, rm, writeFile } from "node:fs/promises";
import { hostname } from "node:os";
import { join } from "node:path";
import {
  BSON,
  MongoClient,
  ObjectId,
  type Collection,
  type Filter,
  type Db,
  type Document,
  type MongoClientOptions,
} from "mongodb";
import { dpidToHex } from "../../common/dpid.js";
import { ConfigError, errorMessage, StoreError } from "../../common/errors.js";
import { redactUri, silentLogger, type Logger } from "../../common/log.js";
import {
  attempt,
  duplicateIndexes,
  insertUnordered,
  isDuplicateKey,
  isTopologyClosed,
  isTransient,
  wrap,
} from "./errors.js";
import type { DaemonStore } from "./daemon-store.js";
import { LeaseTable, type LeaseDoc } from "./leases.js";
import {
  applyRfconfigRows,
  deleteExactRfconfigRows,
  dropLegacyRfconfigIndexes,
  removeOwnRfconfigRows,
  ROW_ID_PREFIX,
  type ConflictPolicy,
  type RfconfigConflict,
  type RfconfigDoc,
} from "./rfconfig.js";
import { Outbox, type OutboxBatch, type OutboxOp, type OutboxOptions, type OutboxStats } from "./outbox.js";
import { IPC_CHANNEL, PortRegisterWatcher, type PortRegisterWatchOptions } from "./readiness.js";
import type {
  Lease,
  RecordPatch,
  RfconfigRow,
  StoreEvent,
  StoredEvent,
  VmRecord,
  WriteOutcome,
} from "./types.js";
import {
  checkDecimal,
  checkDpidHex,
  checkName,
  checkVmId,
  hasControl,
  validateEvent,
  validatePatch,
  validateRfconfigRows,
} from "./validate.js";

/** DEFAULT_DATABASE is RouteFlow's database name. */
export const DEFAULT_DATABASE = "db";

/** PERSIST_ONLINE_AFTER_MS: while MongoDB answers, a write is kept in the state file once it is this old. */
const PERSIST_ONLINE_AFTER_MS = 500;

/** DEFAULT_PREFIX prefixes rfboot's own collections (`rfboot_vms`, `rfboot_events`, `rfboot_leases`). */
export const DEFAULT_PREFIX = "rfboot_";

/** MongoStoreOptions configure a store; durations in milliseconds. */
export interface MongoStoreOptions {
  /** uri is a MongoDB connection string; credentials in it are never logged. */
  readonly uri: string;
  /** database defaults to the URI's path, else RouteFlow's `db`. */
  readonly database?: string;
  /** prefix of rfboot's collections (default `rfboot_`). */
  readonly prefix?: string;
  /** owner names this rfboot instance in records and events (default `hostname:pid`). */
  readonly owner?: string;
  readonly logger?: Logger;
  /** serverSelectionTimeoutMS: how long one operation waits for an unreachable server (default 2000). */
  readonly serverSelectionTimeoutMS?: number;
  readonly connectTimeoutMS?: number;
  /** socketTimeoutMS ends operations on a server that hangs (default 10000). */
  readonly socketTimeoutMS?: number;
  /** stateDir, when set, keeps unwritten outbox entries in `<stateDir>/<prefix>outbox-<database>.json`. */
  readonly stateDir?: string;
  readonly outbox?: Omit<OutboxOptions, "apply">;
  /** eventsMax bounds the event log (documents, default 10000); eventsBytes its capped size (default 8 MiB). */
  readonly eventsMax?: number;
  readonly eventsBytes?: number;
  /** now is the clock (tests). */
  readonly now?: () => Date;
  /**
   * rfconfigConflicts: what happens to another writer's `rfconfig` row that maps one of rfboot's VM
   * interfaces or switch ports elsewhere: `report` (default; left alone, recorded) or `replace` (deleted).
   */
  readonly rfconfigConflicts?: ConflictPolicy;
  /** clientOptions are passed to MongoClient (e.g. TLS); the timeouts above take precedence. */
  readonly clientOptions?: MongoClientOptions;
}

/** StoreCollections names the collections a store uses. */
export interface StoreCollections {
  readonly rfconfig: string;
  readonly vms: string;
  readonly events: string;
  readonly leases: string;
  readonly ipc: string;
}

/** VmRecordDoc is the stored shape of a VmRecord. */
type VmRecordDoc = Omit<VmRecord, "_id"> & { _id: string };

interface EventDoc {
  _id: ObjectId;
  at: Date;
  dpid?: string;
  vm?: string;
  kind: string;
  detail?: string;
  owner?: string;
}

const OUTBOX_FILE_VERSION = 1;

type RecordOp = Extract<OutboxOp, { type: "record" }>;
type EventOp = Extract<OutboxOp, { type: "event" }>;

/** UPDATE_CHUNK bounds one bulk update of records (see applyRecords). */
const UPDATE_CHUNK = 16;

function uriDatabase(uri: string): string | undefined {
  const m = /^mongodb(?:\+srv)?:\/\/[^/]*\/([^?]+)/.exec(uri);
  return m?.[1] ? decodeURIComponent(m[1]) : undefined;
}

function flattenPatch(patch: RecordPatch): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(patch)) {
    if (k === "switch" && v && typeof v === "object") {
      // Field by field, so a patch of `switch.connected` keeps the stored peer and version.
      for (const [sk, sv] of Object.entries(v as Record<string, unknown>))
        if (sv !== undefined) out[`switch.${sk}`] = sv;
    } else if (v !== undefined) {
      out[k] = v;
    }
  }
  return out;
}

/** applyPatch returns `base` with `patch` applied as MongoDB would (read-your-writes overlay). */
function applyPatch(base: VmRecord | undefined, dpidHex: string, patch: RecordPatch, at: Date): VmRecord {
  const start: VmRecord = base ?? {
    _id: dpidHex,
    dpidHex,
    dpid: BigInt(`0x${dpidHex}`).toString(10),
    state: "joined",
    createdAt: at,
    updatedAt: at,
  };
  const { switch: sw, ...rest } = patch;
  const merged = { ...start, ...rest, updatedAt: at } as VmRecord & { switch?: Partial<VmRecord["switch"]> };
  if (sw) merged.switch = { ...start.switch, ...sw } as VmRecord["switch"];
  return merged;
}

/**
 * MongoStore is rfboot's MongoDB access. Events: `flushed` (outbox empty again; payload: writes flushed),
 * `offline` (error), `online`, `writeError` (StoreError, op: a write MongoDB refused; it is dropped).
 */
export class MongoStore extends EventEmitter implements DaemonStore {
  /** database is the database name in use. */
  readonly database: string;
  /** collections names the collections in use. */
  readonly collections: StoreCollections;
  /** owner names this instance. */
  readonly owner: string;
  private readonly client: MongoClient;
  private readonly log: Logger;
  private readonly now: () => Date;
  private readonly outbox: Outbox;
  private readonly leases: LeaseTable;
  private readonly statePath: string | undefined;
  private readonly eventsMax: number;
  private readonly eventsBytes: number;
  private setupPromise: Promise<void> | undefined;
  private connected = false;
  private connecting: Promise<void> | undefined;
  private readonly rfconfigConflicts: ConflictPolicy;
  private eventsSinceTrim = 0;
  private trimming: Promise<number> | undefined;
  private persistTimer: NodeJS.Timeout | undefined;
  /**
   * persisting chains the state file's writes, one at a time, off the event loop: each writes the outbox as
   * it is when it starts, so the last rename holds the latest state. persistQueued: one is waiting to start
   * (later changes are in it). onDisk: the file may exist (a removal is not queued when it cannot).
   */
  private persisting: Promise<void> = Promise.resolve();
  private persistQueued = false;
  private onDisk = false;
  private closed = false;
  private readonly watchers = new Set<PortRegisterWatcher>();
  /**
   * knownRecords: dpids whose record this store has seen in MongoDB (read, or written by it). The first
   * write of any other record is tried as an insert, which FerretDB batches in one statement where an
   * upsert costs a lookup and a write per record; a record that exists after all is then updated.
   */
  private readonly knownRecords = new Set<string>();
  /**
   * critical counts lease claims, rfconfig writes and VM starts under way (holdBookkeeping): a VM start
   * waits for them, so the outbox holds record patches and events meanwhile (see OutboxOptions.hold).
   */
  private critical = 0;

  private constructor(options: MongoStoreOptions) {
    super();
    this.log = (options.logger ?? silentLogger).child({ component: "store" });
    this.now = options.now ?? (() => new Date());
    this.rfconfigConflicts = options.rfconfigConflicts ?? "report";
    this.database = options.database ?? uriDatabase(options.uri) ?? DEFAULT_DATABASE;
    if (!/^[^/\\. "$*<>:|?]{1,63}$/.test(this.database) || hasControl(this.database)) {
      throw new StoreError(`invalid database name ${JSON.stringify(this.database)}`, "connect");
    }
    const prefix = options.prefix ?? DEFAULT_PREFIX;
    if (!/^[A-Za-z0-9_.-]{0,32}$/.test(prefix)) {
      throw new StoreError(
        `invalid collection prefix ${JSON.stringify(prefix)} (letters, digits, _ . -)`,
        "connect",
      );
    }
    this.owner = options.owner ?? `${hostname()}:${process.pid}`;
    checkName(this.owner, "store.owner");
    this.collections = {
      rfconfig: "rfconfig",
      vms: `${prefix}vms`,
      events: `${prefix}events`,
      leases: `${prefix}leases`,
      ipc: IPC_CHANNEL,
    };
    this.eventsMax = options.eventsMax ?? 10_000;
    this.eventsBytes = options.eventsBytes ?? 8 * 1024 * 1024;
    try {
      this.client = new MongoClient(options.uri, {
        appName: "rfboot",
        ...options.clientOptions,
        serverSelectionTimeoutMS: options.serverSelectionTimeoutMS ?? 2_000,
        connectTimeoutMS: options.connectTimeoutMS ?? 2_000,
        socketTimeoutMS: options.socketTimeoutMS ?? 10_000,
      });
    } catch (err) {
      throw new StoreError(`bad MongoDB URI ${redactUri(options.uri)}: ${errorMessage(err)}`, "connect", {
        cause: err,
      });
    }
    this.leases = new LeaseTable(this.db.collection<LeaseDoc>(this.collections.leases), {
      onRepair: (dpids, during) =>
        this.log.warn(
          { collection: this.collections.leases, repaired: dpids.length, dpids: dpids.slice(0, 20), during },
          "lease chains without generation 1 (left by an earlier rfboot, which may still run beside) got it " +
            "back; this instance's first claims read the hint beside the insert until it restarts",
        ),
    });
    this.outbox = new Outbox({
      ...options.outbox,
      apply: (op) => this.apply(op),
      hold: () => this.critical > 0,
    });
    this.outbox.on("flushed", (n: number) => this.emit("flushed", n));
    this.outbox.on("online", () => {
      this.log.info({ pending: this.outbox.pending() }, "MongoDB reachable again; flushing buffered writes");
      this.emit("online");
    });
    this.outbox.on("offline", (err: unknown) => {
      this.log.warn({ err: errorMessage(err) }, "MongoDB unreachable; buffering writes");
      this.emit("offline", err);
    });
    this.outbox.on("writeError", (err: StoreError, op: OutboxOp) => {
      this.log.error({ err: err.message, op: op.type }, "MongoDB refused a write; it is dropped");
      this.emit("writeError", err, op);
    });
    this.outbox.on("dropped", () => {
      // Once, then every 1000th: a long outage must not flood the log with one line per dropped event.
      const n = this.outbox.stats().droppedEvents;
      if (n === 1 || n % 1000 === 0) {
        this.log.warn({ dropped: n }, "event log buffer full while MongoDB is down; oldest events dropped");
      }
    });
    this.statePath = options.stateDir
      ? join(options.stateDir, `${prefix}outbox-${this.database}.json`)
      : undefined;
    if (options.stateDir) {
      this.outbox.on("changed", () => this.schedulePersist());
      // Empty again: drop the state file at once rather than after the debounce.
      this.outbox.on("flushed", () => {
        clearTimeout(this.persistTimer);
        this.persistTimer = undefined;
        this.persistSoon();
      });
    }
    this.log.info({ mongo: redactUri(options.uri), database: this.database }, "store configured");
  }

  /**
   * open creates a store and tries to prepare the database (indexes, capped event log). An unreachable server
   * is not an error: writes are buffered and setup is retried before the first write that gets through.
   */
  static async open(options: MongoStoreOptions): Promise<MongoStore> {
    const store = new MongoStore(options);
    store.loadOutbox();
    try {
      await store.ensureSetup();
    } catch (err) {
      if (!isTransient(err)) {
        await store.client.close().catch(() => undefined);
        throw err;
      }
      store.log.warn({ err: errorMessage(err) }, "MongoDB unreachable at start-up; writes will be buffered");
    }
    return store;
  }

  /** db is the underlying database handle (diagnostics and tests). */
  get db(): Db {
    return this.client.db(this.database);
  }

  private col<T extends Document>(name: string): Collection<T> {
    return this.db.collection<T>(name);
  }

  // ---- connection ---------------------------------------------------------------------------------------

  /**
   * connect opens the client once. Needed because of a driver behaviour found here: when the implicit
   * connect of a first operation fails (server down at start-up), the client stays "Topology is closed"
   * for good; an explicit connect() later recovers it. Once connected, the driver reconnects by itself.
   */
  private async connect(operation: string, what = ""): Promise<void> {
    if (this.connected) return;
    this.connecting ??= this.client.connect().then(
      () => {
        this.connected = true;
        this.connecting = undefined;
      },
      (err: unknown) => {
        this.connecting = undefined;
        throw err;
      },
    );
    try {
      await this.connecting;
    } catch (err) {
      throw wrap(operation, err, what);
    }
  }

  /** run connects if needed, runs `fn`, and turns a failure into a StoreError naming `operation`. */
  private async run<T>(operation: string, fn: () => Promise<T>, what = ""): Promise<T> {
    await this.connect(operation, what);
    try {
      return await attempt(operation, fn, what);
    } catch (err) {
      if (isTopologyClosed(err) && !this.closed) this.connected = false;
      throw err;
    }
  }

  // ---- setup ----------------------------------------------------------------------------------------------

  /** ensureSetup creates indexes and collections once; a transient failure is retried by the next caller. */
  ensureSetup(): Promise<void> {
    this.setupPromise ??= this.run("setup", () => this.setup()).catch((err: unknown) => {
      this.setupPromise = undefined;
      throw wrap("setup", err);
    });
    return this.setupPromise;
  }

  private async setup(): Promise<void> {
    // RouteFlow's loader inserts its CSV at every start and dies on a duplicate key: the unique indexes of
    // earlier rfboot versions go. Their rows (no rfboot `_id`) count as another writer's from now on.
    const dropped = await dropLegacyRfconfigIndexes(this.col<RfconfigDoc>(this.collections.rfconfig));
    if (dropped.length > 0) {
      this.log.warn(
        { collection: this.collections.rfconfig, dropped },
        "dropped the unique indexes an earlier rfboot put on rfconfig (RouteFlow's loader fails on them); " +
          "rows written before keep their place and are left to RouteFlow",
      );
    }
    await this.col(this.collections.vms).createIndex({ vmName: 1 });
    try {
      await this.db.createCollection(this.collections.events, {
        capped: true,
        size: this.eventsBytes,
        max: this.eventsMax,
      });
    } catch (err) {
      if (isTransient(err)) throw err;
      // NamespaceExists (48): created by an earlier run or another instance.
    }
    await this.col(this.collections.events).createIndex({ at: -1 });
    await this.leases.prepare(this.now());
  }

  // ---- outbox application -----------------------------------------------------------------------------

  private async apply(op: OutboxOp | OutboxBatch): Promise<void> {
    await this.ensureSetup();
    if (op.type === "batch") return this.run("outbox.batch", () => this.applyBatch(op.ops));
    return this.run(`outbox.${op.type}`, () => this.applyOp(op));
  }

  /** applyBatch writes record patches of distinct records and events, a few commands for the lot. */
  private async applyBatch(ops: readonly OutboxOp[]): Promise<void> {
    const records = ops.filter((o): o is RecordOp => o.type === "record");
    const events = ops.filter((o): o is EventOp => o.type === "event");
    for (const o of ops) if (o.type !== "record" && o.type !== "event") await this.applyOp(o);
    if (records.length > 0) await this.applyRecords(records);
    if (events.length > 0) await this.applyEvents(events);
  }

  /**
   * recordDoc is the document the upsert of `o` (recordUpdate) creates on an empty collection: its
   * `$setOnInsert` and `$set` fields, the dotted `switch.*` keys as a sub-document.
   */
  private recordDoc(o: RecordOp): VmRecordDoc {
    const { set, onInsert } = this.recordUpdate(o.dpidHex, o.patch, o.at);
    const doc: Record<string, unknown> = { _id: o.dpidHex, ...onInsert };
    for (const [k, v] of Object.entries(set)) {
      const [top, sub] = k.split(".", 2) as [string, string | undefined];
      if (sub === undefined) doc[k] = v;
      else ((doc[top] ??= {}) as Record<string, unknown>)[sub] = v;
    }
    return doc as unknown as VmRecordDoc;
  }

  /**
   * applyRecords writes patches of distinct records: records not known to exist are inserted in one
   * insertMany (those that existed after all fail with a duplicate key and are updated instead), the others
   * updated in one unordered bulkWrite.
   */
  private async applyRecords(ops: readonly RecordOp[]): Promise<void> {
    const vms = this.col<VmRecordDoc>(this.collections.vms);
    const fresh = ops.filter((o) => !this.knownRecords.has(o.dpidHex));
    const update = ops.filter((o) => this.knownRecords.has(o.dpidHex));
    if (fresh.length > 0) {
      const dup = await insertUnordered(
        vms,
        fresh.map((o) => this.recordDoc(o)),
      );
      for (const [i, o] of fresh.entries()) {
        this.knownRecords.add(o.dpidHex);
        if (dup.has(i)) update.push(o);
      }
    }
    // FerretDB 1.24 applies a bulk update in time that grows faster than its size (measured: 16 updates
    // ~30 ms, 64 ~195 ms, 256 did not finish within minutes and held the database meanwhile), so updates go
    // in chunks of UPDATE_CHUNK, one after the other.
    for (let i = 0; i < update.length; i += UPDATE_CHUNK)
      await this.updateRecords(update.slice(i, i + UPDATE_CHUNK));
  }

  private async updateRecords(update: readonly RecordOp[]): Promise<void> {
    if (update.length === 1) return this.applyRecord(update[0]!.dpidHex, update[0]!.patch, update[0]!.at);
    const vms = this.col<VmRecordDoc>(this.collections.vms);
    try {
      await vms.bulkWrite(
        update.map((o) => {
          const { set, onInsert } = this.recordUpdate(o.dpidHex, o.patch, o.at);
          return {
            updateOne: {
              filter: { _id: o.dpidHex },
              update: { $set: set, $setOnInsert: onInsert },
              upsert: true,
            },
          };
        }),
        { ordered: false },
      );
    } catch (err) {
      // Two instances upserting one new record: the losers are retried as plain updates.
      const d = duplicateIndexes(err);
      if (!d) throw err;
      for (const i of d) await this.applyRecord(update[i]!.dpidHex, update[i]!.patch, update[i]!.at);
    }
  }

  /** applyEvents inserts events in one unordered insertMany; one already there (a replay) is skipped. */
  private async applyEvents(ops: readonly EventOp[]): Promise<void> {
    const docs: EventDoc[] = ops.map((o) => ({ _id: new ObjectId(o.id), ...o.event, owner: this.owner }));
    await insertUnordered(this.col<EventDoc>(this.collections.events), docs);
    this.countEvents(ops.length);
  }

  private async applyOp(op: OutboxOp): Promise<void> {
    switch (op.type) {
      case "record":
        return this.applyRecord(op.dpidHex, op.patch, op.at);
      case "record-delete":
        await this.col<VmRecordDoc>(this.collections.vms).deleteOne({ _id: op.dpidHex });
        this.knownRecords.delete(op.dpidHex);
        return;
      case "rfconfig-upsert": {
        const conflicts = await applyRfconfigRows(
          this.col<RfconfigDoc>(this.collections.rfconfig),
          op.rows,
          this.rfconfigConflicts,
        );
        if (conflicts.length > 0) await this.reportConflicts(conflicts);
        return;
      }
      case "rfconfig-remove":
        await removeOwnRfconfigRows(this.col<RfconfigDoc>(this.collections.rfconfig), op.vmId);
        return;
      case "event":
        return this.applyEvent(op.id, op.event);
    }
  }

  /**
   * reportConflicts records each conflicting row where an operator looks: a warning, an event, and the
   * `lastError` of the datapath's record (kind `rfconfig-conflict`, shown by `rfboot status`).
   */
  private async reportConflicts(conflicts: readonly RfconfigConflict[]): Promise<void> {
    const at = this.now();
    const byDp = new Map<string, string[]>();
    for (const c of conflicts) {
      const what =
        c.on === "vm-port"
          ? `VM ${c.row.vm_id} port ${c.row.vm_port} is also mapped to datapath ${c.other.dp_id} port ${c.other.dp_port}`
          : `datapath ${c.row.dp_id} port ${c.row.dp_port} is also mapped to VM ${c.other.vm_id} port ${c.other.vm_port}`;
      const detail =
        `rfconfig conflict: ${what} by another writer's row (_id ${c.otherId}); ` +
        (c.action === "replaced"
          ? "that row was deleted (rfconfigConflicts: replace)"
          : "it was left alone and rfserver may use either row; remove it, or set policies.rfconfigConflicts: replace");
      this.log.warn({ row: c.row, other: c.other, otherId: c.otherId, action: c.action }, detail);
      // The row was validated on its way in: dp_id is a canonical decimal string.
      const dpidHex = dpidToHex(BigInt(c.row.dp_id));
      byDp.set(dpidHex, [...(byDp.get(dpidHex) ?? []), detail]);
      await this.applyEvent(new ObjectId().toHexString(), {
        at,
        dpid: dpidHex,
        kind: "rfconfig-conflict",
        detail,
      });
    }
    for (const [dpidHex, details] of byDp) {
      await this.applyRecord(
        dpidHex,
        { lastError: { kind: "rfconfig-conflict", message: details.join("; "), at } },
        at,
      );
    }
  }

  private recordUpdate(
    dpidHex: string,
    patch: RecordPatch,
    at: Date,
  ): { set: Record<string, unknown>; onInsert: Record<string, unknown> } {
    const set = { ...flattenPatch(patch), updatedAt: at, owner: this.owner };
    const onInsert: Record<string, unknown> = {
      dpidHex,
      dpid: BigInt(`0x${dpidHex}`).toString(10),
      createdAt: at,
    };
    if (patch.state === undefined) onInsert.state = "joined";
    return { set, onInsert };
  }

  private async applyRecord(dpidHex: string, patch: RecordPatch, at: Date): Promise<void> {
    const { set, onInsert } = this.recordUpdate(dpidHex, patch, at);
    const vms = this.col<VmRecordDoc>(this.collections.vms);
    for (let i = 0; ; i++) {
      try {
        await vms.updateOne({ _id: dpidHex }, { $set: set, $setOnInsert: onInsert }, { upsert: true });
        this.knownRecords.add(dpidHex);
        return;
      } catch (err) {
        // Two instances upserting one new record: the loser retries as a plain update.
        if (!isDuplicateKey(err) || i >= 2) throw err;
      }
    }
  }

  private async applyEvent(id: string, event: StoreEvent): Promise<void> {
    const doc: EventDoc = { _id: new ObjectId(id), ...event, owner: this.owner };
    try {
      await this.col<EventDoc>(this.collections.events).insertOne(doc);
    } catch (err) {
      // The same event written before (ack lost, or replayed from the state file): already there.
      if (!isDuplicateKey(err)) throw err;
    }
    this.countEvents(1);
  }

  private countEvents(n: number): void {
    // Trimming scans the collection on FerretDB (~0.5 s per 10,000 events): do it every eventsMax/10
    // events, off the write path, one at a time.
    this.eventsSinceTrim += n;
    if (
      this.eventsSinceTrim >= Math.max(10, Math.min(1_000, Math.floor(this.eventsMax / 10))) &&
      !this.trimming
    ) {
      this.eventsSinceTrim = 0;
      this.trimming = this.trimEvents()
        .catch(() => 0)
        .finally(() => (this.trimming = undefined));
    }
  }

  /**
   * trimEvents keeps the event log within eventsMax documents and returns how many it deleted. MongoDB
   * enforces the capped collection itself; FerretDB 1.24 trims capped collections only in a background pass
   * (every minute, 10% at a time), so the bound is kept here too. Deleting from a capped collection fails on
   * MongoDB < 5.0: ignored there, the server keeps the cap.
   */
  async trimEvents(): Promise<number> {
    const ev = this.col<EventDoc>(this.collections.events);
    try {
      const [boundary] = await ev
        .find({}, { projection: { _id: 1 } })
        .sort({ _id: -1 })
        .skip(this.eventsMax)
        .limit(1)
        .toArray();
      if (!boundary) return 0;
      const r = await ev.deleteMany({ _id: { $lte: boundary._id } });
      return r.deletedCount;
    } catch (err) {
      if (isTransient(err)) throw wrap("trimEvents", err);
      this.log.debug(
        { err: errorMessage(err) },
        "event log trim refused (capped collection); server keeps the cap",
      );
      return 0;
    }
  }

  private write(op: OutboxOp): Promise<WriteOutcome> {
    if (this.closed) return Promise.reject(new StoreError("store is closed", op.type));
    return this.outbox.enqueue(op);
  }

  // ---- rfconfig -----------------------------------------------------------------------------------------

  /**
   * upsertRfconfigRows writes RouteFlow `rfconfig` rows, keyed by (vm_id, vm_port): an existing row for that
   * VM interface gets the new switch side, a row mapping the same (ct_id, dp_id, dp_port) to another VM
   * interface is replaced, every other row is left alone. Rejects with ConfigError for a bad row (nothing is
   * written); resolves `written`, or `queued` while MongoDB is unreachable.
   */
  async upsertRfconfigRows(rows: readonly RfconfigRow[]): Promise<WriteOutcome> {
    const valid = validateRfconfigRows(rows, "upsertRfconfigRows.rows");
    const keys = new Set<string>();
    for (const [i, r] of valid.entries()) {
      for (const k of [`vm ${r.vm_id}/${r.vm_port}`, `dp ${r.ct_id}/${r.dp_id}/${r.dp_port}`]) {
        if (keys.has(k)) {
          throw new ConfigError(
            `repeats ${k} within one call; list each VM port and each switch port once`,
            `upsertRfconfigRows.rows[${i}]`,
          );
        }
        keys.add(k);
      }
    }
    if (valid.length === 0) return "written";
    return this.whileCritical(() => this.write({ type: "rfconfig-upsert", rows: valid }));
  }

  /** holdBookkeeping holds record patches and events until the returned function is called (once counts). */
  holdBookkeeping(): () => void {
    this.critical++;
    let held = true;
    return () => {
      if (!held) return;
      held = false;
      if (--this.critical === 0) this.outbox.resume();
    };
  }

  /** whileCritical runs `fn` with the outbox's bookkeeping writes held (see `critical`). */
  private async whileCritical<T>(fn: () => Promise<T>): Promise<T> {
    this.critical++;
    try {
      return await fn();
    } finally {
      if (--this.critical === 0) this.outbox.resume();
    }
  }

  /** removeRfconfigRows deletes every `rfconfig` row of one VM (vm_id, decimal string). */
  async removeRfconfigRows(vmId: string): Promise<WriteOutcome> {
    return this.write({ type: "rfconfig-remove", vmId: checkVmId(vmId, "removeRfconfigRows.vmId") });
  }

  /** listRfconfigRows reads `rfconfig` rows, optionally of one VM or one switch (decimal strings). */
  async listRfconfigRows(filter: { vm_id?: string; dp_id?: string } = {}): Promise<RfconfigRow[]> {
    const q: Record<string, string> = {};
    if (filter.vm_id !== undefined) q.vm_id = checkVmId(filter.vm_id, "listRfconfigRows.vm_id");
    if (filter.dp_id !== undefined)
      q.dp_id = checkDecimal(filter.dp_id, "listRfconfigRows.dp_id", (1n << 64n) - 1n);
    const docs = await this.run("listRfconfigRows", () =>
      this.col(this.collections.rfconfig)
        .find(q, { projection: { _id: 0 } })
        .toArray(),
    );
    return docs.map((d) => ({
      vm_id: String(d.vm_id),
      vm_port: String(d.vm_port),
      ct_id: String(d.ct_id),
      dp_id: String(d.dp_id),
      dp_port: String(d.dp_port),
    }));
  }

  /** listOwnRfconfigRows reads the `rfconfig` rows rfboot wrote (their `_id` starts with `rfboot:`), with it. */
  async listOwnRfconfigRows(): Promise<(RfconfigRow & { id: string })[]> {
    const docs = await this.run("listOwnRfconfigRows", () =>
      this.col<RfconfigDoc>(this.collections.rfconfig)
        .find({ _id: { $regex: `^${ROW_ID_PREFIX}` } } as Record<string, unknown>)
        .toArray(),
    );
    return docs.map((d) => ({
      id: String(d._id),
      vm_id: String(d.vm_id),
      vm_port: String(d.vm_port),
      ct_id: String(d.ct_id),
      dp_id: String(d.dp_id),
      dp_port: String(d.dp_port),
    }));
  }

  // ---- records ------------------------------------------------------------------------------------------

  /**
   * patchRecord `$set`s the fields of `patch` on the record of `dpidHex`, creating it (state `joined` unless
   * given) if absent. Rejects with ConfigError on a bad patch; otherwise resolves `written` or `queued`.
   */
  async patchRecord(dpidHex: string, patch: RecordPatch): Promise<WriteOutcome> {
    checkDpidHex(dpidHex, "patchRecord.dpid");
    const valid = validatePatch(patch, "patchRecord.patch");
    return this.write({ type: "record", dpidHex, patch: valid, at: this.now() });
  }

  /** deleteRecord removes the record of a dpid (an operator removed the VM). */
  async deleteRecord(dpidHex: string): Promise<WriteOutcome> {
    return this.write({ type: "record-delete", dpidHex: checkDpidHex(dpidHex, "deleteRecord.dpid") });
  }

  /** overlay applies the outbox's unwritten changes of one record to what MongoDB returned. */
  private overlay(dpidHex: string, stored: VmRecord | undefined): VmRecord | undefined {
    let rec = stored;
    for (const op of this.outbox.snapshot()) {
      if (op.type === "record" && op.dpidHex === dpidHex) rec = applyPatch(rec, dpidHex, op.patch, op.at);
      else if (op.type === "record-delete" && op.dpidHex === dpidHex) rec = undefined;
    }
    return rec;
  }

  /** getRecord returns one record, including changes still in the outbox; undefined when there is none. */
  async getRecord(dpidHex: string): Promise<VmRecord | undefined> {
    checkDpidHex(dpidHex, "getRecord.dpid");
    const doc = await this.run(
      "getRecord",
      () => this.col<VmRecordDoc>(this.collections.vms).findOne({ _id: dpidHex }),
      dpidHex,
    );
    if (doc) this.knownRecords.add(dpidHex);
    return this.overlay(dpidHex, doc ?? undefined);
  }

  /** listRecords returns every record (sorted by dpid), including changes still in the outbox. */
  async listRecords(): Promise<VmRecord[]> {
    const docs = await this.run("listRecords", () =>
      this.col<VmRecordDoc>(this.collections.vms).find({}).sort({ _id: 1 }).toArray(),
    );
    for (const d of docs) this.knownRecords.add(d._id);
    const byId = new Map<string, VmRecord | undefined>(docs.map((d) => [d._id, d]));
    for (const op of this.outbox.snapshot()) {
      if (op.type === "record" || op.type === "record-delete") byId.set(op.dpidHex, byId.get(op.dpidHex));
    }
    const out: VmRecord[] = [];
    for (const [id, d] of [...byId].sort(([a], [b]) => a.localeCompare(b))) {
      const r = this.overlay(id, d);
      if (r) out.push(r);
    }
    return out;
  }

  /** findRecordByVm returns the record of the VM named `vmName` (the lowest dpid if several claim it). */
  async findRecordByVm(vmName: string): Promise<VmRecord | undefined> {
    checkName(vmName, "findRecordByVm.vmName");
    const all = await this.listRecords();
    return all.find((r) => r.vmName === vmName);
  }

  // ---- events -------------------------------------------------------------------------------------------

  /** logEvent appends an event to the bounded log (`at` defaults to now). */
  async logEvent(event: Omit<StoreEvent, "at"> & { at?: Date }): Promise<WriteOutcome> {
    const valid = validateEvent({ ...event, at: event.at ?? this.now() }, "logEvent");
    // The id is fixed now, so a retried or replayed insert is recognised as a duplicate, not written twice.
    return this.write({ type: "event", id: new ObjectId().toHexString(), event: valid });
  }

  /** recentEvents returns up to `n` most recent events, newest first. */
  async recentEvents(n = 100): Promise<StoredEvent[]> {
    const limit = Math.max(0, Math.min(Math.floor(n), 100_000));
    if (limit === 0) return [];
    const docs = await this.run("recentEvents", () =>
      this.col<EventDoc>(this.collections.events).find({}).sort({ at: -1, _id: -1 }).limit(limit).toArray(),
    );
    return docs.map(({ _id, ...rest }) => ({ id: _id.toHexString(), ...rest }));
  }

  /**
   * eventsSince returns events in time order (oldest first): those at or after `since`, of one dpid if
   * given, at most `limit` (the newest ones when there are more). `rfboot events` reads the log with it.
   */
  async eventsSince(q: { since?: Date; dpid?: string; limit?: number } = {}): Promise<StoredEvent[]> {
    const limit = Math.max(1, Math.min(Math.floor(q.limit ?? 1000), 100_000));
    const filter: Record<string, unknown> = {};
    if (q.since) filter.at = { $gte: q.since };
    if (q.dpid !== undefined) filter.dpid = checkDpidHex(q.dpid, "eventsSince.dpid");
    const docs = await this.run("eventsSince", () =>
      this.col<EventDoc>(this.collections.events)
        .find(filter)
        .sort({ at: -1, _id: -1 })
        .limit(limit)
        .toArray(),
    );
    return docs.reverse().map(({ _id, ...rest }) => ({ id: _id.toHexString(), ...rest }));
  }

  // ---- leases -------------------------------------------------------------------------------------------

  /** claim: see LeaseTable.claim (true when `owner` holds the dpid's lease for ttlMs from `now`). */
  claim(dpidHex: string, owner: string, ttlMs: number, now: Date = this.now()): Promise<boolean> {
    return this.whileCritical(() => this.run("claim", () => this.leases.claim(dpidHex, owner, ttlMs, now)));
  }

  /** renew: see LeaseTable.renew. */
  renew(dpidHex: string, owner: string, ttlMs: number, now: Date = this.now()): Promise<boolean> {
    return this.run("renew", () => this.leases.renew(dpidHex, owner, ttlMs, now));
  }

  /**
   * renewAll extends the leases of `owner` (those in `dpids`, default all found) with one scan and one
   * updateMany; see LeaseTable.renewAll.
   */
  renewAll(
    owner: string,
    ttlMs: number,
    now: Date = this.now(),
    dpids?: readonly string[],
  ): Promise<{ renewed: string[]; lost: string[]; wanted: string[] }> {
    return this.run("renewAll", () => this.leases.renewAll(owner, ttlMs, now, dpids));
  }

  /** release: see LeaseTable.release. */
  release(dpidHex: string, owner: string, now: Date = this.now()): Promise<boolean> {
    return this.run("release", () => this.leases.release(dpidHex, owner, now));
  }

  /** want asks the holder of a dpid's lease to give it up; see LeaseTable.want. */
  want(dpidHex: string, owner: string, now: Date = this.now()): Promise<void> {
    return this.run("want", () => this.leases.want(dpidHex, owner, now));
  }

  /** unwant withdraws `owner`'s want of a dpid's lease; see LeaseTable.unwant. */
  unwant(dpidHex: string, owner: string): Promise<void> {
    return this.run("unwant", () => this.leases.unwant(dpidHex, owner));
  }

  /** heldBy lists the valid leases of `owner`. */
  heldBy(owner: string, now: Date = this.now()): Promise<Lease[]> {
    return this.run("heldBy", () => this.leases.heldBy(owner, now));
  }

  /** lease returns the current (latest) lease of a dpid. */
  lease(dpidHex: string): Promise<Lease | undefined> {
    return this.run("lease", () => this.leases.current(dpidHex));
  }

  // ---- readiness ----------------------------------------------------------------------------------------

  /**
   * watchPortRegister watches RouteFlow's IPC channel, read-only, for PortRegister messages from `vmId`
   * (decimal) newer than `since`; see PortRegisterWatcher. The watcher is stopped by close().
   */
  watchPortRegister(vmId: string, since: Date, options: PortRegisterWatchOptions = {}): PortRegisterWatcher {
    checkVmId(vmId, "watchPortRegister.vmId");
    for (const [i, p] of (options.expectPorts ?? []).entries()) {
      checkDecimal(p, `watchPortRegister.expectPorts[${i}]`, (1n << 32n) - 1n);
    }
    const ipc = this.col(this.collections.ipc);
    // Read-only by construction: the watcher gets a find function, not the collection.
    const find = (filter: Filter<Document>, limit: number) =>
      this.run("watchPortRegister", () =>
        ipc
          .find(filter, { projection: { _id: 1, content: 1 } })
          .sort({ _id: 1 })
          .limit(limit)
          .toArray(),
      );
    const w = new PortRegisterWatcher(find, vmId, since, options);
    this.watchers.add(w);
    const forget = () => this.watchers.delete(w);
    w.ready.then(forget, forget);
    return w;
  }

  // ---- outbox -------------------------------------------------------------------------------------------

  /** pending counts writes not yet confirmed by MongoDB. */
  pending(): number {
    return this.outbox.pending();
  }

  /** oldestPendingAt is when the oldest record patch or event still waiting in the outbox was made. */
  oldestPendingAt(): Date | undefined {
    let oldest: Date | undefined;
    for (const op of this.outbox.snapshot()) {
      const at = op.type === "record" ? op.at : op.type === "event" ? op.event.at : undefined;
      if (at && (!oldest || at < oldest)) oldest = at;
    }
    return oldest;
  }

  /** stats returns the outbox counters (written, failed, droppedEvents, retries, online). */
  stats(): OutboxStats {
    return this.outbox.stats();
  }

  /**
   * drain waits until every buffered write is in MongoDB, and the state file says so; false if timeoutMs
   * passed first.
   */
  async drain(timeoutMs: number): Promise<boolean> {
    const ok = await this.outbox.drain(timeoutMs);
    await this.persisting;
    return ok;
  }

  private loadOutbox(): void {
    if (!this.statePath || !existsSync(this.statePath)) return;
    this.onDisk = true;
    try {
      const parsed = BSON.EJSON.parse(readFileSync(this.statePath, "utf8"), { relaxed: true }) as {
        version?: number;
        ops?: OutboxOp[];
      };
      if (parsed.version !== OUTBOX_FILE_VERSION || !Array.isArray(parsed.ops)) {
        throw new Error(`unsupported outbox file version ${String(parsed.version)}`);
      }
      this.outbox.restore(parsed.ops);
      this.log.info(
        { pending: parsed.ops.length, file: this.statePath },
        "restored buffered writes from state file",
      );
    } catch (err) {
      // Keep the unreadable file for an operator rather than overwrite it.
      const aside = `${this.statePath}.bad-${Date.now()}`;
      renameSync(this.statePath, aside);
      this.onDisk = false;
      this.log.error({ err: errorMessage(err), file: aside }, "outbox state file unreadable; moved aside");
    }
  }

  /**
   * schedulePersist writes the state file 50 ms after a change. While MongoDB answers, writes younger than
   * PERSIST_ONLINE_AFTER_MS are left out of it (the file then waits until the oldest is that old): they are
   * confirmed within milliseconds, and writing the file for each join's patches cost ~0.75 ms of CPU per join
   * (the EJSON text; CPU profile of 400 joins in a row) plus four file operations, beside the next joins.
   */
  private schedulePersist(delayMs = 50): void {
    if (this.persistTimer) return;
    this.persistTimer = setTimeout(() => {
      this.persistTimer = undefined;
      const oldest = this.outbox.oldestSince();
      const age = oldest === undefined ? Infinity : performance.now() - oldest;
      if (this.outbox.isOnline() && !this.onDisk && age < PERSIST_ONLINE_AFTER_MS) {
        this.schedulePersist(PERSIST_ONLINE_AFTER_MS - age);
        return;
      }
      this.persistSoon();
    }, delayMs);
    this.persistTimer.unref();
  }

  /** stateText is the state file's content for the unconfirmed outbox, or undefined when it is empty. */
  private stateText(): string | undefined {
    const ops = this.outbox.snapshot();
    if (ops.length === 0) return undefined;
    return BSON.EJSON.stringify({ version: OUTBOX_FILE_VERSION, ops }, { relaxed: true });
  }

  private persistFailed(err: unknown): void {
    this.log.error({ err: errorMessage(err), file: this.statePath }, "could not save the outbox state file");
  }

  /**
   * persistSoon queues a write of the state file (0600, atomic rename), or its removal, behind the one under
   * way: file I/O on the event loop would hold up the joins it runs beside (a rename alone cost ~1 ms).
   */
  private persistSoon(): void {
    if (!this.statePath || this.persistQueued) return;
    const path = this.statePath;
    this.persistQueued = true;
    this.persisting = this.persisting.then(async () => {
      this.persistQueued = false;
      try {
        const text = this.stateText();
        if (text === undefined) {
          if (this.onDisk) await rm(path, { force: true });
          this.onDisk = false;
          return;
        }
        await mkdir(join(path, ".."), { recursive: true, mode: 0o700 });
        const tmp = `${path}.tmp`;
        await writeFile(tmp, text, { mode: 0o600 });
        await chmod(tmp, 0o600);
        this.onDisk = true;
        await rename(tmp, path);
      } catch (err) {
        this.persistFailed(err);
      }
    });
  }

  /**
   * persistNow writes the state file (or removes it) before returning: close() uses it after the queued
   * writes, so what is left in the outbox is on disk when close resolves, whatever the caller does next.
   */
  private persistNow(): void {
    if (!this.statePath) return;
    try {
      const text = this.stateText();
      if (text === undefined) {
        if (this.onDisk) rmSync(this.statePath, { force: true });
        this.onDisk = false;
        return;
      }
      mkdirSync(join(this.statePath, ".."), { recursive: true, mode: 0o700 });
      const tmp = `${this.statePath}.tmp`;
      writeFileSync(tmp, text, { mode: 0o600 });
      chmodSync(tmp, 0o600);
      this.onDisk = true;
      renameSync(tmp, this.statePath);
    } catch (err) {
      this.persistFailed(err);
    }
  }

  /**
   * close stops watchers, tries to flush the outbox for up to timeoutMs, keeps what is left in the state
   * file (when configured) and closes the connection. Returns the number of writes left unflushed.
   */
  async close(timeoutMs = 2_000): Promise<number> {
    if (this.closed) return this.outbox.pending();
    for (const w of this.watchers) w.stop();
    await this.outbox.drain(timeoutMs);
    await this.trimming;
    this.closed = true;
    this.outbox.close();
    clearTimeout(this.persistTimer);
    this.persistTimer = undefined;
    await this.persisting;
    this.persistNow();
    const left = this.outbox.pending();
    if (left > 0) {
      this.log.warn(
        { pending: left, file: this.statePath ?? "(none: lost)" },
        "closing with unflushed writes",
      );
    }
    await Promise.race([
      this.client.close().catch(() => undefined),
      new Promise((r) => setTimeout(r, Math.max(500, timeoutMs)).unref()),
    ]);
    return left;
  }

  // ---- operator removals ----------------------------------------------------------------------------------

  /**
   * deleteRfconfigRows deletes exactly `rows` from `rfconfig`: for each, one document equal in all five fields
   * (see deleteExactRfconfigRows); every other row, of this VM or another, stays. It goes straight to the
   * server, not through the outbox: an operator removing a VM needs to know now whether the rows are gone, and
   * a removal left in an outbox that dies with the command would be lost without a word. Resolves the number
   * of documents deleted; rejects with ConfigError for a bad row, StoreError when MongoDB fails.
   */
  async deleteRfconfigRows(rows: readonly RfconfigRow[]): Promise<number> {
    const valid = validateRfconfigRows(rows, "deleteRfconfigRows.rows");
    if (valid.length === 0) return 0;
    return this.run("deleteRfconfigRows", () =>
      deleteExactRfconfigRows(this.col<RfconfigDoc>(this.collections.rfconfig), valid),
    );
  }
}
