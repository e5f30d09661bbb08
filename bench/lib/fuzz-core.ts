/**
 * The OpenFlow fuzz engine shared by bench/fuzz.ts (the long campaign) and test/security (a short CI run).
 *
 * Coverage-guided in the cheap way a JS process allows: every input is run through the codec and into a
 * live Session, and the pair (what the input did to the codec, what it did to the session) is reduced to a
 * "bucket" string: session mode and state before, decoded tag or error code and normalised error text,
 * state after, message types sent back, close or not, events. An input that reaches a bucket never seen
 * before joins the corpus and is mutated further, so the campaign climbs into deep session states
 * (features, up, aux, relay phases) instead of bouncing off the header checks.
 *
 * Inputs are (a) mutations of corpus entries (seeded from Ryu's vectors and from valid messages of every
 * family and version), (b) messages built for the session's current context (replies carrying the xid of
 * a request the session has pending), lightly mutated, (c) random frames. Sessions live in a pool of slots
 * in every mode and state; time advances randomly and timers are ticked.
 *
 * Invariants checked on every input (a violation is a finding):
 * - decodeMessage returns a message or throws OpenFlowError, nothing else; a decoded message re-encodes
 *   to the same bytes;
 * - the Framer cuts 1..3 concatenated frames split at random offsets into exactly those frames;
 * - a Session never throws; everything it sends encodes and is read-only; `up` comes at most once per
 *   connection and `down` only after `up`; nothing is sent after close; a controller-mode session not up by
 *   its handshake deadline is closed at the first tick after it; an up session reports at most
 *   MAX_SWITCH_PORTS ports; deadline() is undefined or a finite number.
 */
import { readFileSync, readdirSync } from "node:fs";
import { join } from "node:path";
import { OpenFlowError } from "../../src/common/errors.js";
import {
  Framer,
  buildHello,
  decodeMessage,
  encodeMessage,
  type OfMessage,
  type Port,
} from "../../src/controller/index.js";
import { MAX_SWITCH_PORTS, Session, type SessionOptions, type Step } from "../../src/controller/session.js";

/** FuzzOptions configures one campaign. */
export interface FuzzOptions {
  /** Number of frames (inputs) to run. */
  frames: number;
  seed: number;
  /** Directory holding ryu/packet_data/ofNN/*.packet (Ryu's vectors); absent: built seeds only. */
  vectorsDir?: string;
  /** Called about every `progressEvery` frames. */
  onProgress?: (p: { frames: number; seconds: number; buckets: number; findings: number }) => void;
  progressEvery?: number;
  /** Corpus cap (oldest random entries are replaced beyond it). */
  maxCorpus?: number;
}

/** Finding is one invariant violation, deduplicated by kind and normalised message. */
export interface Finding {
  kind: string;
  message: string;
  /** Hex of the first input that triggered it (at most 512 bytes). */
  inputHex: string;
  /** Session mode/state when it happened, if a session was involved. */
  state?: string;
  count: number;
}

/** FuzzResult is what a campaign reports (bench/out/fuzz.json). */
export interface FuzzResult {
  seed: number;
  frames: number;
  seconds: number;
  framesPerSecond: number;
  findings: Finding[];
  buckets: number;
  corpusSize: number;
  seeds: number;
  decoded: number;
  decodeErrors: number;
  framerChecks: number;
  sessionsCreated: number;
  sessionsClosed: number;
  ticks: number;
  /** Inputs fed per session state (before the input). */
  statesVisited: Record<string, number>;
  /** Decoded message tags and decode error codes seen. */
  inputKinds: Record<string, number>;
  /** Messages the sessions sent back, by type (error:<type>/<code> for errors). */
  sent: Record<string, number>;
  /** Close reasons, normalised (digits -> #). */
  closeReasons: Record<string, number>;
  events: Record<string, number>;
}

/** mulberry32: a small seeded PRNG, so a campaign can be replayed from its seed. */
export function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** loadVectors reads every Ryu packet_data vector (one message per file) under `dir`. */
export function loadVectors(dir: string): Buffer[] {
  const base = join(dir, "ryu", "packet_data");
  const out: Buffer[] = [];
  let dirs: string[];
  try {
    dirs = readdirSync(base);
  } catch {
    return out;
  }
  for (const d of dirs.sort()) {
    if (!/^of1[0-5]$/.test(d)) continue;
    for (const f of readdirSync(join(base, d)).sort()) out.push(readFileSync(join(base, d, f)));
  }
  return out;
}

const TIME_STEPS = [0, 0, 1, 10, 100, 999, 1000, 4999, 5000, 5001, 10_000, 15_000, 60_000];
const INTERESTING16 = [0, 1, 4, 7, 8, 9, 16, 64, 0x7fff, 0x8000, 0xfffe, 0xffff];
const INTERESTING8 = [0, 1, 2, 3, 4, 5, 6, 7, 0x7f, 0x80, 0xfe, 0xff];

/** Gen builds valid messages with a seeded random source. */
class Gen {
  constructor(readonly r: () => number) {}
  int(n: number): number {
    return Math.floor(this.r() * n);
  }
  pick<T>(xs: readonly T[]): T {
    return xs[this.int(xs.length)]!;
  }
  bytes(n: number): Uint8Array {
    const b = new Uint8Array(n);
    for (let i = 0; i < n; i++) b[i] = this.int(256);
    return b;
  }
  versions(): number[] {
    const k = this.int(5);
    if (k === 0) return [1, 4];
    if (k === 1) return [1, 2, 3, 4, 5, 6];
    if (k === 2) return [this.pick([1, 2, 3, 4, 5, 6])];
    const out = [1, 2, 3, 4, 5, 6].filter(() => this.r() < 0.5);
    return out.length > 0 ? out : [4];
  }
  mac(): string {
    return Array.from({ length: 6 }, () => this.int(256).toString(16).padStart(2, "0")).join(":");
  }
  port(version: number): Port {
    const p: Port = {
      portNo: this.r() < 0.8 ? 1 + this.int(64) : this.int(version === 1 ? 0x10000 : 0x100000000),
      hwAddr: this.mac(),
      name: this.r() < 0.9 ? `eth${this.int(100)}` : "",
      config: this.int(4),
      state: this.int(4),
      curr: 0,
      advertised: 0,
      supported: 0,
      peer: 0,
    };
    if (version >= 2) Object.assign(p, { currSpeed: this.int(1000), maxSpeed: this.int(1000) });
    if (version >= 5) {
      p.properties = [
        { type: "ethernet", curr: 0, advertised: 0, supported: 0, peer: 0, currSpeed: 0, maxSpeed: 0 },
      ];
    }
    return p;
  }
  ports(version: number, max: number): Port[] {
    return Array.from({ length: this.int(max + 1) }, () => this.port(version));
  }
  dpid(): bigint {
    return this.r() < 0.5 ? BigInt(1 + this.int(16)) : BigInt.asUintN(64, BigInt(this.int(2 ** 32)) << 32n);
  }
  /** message builds a valid message of a random family for `version`, replying to `xid` where it fits. */
  message(version: number, xid: number): OfMessage {
    const v = version;
    switch (this.int(12)) {
      case 0:
        return { ...buildHello(this.versions(), xid) };
      case 1: {
        const m: OfMessage = {
          type: "features_reply",
          version: v,
          xid,
          datapathId: this.dpid(),
          nBuffers: 256,
          nTables: 254,
          capabilities: 0xc7,
        };
        if (v >= 4) m.auxiliaryId = this.r() < 0.15 ? 1 + this.int(255) : 0;
        if (v === 1) m.actions = 0xfff;
        else m.reserved = 0;
        if (v < 4) m.ports = this.ports(v, this.r() < 0.005 ? 900 : 8);
        return m;
      }
      case 2:
        return {
          type: "port_desc_reply",
          version: v,
          xid,
          flags: this.r() < 0.4 ? 1 : 0,
          ports: this.ports(v, this.r() < 0.01 ? 900 : 8),
        };
      case 3:
        return { type: "port_status", version: v, xid, reason: this.int(4), port: this.port(v) };
      case 4:
        return { type: "echo_request", version: v, xid, data: this.bytes(this.int(16)) };
      case 5:
        return { type: "echo_reply", version: v, xid, data: this.bytes(this.int(4)) };
      case 6:
        return {
          type: "error",
          version: v,
          xid,
          errType: this.pick([0, 1, 2, 5, 11, 0xffff]),
          code: this.int(16),
          ...(v >= 3 ? { experimenter: 0x2320 } : {}),
          data: this.bytes(this.int(80)),
        };
      case 7:
        return v >= 3
          ? { type: "role_reply", version: v, xid, role: this.int(4), generationId: BigInt(this.int(1000)) }
          : { type: "nx_role_reply", version: 1, xid, role: this.int(3) };
      case 8:
        return v >= 5
          ? {
              type: "role_status",
              version: v,
              xid,
              role: this.int(4),
              reason: this.int(3),
              generationId: 7n,
              properties: [],
            }
          : { type: "barrier_reply", version: v, xid };
      case 9:
        return { type: "barrier_reply", version: v, xid };
      case 10:
        // PACKET_IN-like traffic a listen-mode controller receives all the time.
        return {
          type: "unknown",
          version: v,
          xid,
          msgType: v === 1 ? 10 : 10,
          body: this.bytes(this.int(64)),
        };
      default:
        return { type: "features_request", version: v, xid };
    }
  }
}

/** SlotInfo is one session in the pool with what the fuzzer tracks about it. */
interface Slot {
  s: Session;
  mode: "controller" | "relay";
  now: number;
  born: number;
  handshakeMs: number;
  upSeen: boolean;
  closed: boolean;
  /** xids of requests the session sent, with their type, newest last. */
  sent: { type: string; xid: number; version: number }[];
  offered: number[];
}

function sessionOptions(g: Gen, mode: "controller" | "relay", versions: number[]): SessionOptions {
  return {
    mode,
    versions,
    role: g.pick(["slave", "equal", "none"] as const),
    echoIntervalMs: g.pick([1000, 5000]),
    echoTimeoutMs: g.pick([1000, 5000, 15000]),
    handshakeTimeoutMs: g.pick([1000, 10_000]),
    upstreamConnectTimeoutMs: 300,
    upstreamHelloTimeoutMs: 1000,
    injectAfterMs: 1000,
    peer: "127.0.0.1:40000",
  };
}

function norm(s: string): string {
  return s
    .replace(/0x[0-9a-f]+/gi, "#")
    .replace(/\d+/g, "#")
    .slice(0, 90);
}

function bump(m: Record<string, number>, k: string, n = 1): void {
  m[k] = (m[k] ?? 0) + n;
}

function hex(b: Uint8Array): string {
  return Buffer.from(b.subarray(0, 512)).toString("hex");
}

/** runFuzz runs one campaign and returns its figures and findings (it never throws for a finding). */
export function runFuzz(options: FuzzOptions): FuzzResult {
  const rand = prng(options.seed);
  const g = new Gen(rand);
  const maxCorpus = options.maxCorpus ?? 20_000;
  const progressEvery = options.progressEvery ?? 1_000_000;
  const findings = new Map<string, Finding>();
  const buckets = new Set<string>();
  const res: FuzzResult = {
    seed: options.seed,
    frames: 0,
    seconds: 0,
    framesPerSecond: 0,
    findings: [],
    buckets: 0,
    corpusSize: 0,
    seeds: 0,
    decoded: 0,
    decodeErrors: 0,
    framerChecks: 0,
    sessionsCreated: 0,
    sessionsClosed: 0,
    ticks: 0,
    statesVisited: {},
    inputKinds: {},
    sent: {},
    closeReasons: {},
    events: {},
  };

  const find = (kind: string, message: string, input: Uint8Array, state?: string): void => {
    const key = `${kind}|${norm(message)}`;
    const f = findings.get(key);
    if (f) f.count++;
    else findings.set(key, { kind, message, inputHex: hex(input), ...(state ? { state } : {}), count: 1 });
  };

  // ---- seed corpus: Ryu's vectors plus valid messages of every family and version.
  const corpus: Uint8Array[] = [];
  if (options.vectorsDir) {
    for (const v of loadVectors(options.vectorsDir)) if (v.length >= 8) corpus.push(Uint8Array.from(v));
  }
  for (let v = 1; v <= 6; v++) {
    for (let i = 0; i < 40; i++) {
      try {
        corpus.push(Uint8Array.from(encodeMessage(g.message(v, g.int(2 ** 32)))));
      } catch (err) {
        find("seed-encode-threw", (err as Error).message, new Uint8Array(0));
      }
    }
  }
  res.seeds = corpus.length;

  // ---- the session pool.
  const SLOTS = 24;
  const slots: Slot[] = [];

  /** apply records a step's effects and checks the session invariants. */
  const apply = (slot: Slot, step: Step, input: Uint8Array): string => {
    const parts: string[] = [];
    for (const m of step.send) {
      let label: string = m.type;
      if (m.type === "error") label = `error:${m.errType}/${m.code}`;
      parts.push(label);
      bump(res.sent, label);
      if (slot.closed) find("sent-after-close", `sent ${label} after close`, input, slot.s.state);
      try {
        encodeMessage(m);
      } catch (err) {
        find("sent-unencodable", `${label}: ${(err as Error).message}`, input, slot.s.state);
      }
      if (m.type === "features_request" || m.type === "port_desc_request" || m.type === "echo_request") {
        slot.sent.push({ type: m.type, xid: m.xid, version: m.version });
      } else if (m.type === "role_request" || m.type === "nx_role_request") {
        slot.sent.push({ type: m.type, xid: m.xid, version: m.version });
      }
    }
    if (slot.sent.length > 16) slot.sent.splice(0, slot.sent.length - 16);
    for (const e of step.events) {
      parts.push(`ev:${e.type}`);
      bump(res.events, e.type);
      if (e.type === "up") {
        if (slot.upSeen) find("up-twice", "a connection reported up twice", input, slot.s.state);
        slot.upSeen = true;
        if (e.datapath.ports.length > MAX_SWITCH_PORTS) {
          find("ports-unbounded", `up with ${e.datapath.ports.length} ports`, input, slot.s.state);
        }
      } else if (e.type === "down") {
        if (!slot.upSeen)
          find("down-without-up", "down reported for a connection not up", input, slot.s.state);
        slot.upSeen = false;
      }
    }
    if (step.close !== undefined) {
      parts.push("close");
      bump(res.closeReasons, norm(step.close));
      if (!slot.s.state.startsWith("closed")) find("close-not-closed", step.close, input, slot.s.state);
      slot.closed = true;
    }
    const d = slot.s.deadline();
    if (d !== undefined && !Number.isFinite(d)) find("deadline-not-finite", String(d), input, slot.s.state);
    return parts.join(",");
  };

  const drive = (slot: Slot, fn: () => Step, input: Uint8Array): string => {
    let step: Step;
    try {
      step = fn();
    } catch (err) {
      find("session-threw", `${(err as Error).name}: ${(err as Error).message}`, input, slot.s.state);
      slot.closed = true;
      return "threw";
    }
    return apply(slot, step, input);
  };

  const replyXid = (slot: Slot, type?: string): number => {
    const xs = type ? slot.sent.filter((s) => s.type === type) : slot.sent;
    if (xs.length > 0 && rand() < 0.85) return g.pick(xs).xid;
    return g.int(2 ** 32);
  };

  const newSlot = (): Slot => {
    const mode = rand() < 0.7 ? "controller" : "relay";
    const versions = g.versions();
    const opts = sessionOptions(g, mode, versions);
    const now = g.int(1_000_000);
    const slot: Slot = {
      s: new Session(opts, now),
      mode,
      now,
      born: now,
      handshakeMs: opts.handshakeTimeoutMs,
      upSeen: false,
      closed: false,
      sent: [],
      offered: versions,
    };
    res.sessionsCreated++;
    const none = new Uint8Array(0);
    drive(slot, () => slot.s.start(slot.now), none);
    if (mode === "relay") {
      const k = g.int(3);
      if (k === 0) drive(slot, () => slot.s.upstreamConnected(slot.now), none);
      if (k === 0 && rand() < 0.7) {
        drive(slot, () => slot.s.fromUpstream(buildHello(g.versions(), 1), slot.now), none);
      }
      if (k === 1) drive(slot, () => slot.s.upstreamFailed("fuzz: refused", slot.now), none);
    }
    // Walk part of a valid handshake, so inputs land in every state.
    const depth = g.int(4);
    if (depth >= 1 && !slot.closed) {
      const hv = rand() < 0.8 ? versions : g.versions();
      drive(slot, () => slot.s.fromSwitch(buildHello(hv, 1), slot.now), none);
    }
    const v = slot.s.wireVersion ?? g.pick(versions);
    if (depth >= 2 && !slot.closed) {
      const fr = g.message(v, replyXid(slot, "features_request"));
      const m: OfMessage =
        fr.type === "features_reply"
          ? fr
          : {
              type: "features_reply",
              version: v,
              xid: replyXid(slot, "features_request"),
              datapathId: g.dpid(),
              nBuffers: 0,
              nTables: 1,
              capabilities: 0,
              ...(v >= 4 ? { auxiliaryId: rand() < 0.1 ? 1 : 0 } : {}),
              ...(v === 1 ? { actions: 0 } : { reserved: 0 }),
              ...(v < 4 ? { ports: g.ports(v, 4) } : {}),
            };
      drive(slot, () => slot.s.fromSwitch(m, slot.now), none);
    }
    if (depth >= 3 && !slot.closed && v >= 4) {
      const m: OfMessage = {
        type: "port_desc_reply",
        version: v,
        xid: replyXid(slot, "port_desc_request"),
        flags: 0,
        ports: g.ports(v, 6),
      };
      drive(slot, () => slot.s.fromSwitch(m, slot.now), none);
    }
    return slot;
  };

  for (let i = 0; i < SLOTS; i++) slots.push(newSlot());

  // ---- mutation.
  const mutate = (src: Uint8Array): Uint8Array => {
    let b: Uint8Array<ArrayBufferLike> = Uint8Array.from(src);
    const rounds = 1 + (rand() < 0.3 ? g.int(4) : 0);
    for (let r = 0; r < rounds; r++) {
      const k = g.int(11);
      if (b.length === 0) b = g.bytes(8);
      if (k === 0) b[g.int(b.length)]! ^= 1 << g.int(8);
      else if (k === 1) b[g.int(b.length)] = g.pick(INTERESTING8);
      else if (k === 2 && b.length >= 2) {
        // A 16-bit word: the header length (often) or a length/count inside the body.
        const at = rand() < 0.35 ? 2 : 2 * g.int(b.length >> 1);
        const val = rand() < 0.6 ? g.pick(INTERESTING16) : g.int(0x10000);
        if (at + 1 < b.length) {
          b[at] = val >> 8;
          b[at + 1] = val & 0xff;
        }
      } else if (k === 3) b = b.subarray(0, g.int(b.length + 1));
      else if (k === 4) {
        const at = g.int(b.length + 1);
        const junk = g.bytes(1 + g.int(32));
        const n = new Uint8Array(b.length + junk.length);
        n.set(b.subarray(0, at));
        n.set(junk, at);
        n.set(b.subarray(at), at + junk.length);
        b = n;
      } else if (k === 5 && b.length > 8) {
        const at = 8 + g.int(b.length - 8);
        const len = 1 + g.int(Math.min(16, b.length - at));
        const n = new Uint8Array(b.length - len);
        n.set(b.subarray(0, at));
        n.set(b.subarray(at + len), at);
        b = n;
      } else if (k === 6) b[0] = rand() < 0.8 ? 1 + g.int(6) : g.int(256);
      else if (k === 7 && b.length >= 2) b[1] = g.int(rand() < 0.7 ? 32 : 256);
      else if (k === 8) {
        // Splice with another corpus entry.
        const o = g.pick(corpus);
        const cut = g.int(b.length + 1);
        const n = new Uint8Array(cut + o.length - Math.min(cut, o.length));
        n.set(b.subarray(0, cut));
        n.set(o.subarray(Math.min(cut, o.length)), cut);
        b = n;
      } else if (k === 9 && b.length >= 8) {
        // Rewrite xid (replies to a pending request go deeper).
        const x = g.int(2 ** 32);
        b[4] = x >>> 24;
        b[5] = (x >>> 16) & 0xff;
        b[6] = (x >>> 8) & 0xff;
        b[7] = x & 0xff;
      } else if (b.length > 8) b[8 + g.int(b.length - 8)] = g.int(256);
    }
    // Usually keep the header length honest so the body decoders are reached.
    if (b.length >= 4 && b.length <= 0xffff && rand() < 0.6) {
      b[2] = b.length >> 8;
      b[3] = b.length & 0xff;
    }
    return b;
  };

  const setXid = (b: Uint8Array, xid: number): void => {
    if (b.length < 8) return;
    b[4] = xid >>> 24;
    b[5] = (xid >>> 16) & 0xff;
    b[6] = (xid >>> 8) & 0xff;
    b[7] = xid & 0xff;
  };

  const framerCheck = (frames: Uint8Array[]): void => {
    res.framerChecks++;
    const total = frames.reduce((n, f) => n + f.length, 0);
    const all = new Uint8Array(total);
    let at = 0;
    for (const f of frames) {
      all.set(f, at);
      at += f.length;
    }
    const framer = new Framer();
    const got: Buffer[] = [];
    let pos = 0;
    try {
      while (pos < total) {
        const n = 1 + g.int(Math.min(total - pos, 1 + g.int(200)));
        got.push(...framer.push(all.subarray(pos, pos + n)));
        pos += n;
      }
    } catch (err) {
      if (!(err instanceof OpenFlowError)) find("framer-threw", (err as Error).message, all);
      return;
    }
    if (got.length !== frames.length || got.some((f, i) => !Buffer.from(frames[i]!).equals(f))) {
      find("framer-mismatch", `${frames.length} frames in, ${got.length} out`, all);
    }
    if (framer.pending !== 0) find("framer-leftover", `${framer.pending} bytes left`, all);
  };

  // Stack traces of the millions of expected OpenFlowErrors are the largest cost otherwise.
  const stackLimit = Error.stackTraceLimit;
  Error.stackTraceLimit = 0;
  const started = performance.now();
  let nextProgress = progressEvery;
  while (res.frames < options.frames) {
    const si = g.int(SLOTS);
    let slot = slots[si]!;
    if (slot.closed) {
      res.sessionsClosed++;
      slot = slots[si] = newSlot();
      if (slot.closed) continue;
    }

    // ---- pick an input.
    let input: Uint8Array<ArrayBufferLike>;
    const k = rand();
    if (k < 0.55) {
      input = mutate(g.pick(corpus));
      if (rand() < 0.3 && slot.sent.length > 0) setXid(input, replyXid(slot));
    } else if (k < 0.9) {
      const v = rand() < 0.85 ? (slot.s.wireVersion ?? g.pick(slot.offered)) : 1 + g.int(6);
      let m: OfMessage;
      try {
        input = Uint8Array.from(encodeMessage((m = g.message(v, replyXid(slot)))));
        if (m.type === "hello" && rand() < 0.5)
          input = Uint8Array.from(encodeMessage(buildHello(g.versions(), 1)));
      } catch {
        input = g.bytes(8);
      }
      if (rand() < 0.25) input = mutate(input);
    } else {
      input = g.bytes(rand() < 0.5 ? g.int(12) : 8 + g.int(120));
      if (input.length >= 4 && rand() < 0.7) {
        input[0] = 1 + g.int(6);
        input[2] = input.length >> 8;
        input[3] = input.length & 0xff;
      }
    }

    // ---- codec.
    let msg: OfMessage | undefined;
    let err: OpenFlowError | undefined;
    try {
      msg = decodeMessage(input);
      res.decoded++;
    } catch (e) {
      if (e instanceof OpenFlowError) {
        err = e;
        res.decodeErrors++;
      } else {
        find("decode-threw", `${(e as Error).name}: ${(e as Error).message}`, input);
      }
    }
    if (msg !== undefined) {
      try {
        const again = encodeMessage(msg);
        if (!again.equals(Buffer.from(input.buffer, input.byteOffset, input.byteLength))) {
          find("reencode-differs", `${msg.type} v${msg.version} re-encodes differently`, input);
        }
      } catch (e) {
        find("reencode-threw", `${msg.type}: ${(e as Error).message}`, input);
      }
    }
    if (rand() < 0.04) {
      const n = 1 + g.int(3);
      const frames: Uint8Array[] = [];
      for (let i = 0; i < n; i++) {
        const f = i === 0 ? input : g.pick(corpus);
        if (f.length >= 8 && ((f[2]! << 8) | f[3]!) === f.length) frames.push(f);
      }
      if (frames.length > 0) framerCheck(frames);
    }

    // ---- session.
    const before = `${slot.mode}:${slot.s.state}`;
    bump(res.statesVisited, before);
    const kind = msg ? msg.type : `E:${err?.code ?? "?"}`;
    bump(res.inputKinds, kind);
    let effect: string;
    const now = slot.now;
    if (msg) {
      const m = msg;
      effect =
        slot.mode === "relay" && rand() < 0.15
          ? drive(slot, () => slot.s.fromUpstream(m, now), input)
          : drive(slot, () => slot.s.fromSwitch(m, now), input);
    } else if (err) {
      const e = err;
      effect = drive(slot, () => slot.s.malformed(e, input, now), input);
    } else {
      effect = "none";
    }
    // Relay transport events, now and then.
    if (slot.mode === "relay" && !slot.closed && rand() < 0.02) {
      effect += rand() < 0.5 ? "|uc" : "|uf";
      drive(
        slot,
        () => (rand() < 0.5 ? slot.s.upstreamConnected(slot.now) : slot.s.upstreamFailed("fuzz", slot.now)),
        input,
      );
    }
    // ---- time.
    if (!slot.closed && rand() < 0.35) {
      slot.now += g.pick(TIME_STEPS);
      res.ticks++;
      effect += `|t:${drive(slot, () => slot.s.tick(slot.now), input)}`;
      if (
        !slot.closed &&
        slot.mode === "controller" &&
        !slot.s.isUp &&
        !slot.s.state.startsWith("aux") &&
        slot.now >= slot.born + slot.handshakeMs
      ) {
        find("handshake-not-enforced", `state ${slot.s.state} past its handshake deadline`, input, before);
      }
    }
    const bucket = `${before}|${kind}|${err ? norm(err.message).slice(0, 40) : ""}|${slot.s.state}|${effect}`;
    if (!buckets.has(bucket)) {
      buckets.add(bucket);
      // Big inputs are kept out of the corpus: mutating 60 KiB frames would dominate the run time.
      if (input.length > 4096) {
        // nothing
      } else if (corpus.length < maxCorpus) corpus.push(input);
      else corpus[res.seeds + g.int(maxCorpus - res.seeds)] = input;
    }
    res.frames++;
    if (res.frames >= nextProgress) {
      nextProgress += progressEvery;
      options.onProgress?.({
        frames: res.frames,
        seconds: (performance.now() - started) / 1000,
        buckets: buckets.size,
        findings: findings.size,
      });
    }
  }
  Error.stackTraceLimit = stackLimit;
  res.seconds = (performance.now() - started) / 1000;
  res.framesPerSecond = Math.round(res.frames / Math.max(res.seconds, 1e-9));
  res.findings = [...findings.values()];
  res.buckets = buckets.size;
  res.corpusSize = corpus.length;
  return res;
}
