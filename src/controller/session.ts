/**
 * The OpenFlow switch session as a pure state machine: messages and `now` go in; messages
 * to send, events and log records come out. Sockets, timers and the dpid registry live elsewhere
 * (server.ts, relay.ts, controller.ts), so every rule here is tested with injected time.
 *
 * Two modes:
 * - "controller": rfboot is the switch's (extra) controller. It sends HELLO, negotiates the version
 *   (OpenFlow 1.3.5 §6.3.1), asks FEATURES (and PORT_DESC on 1.3+), optionally asks for the slave
 *   role, answers ECHO and probes an idle switch. It never sends a message that changes the switch:
 *   see READ_ONLY_TYPES and assertReadOnly.
 * - "relay": rfboot sits between the switch and the real controller ("upstream") and watches a copy
 *   of both directions. See relay.ts for the design; the session's part is:
 *   * "connecting": the upstream TCP connection is being opened. If it is not open within
 *     `upstreamConnectTimeoutMs`, or fails, the session goes "standalone" (below).
 *   * "relayed": both directions are forwarded unchanged. The session learns the dpid from the
 *     FEATURES_REPLY the upstream asked for. If the upstream has not asked within `injectAfterMs`
 *     after both HELLOs passed, rfboot sends its own read-only FEATURES_REQUEST / PORT_DESC request
 *     with an xid from RELAY_XID_BASE.. and drops exactly those replies from the switch->upstream
 *     stream (`drop`), so the upstream sees the session it would see directly. An idle switch is
 *     probed the same way (an injected ECHO_REQUEST whose reply is dropped). If the upstream sends no
 *     HELLO at all within `upstreamHelloTimeoutMs` of connecting, nothing of it has reached the switch
 *     yet, so the session detaches it and goes standalone.
 *   * "standalone": no upstream; rfboot runs the controller-mode handshake itself (without role
 *     requests: no other controller shares this connection) and keeps the switch alive. relay.ts
 *     retries the upstream and, once it accepts, closes the switch so that it reconnects into a
 *     clean relayed session.
 */
import type { OpenFlowErrorCode } from "../common/errors.js";
import type { FeaturesReply, Hello, OfMessage, Port, PortDescReply } from "./codec/index.js";
import {
  buildBadRequest,
  buildHelloFailed,
  OFPBRC,
  NX_ROLE,
  OFPCR_ROLE,
  OFPET_HELLO_FAILED,
  OFPET_ROLE_REQUEST_FAILED,
  OFPMPF_REPLY_MORE,
  OFPP_ANY,
  OFPPR,
  OFPRRFC,
  OFP_VERSIONS,
  versionName,
  type OfVersionName,
} from "./codec/index.js";
import { fmt, negotiate, observedVersion, ourHello } from "./session-negotiate.js";

/** SessionMode says whether rfboot is the switch's controller or a relay in front of one. */
export type SessionMode = "controller" | "relay";

/** RoleSetting is the role rfboot asks for in controller (listen) mode; "none" sends no role request. */
export type RoleSetting = "slave" | "equal" | "none";

/** SessionOptions configures one session; every duration is in milliseconds of the injected clock. */
export interface SessionOptions {
  mode: SessionMode;
  /** Wire versions rfboot offers (1 = OpenFlow 1.0 .. 6 = 1.5). */
  versions: readonly number[];
  role: RoleSetting;
  /** Idle time after which rfboot sends an ECHO_REQUEST. */
  echoIntervalMs: number;
  /** Time an ECHO_REQUEST may stay unanswered (no message at all from the switch) before the switch is declared dead. */
  echoTimeoutMs: number;
  /** Time from connect to `up` after which the connection is closed. */
  handshakeTimeoutMs: number;
  /** Relay: time to open the upstream TCP connection before going standalone. */
  upstreamConnectTimeoutMs: number;
  /** Relay: time the connected upstream may stay silent (no HELLO) before it is detached. */
  upstreamHelloTimeoutMs: number;
  /** Relay: time after both HELLOs (or after FEATURES_REPLY, for PORT_DESC) before rfboot asks itself. */
  injectAfterMs: number;
  /** The switch's address, "IP:PORT". */
  peer: string;
}

/** DEFAULT_SESSION_TIMING holds the default durations (ms). OVS probes its controllers after 5 s idle. */
export const DEFAULT_SESSION_TIMING = Object.freeze({
  echoIntervalMs: 5_000,
  echoTimeoutMs: 5_000,
  handshakeTimeoutMs: 10_000,
  upstreamConnectTimeoutMs: 300,
  upstreamHelloTimeoutMs: 1_000,
  injectAfterMs: 1_000,
} as const);

/** PortInfo is the part of a switch port rfboot reports: OpenFlow number, name, MAC. */
export interface PortInfo {
  no: number;
  name: string;
  mac: string;
}

/** PortReason is why a PORT_STATUS was sent (OpenFlow 1.3.5 §7.4.3). */
export type PortReason = "add" | "delete" | "modify";

/** DatapathInfo describes a datapath reported `up`. */
export interface DatapathInfo {
  /** The 64-bit datapath id. */
  dpid: bigint;
  /** Negotiated version name ("1.0".."1.5"). */
  version: OfVersionName;
  /** Negotiated wire version byte. */
  wireVersion: number;
  ports: PortInfo[];
  /** The switch's address, "IP:PORT". */
  peer: string;
  /** 0 for a main connection (only main connections are reported). */
  auxiliaryId: number;
}

/** SessionEvent is what a session reports to the registry. */
export type SessionEvent =
  | { type: "up"; datapath: DatapathInfo }
  | { type: "port"; dpid: bigint; reason: PortReason; port: PortInfo }
  | { type: "down"; dpid: bigint; reason: string };

/** LogRecord is a log line the I/O layer writes for the session (the session itself does no I/O). */
export interface LogRecord {
  level: "debug" | "info" | "warn";
  msg: string;
  fields?: Record<string, unknown>;
}

/** Step is the result of feeding one input to a session. */
export interface Step {
  /** Messages rfboot sends to the switch, in order. */
  send: OfMessage[];
  events: SessionEvent[];
  logs: LogRecord[];
  /** Relay: true when the switch message just given must not be forwarded upstream (an injected request's reply). */
  drop: boolean;
  /** Close the switch connection (and its upstream) for this reason. */
  close?: string;
  /** Relay: drop the upstream connection (or attempt) for this reason and keep serving the switch standalone. */
  detachUpstream?: string;
}

/**
 * MAX_SWITCH_PORTS bounds the ports one session keeps (from FEATURES_REPLY, PORT_DESC parts and
 * PORT_STATUS adds): a hostile switch could otherwise grow the table without end. RouteFlow VMs use a
 * few dozen data ports; a real switch reports at most a few hundred.
 */
export const MAX_SWITCH_PORTS = 4096;

/** MAX_PARTIAL_REPLIES bounds the PORT_DESC reassemblies in progress at once (distinct xids). */
const MAX_PARTIAL_REPLIES = 4;

/** RELAY_XID_BASE starts the xid range of requests the relay injects; their replies are dropped (see relay.ts). */
export const RELAY_XID_BASE = 0xf0f00000;
const RELAY_XID_SPAN = 0x100000;

/**
 * READ_ONLY_TYPES are the only message types rfboot ever sends to a switch: none changes its tables,
 * configuration or ports (no FLOW_MOD, SET_CONFIG, PORT_MOD, PACKET_OUT, GROUP_MOD, TABLE_MOD, METER_MOD).
 * ROLE requests change only this connection's own role.
 */
export const READ_ONLY_TYPES: ReadonlySet<OfMessage["type"]> = new Set([
  "hello",
  "error",
  "echo_request",
  "echo_reply",
  "features_request",
  "port_desc_request",
  "role_request",
  "nx_role_request",
  "barrier_request",
]);

/** assertReadOnly throws when a message rfboot is about to send could change the switch (a bug, never input). */
export function assertReadOnly(msg: OfMessage): void {
  if (!READ_ONLY_TYPES.has(msg.type)) {
    throw new Error(`rfboot refuses to send ${msg.type} to a switch: only read-only messages are allowed`);
  }
}

/** toPortInfo keeps the reported fields of a decoded port. */
export function toPortInfo(p: Port): PortInfo {
  return { no: p.portNo, name: p.name, mac: p.hwAddr };
}

type Phase = "hello" | "features" | "up" | "aux" | "closed";
type RelayPhase = "connecting" | "relayed" | "standalone";
type Pending = "features" | "port_desc" | "echo" | "role_probe" | "role";

/** Session is one switch connection's protocol state (see the module comment). */
export class Session {
  private phase: Phase = "hello";
  private relayPhase: RelayPhase | undefined;
  private readonly startedAt: number;
  private handshakeDeadline: number;
  private nextXid = 1;
  private relayXid = 0;
  private myHello: Hello | undefined;
  private switchHello: Hello | undefined;
  private upstreamHello: Hello | undefined;
  private upstreamConnectedAt: number | undefined;
  private bothHellosAt: number | undefined;
  private upstreamAskedFeatures = false;
  private upstreamAskedPorts = false;
  /** Negotiated (or, in relay, observed) wire version. */
  private version: number | undefined;
  private features: FeaturesReply | undefined;
  private featuresAt: number | undefined;
  private ports: Map<number, PortInfo> | undefined;
  private readonly partial = new Map<number, Port[]>();
  /** Requests rfboot sent, by xid; in relay mode their replies are dropped. */
  private readonly pending = new Map<number, Pending>();
  /** What this connection reported `up` (at most one datapath at a time). */
  private reported: DatapathInfo | undefined;
  private partialPorts = 0;
  private portCapWarned = false;
  private lastRx: number;
  private probeSentAt: number | undefined;
  private roleAttempts = 0;

  constructor(
    readonly options: SessionOptions,
    now: number,
  ) {
    if (options.versions.length === 0) throw new Error("Session needs at least one offered version");
    this.startedAt = now;
    this.lastRx = now;
    this.handshakeDeadline = now + options.handshakeTimeoutMs;
    if (options.mode === "relay") this.relayPhase = "connecting";
  }

  /** dpid is the datapath id once FEATURES_REPLY was seen. */
  get dpid(): bigint | undefined {
    return this.features?.datapathId;
  }

  /** isUp tells whether this connection reported `up` (and has not closed). */
  get isUp(): boolean {
    return this.phase === "up";
  }

  /** state names the phase for logs and status ("hello", "features", "up", "aux", "closed" + relay phase). */
  get state(): string {
    return this.relayPhase ? `${this.phase}/${this.relayPhase}` : this.phase;
  }

  /** wireVersion is the negotiated version byte once known. */
  get wireVersion(): number | undefined {
    return this.version;
  }

  /** datapath is the reported description once up. */
  get datapath(): DatapathInfo | undefined {
    if (this.phase !== "up") return undefined;
    return this.describe();
  }

  /** acting tells whether rfboot itself is the switch's peer (controller mode, or relay standalone). */
  private get acting(): boolean {
    return this.options.mode === "controller" || this.relayPhase === "standalone";
  }

  /** start begins a controller-mode session: both sides send HELLO at once (OpenFlow 1.3.5 §6.3.1). */
  start(now: number): Step {
    const step = emptyStep();
    if (this.options.mode === "controller") this.sendHello(step, now);
    return step;
  }

  /** touch records traffic from the switch that was forwarded without being decoded (relay hot path). */
  touch(now: number): void {
    this.lastRx = now;
    this.probeSentAt = undefined;
  }

  /** fromSwitch handles one decoded message from the switch. */
  fromSwitch(msg: OfMessage, now: number): Step {
    const step = emptyStep();
    if (this.phase === "closed") return step;
    this.touch(now);
    const mine = this.pending.get(msg.xid);
    const isReplyToMine = mine !== undefined && repliesTo(msg, mine);
    if (isReplyToMine && !this.acting) step.drop = true;
    if (this.acting && this.phase === "hello" && msg.type !== "hello" && msg.type !== "error") {
      // OpenFlow 1.3.5 §6.3.1: HELLO is the first message of a connection.
      step.close = `expected HELLO first, got ${msg.type}`;
      return this.finish(step);
    }

    switch (msg.type) {
      case "hello":
        this.onSwitchHello(msg, step, now);
        break;
      case "echo_request":
        // Only the switch's real peer answers; in relayed mode the upstream does.
        if (this.acting)
          step.send.push({ type: "echo_reply", version: msg.version, xid: msg.xid, data: msg.data });
        break;
      case "echo_reply":
        if (isReplyToMine) this.pending.delete(msg.xid);
        break;
      case "features_reply":
        if (isReplyToMine) this.pending.delete(msg.xid);
        this.onFeatures(msg, step, now);
        break;
      case "port_desc_reply":
        this.onPortDesc(msg, step, isReplyToMine);
        break;
      case "port_status":
        this.onPortStatus(msg.reason, toPortInfo(msg.port), step);
        break;
      case "role_reply":
        if (isReplyToMine) this.onRoleReply(msg.xid, msg.role, msg.generationId, step, now);
        break;
      case "nx_role_reply":
        if (isReplyToMine) {
          this.pending.delete(msg.xid);
          step.logs.push({
            level: "info",
            msg: "switch granted the Nicira role",
            fields: { role: msg.role },
          });
        }
        break;
      case "role_status":
        step.logs.push({
          level: "info",
          msg: "switch reports a role change",
          fields: { role: msg.role, reason: msg.reason, generationId: msg.generationId.toString() },
        });
        break;
      case "error":
        this.onError(msg, mine, step);
        break;
      default:
        break;
    }
    if (!this.acting && this.phase === "hello" && msg.type !== "hello" && msg.type !== "error") {
      // In relay mode the peers negotiated; adopt the version the switch now uses (if it is one).
      if (versionName(msg.version) !== undefined) this.version ??= msg.version;
    }
    return this.finish(step);
  }

  /** fromUpstream observes one message the upstream controller sent to the switch (relay mode; always forwarded). */
  fromUpstream(msg: OfMessage, now: number): Step {
    const step = emptyStep();
    if (this.phase === "closed" || this.relayPhase !== "relayed") return step;
    switch (msg.type) {
      case "hello":
        this.upstreamHello = msg;
        this.noteBothHellos(now);
        break;
      case "features_request":
        this.upstreamAskedFeatures = true;
        break;
      case "port_desc_request":
        this.upstreamAskedPorts = true;
        break;
      default:
        break;
    }
    return step;
  }

  /** upstreamConnected: relay mode, the upstream TCP connection is open; bytes now flow both ways. */
  upstreamConnected(now: number): Step {
    const step = emptyStep();
    if (this.relayPhase !== "connecting") return step;
    this.relayPhase = "relayed";
    this.upstreamConnectedAt = now;
    return step;
  }

  /** upstreamFailed: relay mode, the upstream refused or failed before sending anything; go standalone. */
  upstreamFailed(reason: string, now: number): Step {
    const step = emptyStep();
    if (this.phase === "closed") return step;
    if (this.relayPhase === "connecting" || (this.relayPhase === "relayed" && !this.upstreamHello)) {
      this.goStandalone(reason, step, now);
    } else if (this.relayPhase === "relayed") {
      // The upstream already spoke to the switch: its session is gone, so is the switch's.
      step.close = `upstream closed: ${reason}`;
    }
    return this.finish(step);
  }

  /**
   * malformed: a frame from the switch could not be framed or decoded; `offending` holds its first bytes.
   * When rfboot is the switch's peer it answers ERROR OFPET_BAD_REQUEST (BAD_VERSION for a version it
   * cannot read, BAD_LEN for a bad length or a body that does not fit it: OpenFlow 1.3.5 §7.5.4.2, 1.0
   * §5.4.4), then closes: after a bad frame the stream cannot be trusted. In relayed mode the switch's
   * peer is the upstream controller, so rfboot only closes.
   */
  malformed(
    problem: { code: OpenFlowErrorCode; message: string },
    offending: Uint8Array,
    _now: number,
  ): Step {
    const step = emptyStep();
    if (this.phase === "closed") return step;
    if (this.acting) {
      const frameVersion = offending.length >= 1 ? offending[0]! : 0;
      const version =
        this.version ??
        (versionName(frameVersion) !== undefined ? frameVersion : Math.max(...this.options.versions));
      const xid =
        offending.length >= 8
          ? ((offending[4]! << 24) | (offending[5]! << 16) | (offending[6]! << 8) | offending[7]!) >>> 0
          : 0;
      const code = problem.code === "bad-version" ? OFPBRC.BAD_VERSION : OFPBRC.BAD_LEN;
      step.send.push(buildBadRequest(version, xid, code, offending));
    }
    step.close = `malformed message from the switch: ${problem.message}`;
    return this.finish(step);
  }

  /** tick runs the timers due at `now` (handshake, echo, relay connect/hello/inject). */
  tick(now: number): Step {
    const step = emptyStep();
    if (this.phase === "closed") return step;
    if (this.phase !== "up" && this.phase !== "aux" && now >= this.handshakeDeadline) {
      step.close = `handshake timeout: no FEATURES_REPLY${this.needsPortDesc() ? "/PORT_DESC" : ""} within ${
        this.options.handshakeTimeoutMs
      } ms (state ${this.state})`;
      return this.finish(step);
    }
    if (this.relayPhase === "connecting" && now >= this.startedAt + this.options.upstreamConnectTimeoutMs) {
      this.goStandalone(
        `upstream not connected within ${this.options.upstreamConnectTimeoutMs} ms`,
        step,
        now,
      );
      return this.finish(step);
    }
    if (
      this.relayPhase === "relayed" &&
      this.upstreamHello === undefined &&
      this.upstreamConnectedAt !== undefined &&
      now >= this.upstreamConnectedAt + this.options.upstreamHelloTimeoutMs
    ) {
      this.goStandalone(`upstream sent no HELLO within ${this.options.upstreamHelloTimeoutMs} ms`, step, now);
      return this.finish(step);
    }
    this.injectIfDue(step, now);
    this.probeIfDue(step, now);
    return this.finish(step);
  }

  /** closed: the transport closed (`reason`); reports `down` when this connection was up. */
  closed(reason: string, _now: number): Step {
    const step = emptyStep();
    if (this.phase === "closed") return step;
    // `down` for whatever was reported `up`, even if a relay fallback re-opened the handshake since.
    if (this.reported !== undefined) step.events.push({ type: "down", dpid: this.reported.dpid, reason });
    this.phase = "closed";
    return step;
  }

  /** deadline is the next time `tick` has something to do, or undefined. */
  deadline(): number | undefined {
    if (this.phase === "closed") return undefined;
    const times: number[] = [];
    if (this.phase !== "up" && this.phase !== "aux") times.push(this.handshakeDeadline);
    if (this.relayPhase === "connecting") times.push(this.startedAt + this.options.upstreamConnectTimeoutMs);
    if (this.relayPhase === "relayed") {
      if (this.upstreamHello === undefined && this.upstreamConnectedAt !== undefined) {
        times.push(this.upstreamConnectedAt + this.options.upstreamHelloTimeoutMs);
      }
      const inj = this.injectTimes();
      if (inj.features !== undefined) times.push(inj.features);
      if (inj.ports !== undefined) times.push(inj.ports);
    }
    if (this.canProbe()) {
      times.push(
        this.probeSentAt !== undefined
          ? this.probeSentAt + this.options.echoTimeoutMs
          : this.lastRx + this.options.echoIntervalMs,
      );
    }
    return times.length === 0 ? undefined : Math.min(...times);
  }

  // ---- handshake -------------------------------------------------------------------------------

  private sendHello(step: Step, _now: number): void {
    this.myHello = ourHello(this.options.versions, this.xid());
    step.send.push(this.myHello);
  }

  private onSwitchHello(msg: Hello, step: Step, now: number): void {
    if (this.switchHello !== undefined) {
      step.logs.push({ level: "debug", msg: "switch sent a second HELLO; ignored" });
      return;
    }
    this.switchHello = msg;
    if (this.acting) {
      this.negotiateAndAsk(step, now);
    } else {
      this.noteBothHellos(now);
    }
  }

  /** negotiateAndAsk runs when rfboot is the peer and both HELLOs are known. */
  private negotiateAndAsk(step: Step, _now: number): void {
    if (this.myHello === undefined || this.switchHello === undefined) return;
    const result = negotiate(this.myHello, this.switchHello, this.options.versions);
    if (!result.ok) {
      // OpenFlow 1.3.5 §6.3.1: reply OFPET_HELLO_FAILED / OFPHFC_INCOMPATIBLE, then terminate.
      const text = `rfboot: ${result.reason}`;
      // The error goes out in the lower of the two header versions; a version byte the codec cannot
      // write (0, or none at all) falls back to the lowest version rfboot offers.
      const lower = Math.min(this.switchHello.version, this.myHello.version);
      const errVersion = versionName(lower) !== undefined ? lower : Math.min(...this.options.versions);
      step.send.push(buildHelloFailed(errVersion, this.switchHello.xid, text));
      step.close = `version negotiation failed: ${result.reason}`;
      return;
    }
    this.version = result.version;
    this.phase = "features";
    step.logs.push({ level: "debug", msg: "version negotiated", fields: { version: fmt([result.version]) } });
    this.request(step, "features", { type: "features_request", version: result.version, xid: 0 });
    if (this.needsPortDesc()) this.requestPortDesc(step);
    if (this.options.mode === "controller") this.requestRole(step);
  }

  private needsPortDesc(): boolean {
    // 1.0-1.2 list ports in FEATURES_REPLY; 1.3+ only through PORT_DESC (OpenFlow 1.3.5 §7.3.1, §7.3.5.7).
    return this.version !== undefined && this.version >= OFP_VERSIONS["1.3"];
  }

  private requestPortDesc(step: Step): void {
    const v = this.version!;
    this.request(step, "port_desc", {
      type: "port_desc_request",
      version: v,
      xid: 0,
      flags: 0,
      ...(v >= OFP_VERSIONS["1.5"] ? { portNo: OFPP_ANY } : {}),
    });
  }

  private onFeatures(msg: FeaturesReply, step: Step, now: number): void {
    if (this.features !== undefined && this.phase !== "features") {
      // A later FEATURES_REPLY (the upstream asked again): nothing new for the registry.
      return;
    }
    this.features = msg;
    this.featuresAt = now;
    if (this.phase === "hello") this.phase = "features";
    this.version ??= msg.version;
    const aux = msg.auxiliaryId ?? 0;
    if (aux !== 0) {
      // OpenFlow 1.3.5 §6.3.6: an auxiliary connection belongs to a main one; it is not a new switch.
      this.phase = "aux";
      step.logs.push({
        level: "info",
        msg: "auxiliary connection (not a new datapath)",
        fields: { dpid: msg.datapathId.toString(16).padStart(16, "0"), auxiliaryId: aux },
      });
      return;
    }
    if (!this.needsPortDesc()) {
      this.ports = new Map(
        (msg.ports ?? []).slice(0, MAX_SWITCH_PORTS).map((p) => [p.portNo, toPortInfo(p)]),
      );
    }
    this.upIfReady(step);
  }

  private onPortDesc(msg: PortDescReply, step: Step, mine: boolean): void {
    const parts = this.partial.get(msg.xid) ?? [];
    if (
      this.partialPorts + msg.ports.length > MAX_SWITCH_PORTS ||
      (!this.partial.has(msg.xid) && this.partial.size >= MAX_PARTIAL_REPLIES)
    ) {
      // A switch that never ends its REPLY_MORE chain (or opens many) must not grow memory without bound.
      this.dropPartial(msg.xid);
      step.logs.push({
        level: "warn",
        msg: `PORT_DESC reply over ${MAX_SWITCH_PORTS} ports or ${MAX_PARTIAL_REPLIES} reassemblies; dropped`,
        fields: { xid: msg.xid },
      });
      if (mine && this.acting) step.close = `PORT_DESC reply larger than ${MAX_SWITCH_PORTS} ports`;
      return;
    }
    parts.push(...msg.ports);
    this.partialPorts += msg.ports.length;
    if (msg.flags & OFPMPF_REPLY_MORE) {
      this.partial.set(msg.xid, parts);
      return;
    }
    this.dropPartial(msg.xid);
    if (mine) this.pending.delete(msg.xid);
    if (this.phase === "up") {
      // A later PORT_DESC (the upstream asked again): PORT_STATUS already kept the table current.
      return;
    }
    this.ports = new Map(parts.map((p) => [p.portNo, toPortInfo(p)]));
    this.upIfReady(step);
  }

  private dropPartial(xid: number): void {
    this.partialPorts -= this.partial.get(xid)?.length ?? 0;
    this.partial.delete(xid);
  }

  private upIfReady(step: Step): void {
    if (
      this.phase === "up" ||
      this.phase === "aux" ||
      this.features === undefined ||
      this.ports === undefined
    ) {
      return;
    }
    const version = this.version ?? this.features.version;
    if (versionName(version) === undefined) {
      step.close = `the switch uses unknown OpenFlow version byte ${version}`;
      return;
    }
    this.version = version;
    this.phase = "up";
    const now = this.describe();
    const before = this.reported;
    if (before !== undefined && before.dpid === now.dpid) return; // already reported (relay went standalone)
    if (before !== undefined) {
      step.events.push({
        type: "down",
        dpid: before.dpid,
        reason: "the connection now reports another datapath id",
      });
    }
    this.reported = now;
    step.events.push({ type: "up", datapath: now });
  }

  private describe(): DatapathInfo {
    return {
      dpid: this.features!.datapathId,
      version: versionName(this.version!)!,
      wireVersion: this.version!,
      ports: [...this.ports!.values()].sort((a, b) => a.no - b.no),
      peer: this.options.peer,
      auxiliaryId: this.features!.auxiliaryId ?? 0,
    };
  }

  private onPortStatus(reason: number, port: PortInfo, step: Step): void {
    if (this.phase !== "up" || this.ports === undefined || this.features === undefined) {
      // Before the port list is known, the coming FEATURES_REPLY/PORT_DESC already reflects this change.
      return;
    }
    const name =
      reason === OFPPR.ADD
        ? "add"
        : reason === OFPPR.DELETE
          ? "delete"
          : reason === OFPPR.MODIFY
            ? "modify"
            : undefined;
    if (name === undefined) {
      step.logs.push({
        level: "warn",
        msg: "PORT_STATUS with an unknown reason; ignored",
        fields: { reason },
      });
      return;
    }
    if (name === "delete") this.ports.delete(port.no);
    else if (this.ports.has(port.no) || this.ports.size < MAX_SWITCH_PORTS) this.ports.set(port.no, port);
    else {
      if (!this.portCapWarned) {
        step.logs.push({
          level: "warn",
          msg: `the switch reports more than ${MAX_SWITCH_PORTS} ports; further ports are ignored`,
        });
      }
      this.portCapWarned = true;
      return;
    }
    step.events.push({ type: "port", dpid: this.features.datapathId, reason: name, port });
  }

  // ---- roles (controller mode) -------------------------------------------------------------------

  /**
   * requestRole asks for the configured role. OpenFlow 1.2+ (1.3.5 §6.3.6): a SLAVE request carries a
   * generation_id the switch compares with the largest it has seen; a smaller one is refused as STALE
   * and a larger one becomes the new reference, which could make the real master's next request
   * STALE. So rfboot first sends NOCHANGE (generation_id ignored) to read the switch's current
   * generation_id, then asks SLAVE with exactly that value (never raising it). On STALE (the master
   * moved in between) it re-reads, up to 3 times. When no master has set one yet, Open vSwitch
   * reports 2^64-1 ("undefined"); rfboot's SLAVE request then stores that value, which in the
   * spec's wrap-around comparison sits just below 0, so a master counting up from 0 is never STALE. OpenFlow 1.0 uses Nicira's NXT_ROLE_REQUEST, which
   * has no generation id. OpenFlow 1.1 has no role mechanism.
   */
  private requestRole(step: Step): void {
    const role = this.options.role;
    const v = this.version!;
    if (role === "none") return;
    if (v === OFP_VERSIONS["1.0"]) {
      this.request(step, "role", {
        type: "nx_role_request",
        version: v,
        xid: 0,
        role: role === "slave" ? NX_ROLE.SLAVE : NX_ROLE.OTHER,
      });
    } else if (v === OFP_VERSIONS["1.1"]) {
      step.logs.push({
        level: "info",
        msg: "OpenFlow 1.1 has no role request; rfboot stays an equal controller",
      });
    } else if (role === "equal") {
      this.request(step, "role", {
        type: "role_request",
        version: v,
        xid: 0,
        role: OFPCR_ROLE.EQUAL,
        generationId: 0n,
      });
    } else {
      this.roleAttempts++;
      this.request(step, "role_probe", {
        type: "role_request",
        version: v,
        xid: 0,
        role: OFPCR_ROLE.NOCHANGE,
        generationId: 0n,
      });
    }
  }

  private onRoleReply(xid: number, role: number, generationId: bigint, step: Step, _now: number): void {
    const kind = this.pending.get(xid);
    this.pending.delete(xid);
    if (kind === "role_probe") {
      this.request(step, "role", {
        type: "role_request",
        version: this.version!,
        xid: 0,
        role: OFPCR_ROLE.SLAVE,
        generationId,
      });
      return;
    }
    step.logs.push({
      level: "info",
      msg: "switch granted the role",
      fields: { role: roleName(role), generationId: generationId.toString() },
    });
  }

  private onError(msg: Extract<OfMessage, { type: "error" }>, mine: Pending | undefined, step: Step): void {
    const fields = { errType: msg.errType, code: msg.code, xid: msg.xid, request: mine };
    if (msg.errType === OFPET_HELLO_FAILED && this.acting) {
      step.close = `the switch rejected the HELLO: ${printable(msg.data)}`;
      return;
    }
    if (mine === undefined) {
      step.logs.push({ level: this.acting ? "warn" : "debug", msg: "switch sent an error", fields });
      return;
    }
    this.pending.delete(msg.xid);
    switch (mine) {
      case "features":
        step.close = `the switch refused FEATURES_REQUEST (error type ${msg.errType} code ${msg.code})`;
        return;
      case "port_desc":
        step.logs.push({ level: "warn", msg: "the switch refused PORT_DESC; reporting no ports", fields });
        if (this.phase === "features" && this.ports === undefined) {
          this.ports = new Map();
          this.upIfReady(step);
        }
        return;
      case "role":
      case "role_probe":
        // STALE: the generation id moved since the probe read it; read it again.
        if (
          msg.errType === OFPET_ROLE_REQUEST_FAILED &&
          msg.code === OFPRRFC.STALE &&
          this.roleAttempts < 3 &&
          this.phase !== "closed"
        ) {
          this.requestRole(step);
          return;
        }
        step.logs.push({
          level: "warn",
          msg: "the switch refused the role request; rfboot stays equal",
          fields,
        });
        return;
      case "echo":
        return;
    }
  }

  // ---- relay -------------------------------------------------------------------------------------

  private noteBothHellos(now: number): void {
    if (this.switchHello && this.upstreamHello && this.bothHellosAt === undefined) {
      this.bothHellosAt = now;
      // Two peers may "agree" on a version byte rfboot cannot speak (a bitmap bit beyond 1.5, a header
      // version 0): then rfboot only forwards and never injects a request of its own.
      const v = observedVersion(this.switchHello, this.upstreamHello);
      if (v !== undefined && versionName(v) !== undefined) this.version ??= v;
    }
  }

  private goStandalone(reason: string, step: Step, now: number): void {
    this.relayPhase = "standalone";
    this.handshakeDeadline = now + this.options.handshakeTimeoutMs;
    this.version = undefined;
    step.detachUpstream = reason;
    step.logs.push({
      level: "info",
      msg: "upstream unavailable; serving the switch standalone",
      fields: { reason },
    });
    this.sendHello(step, now);
    if (this.switchHello) this.negotiateAndAsk(step, now);
  }

  private injectTimes(): { features?: number; ports?: number } {
    if (this.bothHellosAt === undefined || this.version === undefined || this.acting) return {};
    const out: { features?: number; ports?: number } = {};
    const has = (k: Pending) => [...this.pending.values()].includes(k);
    if (this.features === undefined && !this.upstreamAskedFeatures && !has("features")) {
      out.features = this.bothHellosAt + this.options.injectAfterMs;
    }
    if (
      this.features !== undefined &&
      this.ports === undefined &&
      this.needsPortDesc() &&
      (this.features.auxiliaryId ?? 0) === 0 &&
      !this.upstreamAskedPorts &&
      !has("port_desc")
    ) {
      out.ports = Math.max(this.featuresAt ?? 0, this.bothHellosAt) + this.options.injectAfterMs;
    }
    return out;
  }

  private injectIfDue(step: Step, now: number): void {
    const t = this.injectTimes();
    if (t.features !== undefined && now >= t.features) {
      step.logs.push({
        level: "info",
        msg: "upstream has not asked FEATURES; rfboot asks itself (reply dropped)",
      });
      this.request(step, "features", { type: "features_request", version: this.version!, xid: 0 });
    }
    if (t.ports !== undefined && now >= t.ports) {
      step.logs.push({
        level: "info",
        msg: "upstream has not asked PORT_DESC; rfboot asks itself (reply dropped)",
      });
      this.requestPortDesc(step);
    }
  }

  // ---- keepalive ---------------------------------------------------------------------------------

  private canProbe(): boolean {
    if (this.version === undefined || this.phase === "closed") return false;
    // In relayed mode probe only once both HELLOs passed (the switch accepts requests only then).
    return this.acting || this.bothHellosAt !== undefined;
  }

  private probeIfDue(step: Step, now: number): void {
    if (!this.canProbe()) return;
    if (this.probeSentAt !== undefined) {
      if (now >= this.probeSentAt + this.options.echoTimeoutMs) {
        step.close = `echo timeout: no reply within ${this.options.echoTimeoutMs} ms`;
      }
      return;
    }
    if (now >= this.lastRx + this.options.echoIntervalMs) {
      this.probeSentAt = now;
      this.request(step, "echo", {
        type: "echo_request",
        version: this.version!,
        xid: 0,
        data: new Uint8Array(0),
      });
    }
  }

  // ---- helpers -----------------------------------------------------------------------------------

  /** request sends a message with a fresh xid and remembers what its reply answers. */
  private request(step: Step, kind: Pending, msg: OfMessage): void {
    const xid = this.xid();
    const out = { ...msg, xid } as OfMessage;
    this.pending.set(xid, kind);
    step.send.push(out);
  }

  private xid(): number {
    if (this.acting) return this.nextXid++ >>> 0;
    const x = RELAY_XID_BASE + (this.relayXid++ % RELAY_XID_SPAN);
    return x >>> 0;
  }

  private finish(step: Step): Step {
    for (const m of step.send) assertReadOnly(m);
    if (step.close !== undefined && this.phase !== "closed") {
      const closing = this.closed(step.close, 0);
      step.events.push(...closing.events);
    }
    return step;
  }
}

/** repliesTo tells whether a message from the switch answers a request of kind `k` (same xid checked by the caller). */
function repliesTo(msg: OfMessage, k: Pending): boolean {
  switch (k) {
    case "features":
      return msg.type === "features_reply" || msg.type === "error";
    case "port_desc":
      return msg.type === "port_desc_reply" || msg.type === "error";
    case "echo":
      return msg.type === "echo_reply" || msg.type === "error";
    case "role_probe":
    case "role":
      return msg.type === "role_reply" || msg.type === "nx_role_reply" || msg.type === "error";
  }
}

function roleName(role: number): string {
  return (Object.entries(OFPCR_ROLE).find(([, v]) => v === role)?.[0] ?? String(role)).toLowerCase();
}

function printable(data: Uint8Array): string {
  return new TextDecoder()
    .decode(data)
    .replace(/[^\x20-\x7e]/g, "")
    .slice(0, 200);
}

function emptyStep(): Step {
  return { send: [], events: [], logs: [], drop: false };
}
