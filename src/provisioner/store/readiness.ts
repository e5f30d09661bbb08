/**
 * Readiness observer: watches RouteFlow's `rfclient<->rfserver` channel for a VM's PortRegister messages
 * (type 0, sent by rfclient once per data interface at start). Strictly read-only: listeners of that channel
 * poll `{to: me, read: false}` and then set `read: true`, so any write here would steal rfserver's messages
 * (shared/routeflow/README.md, IPC envelope). This module only ever calls `find`.
 */
import { EventEmitter } from "node:events";
import { ObjectId, type Document, type Filter } from "mongodb";
import { StoreError } from "../../common/errors.js";
import { wrap } from "./errors.js";
import type { PortRegisterSeen } from "./types.js";

/** IPC_CHANNEL is the collection rfclient writes to and rfserver reads from. */
export const IPC_CHANNEL = "rfclient<->rfserver";

/** PORT_REGISTER is RouteFlow's message type code for PortRegister (RFProtocol). */
export const PORT_REGISTER = 0;

/** PortRegisterWatchOptions tune one watch. */
export interface PortRegisterWatchOptions {
  /** expectPorts are the vm_ports (decimal) that must all register; default: the first one suffices. */
  readonly expectPorts?: readonly string[];
  /** pollMs is the polling period (default 250). */
  readonly pollMs?: number;
  /** timeoutMs rejects `ready` when the ports did not all register in time (default: no timeout). */
  readonly timeoutMs?: number;
}

/**
 * IpcFind runs one read of the channel: `find(filter)` sorted by `_id` ascending, at most `limit` documents,
 * only `_id` and `content` needed. The store supplies it (so the watcher cannot write, by construction).
 */
export type IpcFind = (filter: Filter<Document>, limit: number) => Promise<Document[]>;

/** PortRegisterResult is what `ready` resolves with. */
export interface PortRegisterResult {
  readonly vmId: string;
  readonly ports: readonly PortRegisterSeen[];
  /** at is the time of the message that completed the set. */
  readonly at: Date;
}

/**
 * PortRegisterWatcher polls the channel for one VM. Events: `port` (PortRegisterSeen, once per vm_port),
 * `pollError` (StoreError; polling goes on: MongoDB may come back). `ready` settles once.
 */
export class PortRegisterWatcher extends EventEmitter {
  /** ready resolves when every expected port registered; rejects on timeout or stop(). */
  readonly ready: Promise<PortRegisterResult>;
  private readonly seen = new Map<string, PortRegisterSeen>();
  private lastId: ObjectId;
  private timer: NodeJS.Timeout | undefined;
  private deadline: NodeJS.Timeout | undefined;
  private stopped = false;
  private settle!: { resolve(r: PortRegisterResult): void; reject(e: Error): void };

  constructor(
    private readonly find: IpcFind,
    readonly vmId: string,
    since: Date,
    private readonly options: PortRegisterWatchOptions = {},
  ) {
    super();
    // ObjectIds carry their creation second; one second of slack keeps a message from the same second.
    this.lastId = ObjectId.createFromTime(Math.max(0, Math.floor(since.getTime() / 1000) - 1));
    this.ready = new Promise((resolve, reject) => (this.settle = { resolve, reject }));
    this.ready.catch(() => undefined); // a caller that never awaits `ready` must not see an unhandled rejection
    if (options.timeoutMs !== undefined) {
      this.deadline = setTimeout(() => {
        const have = [...this.seen.keys()].join(",") || "none";
        this.finish(
          new StoreError(
            `no PortRegister from vm_id ${vmId} for all of [${(options.expectPorts ?? ["any"]).join(",")}] ` +
              `within ${options.timeoutMs} ms (seen: ${have}); is rfclient running in the VM?`,
            "watchPortRegister",
          ),
        );
      }, options.timeoutMs);
    }
    this.timer = setTimeout(() => void this.poll(), 0);
  }

  /** ports lists the PortRegisters seen so far, one per vm_port. */
  ports(): PortRegisterSeen[] {
    return [...this.seen.values()];
  }

  /** stop ends polling; a pending `ready` rejects. */
  stop(): void {
    this.finish(
      new StoreError(`watch of vm_id ${this.vmId} stopped before it was ready`, "watchPortRegister"),
    );
  }

  private finish(outcome: PortRegisterResult | Error): void {
    if (this.stopped) return;
    this.stopped = true;
    clearTimeout(this.timer);
    clearTimeout(this.deadline);
    if (outcome instanceof Error) this.settle.reject(outcome);
    else this.settle.resolve(outcome);
  }

  private async poll(): Promise<void> {
    try {
      // find only: no update, no findOneAndUpdate, no `read` flag (see the module comment).
      const docs = await this.find({ from: this.vmId, type: PORT_REGISTER, _id: { $gt: this.lastId } }, 1000);
      for (const d of docs) {
        if (this.stopped) return;
        this.lastId = d._id as ObjectId;
        const c = (d.content ?? {}) as Record<string, unknown>;
        const vmPort = typeof c.vm_port === "string" ? c.vm_port : undefined;
        if (vmPort === undefined || this.seen.has(vmPort)) continue;
        const p: PortRegisterSeen = {
          vmId: this.vmId,
          vmPort,
          hwAddress: typeof c.hwaddress === "string" ? c.hwaddress : "",
          at: (d._id as ObjectId).getTimestamp(),
          messageId: (d._id as ObjectId).toHexString(),
        };
        this.seen.set(vmPort, p);
        this.emit("port", p);
        const expect = this.options.expectPorts;
        const complete = expect && expect.length > 0 ? expect.every((x) => this.seen.has(x)) : true;
        if (complete) this.finish({ vmId: this.vmId, ports: this.ports(), at: p.at });
      }
    } catch (err) {
      this.emit("pollError", wrap("watchPortRegister", err, `vm_id ${this.vmId}`));
    }
    if (!this.stopped) {
      this.timer = setTimeout(() => void this.poll(), this.options.pollMs ?? 250);
      this.timer.unref();
    }
  }
}
