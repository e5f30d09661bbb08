/**
 * The controller: accepts switches (listen or relay mode), keeps the dpid -> connection registry and
 * emits typed `up` / `port` / `down` events. It knows nothing of VMs.
 */
import { EventEmitter } from "node:events";
import type { Socket } from "node:net";
import { ConfigError } from "../common/errors.js";
import { silentLogger, type Logger } from "../common/log.js";
import { dpidToHex } from "../common/dpid.js";
import { OFP_VERSIONS } from "./codec/index.js";
import { DEFAULT_UPSTREAM, RelayConnection, type RelaySettings } from "./relay.js";
import { DEFAULT_REPLY_POLL, ReplyPoll } from "./replypoll.js";
import type { ReadPort } from "./readport.js";
import {
  ListenConnection,
  SwitchServer,
  monotonicClock,
  type Clock,
  type ConnectionHooks,
  type ListenAddress,
  type ServerFactory,
  type SwitchConnection,
} from "./server.js";
import {
  DEFAULT_SESSION_TIMING,
  type DatapathInfo,
  type PortInfo,
  type PortReason,
  type RoleSetting,
  type SessionEvent,
} from "./session.js";

/** ControllerMode: "listen" (an extra controller of the switch) or "relay" (in front of the real one). */
export type ControllerMode = "listen" | "relay";

/** ControllerOptions configures createController; only `listen` and `mode` are required. */
export interface ControllerOptions {
  listen: ListenAddress;
  mode: ControllerMode;
  /** Relay mode: the real controller (default 127.0.0.1:6633). */
  upstream?: { host: string; port: number };
  /** Wire versions offered (default all of 1.0..1.5: 1..6). */
  versions?: readonly number[];
  /** Listen mode: role to ask for (default "none"). */
  role?: RoleSetting;
  echoIntervalMs?: number;
  echoTimeoutMs?: number;
  handshakeTimeoutMs?: number;
  /** Relay: time to open the upstream connection before serving the switch standalone (default 300). */
  upstreamConnectTimeoutMs?: number;
  /** Relay: time the upstream may stay silent after connecting (default 1000). */
  upstreamHelloTimeoutMs?: number;
  /** Relay: time before rfboot asks FEATURES/PORT_DESC itself (default 1000). */
  injectAfterMs?: number;
  /** Relay: retry delays while standalone (default 500 doubling to 8000). */
  upstreamRetryInitialMs?: number;
  upstreamRetryMaxMs?: number;
  /** How long a `down` caused by a relay handover waits for the switch to come back (default 15000). */
  handoverGraceMs?: number;
  logger?: Logger;
  /** The accepting server (default plain TCP); a tls.Server factory serves `ssl:` switches. */
  createServer?: ServerFactory;
  /**
   * Relay: read both legs into reused memory (readport.ts; default true). false reads through Node's
   * 'data' events, one fresh buffer per read, as before: for comparison (bench/controller.ts).
   */
  relayReusesReadMemory?: boolean;
  /**
   * Relay: poll through the wait for a relayed request's reply (replypoll.ts) for at most this long
   * (µs; default 1000; 0: never), using at most `relayReplyPollCpuShare` of one core (default 0.25).
   */
  relayReplyPollUs?: number;
  relayReplyPollCpuShare?: number;
  clock?: Clock;
  /** Most open switch connections in all; more are closed at accept (default 4096). */
  maxConnections?: number;
  /** Most open connections from one IP address (default 1024). */
  maxConnectionsPerPeer?: number;
  /** Listen mode: largest OpenFlow message accepted from a switch, 8..65535 (default 65535); longer: BAD_LEN, close. */
  maxMessageLength?: number;
  /**
   * admit decides, once a datapath finished its handshake and before `up` is emitted, whether rfboot
   * serves it: `true` admits; `false` or a reason refuses, which closes the connection without any
   * `up` or `down` event (e.g. `policies.unknownDatapath.action: refuse`). Default: admit all.
   */
  admit?: (datapath: DatapathInfo) => boolean | string;
}

/** AcceptStats counts what the listener turned away. */
export interface AcceptStats {
  /** Connections accepted within the limits. */
  accepted: number;
  /** Connections closed at accept because a connection limit was reached. */
  refused: number;
  /** Accept failures (EMFILE, ENFILE...), survived. */
  acceptErrors: number;
  /** Failed TLS handshakes (bad or missing client certificate, not TLS). */
  tlsFailures: number;
  /** Datapaths refused by the `admit` hook. */
  notAdmitted: number;
}

/** UpEvent: a datapath's main connection completed its handshake (may repeat for a dpid already up: treat as idempotent). */
export interface UpEvent extends DatapathInfo {
  type: "up";
  mode: ControllerMode;
}

/** PortEvent: the switch reported a port added, deleted or modified (PORT_STATUS). */
export interface PortEvent {
  type: "port";
  dpid: bigint;
  reason: PortReason;
  port: PortInfo;
}

/** DownEvent: the datapath's current main connection is gone (TCP close, error, echo timeout...). */
export interface DownEvent {
  type: "down";
  dpid: bigint;
  reason: string;
  peer: string;
}

/** ControllerEvent is every event the controller emits. */
export type ControllerEvent = UpEvent | PortEvent | DownEvent;

/** ControllerEvents maps event names to listener arguments (typed EventEmitter). */
export interface ControllerEvents {
  up: [UpEvent];
  port: [PortEvent];
  down: [DownEvent];
}

/**
 * eventToJson renders an event as `watch` prints it: dpid as 16 hex digits, ports as {no, name, mac}.
 * Field order: event, dpid, then the rest.
 */
export function eventToJson(e: ControllerEvent): Record<string, unknown> {
  switch (e.type) {
    case "up":
      return {
        event: "up",
        dpid: dpidToHex(e.dpid),
        version: e.version,
        peer: e.peer,
        ports: e.ports.map((p) => ({ no: p.no, name: p.name, mac: p.mac })),
      };
    case "port":
      return {
        event: "port",
        dpid: dpidToHex(e.dpid),
        reason: e.reason,
        port: { no: e.port.no, name: e.port.name, mac: e.port.mac },
      };
    case "down":
      return { event: "down", dpid: dpidToHex(e.dpid), reason: e.reason, peer: e.peer };
  }
}

/** ALL_VERSIONS is every wire version the codec knows (1.0..1.5). */
export const ALL_VERSIONS: readonly number[] = Object.freeze(Object.values(OFP_VERSIONS));

/**
 * Controller accepts switches and reports datapaths. Duplicate dpid policy: the newest main
 * connection wins; the older one is closed (logged) and its close reports no `down`.
 */
export class Controller extends EventEmitter<ControllerEvents> {
  private readonly server: SwitchServer;
  private readonly log: Logger;
  private readonly connections = new Set<SwitchConnection>();
  /** dpid -> the connection currently reporting it. */
  private readonly registry = new Map<bigint, SwitchConnection>();
  /** dpid -> timer of a held-back `down` (relay handover). */
  private readonly heldDown = new Map<bigint, NodeJS.Timeout>();
  private readonly relay: RelaySettings;
  /** The reply poll of relay mode (undefined in listen mode or when turned off). */
  readonly replyPoll: ReplyPoll | undefined;
  private readonly clock: Clock;
  private started = false;
  private closing = false;
  private notAdmitted = 0;

  constructor(readonly options: ControllerOptions) {
    super();
    validate(options);
    this.log = (options.logger ?? silentLogger).child({ component: "controller", mode: options.mode });
    this.clock = options.clock ?? monotonicClock;
    const poll =
      options.mode === "relay"
        ? new ReplyPoll({
            windowUs: options.relayReplyPollUs ?? DEFAULT_REPLY_POLL.windowUs,
            cpuShare: options.relayReplyPollCpuShare ?? DEFAULT_REPLY_POLL.cpuShare,
          })
        : undefined;
    this.replyPoll = poll?.enabled ? poll : undefined;
    this.relay = {
      upstream: {
        host: options.upstream?.host ?? DEFAULT_UPSTREAM.host,
        port: options.upstream?.port ?? DEFAULT_UPSTREAM.port,
        retryInitialMs: options.upstreamRetryInitialMs ?? DEFAULT_UPSTREAM.retryInitialMs,
        retryMaxMs: options.upstreamRetryMaxMs ?? DEFAULT_UPSTREAM.retryMaxMs,
      },
      reuseReadMemory: options.relayReusesReadMemory !== false,
      ...(this.replyPoll ? { replyPoll: this.replyPoll } : {}),
    };
    this.server = new SwitchServer((s, port) => this.accept(s, port), {
      ...(options.createServer ? { factory: options.createServer } : {}),
      readPorts: options.mode === "relay" && this.relay.reuseReadMemory,
      limits: {
        ...(options.maxConnections !== undefined ? { maxConnections: options.maxConnections } : {}),
        ...(options.maxConnectionsPerPeer !== undefined
          ? { maxConnectionsPerPeer: options.maxConnectionsPerPeer }
          : {}),
      },
      logger: this.log,
    });
  }

  /** start listens; resolves with the bound address (port 0 -> the real port). */
  async start(): Promise<ListenAddress> {
    if (this.started) throw new ConfigError("the controller is already started", "controller");
    this.started = true;
    const addr = await this.server.start(this.options.listen);
    this.log.info(
      {
        listen: `${addr.host}:${addr.port}`,
        ...(this.options.mode === "relay"
          ? { upstream: `${this.relay.upstream.host}:${this.relay.upstream.port}` }
          : {}),
      },
      "controller listening",
    );
    return addr;
  }

  /** close stops accepting, closes every switch connection (reporting `down`), and resolves when done. */
  async close(): Promise<void> {
    if (this.closing) return;
    this.closing = true;
    for (const t of this.heldDown.values()) clearTimeout(t);
    this.heldDown.clear();
    for (const c of [...this.connections]) c.close("rfboot is stopping");
    await this.server.close();
  }

  /** datapaths lists the datapaths currently up, by dpid. */
  datapaths(): DatapathInfo[] {
    const out: DatapathInfo[] = [];
    for (const conn of this.registry.values()) {
      const d = conn.session.datapath;
      if (d) out.push(d);
    }
    return out.sort((a, b) => (a.dpid < b.dpid ? -1 : a.dpid > b.dpid ? 1 : 0));
  }

  /** bufferedBytes is what rfboot holds in user space across all connections (bounded by backpressure). */
  bufferedBytes(): number {
    let n = 0;
    for (const c of this.connections) n += c.bufferedBytes;
    return n;
  }

  /**
   * disconnect closes the connection currently reporting `dpid` (e.g. a datapath a reloaded policy now
   * refuses); the usual `down` event follows. Returns false when that datapath is not connected.
   */
  disconnect(dpid: bigint, reason: string): boolean {
    const conn = this.registry.get(dpid);
    if (conn === undefined) return false;
    this.log.info({ dpid: dpidToHex(dpid), peer: conn.peer, reason }, "disconnecting datapath");
    conn.close(reason);
    return true;
  }

  /** acceptStats counts what the listener and the admit hook turned away. */
  acceptStats(): AcceptStats {
    return {
      accepted: this.server.accepted,
      refused: this.server.refused,
      acceptErrors: this.server.acceptErrors,
      tlsFailures: this.server.tlsFailures,
      notAdmitted: this.notAdmitted,
    };
  }

  /** connectionCount is the number of open switch connections (main, auxiliary, or still in handshake). */
  get connectionCount(): number {
    return this.connections.size;
  }

  private accept(socket: Socket, port: ReadPort | undefined): void {
    if (this.closing) {
      socket.destroy();
      return;
    }
    const o = this.options;
    const sessionOptions = {
      versions: o.versions ?? ALL_VERSIONS,
      role: o.mode === "listen" ? (o.role ?? "none") : ("none" as const),
      echoIntervalMs: o.echoIntervalMs ?? DEFAULT_SESSION_TIMING.echoIntervalMs,
      echoTimeoutMs: o.echoTimeoutMs ?? DEFAULT_SESSION_TIMING.echoTimeoutMs,
      handshakeTimeoutMs: o.handshakeTimeoutMs ?? DEFAULT_SESSION_TIMING.handshakeTimeoutMs,
      upstreamConnectTimeoutMs: o.upstreamConnectTimeoutMs ?? DEFAULT_SESSION_TIMING.upstreamConnectTimeoutMs,
      upstreamHelloTimeoutMs: o.upstreamHelloTimeoutMs ?? DEFAULT_SESSION_TIMING.upstreamHelloTimeoutMs,
      injectAfterMs: o.injectAfterMs ?? DEFAULT_SESSION_TIMING.injectAfterMs,
    };
    const hooks: ConnectionHooks = {
      onEvent: (conn, ev, expectReconnect) => this.onEvent(conn, ev, expectReconnect),
      onClosed: (conn) => this.connections.delete(conn),
    };
    const conn =
      o.mode === "relay"
        ? new RelayConnection(socket, sessionOptions, this.relay, hooks, this.log, this.clock, port)
        : new ListenConnection(socket, sessionOptions, hooks, this.log, this.clock, {
            ...(o.maxMessageLength !== undefined ? { maxLength: o.maxMessageLength } : {}),
          });
    if (!conn.isClosed) this.connections.add(conn);
  }

  private onEvent(conn: SwitchConnection, ev: SessionEvent, expectReconnect: boolean): void {
    switch (ev.type) {
      case "up": {
        const dpid = ev.datapath.dpid;
        const verdict = this.options.admit?.(ev.datapath) ?? true;
        if (verdict !== true) {
          // Refused before it is registered: its close reports no `down`, and an admitted connection
          // with the same dpid stays in place.
          this.notAdmitted++;
          const why = typeof verdict === "string" ? verdict : "refused by the admission policy";
          this.log.warn(
            { dpid: dpidToHex(dpid), peer: conn.peer, reason: why },
            "datapath not admitted; closing",
          );
          conn.close(`datapath not admitted: ${why}`);
          return;
        }
        const held = this.heldDown.get(dpid);
        if (held) {
          clearTimeout(held);
          this.heldDown.delete(dpid);
          this.log.info({ dpid: dpidToHex(dpid) }, "datapath reconnected after handover; no down reported");
        }
        const old = this.registry.get(dpid);
        this.registry.set(dpid, conn);
        if (old && old !== conn) {
          this.log.warn(
            { dpid: dpidToHex(dpid), old: old.peer, new: conn.peer },
            "duplicate datapath id: the newest connection wins; closing the older one",
          );
          old.close(`replaced by a newer connection from ${conn.peer} with the same datapath id`);
        }
        this.log.info(
          { dpid: dpidToHex(dpid), version: ev.datapath.version, ports: ev.datapath.ports.length },
          "datapath up",
        );
        this.emit("up", { type: "up", ...ev.datapath, mode: this.options.mode });
        return;
      }
      case "port":
        if (this.registry.get(ev.dpid) !== conn) return;
        this.log.info({ dpid: dpidToHex(ev.dpid), reason: ev.reason, port: ev.port.name }, "port status");
        this.emit("port", { type: "port", dpid: ev.dpid, reason: ev.reason, port: ev.port });
        return;
      case "down": {
        if (this.registry.get(ev.dpid) !== conn) return; // replaced: the newer connection is the datapath now
        this.registry.delete(ev.dpid);
        const down: DownEvent = { type: "down", dpid: ev.dpid, reason: ev.reason, peer: conn.peer };
        const grace = this.options.handoverGraceMs ?? 15_000;
        if (expectReconnect && !this.closing && grace > 0) {
          const t = setTimeout(() => {
            this.heldDown.delete(ev.dpid);
            this.log.info({ dpid: dpidToHex(ev.dpid) }, "datapath did not come back after handover");
            this.emit("down", { ...down, reason: `${down.reason}; not back within ${grace} ms` });
          }, grace);
          t.unref();
          this.heldDown.set(ev.dpid, t);
          return;
        }
        this.log.info({ dpid: dpidToHex(ev.dpid), reason: ev.reason }, "datapath down");
        this.emit("down", down);
        return;
      }
    }
  }
}

function validate(o: ControllerOptions): void {
  if (o.mode !== "listen" && o.mode !== "relay") {
    throw new ConfigError(`mode must be "listen" or "relay", got ${JSON.stringify(o.mode)}`, "mode", o.mode);
  }
  if (!Number.isInteger(o.listen.port) || o.listen.port < 0 || o.listen.port > 65535) {
    throw new ConfigError(
      `port must be an integer 0..65535, got ${o.listen.port}`,
      "listen.port",
      o.listen.port,
    );
  }
  const versions = o.versions ?? ALL_VERSIONS;
  if (versions.length === 0 || versions.some((v) => !ALL_VERSIONS.includes(v))) {
    throw new ConfigError(
      `versions must be a non-empty list of OpenFlow wire versions 1..6 (1.0..1.5), got [${versions.join(", ")}]`,
      "versions",
      versions,
    );
  }
  for (const k of ["maxConnections", "maxConnectionsPerPeer"] as const) {
    const v = o[k];
    if (v !== undefined && (!Number.isInteger(v) || v < 1)) {
      throw new ConfigError(`${k} must be a positive integer, got ${v}`, k, v);
    }
  }
  const ml = o.maxMessageLength;
  if (ml !== undefined && (!Number.isInteger(ml) || ml < 8 || ml > 65535)) {
    throw new ConfigError(`maxMessageLength must be an integer 8..65535, got ${ml}`, "maxMessageLength", ml);
  }
  const pollUs = o.relayReplyPollUs;
  if (pollUs !== undefined && (!Number.isFinite(pollUs) || pollUs < 0 || pollUs > 1_000_000)) {
    throw new ConfigError(
      `relayReplyPollUs must be 0..1000000 microseconds (0: never poll), got ${pollUs}`,
      "relayReplyPollUs",
      pollUs,
    );
  }
  const share = o.relayReplyPollCpuShare;
  if (share !== undefined && (!Number.isFinite(share) || share < 0 || share > 1)) {
    throw new ConfigError(
      `relayReplyPollCpuShare must be a share of one core, 0..1 (0: never poll), got ${share}`,
      "relayReplyPollCpuShare",
      share,
    );
  }
  for (const k of ["echoIntervalMs", "echoTimeoutMs", "handshakeTimeoutMs"] as const) {
    const v = o[k];
    if (v !== undefined && (!Number.isFinite(v) || v <= 0)) {
      throw new ConfigError(`${k} must be a positive number of milliseconds, got ${v}`, k, v);
    }
  }
}

/** createController builds a Controller (not yet listening: call start()). */
export function createController(options: ControllerOptions): Controller {
  return new Controller(options);
}
