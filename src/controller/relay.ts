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
 * - Reads land in reused memory (readport.ts): a shared scratch buffer for small reads, copied on; a
 *   connection's own buffer during a flow, whose views are written on at once and which is replaced
 *   while a queued write still holds it. TLS switch sockets read through 'data' events (owned chunks,
 *   written corked for the event-loop turn).
 * - After passing on a request whose reply comes back through the relay (ECHO, BARRIER, STATS, ...),
 *   the process polls for the reply instead of sleeping, within a window and a CPU budget
 *   (replypoll.ts), so the way back costs no wake-up.
 * - Backpressure both ways: when more than RELAY_HIGH_WATER (256 KiB) is queued towards one side,
 *   reading from the other side is paused until 'drain'. Closing either side closes the other
 *   (after flushing what was queued). A frame rfboot cannot decode is still forwarded unchanged:
 *   the two peers own the session; only a broken length (< 8) ends it, once the whole frames before
 *   it have been forwarded (the stream cannot be cut into frames past it).
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
import { isOutOfFiles, outOfFiles } from "../common/nofile.js";
import {
  FrameScanner,
  OFPT10,
  OFPT11,
  OFP_VERSIONS,
  decodeMessage,
  frameEnd,
  type OfMessage,
} from "./codec/index.js";
import type { SessionOptions, Step } from "./session.js";
import { ConnectionBase, monotonicClock, type Clock, type ConnectionHooks } from "./server.js";
import { OWNED, ReadPort, type ReadMemory } from "./readport.js";
import { KIND_REPLY, KIND_REQUEST, messageKind, type ReplyPoll } from "./replypoll.js";

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

/** RelaySettings are what all relay connections of a controller share. */
export interface RelaySettings {
  upstream: UpstreamOptions;
  /** Read the upstream legs through ReadPorts (reused memory, readport.ts); false: 'data' events. */
  reuseReadMemory: boolean;
  /** Polls through the wait for replies to relayed requests (replypoll.ts); absent: never. */
  replyPoll?: ReplyPoll;
}

/**
 * RELAY_HIGH_WATER bounds what the relay queues towards one side before it stops reading from the
 * other (per direction, per connection). Pausing as soon as write() returns false (Node's 16 KiB
 * default) would pause and resume the reading socket on nearly every 64 KiB chunk under load.
 */
export const RELAY_HIGH_WATER = 256 * 1024;

/** typeTable marks the wire types of `names` in a lookup indexed by the header's type byte. */
function typeTable<T extends Readonly<Record<string, number>>>(
  table: T,
  names: readonly (keyof T)[],
): Uint8Array {
  const marks = new Uint8Array(256);
  for (const name of names) marks[table[name]!] = 1;
  return marks;
}

// Switch->upstream message types the relay forwards without decoding: the session needs nothing from
// them and they are the bulk of a busy switch's traffic. The scanner looks them up by type byte alone,
// before a frame's version, which holds because they have the same numbers in 1.0 and 1.1+ (OpenFlow
// 1.0.0 §5.1, 1.5.1 §7.1); the loop checks that.
const HOT_TYPES = ["GET_CONFIG_REPLY", "PACKET_IN", "FLOW_REMOVED", "PACKET_OUT", "FLOW_MOD"] as const;
const SKIP_FROM_SWITCH = new Uint8Array(256);
for (const name of HOT_TYPES) {
  if (OFPT10[name] !== OFPT11[name]) throw new Error(`relay: ${name} differs between OpenFlow 1.0 and 1.1+`);
  SKIP_FROM_SWITCH[OFPT10[name]] = 1;
}

// Upstream->switch types the session reads (per version): HELLO, FEATURES_REQUEST, and the
// STATS/MULTIPART request that carries the PORT_DESC request.
const FROM_UPSTREAM_10 = typeTable(OFPT10, ["HELLO", "FEATURES_REQUEST", "STATS_REQUEST"]);
const FROM_UPSTREAM_11 = typeTable(OFPT11, ["HELLO", "FEATURES_REQUEST", "MULTIPART_REQUEST"]);

const corked = new WeakSet<Socket>();

/**
 * corkForTurn holds a socket's writes until the end of this event-loop turn (setImmediate runs after
 * every read of the current poll phase): the chunks several reads brought go out in one writev, so the
 * peer gets as few, as large, reads as it would from a direct connection, and a lone message (ECHO)
 * waits no longer than the rest of the turn. Only for Node-allocated chunks (`owned`): reused read
 * memory must be written before the next read lands in it.
 */
function corkForTurn(sock: Socket, afterFlush: () => void): void {
  if (corked.has(sock)) return;
  corked.add(sock);
  sock.cork();
  setImmediate(() => {
    corked.delete(sock);
    sock.uncork();
    afterFlush();
  });
}

/** pauseIfBacklogged pauses reading `from` while more than RELAY_HIGH_WATER waits for `to`. */
function pauseIfBacklogged(to: Socket, from: Socket, live: () => boolean): void {
  if (live() && to.writableLength > RELAY_HIGH_WATER && !from.isPaused()) {
    from.pause();
    to.once("drain", () => {
      if (live()) from.resume();
    });
  }
}

/**
 * sendRelayed writes `bufs` (whole frames, in order) to `to`, as their memory allows (readport.ts):
 * - `owned` (a 'data' chunk): corked for this turn; once the turn's writes are flushed, reading `from`
 *   pauses if more than RELAY_HIGH_WATER still waits for `to`, until `to` drains;
 * - `lent` (the reading port's own buffer): written now, views and all, in one writev; if a write is
 *   still queued afterwards the buffer is pinned (the port reads into a new one);
 * - `scratch` (shared read memory): written now as one copy.
 * In the last two cases the backlog check runs at once. `live` says the pair is still relayed
 * (checked before pausing and before resuming).
 */
function sendRelayed(
  to: Socket,
  from: Socket,
  live: () => boolean,
  bufs: readonly Buffer[],
  memory: ReadMemory,
): void {
  if (bufs.length === 0) return;
  if (memory.kind === "owned") {
    corkForTurn(to, () => pauseIfBacklogged(to, from, live));
    for (const b of bufs) to.write(b);
    return;
  }
  if (memory.kind === "scratch") {
    to.write(bufs.length === 1 ? Buffer.from(bufs[0]!) : Buffer.concat(bufs));
  } else {
    if (bufs.length === 1) {
      to.write(bufs[0]!);
    } else {
      to.cork();
      for (const b of bufs) to.write(b);
      to.uncork();
    }
    if (to.writableLength > 0) memory.pin();
  }
  pauseIfBacklogged(to, from, live);
}

/** upstreamTypeOfInterest tells whether the session reads an upstream frame of this version and type. */
function upstreamTypeOfInterest(version: number, type: number): boolean {
  return (version === OFP_VERSIONS["1.0"] ? FROM_UPSTREAM_10 : FROM_UPSTREAM_11)[type] === 1;
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
    private readonly relay: RelaySettings,
    hooks: ConnectionHooks,
    logger: Logger,
    clock: Clock = monotonicClock,
    /** The switch socket's ReadPort when it was adopted with one (adoptAccepted); else 'data' events. */
    private readonly switchPort?: ReadPort,
  ) {
    super(socket, { ...sessionOptions, mode: "relay" }, hooks, logger, clock);
    this.retryDelay = relay.upstream.retryInitialMs;
    this.log.debug("switch connected (relay)");
    if (switchPort) {
      switchPort.sink = (chunk, memory) => this.onSwitchData(chunk, memory);
    } else {
      socket.on("data", (chunk: Buffer) => this.onSwitchData(chunk, OWNED));
    }
    this.openUpstream();
    this.rearm();
  }

  override get bufferedBytes(): number {
    return this.socket.writableLength + (this.upstream?.writableLength ?? 0) + this.heldBytes;
  }

  private openUpstream(): void {
    const target = { host: this.relay.upstream.host, port: this.relay.upstream.port, noDelay: true };
    let up: Socket;
    if (this.relay.reuseReadMemory) {
      const port = new ReadPort((chunk, memory) => this.onUpstreamData(up, chunk, memory));
      up = connect({ ...target, onread: port.onread });
      up.once("close", () => port.close());
    } else {
      up = connect(target);
      up.on("data", (chunk: Buffer) => this.onUpstreamData(up, chunk, OWNED));
    }
    this.upstream = up;
    up.on("connect", () => {
      if (this.upstream !== up || this.isClosed) return;
      this.upstreamOpen = true;
      this.log.debug({ local: `${up.localAddress}:${up.localPort}` }, "upstream connected");
      this.apply(this.session.upstreamConnected(this.clock()));
      this.writeUpstream(this.held, OWNED);
      this.held.length = 0;
      this.heldBytes = 0;
    });
    up.on("error", (err) => {
      if (isOutOfFiles(err)) outOfFiles.report("upstream", err, this.log);
      this.onUpstreamGone(up, `upstream error: ${errorMessage(err)}`);
    });
    up.on("close", () => this.onUpstreamGone(up, "upstream closed the connection"));
  }

  private onUpstreamGone(up: Socket, reason: string): void {
    if (this.upstream !== up || this.isClosed) return;
    this.upstream = undefined;
    this.upstreamOpen = false;
    this.apply(this.session.upstreamFailed(reason, this.clock()));
  }

  private onSwitchData(chunk: Buffer, memory: ReadMemory): void {
    if (this.isClosed) return;
    const now = this.clock();
    this.session.touch(now);
    let runs: Buffer[];
    try {
      runs = this.fromSwitch.scan(chunk, this.upstream === undefined ? undefined : SKIP_FROM_SWITCH);
    } catch (err) {
      this.close(`malformed stream from the switch: ${errorMessage(err)}`);
      return;
    }
    this.relayFromSwitch(runs, memory, now);
    // A bad length after whole frames: those went on like any others; the stream ends here.
    const broken = this.fromSwitch.failure;
    if (broken && !this.isClosed) this.close(`malformed stream from the switch: ${broken.message}`);
  }

  /** relayFromSwitch hands the scanned runs to the session (as far as it needs them) and on upstream. */
  private relayFromSwitch(runs: Buffer[], memory: ReadMemory, now: number): void {
    // Forward the runs as they are, cut only around a frame the session drops; decode only what the
    // session needs (never the hot types while relaying).
    const acting = this.upstream === undefined;
    const out: Buffer[] = this.fromSwitch.interesting === 0 ? runs : [];
    let requests = 0;
    let replies = 0;
    if (out !== runs)
      for (const run of runs) {
        let keepFrom = 0;
        for (let pos = 0; pos < run.length;) {
          const end = frameEnd(run, pos);
          const kind = messageKind(run[pos]!, run[pos + 1]!);
          if (kind === KIND_REQUEST) requests++;
          else if (kind === KIND_REPLY) replies++;
          if (acting || !SKIP_FROM_SWITCH[run[pos + 1]!]) {
            const msg = this.decode(run.subarray(pos, end), "switch", acting);
            if (this.isClosed) return;
            if (msg !== undefined) {
              const step = this.session.fromSwitch(msg, now);
              this.apply(step);
              if (this.isClosed) return;
              if (step.drop) {
                if (pos > keepFrom) out.push(run.subarray(keepFrom, pos));
                keepFrom = end;
              }
            }
          }
          pos = end;
        }
        if (keepFrom < run.length) out.push(keepFrom === 0 ? run : run.subarray(keepFrom));
      }
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
    this.writeUpstream(out, memory);
    this.notePoll(requests, replies);
  }

  /** notePoll tells the reply poll what passed: replies end a wait, requests start one. */
  private notePoll(requests: number, replies: number): void {
    const poll = this.relay.replyPoll;
    if (!poll) return;
    if (replies > 0) poll.sawReplies(replies);
    if (requests > 0) poll.sawRequests(requests);
  }

  private writeUpstream(bufs: readonly Buffer[], memory: ReadMemory): void {
    const up = this.upstream;
    if (!up) return;
    sendRelayed(up, this.socket, () => this.upstream === up && !this.isClosed, bufs, memory);
  }

  private onUpstreamData(up: Socket, chunk: Buffer, memory: ReadMemory): void {
    if (this.upstream !== up || this.isClosed) return;
    let runs: Buffer[];
    try {
      runs = this.fromUpstream.scan(chunk);
    } catch (err) {
      this.close(`malformed stream from the upstream: ${errorMessage(err)}`);
      return;
    }
    const now = this.clock();
    let requests = 0;
    let replies = 0;
    for (const run of runs) {
      for (let pos = 0; pos < run.length;) {
        const end = frameEnd(run, pos);
        const kind = messageKind(run[pos]!, run[pos + 1]!);
        if (kind === KIND_REQUEST) requests++;
        else if (kind === KIND_REPLY) replies++;
        if (upstreamTypeOfInterest(run[pos]!, run[pos + 1]!)) {
          const msg = this.decode(run.subarray(pos, end), "upstream", false);
          if (msg !== undefined) {
            this.apply(this.session.fromUpstream(msg, now));
            if (this.isClosed) return;
          }
        }
        pos = end;
      }
    }
    sendRelayed(this.socket, up, () => this.upstream === up && !this.isClosed, runs, memory);
    this.notePoll(requests, replies);
    const broken = this.fromUpstream.failure;
    if (broken) this.close(`malformed stream from the upstream: ${broken.message}`);
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
      up.removeAllListeners("data"); // (a ReadPort's reads are dropped by onUpstreamData's check)
      up.on("error", () => undefined);
      up.destroy();
    }
    if (this.socket.isPaused()) this.socket.resume();
    this.log.info(
      { reason, upstream: `${this.relay.upstream.host}:${this.relay.upstream.port}` },
      "standalone",
    );
    this.scheduleProbe();
  }

  private scheduleProbe(): void {
    if (this.isClosed) return;
    const delay = this.retryDelay;
    this.retryDelay = Math.min(this.retryDelay * 2, this.relay.upstream.retryMaxMs);
    this.retryTimer = setTimeout(() => this.probeUpstream(), delay);
    this.retryTimer.unref();
  }

  /** probeUpstream opens and closes a TCP connection; when it is accepted, hand the switch over. */
  private probeUpstream(): void {
    this.retryTimer = undefined;
    if (this.isClosed) return;
    const p = connect({ host: this.relay.upstream.host, port: this.relay.upstream.port });
    this.probe = p;
    p.on("connect", () => {
      p.destroy();
      this.probe = undefined;
      if (this.isClosed) return;
      if (!this.session.isUp) {
        // Finish reporting this datapath first; try again shortly.
        this.retryDelay = this.relay.upstream.retryInitialMs;
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
    this.switchPort?.close();
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
