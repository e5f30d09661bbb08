/**
 * A scripted upstream controller (rfproxy's place in relay mode) that records what it sees: per TCP session,
 * every message decoded from the byte stream, whether the stream decoded cleanly, the first message, and the
 * datapath id of the FEATURES_REPLY. It speaks just enough OpenFlow 1.3 to drive a switch: HELLO,
 * FEATURES_REQUEST, PORT_DESC request, ECHO replies. `stop()` and `start()` model an rfproxy restart.
 */
import { createServer, type Server, type Socket } from "node:net";
import {
  Framer,
  buildEchoReply,
  buildFeaturesRequest,
  buildHello,
  buildPortDescRequest,
  decodeMessage,
  encodeMessage,
  type OfMessage,
} from "../../../src/controller/codec/index.js";

/** UpstreamSession is what the upstream saw on one connection. */
export interface UpstreamSession {
  generation: number;
  openedAt: number;
  closedAt?: number;
  messages: { type: string; xid: number }[];
  decodeError?: string;
  /** leftover bytes of an incomplete frame when the connection closed. */
  leftover: number;
  dpid?: bigint;
}

/** RecordingUpstream is the scripted controller. */
export class RecordingUpstream {
  readonly sessions: UpstreamSession[] = [];
  private server: Server | undefined;
  private readonly sockets = new Set<Socket>();
  generation = 0;

  constructor(readonly port: number) {}

  /** start listens on 127.0.0.1:port. */
  async start(): Promise<void> {
    this.generation++;
    const gen = this.generation;
    const server = createServer((s) => this.accept(s, gen));
    this.server = server;
    await new Promise<void>((resolve, reject) => {
      server.once("error", reject);
      server.listen(this.port, "127.0.0.1", () => resolve());
    });
  }

  private accept(s: Socket, generation: number): void {
    this.sockets.add(s);
    s.setNoDelay(true);
    const rec: UpstreamSession = { generation, openedAt: performance.now(), messages: [], leftover: 0 };
    this.sessions.push(rec);
    const framer = new Framer();
    const send = (m: OfMessage) => {
      if (!s.destroyed) s.write(encodeMessage(m));
    };
    send(buildHello([1, 4], 1));
    s.on("data", (chunk: Buffer) => {
      if (rec.decodeError) return;
      try {
        for (const f of framer.push(chunk)) {
          const m = decodeMessage(f);
          rec.messages.push({ type: m.type, xid: m.xid });
          if (m.type === "hello") {
            const v = Math.min(4, m.version);
            send(buildFeaturesRequest(v, 2));
            if (v >= 4) send(buildPortDescRequest(v, 3));
          } else if (m.type === "features_reply") {
            rec.dpid = m.datapathId;
          } else if (m.type === "echo_request") {
            send(buildEchoReply(m));
          }
        }
      } catch (e) {
        rec.decodeError = (e as Error).message;
      }
    });
    s.on("error", () => undefined);
    s.on("close", () => {
      rec.closedAt = performance.now();
      rec.leftover = framer.pending;
      this.sockets.delete(s);
    });
  }

  /** stop closes the listener and every session (an rfproxy crash or restart). */
  async stop(): Promise<void> {
    const srv = this.server;
    this.server = undefined;
    for (const s of this.sockets) s.destroy();
    if (srv) await new Promise<void>((r) => srv.close(() => r()));
  }
}
