/**
 * What the daemon's parts share: the current config, logger, metrics, clock, store, host registry, the
 * datapath table and the event sink. The Daemon builds one DaemonContext and hands it to each part.
 */
import { errorMessage } from "../common/errors.js";
import type { Logger } from "../common/log.js";
import type { RfbootConfig } from "./config/index.js";
import type { DaemonClock } from "./clock.js";
import type { DataPlane } from "./dataplane.js";
import type { DatapathTable } from "./datapath.js";
import type { HostRegistry, LeaveOutcome } from "./libvirt/index.js";
import type { Metrics } from "./metrics.js";
import type { DaemonStore, RecordPatch, StoreEvent } from "./store/index.js";

/** EnsureOutcome is what one `ensure` did. */
export interface EnsureOutcome {
  dpidHex: string;
  vm: string;
  host: string;
  action: string;
  reactionMs: number;
}

/** DaemonEvents are emitted for tests, benches and the rftest progress display. */
export interface DaemonEvents {
  joined: [{ dpidHex: string; vm?: string; peer: string }];
  ignored: [{ dpidHex: string; reason: string }];
  ensured: [EnsureOutcome];
  ready: [{ dpidHex: string; vm: string; via: string; ms: number }];
  failed: [{ dpidHex: string; vm?: string; error: Error; retryInMs?: number }];
  left: [{ dpidHex: string; vm: string; outcome: LeaveOutcome }];
  reconciled: [{ actions: number }];
  /** hostLost: a libvirt host stopped answering; `vms` were placed there. */
  hostLost: [{ host: string; error: string; vms: string[] }];
  /** hostBack: a lost host answers again after `downMs`. */
  hostBack: [{ host: string; downMs: number }];
  /** replaced: the hostLoss policy moved a VM away from a lost host (the new host follows in `ensured`). */
  replaced: [{ dpidHex: string; vm: string; from: string }];
  /** prewarmed: a VM booted ahead of its switch was saved (managedsave) on `host`, `ms` after its prewarm began. */
  prewarmed: [{ dpidHex: string; vm: string; host: string; ms: number }];
  /** port: a switch port's change reached the VM (`action`: attached, detached or unchanged). */
  port: [{ dpidHex: string; vm: string; port: number; action: string }];
}

/** EmitFn sends one daemon event to the Daemon's listeners. */
export type EmitFn = <K extends keyof DaemonEvents>(event: K, ...args: DaemonEvents[K]) => void;

/** DaemonContext is shared by the daemon's parts; `config()` is the current config (SIGHUP replaces it). */
export interface DaemonContext {
  config(): RfbootConfig;
  readonly log: Logger;
  readonly metrics: Metrics;
  readonly instanceId: string;
  readonly clock: DaemonClock;
  readonly store: DaemonStore;
  /** record writes the daemon's bookkeeping without waiting (see Recorder). */
  readonly record: Recorder;
  readonly hosts: HostRegistry;
  /** dataPlane links the data NICs of VMs on data-plane hosts to RouteFlow's virtual switch here. */
  readonly dataPlane: DataPlane;
  readonly datapaths: DatapathTable;
  readonly emit: EmitFn;
  /** stopped is true once `Daemon.stop()` began: nothing new is started. */
  stopped(): boolean;
  /**
   * reconnect closes a connected switch's connection (relay mode: the switch reconnects, and rfproxy
   * registers its ports again); false when there is no controller or no such connection.
   */
  reconnect(dpid: bigint, reason: string): boolean;
}

/**
 * Recorder writes record patches and events without making the caller wait: while MongoDB is away the
 * store's outbox buffers them (they resolve `queued`), so a rejection means the write was refused for good
 * (bad value, store closed). Each such failure is logged here, once, with the dpid and what was written.
 */
export class Recorder {
  constructor(
    private readonly store: DaemonStore,
    private readonly log: Logger,
  ) {}

  /** patch `$set`s a record change (see DaemonStore.patchRecord). */
  patch(dpidHex: string, patch: RecordPatch): void {
    this.store
      .patchRecord(dpidHex, patch)
      .catch((err: unknown) =>
        this.log.error(
          { dpid: dpidHex, fields: Object.keys(patch), err: errorMessage(err) },
          "record update not written",
        ),
      );
  }

  /** event appends to the event log (see DaemonStore.logEvent). */
  event(event: Omit<StoreEvent, "at">): void {
    this.store
      .logEvent(event)
      .catch((err: unknown) =>
        this.log.error(
          { dpid: event.dpid, kind: event.kind, err: errorMessage(err) },
          "event log entry not written",
        ),
      );
  }
}
