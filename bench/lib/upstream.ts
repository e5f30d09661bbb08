/**
 * bench/lib/upstream.ts: the scripted upstream controller of bench/controller.ts (what rfproxy is in
 * RouteFlow). It can run in the bench's own process or in a process of its own
 * (bench/lib/upstream-child.ts), as rfproxy does in a real deployment.
 */
import { createServer, type Server, type Socket } from "node:net";
import { buildHello, encodeMessage } from "../../src/controller/index.js";

// OpenFlow message type numbers (the same in 1.0 and 1.3): ECHO_REQUEST 2, ECHO_REPLY 3, PACKET_IN 10.
const ECHO_REQUEST = 2;
const ECHO_REPLY = 3;
const PACKET_IN = 10;

/**
 * Upstream is the scripted real controller: on each connection it sends HELLO, FEATURES_REQUEST and
 * PORT_DESC_REQUEST (OpenFlow 1.3), answers ECHO_REQUEST with an ECHO_REPLY of the same xid and payload,
 * and counts PACKET_IN bytes. It reads headers only (no decoding), so that it costs as little as
 * possible next to the path being measured.
 */
export class Upstream {
  private readonly server: Server;
  /** port is the TCP port it listens on, known after `listen`. */
  port = 0;
  /** floodBytes counts PACKET_IN bytes since the last `expectFlood`. */
  floodBytes = 0;
  private floodWaiter: (() => void) | undefined;
  private floodTarget = Infinity;

  constructor() {
    this.server = createServer({ noDelay: true }, (sock) => this.serve(sock));
  }

  /** listen binds to `host`:`port` (port 0: any free port) and records the port. */
  async listen(host = "127.0.0.1", port = 0): Promise<void> {
    await new Promise<void>((r) => this.server.listen({ host, port }, r));
    const a = this.server.address();
    this.port = typeof a === "object" && a ? a.port : 0;
  }

  /** expectFlood resolves when `bytes` more PACKET_IN bytes have arrived. */
  expectFlood(bytes: number): Promise<void> {
    this.floodBytes = 0;
    this.floodTarget = bytes;
    return new Promise((r) => (this.floodWaiter = r));
  }

  private serve(sock: Socket): void {
    sock.write(encodeMessage(buildHello([4], 1)));
    sock.write(encodeMessage({ type: "features_request", version: 4, xid: 2 }));
    sock.write(encodeMessage({ type: "port_desc_request", version: 4, xid: 3, flags: 0 }));
    let carry: Buffer | undefined;
    sock.on("data", (chunk: Buffer) => {
      const data = carry ? Buffer.concat([carry, chunk]) : chunk;
      carry = undefined;
      let pos = 0;
      const replies: Buffer[] = [];
      while (data.length - pos >= 8) {
        const len = data.readUInt16BE(pos + 2);
        if (data.length - pos < len) break;
        const type = data[pos + 1];
        if (type === PACKET_IN) {
          this.floodBytes += len;
        } else if (type === ECHO_REQUEST) {
          const r = Buffer.from(data.subarray(pos, pos + len));
          r[1] = ECHO_REPLY;
          replies.push(r);
        }
        pos += len;
      }
      if (pos < data.length) carry = Buffer.from(data.subarray(pos));
      if (replies.length) sock.write(replies.length === 1 ? replies[0]! : Buffer.concat(replies));
      if (this.floodBytes >= this.floodTarget && this.floodWaiter) {
        const w = this.floodWaiter;
        this.floodWaiter = undefined;
        this.floodTarget = Infinity;
        w();
      }
    });
    sock.on("error", () => undefined);
  }

  /** close stops listening and resolves once every connection has ended. */
  close(): Promise<void> {
    return new Promise((r) => this.server.close(() => r()));
  }
}
