/**
 * Scripted OpenFlow peers over real sockets (port 0, loopback), so the controller's tests run its real
 * socket code: a fake switch that can answer the handshake on its own, and a fake upstream controller
 * that records every byte it receives.
 */
import { connect, createServer, type Server, type Socket } from "node:net";
import { createController, type Controller, type ControllerOptions } from "../../../src/controller/index.js";
import {
  Framer,
  buildHello,
  decodeMessage,
  encodeMessage,
  type OfMessage,
  type Port,
} from "../../../src/controller/codec/index.js";

/** FakeSwitchSpec is what a fake switch answers with. */
export interface FakeSwitchSpec {
  dpid: bigint;
  /** Versions in the switch's HELLO bitmap; the header carries the highest. */
  versions: number[];
  ports: { no: number; name: string; mac: string }[];
  auxiliaryId?: number;
  /** Split PORT_DESC into one reply part per port (REPLY_MORE on all but the last). */
  splitPortDesc?: boolean;
}

/** packetIn builds a raw OpenFlow 1.0 PACKET_IN of `size` bytes (forwarded undecoded by the relay). */
export function packetIn(xid: number, size: number): Buffer {
  const b = Buffer.alloc(size, xid & 0xff);
  b.writeUInt8(1, 0);
  b.writeUInt8(10, 1);
  b.writeUInt16BE(size, 2);
  b.writeUInt32BE(xid, 4);
  return b;
}

/** makePort builds a codec Port for a version from {no, name, mac}. */
export function makePort(p: { no: number; name: string; mac: string }, version: number): Port {
  const port: Port = {
    portNo: p.no,
    hwAddr: p.mac,
    name: p.name,
    config: 0,
    state: 0,
    curr: 0,
    advertised: 0,
    supported: 0,
    peer: 0,
  };
  if (version >= 2) Object.assign(port, { currSpeed: 0, maxSpeed: 0 });
  if (version >= 5) {
    port.properties = [
      { type: "ethernet", curr: 0, advertised: 0, supported: 0, peer: 0, currSpeed: 0, maxSpeed: 0 },
    ];
  }
  return port;
}

/** Peer wraps a socket: decoded messages queue up for `next`, raw bytes are kept for byte-exact checks. */
export class Peer {
  readonly messages: OfMessage[] = [];
  readonly raw: Buffer[] = [];
  readonly closed: Promise<void>;
  isClosed = false;
  /** Bytes received so far. */
  received = 0;
  /** When false, received bytes are only counted (flood tests): no framing, no decoding, no copies kept. */
  keep = true;
  private readonly framer = new Framer();
  private waiters: (() => void)[] = [];
  private responder: ((m: OfMessage) => void) | undefined;

  constructor(readonly socket: Socket) {
    socket.setNoDelay(true);
    this.closed = new Promise((resolve) => {
      socket.once("close", () => {
        this.isClosed = true;
        this.wake();
        resolve();
      });
    });
    socket.on("error", () => undefined);
    socket.on("data", (chunk: Buffer) => {
      this.received += chunk.length;
      if (!this.keep) {
        this.wake();
        return;
      }
      this.raw.push(chunk);
      for (const f of this.framer.push(chunk)) {
        const m = decodeMessage(f);
        this.messages.push(m);
        this.responder?.(m);
      }
      this.wake();
    });
  }

  /** connect opens a TCP connection to 127.0.0.1:port. */
  static connect(port: number, host = "127.0.0.1"): Promise<Peer> {
    return new Promise((resolve, reject) => {
      const s = connect({ host, port });
      s.once("connect", () => resolve(new Peer(s)));
      s.once("error", reject);
    });
  }

  /** bytes is everything received so far. */
  get bytes(): Buffer {
    return Buffer.concat(this.raw);
  }

  send(m: OfMessage | Buffer): boolean {
    return this.socket.write(Buffer.isBuffer(m) ? m : encodeMessage(m));
  }

  /** next resolves with the first queued message of `type` (removing it), waiting up to `ms`. */
  async next<T extends OfMessage["type"]>(type: T, ms = 3000): Promise<Extract<OfMessage, { type: T }>> {
    const deadline = Date.now() + ms;
    for (;;) {
      const i = this.messages.findIndex((m) => m.type === type);
      if (i >= 0) return this.messages.splice(i, 1)[0] as Extract<OfMessage, { type: T }>;
      if (this.isClosed) throw new Error(`connection closed while waiting for ${type}`);
      const left = deadline - Date.now();
      if (left <= 0)
        throw new Error(`no ${type} within ${ms} ms (got ${this.messages.map((m) => m.type).join(",")})`);
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, left);
        this.waiters.push(() => {
          clearTimeout(t);
          resolve();
        });
      });
    }
  }

  /** waitFor resolves once `pred()` holds (re-checked on every received chunk and on close). */
  async waitFor(pred: () => boolean, ms = 3000, what = "condition"): Promise<void> {
    const deadline = Date.now() + ms;
    while (!pred()) {
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`timed out waiting for ${what}`);
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, Math.min(left, 50));
        this.waiters.push(() => {
          clearTimeout(t);
          resolve();
        });
      });
    }
  }

  /**
   * actAsSwitch sends the switch's HELLO and from now on answers FEATURES_REQUEST, PORT_DESC,
   * ECHO_REQUEST and role requests like Open vSwitch does.
   */
  actAsSwitch(spec: FakeSwitchSpec): void {
    this.send(buildHello(spec.versions, 1));
    this.responder = (m) => {
      const v = m.version;
      switch (m.type) {
        case "features_request":
          this.send({
            type: "features_reply",
            version: v,
            xid: m.xid,
            datapathId: spec.dpid,
            nBuffers: 0,
            nTables: 254,
            capabilities: 0x4f,
            ...(v === 1 ? { actions: 0xfff } : { reserved: 0 }),
            ...(v <= 3 ? { ports: spec.ports.map((p) => makePort(p, v)) } : {}),
            ...(v >= 4 ? { auxiliaryId: spec.auxiliaryId ?? 0 } : {}),
          });
          break;
        case "port_desc_request": {
          const ports = spec.ports.map((p) => makePort(p, v));
          if (spec.splitPortDesc) {
            ports.forEach((p, i) =>
              this.send({
                type: "port_desc_reply",
                version: v,
                xid: m.xid,
                flags: i < ports.length - 1 ? 1 : 0,
                ports: [p],
              }),
            );
          } else {
            this.send({ type: "port_desc_reply", version: v, xid: m.xid, flags: 0, ports });
          }
          break;
        }
        case "echo_request":
          this.send({ type: "echo_reply", version: v, xid: m.xid, data: m.data });
          break;
        case "role_request":
          this.send({
            type: "role_reply",
            version: v,
            xid: m.xid,
            role: m.role === 0 ? 1 : m.role,
            generationId: m.generationId,
          });
          break;
        case "nx_role_request":
          this.send({ type: "nx_role_reply", version: v, xid: m.xid, role: m.role });
          break;
        default:
          break;
      }
    };
  }

  /** stopAnswering makes the fake switch go silent (for echo timeout tests). */
  stopAnswering(): void {
    this.responder = undefined;
  }

  close(): void {
    this.socket.end();
  }

  destroy(): void {
    this.socket.destroy();
  }

  private wake(): void {
    const w = this.waiters;
    this.waiters = [];
    for (const f of w) f();
  }
}

/** FakeUpstream is a listening fake controller; each accepted connection becomes a Peer. */
export class FakeUpstream {
  readonly peers: Peer[] = [];
  private readonly server: Server;
  private waiters: (() => void)[] = [];
  port = 0;

  constructor(private readonly onPeer: (p: Peer) => void = () => undefined) {
    this.server = createServer({ noDelay: true }, (s) => {
      const p = new Peer(s);
      this.peers.push(p);
      this.onPeer(p);
      const w = this.waiters;
      this.waiters = [];
      for (const f of w) f();
    });
  }

  listen(port = 0): Promise<number> {
    return new Promise((resolve, reject) => {
      this.server.once("error", reject);
      this.server.listen({ host: "127.0.0.1", port }, () => {
        const a = this.server.address();
        this.port = typeof a === "object" && a ? a.port : port;
        resolve(this.port);
      });
    });
  }

  /** peer resolves with the n-th accepted connection (0-based). */
  async peer(n = 0, ms = 3000): Promise<Peer> {
    const deadline = Date.now() + ms;
    while (this.peers.length <= n) {
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`upstream: no connection #${n} within ${ms} ms`);
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, left);
        this.waiters.push(() => {
          clearTimeout(t);
          resolve();
        });
      });
    }
    return this.peers[n]!;
  }

  close(): Promise<void> {
    for (const p of this.peers) p.destroy();
    return new Promise((resolve) => this.server.close(() => resolve()));
  }
}

/** freePort asks the OS for a port that was free a moment ago. */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once("error", reject);
    s.listen({ host: "127.0.0.1", port: 0 }, () => {
      const a = s.address();
      const port = typeof a === "object" && a ? a.port : 0;
      s.close(() => resolve(port));
    });
  });
}

/** collect records a controller's events in order. */
export function collect<E>(emitter: { on(ev: "up" | "down" | "port", f: (e: E) => void): unknown }): E[] {
  const out: E[] = [];
  for (const ev of ["up", "down", "port"] as const) emitter.on(ev, (e: E) => out.push(e));
  return out;
}

/** until polls `pred` every 10 ms up to `ms`. */
export async function until(pred: () => boolean, ms = 3000, what = "condition"): Promise<void> {
  const deadline = Date.now() + ms;
  while (!pred()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

/**
 * startQuietRelay starts an rfboot relay in front of 127.0.0.1:`upstreamPort` that sends nothing of its
 * own while a test runs (no idle probes, no injected FEATURES_REQUEST, no handshake timeout: scripted
 * upstreams often never ask for FEATURES), so the streams a test compares hold only its peers' bytes.
 * The caller closes the controller.
 */
export async function startQuietRelay(
  upstreamPort: number,
  over: Partial<ControllerOptions> = {},
): Promise<{ c: Controller; port: number }> {
  const c = createController({
    listen: { host: "127.0.0.1", port: 0 },
    mode: "relay",
    upstream: { host: "127.0.0.1", port: upstreamPort },
    echoIntervalMs: 600_000,
    echoTimeoutMs: 1_200_000,
    injectAfterMs: 600_000,
    handshakeTimeoutMs: 600_000,
    ...over,
  });
  const { port } = await c.start();
  return { c, port };
}
