/**
 * Sockets for switch sessions: the accepting server (plain TCP today; any net.Server, e.g. a
 * tls.Server, can be plugged in through `ServerFactory`) and the listen-mode connection, which only
 * moves bytes between a socket and a pure Session (session.ts).
 */
import { createServer, type Server, type Socket } from "node:net";
import { createServer as createTlsServer, type Server as TlsServer, type TLSSocket } from "node:tls";
import type { Logger } from "../common/log.js";
import { OpenFlowError, errorMessage } from "../common/errors.js";
import { descriptorLeft, isOutOfFiles, outOfFiles } from "../common/nofile.js";
import { Framer, decodeMessage, encodeMessage, type FramerOptions } from "./codec/index.js";
import type { OfMessage } from "./codec/index.js";
import { Session, type SessionEvent, type SessionOptions, type Step } from "./session.js";
import { ReadPort, adoptAccepted } from "./readport.js";

/** ServerFactory creates the accepting server; pass `tls.createServer` bound to its options for `ssl:` switches. */
export type ServerFactory = (onConnection: (socket: Socket) => void) => Server;

/** plainTcpServer is the default ServerFactory (OpenFlow's `tcp:` transport). */
export const plainTcpServer: ServerFactory = (onConnection) => createServer({ noDelay: true }, onConnection);

/** TlsServerOptions are the PEM contents for an `ssl:` listener. */
export interface TlsServerOptions {
  cert: Buffer | string;
  key: Buffer | string;
  /** CA(s) a switch's certificate must chain to; without it switches are not asked for a certificate. */
  ca?: Buffer | string;
  /** Time a TCP peer has to finish the TLS handshake (ms). */
  handshakeTimeoutMs: number;
}

/**
 * tlsServer is the ServerFactory for OpenFlow over TLS (Open vSwitch `ssl:` controllers, OpenFlow 1.3.5
 * §6.3.3). With a CA, every switch must present a certificate that chains to it. The check is made here
 * rather than by Node's `rejectUnauthorized`, which drops the socket without saying why: a refused
 * switch is reported as a `tlsClientError` carrying OpenSSL's reason (e.g. UNABLE_TO_VERIFY_LEAF_SIGNATURE),
 * which SwitchServer counts and logs, and the socket is destroyed before any OpenFlow byte is read.
 */
export function tlsServer(options: TlsServerOptions): ServerFactory {
  return (onConnection) => {
    const server: TlsServer = createTlsServer(
      {
        cert: options.cert,
        key: options.key,
        ...(options.ca !== undefined ? { ca: options.ca, requestCert: true, rejectUnauthorized: false } : {}),
        minVersion: "TLSv1.2",
        handshakeTimeout: options.handshakeTimeoutMs,
      },
      (socket: TLSSocket) => {
        if (options.ca !== undefined && !socket.authorized) {
          const reason = String(socket.authorizationError ?? "no client certificate");
          const err: NodeJS.ErrnoException = new Error(`switch certificate refused: ${reason}`);
          err.code = reason;
          server.emit("tlsClientError", err, socket);
          socket.destroy();
          return;
        }
        onConnection(socket);
      },
    );
    return server;
  };
}

/** Clock returns monotonic milliseconds; injected so tests can control time. */
export type Clock = () => number;

/** monotonicClock is the default Clock. */
export const monotonicClock: Clock = () => performance.now();

/** ConnectionHooks are how a connection reports to its owner (the controller's registry). */
export interface ConnectionHooks {
  /** A session event (up/port/down); `expectReconnect` marks a `down` rfboot caused on purpose (relay handover). */
  onEvent(conn: SwitchConnection, event: SessionEvent, expectReconnect: boolean): void;
  /** The connection is gone (after any `down` event). */
  onClosed(conn: SwitchConnection, reason: string): void;
}

/** SwitchConnection is what the registry sees of a listen-mode or relay connection. */
export interface SwitchConnection {
  /** A process-unique connection number (for logs). */
  readonly id: number;
  /** The switch's address "IP:PORT". */
  readonly peer: string;
  readonly session: Session;
  /** bufferedBytes is what rfboot holds in user space for this connection (queued writes, held input). */
  readonly bufferedBytes: number;
  /** close ends the connection (idempotent); `expectReconnect` defers the registry's `down`. */
  close(reason: string, expectReconnect?: boolean): void;
}

let nextConnectionId = 1;

/** LOG_BURST / LOG_PER_SECOND: the per-connection budget of session log lines. */
const LOG_BURST = 20;
const LOG_PER_SECOND = 2;

/** peerOf renders a socket's remote address as "IP:PORT" (IPv6 in brackets). */
export function peerOf(socket: Socket): string {
  const addr = socket.remoteAddress ?? "?";
  const host = addr.startsWith("::ffff:") ? addr.slice(7) : addr;
  return host.includes(":") ? `[${host}]:${socket.remotePort}` : `${host}:${socket.remotePort}`;
}

/**
 * ConnectionBase holds what both modes share: the session, its timer, writing its messages to the
 * switch, logging its records, and the once-only close path.
 */
export abstract class ConnectionBase implements SwitchConnection {
  readonly id = nextConnectionId++;
  readonly peer: string;
  readonly session: Session;
  protected readonly log: Logger;
  protected closedReason: string | undefined;
  private timer: NodeJS.Timeout | undefined;
  private timerAt = Infinity;
  private expectReconnect = false;
  /** Log budget (token bucket): a switch must not be able to fill the disk with rfboot's log lines. */
  private logTokens = LOG_BURST;
  private logRefilledAt: number;
  private logSuppressed = 0;

  constructor(
    protected readonly socket: Socket,
    sessionOptions: Omit<SessionOptions, "peer">,
    protected readonly hooks: ConnectionHooks,
    logger: Logger,
    protected readonly clock: Clock,
  ) {
    this.peer = peerOf(socket);
    this.log = logger.child({ conn: this.id, peer: this.peer });
    this.session = new Session({ ...sessionOptions, peer: this.peer }, clock());
    this.logRefilledAt = clock();
    socket.setNoDelay(true);
    socket.on("error", (err) => this.close(`switch socket error: ${errorMessage(err)}`));
    socket.on("close", () => this.close("switch closed the connection"));
  }

  get bufferedBytes(): number {
    return this.socket.writableLength;
  }

  /** isClosed tells whether close() ran. */
  get isClosed(): boolean {
    return this.closedReason !== undefined;
  }

  close(reason: string, expectReconnect = false): void {
    if (this.closedReason !== undefined) return;
    this.closedReason = reason;
    this.expectReconnect = expectReconnect;
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    this.apply(this.session.closed(reason, this.clock()));
    this.teardown(reason);
    this.log.info({ reason, dpid: hexOrUndefined(this.session.dpid) }, "switch connection closed");
    this.hooks.onClosed(this, reason);
  }

  /** teardown releases the sockets; subclasses close their upstream too. */
  protected teardown(_reason: string): void {
    // end() flushes what is queued (e.g. a HELLO_FAILED error) before FIN; destroy() guards a stuck peer.
    this.socket.end();
    setTimeout(() => this.socket.destroy(), 1_000).unref();
  }

  /** apply writes a step's messages to the switch, logs its records, reports its events, and closes if asked. */
  protected apply(step: Step): void {
    for (const rec of step.logs) this.logRecord(rec);
    let close = step.close;
    if (step.send.length > 0 && !this.socket.destroyed && this.socket.writable) {
      for (const msg of step.send) {
        let bytes: Buffer;
        try {
          bytes = encodeMessage(msg);
        } catch (err) {
          // A bug, never input: still, one switch must not be able to take the process down with it.
          this.log.error(
            { type: msg.type, version: msg.version, err: errorMessage(err) },
            "cannot encode rfboot's own message",
          );
          close ??= `internal error: cannot encode ${msg.type}: ${errorMessage(err)}`;
          break;
        }
        this.writeToSwitch(bytes, msg);
      }
    }
    for (const ev of step.events) this.hooks.onEvent(this, ev, this.expectReconnect);
    if (close !== undefined) this.close(close);
    else this.rearm();
  }

  /**
   * logRecord writes a session log record within the connection's budget (LOG_BURST lines, then
   * LOG_PER_SECOND); what is over budget is counted and reported in the next line that passes.
   */
  private logRecord(rec: Step["logs"][number]): void {
    const now = this.clock();
    this.logTokens = Math.min(
      LOG_BURST,
      this.logTokens + ((now - this.logRefilledAt) / 1000) * LOG_PER_SECOND,
    );
    this.logRefilledAt = now;
    if (this.logTokens < 1) {
      this.logSuppressed++;
      return;
    }
    this.logTokens -= 1;
    const fields =
      this.logSuppressed > 0 ? { ...rec.fields, suppressedLines: this.logSuppressed } : rec.fields;
    this.logSuppressed = 0;
    this.log[rec.level](fields ?? {}, rec.msg);
  }

  /** writeToSwitch sends rfboot's own message (only ever at a frame boundary of the switch-bound stream). */
  protected writeToSwitch(bytes: Buffer, _msg: OfMessage): void {
    this.socket.write(bytes);
  }

  /**
   * rearm keeps one timer per connection at the session's next deadline. Deadlines only move later
   * as traffic arrives, so the timer is moved only when the new deadline is earlier; a timer that
   * fires early just ticks and rearms.
   */
  protected rearm(): void {
    if (this.closedReason !== undefined) return;
    const at = this.session.deadline();
    if (at === undefined) return;
    if (this.timer !== undefined && at >= this.timerAt) return;
    if (this.timer) clearTimeout(this.timer);
    this.timerAt = at;
    this.timer = setTimeout(
      () => {
        this.timer = undefined;
        this.timerAt = Infinity;
        if (this.closedReason === undefined) this.apply(this.session.tick(this.clock()));
      },
      Math.max(0, Math.ceil(at - this.clock())),
    );
  }
}

/** ListenConnection is a controller-mode (listen) connection: rfboot is one of the switch's controllers. */
export class ListenConnection extends ConnectionBase {
  private readonly framer: Framer;

  constructor(
    socket: Socket,
    sessionOptions: Omit<SessionOptions, "peer" | "mode">,
    hooks: ConnectionHooks,
    logger: Logger,
    clock: Clock = monotonicClock,
    framerOptions: FramerOptions = {},
  ) {
    super(socket, { ...sessionOptions, mode: "controller" }, hooks, logger, clock);
    this.framer = new Framer(framerOptions);
    this.log.debug("switch connected");
    socket.on("data", (chunk: Buffer) => this.onData(chunk));
    this.apply(this.session.start(clock()));
  }

  private onData(chunk: Buffer): void {
    if (this.closedReason !== undefined) return;
    let frames: Buffer[];
    try {
      frames = this.framer.push(chunk);
    } catch (err) {
      if (!(err instanceof OpenFlowError)) throw err;
      // A length below the header or above the maximum: answer BAD_LEN, then close (session.malformed).
      this.apply(this.session.malformed(err, this.framer.badHeader ?? new Uint8Array(0), this.clock()));
      return;
    }
    for (const frame of frames) {
      if (this.closedReason !== undefined) return;
      let msg: OfMessage;
      try {
        msg = decodeMessage(frame);
      } catch (err) {
        if (!(err instanceof OpenFlowError)) throw err;
        this.apply(this.session.malformed(err, frame, this.clock()));
        return;
      }
      this.apply(this.session.fromSwitch(msg, this.clock()));
    }
    // Whole frames that preceded a bad length were handled; the bad length itself surfaces now.
    if (this.closedReason === undefined && this.framer.badHeader !== undefined) this.onData(Buffer.alloc(0));
  }
}

/** ListenAddress is where the server accepts switches; port 0 picks a free port. */
export interface ListenAddress {
  host: string;
  port: number;
}

/** ConnectionLimits bound what one peer, and all peers together, can hold open (refused beyond: closed at once). */
export interface ConnectionLimits {
  /** Most open switch connections in all (default 4096). */
  maxConnections: number;
  /** Most open connections from one IP address (default 1024: Mininet's switches all come from 127.0.0.1). */
  maxConnectionsPerPeer: number;
}

/** DEFAULT_CONNECTION_LIMITS: 4096 in all, 1024 per IP address. */
export const DEFAULT_CONNECTION_LIMITS: Readonly<ConnectionLimits> = Object.freeze({
  maxConnections: 4096,
  maxConnectionsPerPeer: 1024,
});

/** SwitchServerOptions configures the accepting server. */
export interface SwitchServerOptions {
  /** The accepting server (default plain TCP). */
  factory?: ServerFactory;
  limits?: Partial<ConnectionLimits>;
  logger?: Logger;
  /**
   * Hand each plain-TCP socket over re-wrapped to read through a ReadPort (reused read memory,
   * readport.ts); TLS sockets, and any socket this Node cannot re-wrap, come as they are.
   */
  readPorts?: boolean;
}

/** How often (ms) a repeated accept problem (refusal, TLS failure) is logged, with a count. */
const ACCEPT_LOG_INTERVAL_MS = 5_000;
/** How often (ms) a listening server checks that a descriptor is left (see watchDescriptors). */
const DESCRIPTOR_PROBE_MS = 1_000;

/**
 * SwitchServer accepts switch connections and hands each socket to `onSocket`. It tracks live
 * sockets so that close() ends them all and resolves once the listener is down. Limits are applied
 * to the raw TCP connection (before any TLS handshake), so a flood of half-open TLS handshakes is
 * bounded too. Accept errors and failed TLS handshakes are logged, never fatal: libuv keeps listening.
 * Running out of descriptors (EMFILE, ENFILE) is an error naming the limit and its fix (common/nofile.ts).
 */
export class SwitchServer {
  private readonly server: Server;
  private readonly sockets = new Set<Socket>();
  private readonly limits: ConnectionLimits;
  private readonly log: Logger | undefined;
  /** Raw connections open, in all and per remote address. */
  private open = 0;
  private readonly perPeer = new Map<string, number>();
  private readonly refusedSockets = new WeakSet<Socket>();
  private readonly throttled = new Map<string, { at: number; count: number }>();
  /** accepted counts connections admitted by the limits (served). */
  accepted = 0;
  /** refused counts connections closed at accept because of a limit. */
  refused = 0;
  /** acceptErrors counts accept failures (EMFILE, ENFILE, ...). */
  acceptErrors = 0;
  /** tlsFailures counts TLS handshakes that failed (bad or missing client certificate, garbage). */
  tlsFailures = 0;
  private descriptorProbe: NodeJS.Timeout | undefined;

  constructor(onSocket: (socket: Socket, port?: ReadPort) => void, options: SwitchServerOptions = {}) {
    this.limits = { ...DEFAULT_CONNECTION_LIMITS, ...options.limits };
    this.log = options.logger;
    this.server = (options.factory ?? plainTcpServer)((socket) => {
      if (this.refusedSockets.has(socket)) return; // plain TCP: the raw socket itself was refused
      let port: ReadPort | undefined = options.readPorts ? new ReadPort() : undefined;
      const adopted = port ? adoptAccepted(socket, port) : undefined;
      if (port && !adopted) {
        port.close();
        port = undefined;
      }
      const s = adopted ?? socket;
      this.sockets.add(s);
      s.once("close", () => {
        this.sockets.delete(s);
        port?.close();
      });
      onSocket(s, port);
    });
    // Runs before the factory's listener. A refused socket is destroyed on the next tick rather than
    // here: a tls.Server still wraps it in its own listener (then sees it fail before any handshake).
    this.server.prependListener("connection", (raw: Socket) => this.admit(raw));
    this.server.on("error", (err: NodeJS.ErrnoException) => {
      if (!this.server.listening) return; // start() reports listen errors
      this.acceptErrors++;
      if (isOutOfFiles(err)) {
        outOfFiles.report("accept", err, this.log);
        return;
      }
      this.throttledWarn(
        "accept",
        { code: err.code, err: errorMessage(err) },
        "accepting a connection failed; still listening",
      );
    });
    this.server.on("tlsClientError", (err: NodeJS.ErrnoException, tlsSocket: Socket) => {
      this.tlsFailures++;
      // Throttled per error code, so a certificate refusal is not hidden behind a run of hang-ups.
      this.throttledWarn(
        `tls:${err.code ?? err.message}`,
        { peer: peerOf(tlsSocket), err: errorMessage(err) },
        "TLS handshake with a switch failed; connection closed",
      );
    });
  }

  /** connectionCount is the number of raw connections open (including TLS handshakes in progress). */
  get connectionCount(): number {
    return this.open;
  }

  private admit(raw: Socket): void {
    const addr = raw.remoteAddress ?? "?";
    const n = this.perPeer.get(addr) ?? 0;
    if (this.open >= this.limits.maxConnections || n >= this.limits.maxConnectionsPerPeer) {
      this.refused++;
      this.throttledWarn(
        "refused",
        {
          peer: addr,
          open: this.open,
          fromPeer: n,
          maxConnections: this.limits.maxConnections,
          maxConnectionsPerPeer: this.limits.maxConnectionsPerPeer,
        },
        "connection limit reached; connection refused",
      );
      this.refusedSockets.add(raw);
      raw.on("error", () => undefined);
      process.nextTick(() => raw.destroy());
      return;
    }
    this.accepted++;
    this.open++;
    this.perPeer.set(addr, n + 1);
    raw.once("close", () => {
      this.open--;
      const left = (this.perPeer.get(addr) ?? 1) - 1;
      if (left <= 0) this.perPeer.delete(addr);
      else this.perPeer.set(addr, left);
    });
  }

  /** throttledWarn logs the first occurrence of a kind, then at most once per interval with a count. */
  private throttledWarn(kind: string, fields: Record<string, unknown>, msg: string): void {
    const now = Date.now();
    const t = this.throttled.get(kind);
    if (t && now - t.at < ACCEPT_LOG_INTERVAL_MS) {
      t.count++;
      return;
    }
    this.throttled.set(kind, { at: now, count: 0 });
    this.log?.warn({ ...fields, ...(t && t.count > 0 ? { sinceLastLine: t.count } : {}) }, msg);
  }

  /** start listens and resolves with the bound address (the real port when 0 was asked). */
  start(address: ListenAddress): Promise<ListenAddress> {
    return new Promise((resolve, reject) => {
      const onError = (err: Error) => reject(err);
      this.server.once("error", onError);
      this.server.listen({ host: address.host, port: address.port, backlog: 4096 }, () => {
        this.server.off("error", onError);
        this.watchDescriptors();
        const a = this.server.address();
        if (a === null || typeof a === "string") {
          resolve(address);
        } else {
          resolve({ host: a.address, port: a.port });
        }
      });
    });
  }

  /**
   * watchDescriptors checks once a second that a descriptor is left. Out of them, libuv accepts and closes
   * the waiting connections with a descriptor it keeps in reserve, and tells Node nothing: without this
   * probe switches would be turned away without a word.
   */
  private watchDescriptors(): void {
    outOfFiles.limit();
    this.descriptorProbe = setInterval(() => {
      const probe = descriptorLeft();
      if (!probe.left) outOfFiles.report("accept", probe.err, this.log);
    }, DESCRIPTOR_PROBE_MS);
    this.descriptorProbe.unref();
  }

  /** close stops accepting, destroys every live socket, and resolves when the listener is closed. */
  close(): Promise<void> {
    clearInterval(this.descriptorProbe);
    return new Promise((resolve) => {
      for (const s of this.sockets) s.destroy();
      if (!this.server.listening) {
        resolve();
        return;
      }
      this.server.close(() => resolve());
    });
  }
}

function hexOrUndefined(d: bigint | undefined): string | undefined {
  return d === undefined ? undefined : d.toString(16).padStart(16, "0");
}
