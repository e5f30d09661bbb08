/**
 * Relay mode: rfboot sits between each switch and the real controller ("upstream", rfproxy on
 * 127.0.0.1:6633 by default), forwards the bytes both ways unchanged, and parses a copy to learn the
 * datapath.
 *
 * Design (also in the README):
 * - Per switch connection, one upstream TCP connection. Bytes are forwarded frame-aligned (only whole
 *   OpenFlow messages are written, in the order received, byte for byte), so rfboot can add a message
 *   of its own between two messages without ever splitting one. Hot message types (PACKET_IN,
 *   FLOW_MOD, PACKET_OUT, FLOW_REMOVED, ...) are forwarded without being decoded.
 * - Backpressure both ways: when more than RELAY_HIGH_WATER (256 KiB) is queued towards one side,
 *   reading from the other side is paused until 'drain'. Closing either side closes the other
 *   (after flushing what was queued). A frame rfboot cannot decode is still forwarded unchanged:
 *   the two peers own the session; only a broken length (< 8) ends it.
 * - Detection does not depend on the upstream:
 *   1. Upstream down or slow to accept: switch bytes are held while the upstream connection opens.
 *      If it is refused, fails, or is not open within 300 ms, rfboot drops the attempt and serves
 *      the switch itself ("standalone": HELLO, FEATURES_REQUEST, PORT_DESC, ECHO; never a write), so
 *      `up` is reported at once. It then retries the upstream with backoff (0.5 s doubling to 8 s).
 *      Once the upstream accepts a TCP connection (that probe connection is closed at once), rfboot
 *      closes the switch connection: the switch reconnects (OVS: within 1-8 s) into a clean relayed
 *      session, which the upstream sees from its very first HELLO. The registry holds back the
 *      `down` of such a handover for a grace period, so consumers see no flap.
 *      Why not splice the standalone session onto the upstream? The switch has already negotiated a
 *      version and answered requests with rfboot; the upstream would start mid-session with its own
 *      HELLO, which may negotiate differently. A reconnect is what the upstream would see directly.
 *   2. Upstream connected but silent (no HELLO within 1 s): nothing of it has reached the switch, so
 *      rfboot detaches it and goes standalone as above.
 *   3. Upstream connected and talking but slow to ask: if it has not sent FEATURES_REQUEST within
 *      1 s after both HELLOs passed (or PORT_DESC on 1.3+ within 1 s after FEATURES_REPLY), rfboot
 *      sends its own read-only request with an xid from a reserved range (0xf0f00000..) and removes
 *      exactly the reply to that xid (or an ERROR for it) from the switch->upstream stream. The
 *      upstream never sees either. An idle switch is probed the same way (ECHO_REQUEST, reply removed).
 *      A collision would need the upstream to have its own request of the same kind outstanding with
 *      the same xid at that moment.
 * - Trade-off of standalone: while rfboot holds the switch's controller connection, Open vSwitch
 *   in fail_mode=standalone does not fall back to normal L2 switching (it sees a controller). With
 *   the real controller down the datapath has no controller logic either way.
 */
import { connect, type Socket } from "node:net";
import type { Logger } from "../common/log.js";
import { OpenFlowError, errorMessage } from "../common/errors.js";
import { OFP_HEADER_LEN, decodeMessage, type OfMessage } from "./codec/index.js";
import type { SessionOptions, Step } from "./session.js";
import { ConnectionBase, monotonicClock, type Clock, type ConnectionHooks } from "./server.js";

/** UpstreamOptions says where the real controller listens and how to retry it. */
export interface UpstreamOptions {
  host: string;
  port: number;
  /** First retry delay while standalone (ms). */
  retryInitialMs: number;
  /** Largest retry delay (ms). */
  retryMaxMs: number;
}

/** DEFAULT_UPSTREAM is rfproxy's address in RouteFlow's rftest setups. */
export const DEFAULT_UPSTREAM: UpstreamOptions = Object.freeze({
  host: "127.0.0.1",
  port: 6633,
  retryInitialMs: 500,
  retryMaxMs: 8_000,
});

/** Scanned is what FrameScanner.scan returns: `bytes` holds whole frames; `starts[i]` is frame i's offset in it. */
export interface Scanned {
  bytes: Buffer;
  starts: number[];
}

/**
 * FrameScanner cuts a byte stream into whole OpenFlow frames without copying them: `scan` returns
 * the bytes of the frames a chunk completes (a view of the chunk, or of the joined remainder) and
 * their start offsets, keeping any incomplete tail. Offsets rather than per-frame views keep the
 * relay's hot path free of an allocation per message. A length below the 8-byte header throws
 * OpenFlowError "bad-length".
 */
export class FrameScanner {
  private carry: Buffer | undefined;
  private offset = 0;

  scan(chunk: Buffer): Scanned {
    const data = this.carry ? Buffer.concat([this.carry, chunk]) : chunk;
    this.carry = undefined;
    const starts: number[] = [];
    const n = data.length;
    let pos = 0;
    while (n - pos >= 4) {
      const len = (data[pos + 2]! << 8) | data[pos + 3]!;
      if (len < OFP_HEADER_LEN) {
        throw new OpenFlowError(
          `OpenFlow header length ${len} at stream byte ${this.offset + pos + 2} is below the 8-byte header: ` +
            "the peer is not speaking OpenFlow or the stream is corrupt; closing the connection",
          "bad-length",
          this.offset + pos + 2,
        );
      }
      if (n - pos < len) break;
      starts.push(pos);
      pos += len;
    }
    if (pos < n) this.carry = Buffer.from(data.subarray(pos));
    this.offset += pos;
    return { bytes: pos === n ? data : data.subarray(0, pos), starts };
  }
}

/** frameAt returns frame i of a scan as a view. */
export function frameAt(s: Scanned, i: number): Buffer {
  const start = s.starts[i]!;
  const end = i + 1 < s.starts.length ? s.starts[i + 1]! : s.bytes.length;
  return s.bytes.subarray(start, end);
}

/**
 * RELAY_HIGH_WATER bounds what the relay queues towards one side before it stops reading from the
 * other (per direction, per connection). Pausing as soon as write() returns false (Node's 16 KiB
 * default) would pause and resume the reading socket on nearly every 64 KiB chunk under load.
 */
export const RELAY_HIGH_WATER = 256 * 1024;

// Switch->upstream message types the relay forwards without decoding (the same numbers in 1.0 and
// 1.1+): PACKET_IN 10, FLOW_REMOVED 11, PACKET_OUT 13, FLOW_MOD 14, and GET_CONFIG_REPLY 8.
const SKIP_FROM_SWITCH = new Uint8Array(256);
for (const t of [8, 10, 11, 13, 14]) SKIP_FROM_SWITCH[t] = 1;

/** upstreamTypeOfInterest: HELLO, FEATURES_REQUEST and stats/multipart requests (16 in 1.0, 18 in 1.1+). */
function upstreamTypeOfInterest(version: number, type: number): boolean {
  return type === 0 || type === 5 || type === (version === 1 ? 16 : 18);
}

/** RelayConnection is one switch connection in relay mode (see the module comment). */
export class RelayConnection extends ConnectionBase {
  private upstream: Socket | undefined;
  private upstreamOpen = false;
  private readonly held: Buffer[] = [];
  private heldBytes = 0;
  private readonly fromSwitch = new FrameScanner();
  private readonly fromUpstream = new FrameScanner();
  private retryTimer: NodeJS.Timeout | undefined;
  private retryDelay: number;
  private probe: Socket | undefined;

  constructor(
    socket: Socket,
    sessionOptions: Omit<SessionOptions, "peer" | "mode">,
    private readonly upstreamOptions: UpstreamOptions,
    hooks: ConnectionHooks,
    logger: Logger,
    clock: Clock = monotonicClock,
  ) {
    super(socket, { ...sessionOptions, mode: "relay" }, hooks, logger, clock);
    this.retryDelay = upstreamOptions.retryInitialMs;
    this.log.debug("switch connected (relay)");
    socket.on("data", (chunk: Buffer) => this.onSwitchData(chunk));
    this.openUpstream();
    this.rearm();
  }

  override get bufferedBytes(): number {
    return this.socket.writableLength + (this.upstream?.writableLength ?? 0) + this.heldBytes;
  }

  private openUpstream(): void {
    const up = connect({ host: this.upstreamOptions.host, port: this.upstreamOptions.port, noDelay: true });
    this.upstream = up;
    up.on("connect", () => {
      if (this.upstream !== up || this.isClosed) return;
      this.upstreamOpen = true;
      this.log.debug({ local: `${up.localAddress}:${up.localPort}` }, "upstream connected");
      this.apply(this.session.upstreamConnected(this.clock()));
      for (const b of this.held) this.writeUpstream(b);
      this.held.length = 0;
      this.heldBytes = 0;
    });
    up.on("data", (chunk: Buffer) => this.onUpstreamData(up, chunk));
    up.on("error", (err) => this.onUpstreamGone(up, `upstream error: ${errorMessage(err)}`));
    up.on("close", () => this.onUpstreamGone(up, "upstream closed the connection"));
  }

  private onUpstreamGone(up: Socket, reason: string): void {
    if (this.upstream !== up || this.isClosed) return;
    this.upstream = undefined;
    this.upstreamOpen = false;
    this.apply(this.session.upstreamFailed(reason, this.clock()));
  }

  private onSwitchData(chunk: Buffer): void {
    if (this.isClosed) return;
    const now = this.clock();
    this.session.touch(now);
    let scanned: Scanned;
    try {
      scanned = this.fromSwitch.scan(chunk);
    } catch (err) {
      this.close(`malformed stream from the switch: ${errorMessage(err)}`);
      return;
    }
    // Forward runs of frames the session does not drop; only decode what the session needs.
    const { bytes, starts } = scanned;
    const acting = this.upstream === undefined;
    let runStart = 0;
    let runEnd = 0;
    const out: Buffer[] = [];
    for (let i = 0; i < starts.length; i++) {
      const start = starts[i]!;
      const end = i + 1 < starts.length ? starts[i + 1]! : bytes.length;
      let drop = false;
      if (acting || !SKIP_FROM_SWITCH[bytes[start + 1]!]) {
        const msg = this.decode(bytes.subarray(start, end), "switch", acting);
        if (this.isClosed) return;
        if (msg !== undefined) {
          const step = this.session.fromSwitch(msg, now);
          drop = step.drop;
          this.apply(step);
          if (this.isClosed) return;
        }
      }
      if (drop) {
        if (runEnd > runStart) out.push(bytes.subarray(runStart, runEnd));
        runStart = end;
      }
      runEnd = end;
    }
    if (runEnd > runStart)
      out.push(runStart === 0 && runEnd === bytes.length ? bytes : bytes.subarray(runStart, runEnd));
    if (this.upstream === undefined) return; // standalone: the session consumed everything
    if (!this.upstreamOpen) {
      for (const b of out) {
        this.held.push(Buffer.from(b));
        this.heldBytes += b.length;
      }
      if (this.heldBytes > 1 << 20) {
        this.close("more than 1 MiB from the switch while the upstream connection opens");
      }
      return;
    }
    for (const b of out) this.writeUpstream(b);
  }

  private writeUpstream(bytes: Buffer): void {
    const up = this.upstream;
    if (!up) return;
    up.write(bytes);
    if (up.writableLength > RELAY_HIGH_WATER && !this.socket.isPaused()) {
      this.socket.pause();
      up.once("drain", () => {
        if (!this.isClosed) this.socket.resume();
      });
    }
  }

  private onUpstreamData(up: Socket, chunk: Buffer): void {
    if (this.upstream !== up || this.isClosed) return;
    let scanned: Scanned;
    try {
      scanned = this.fromUpstream.scan(chunk);
    } catch (err) {
      this.close(`malformed stream from the upstream: ${errorMessage(err)}`);
      return;
    }
    const now = this.clock();
    const { bytes, starts } = scanned;
    for (let i = 0; i < starts.length; i++) {
      const start = starts[i]!;
      if (!upstreamTypeOfInterest(bytes[start]!, bytes[start + 1]!)) continue;
      const msg = this.decode(frameAt(scanned, i), "upstream", false);
      if (msg === undefined) continue;
      this.apply(this.session.fromUpstream(msg, now));
      if (this.isClosed) return;
    }
    if (scanned.bytes.length === 0) return;
    this.socket.write(scanned.bytes);
    if (this.socket.writableLength > RELAY_HIGH_WATER && !up.isPaused()) {
      up.pause();
      this.socket.once("drain", () => {
        if (this.upstream === up) up.resume();
      });
    }
  }

  /**
   * decode parses the copy of a frame. When rfboot is the switch's peer (standalone) a frame it cannot
   * decode ends the connection, as in listen mode. While relaying, the two peers own the session: a
   * frame rfboot cannot read is still forwarded unchanged (the relay never breaks a session it only
   * watches); it is logged and skipped by the observer.
   */
  private decode(frame: Buffer, from: "switch" | "upstream", acting: boolean): OfMessage | undefined {
    try {
      return decodeMessage(frame);
    } catch (err) {
      if (!(err instanceof OpenFlowError)) throw err;
      if (acting) {
        this.apply(this.session.malformed(err, frame, this.clock()));
      } else {
        this.log.debug(
          { from, type: frame[1], error: err.message },
          "relayed a message rfboot cannot decode",
        );
      }
      return undefined;
    }
  }

  protected override apply(step: Step): void {
    if (step.detachUpstream !== undefined) this.detachUpstream(step.detachUpstream);
    super.apply(step);
  }

  /** detachUpstream drops the upstream (attempt) and starts probing it until it accepts again. */
  private detachUpstream(reason: string): void {
    const up = this.upstream;
    this.upstream = undefined;
    this.upstreamOpen = false;
    this.held.length = 0;
    this.heldBytes = 0;
    if (up) {
      up.removeAllListeners("data");
      up.on("error", () => undefined);
      up.destroy();
    }
    if (this.socket.isPaused()) this.socket.resume();
    this.log.info(
      { reason, upstream: `${this.upstreamOptions.host}:${this.upstreamOptions.port}` },
      "standalone",
    );
    this.scheduleProbe();
  }

  private scheduleProbe(): void {
    if (this.isClosed) return;
    const delay = this.retryDelay;
    this.retryDelay = Math.min(this.retryDelay * 2, this.upstreamOptions.retryMaxMs);
    this.retryTimer = setTimeout(() => this.probeUpstream(), delay);
    this.retryTimer.unref();
  }

  /** probeUpstream opens and closes a TCP connection; when it is accepted, hand the switch over. */
  private probeUpstream(): void {
    this.retryTimer = undefined;
    if (this.isClosed) return;
    const p = connect({ host: this.upstreamOptions.host, port: this.upstreamOptions.port });
    this.probe = p;
    p.on("connect", () => {
      p.destroy();
      this.probe = undefined;
      if (this.isClosed) return;
      if (!this.session.isUp) {
        // Finish reporting this datapath first; try again shortly.
        this.retryDelay = this.upstreamOptions.retryInitialMs;
        this.scheduleProbe();
        return;
      }
      this.close(
        "handover: the upstream controller accepts again; the switch reconnects through the relay",
        true,
      );
    });
    p.on("error", () => {
      this.probe = undefined;
      this.scheduleProbe();
    });
  }

  protected override teardown(reason: string): void {
    if (this.retryTimer) clearTimeout(this.retryTimer);
    this.probe?.destroy();
    const up = this.upstream;
    this.upstream = undefined;
    if (up) {
      up.end();
      setTimeout(() => up.destroy(), 1_000).unref();
    }
    super.teardown(reason);
  }
}
