/**
 * Gathering a snapshot's inputs from a running daemon: its datapaths and host probes (memory), and from its
 * store the records, rfboot's `rfconfig` rows and the recent events. A failed read (MongoDB away) keeps the
 * previous answer and says so, so the page still shows what the daemon itself knows.
 */
import { errorMessage } from "../../common/errors.js";
import { listConfiguredVms } from "../config/index.js";
import type { Daemon } from "../daemon.js";
import type { DaemonStore, StoredEvent, VmRecord } from "../store/index.js";
import type { HostInput, OwnRfconfigRow, SnapshotInput } from "./snapshot.js";

/** LiveReads are the store reads the page needs beyond DaemonStore (MongoStore has them). */
export interface LiveReads {
  recentEvents(n: number): Promise<StoredEvent[]>;
  listOwnRfconfigRows(): Promise<OwnRfconfigRow[]>;
  oldestPendingAt(): Date | undefined;
}

/** hasLiveReads says whether a store offers the optional reads (a test's store may not). */
function hasLiveReads(s: DaemonStore): s is DaemonStore & LiveReads {
  const x = s as Partial<LiveReads>;
  return typeof x.recentEvents === "function" && typeof x.listOwnRfconfigRows === "function";
}

/** LiveDaemon is what a snapshot reads of the daemon. */
export type LiveDaemon = Pick<Daemon, "instanceId" | "config" | "hosts" | "listening" | "knownDatapaths"> & {
  readonly store: DaemonStore | undefined;
};

/** daemonInputs returns a function that gathers the inputs of one snapshot from `daemon`. */
export function daemonInputs(
  daemon: LiveDaemon,
  options: { events?: number } = {},
): () => Promise<SnapshotInput> {
  let records: VmRecord[] = [];
  let rows: OwnRfconfigRow[] = [];
  let events: StoredEvent[] = [];
  const nEvents = options.events ?? 50;
  return async () => {
    // Undefined until Daemon.start() opened it: the page then shows what the daemon knows without it.
    const store = daemon.store;
    let readError: string | undefined;
    if (store) {
      const reads = await Promise.allSettled([
        store.listRecords(),
        hasLiveReads(store) ? store.listOwnRfconfigRows() : Promise.resolve(rows),
        hasLiveReads(store) ? store.recentEvents(nEvents) : Promise.resolve(events),
      ]);
      const [r, w, e] = reads;
      if (r.status === "fulfilled") records = r.value;
      if (w.status === "fulfilled") rows = w.value;
      if (e.status === "fulfilled") events = e.value;
      const failed = reads.find((x) => x.status === "rejected");
      if (failed) readError = `MongoDB read failed: ${errorMessage(failed.reason)}`;
    }
    const stats = store?.stats();
    const oldest = store && hasLiveReads(store) ? store.oldestPendingAt() : undefined;
    const hosts: HostInput[] = daemon.hosts.hosts.map((h) => {
      const p = daemon.hosts.lastProbe(h.name);
      return {
        name: h.name,
        uri: h.uri,
        maxVms: h.maxVms,
        ...(h.memoryMiB !== undefined ? { memoryMiB: h.memoryMiB } : {}),
        ...(p ? { probe: p } : {}),
      };
    });
    const controller = daemon.listening();
    return {
      instance: daemon.instanceId,
      ...(controller ? { controller } : {}),
      configured: listConfiguredVms(daemon.config).map((v) => ({ dpidHex: v.dpidHex, name: v.name })),
      datapaths: daemon.knownDatapaths(),
      records,
      rfconfig: rows,
      hosts,
      events,
      store: {
        online: stats?.online ?? false,
        pending: stats?.pending ?? 0,
        droppedEvents: stats?.droppedEvents ?? 0,
        ...(oldest ? { oldestPendingAt: oldest } : {}),
        ...(readError ? { readError } : {}),
      },
    };
  };
}

/** DAEMON_EVENTS are the daemon events after which the page is refreshed at once. */
export const DAEMON_EVENTS = [
  "joined",
  "ignored",
  "ensured",
  "ready",
  "prewarmed",
  "failed",
  "left",
  "reconciled",
  "hostLost",
  "hostBack",
  "replaced",
  "port",
] as const;

/** onDaemonChange calls `fn` after each daemon event and each store online/offline; returns an unsubscribe. */
export function onDaemonChange(daemon: Daemon, fn: () => void): () => void {
  for (const e of DAEMON_EVENTS) daemon.on(e, fn);
  return () => {
    for (const e of DAEMON_EVENTS) daemon.off(e, fn);
  };
}
