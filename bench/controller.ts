/**
 * bench/controller.ts: the controller's measured costs (issue 2). Not a timed test.
 *
 *   node --import tsx bench/controller.ts      (JSON to bench/out/controller.json + a table)
 *   RFBOOT_BENCH_SWITCHES=1000 RFBOOT_BENCH_ECHOES=3000 RFBOOT_BENCH_FLOOD_MB=256 (defaults)
 *
 * The controller runs in a child process (bench/lib/controller-child.ts) so its RSS and CPU are its
 * own; scripted switches and the scripted upstream controller run in this process on loopback.
 * 1. Handshake capacity: N switches (OpenFlow 1.3: HELLO, FEATURES, PORT_DESC with 4 ports) connect at
 *    once to a listen-mode controller; time until all N are reported `up`, and the controller's RSS
 *    growth per connection.
 * 2. Relay cost, measured in the same run against a direct connection to the same scripted upstream:
 *    ECHO round-trip latency (sequential, switch -> upstream -> switch) p50/p99, and a PACKET_IN flood
 *    (128-byte OpenFlow 1.3 messages, sender honours backpressure) as messages/s at the upstream.
 */
import { fork, type ChildProcess } from "node:child_process";
import { mkdirSync, writeFileSync } from "node:fs";
import { connect, createServer, type Server, type Socket } from "node:net";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import {
  Framer,
  buildHello,
  decodeMessage,
  encodeMessage,
  type ControllerOptions,
  type OfMessage,
  type Port,
} from "../src/controller/index.js";

const HERE = dirname(fileURLToPath(import.meta.url));
const OUT = join(HERE, "out", "controller.json");
const N = Number(process.env.RFBOOT_BENCH_SWITCHES ?? 1000);
const ECHOES = Number(process.env.RFBOOT_BENCH_ECHOES ?? 3000);
const FLOOD_MB = Number(process.env.RFBOOT_BENCH_FLOOD_MB ?? 256);
const PKT = 128;
const PAIRS = Number(process.env.RFBOOT_BENCH_PAIRS ?? 7);

// ---- the controller child ---------------------------------------------------------------------

class Child {
  private readonly proc: ChildProcess;
  private waiters: ((m: { type: string } & Record<string, unknown>) => void)[] = [];

  constructor() {
    this.proc = fork(join(HERE, "lib", "controller-child.ts"), [], {
      execArgv: [
        "--import",
        "tsx",
        "--expose-gc",
        ...(process.env.RFBOOT_BENCH_CPU_PROF
          ? ["--cpu-prof", `--cpu-prof-dir=${process.env.RFBOOT_BENCH_CPU_PROF}`]
          : []),
      ],
      stdio: ["ignore", "inherit", "inherit", "ipc"],
    });
    this.proc.on("message", (m: { type: string } & Record<string, unknown>) => {
      const w = this.waiters;
      this.waiters = [];
      for (const f of w) f(m);
    });
  }

  private next<T>(type: string): Promise<T> {
    return new Promise((resolve) => {
      const f = (m: { type: string } & Record<string, unknown>) => {
        if (m.type === type) resolve(m as T);
        else this.waiters.push(f);
      };
      this.waiters.push(f);
    });
  }

  async ready(): Promise<void> {
    await this.next("ready");
  }

  async start(options: ControllerOptions): Promise<number> {
    const p = this.next<{ port: number }>("started");
    this.proc.send({ cmd: "start", options });
    return (await p).port;
  }

  async stats(): Promise<{ ups: number; rss: number; heapUsed: number; connections: number; cpuUs: number }> {
    const p = this.next<{ ups: number; rss: number; heapUsed: number; connections: number; cpuUs: number }>(
      "stats",
    );
    this.proc.send({ cmd: "stats" });
    return p;
  }

  async gc(): Promise<void> {
    const p = this.next("gc");
    this.proc.send({ cmd: "gc" });
    await p;
  }

  async close(): Promise<void> {
    const done = new Promise((r) => this.proc.once("exit", r));
    this.proc.send({ cmd: "close" });
    await done;
  }
}

async function spawnController(options: ControllerOptions): Promise<{ child: Child; port: number }> {
  const child = new Child();
  await child.ready();
  const port = await child.start(options);
  return { child, port };
}

// ---- scripted switch ----------------------------------------------------------------------------

function port(no: number, dpid: bigint): Port {
  const mac = `02:00:00:00:${(Number(dpid & 0xffn) & 0xff).toString(16).padStart(2, "0")}:${no.toString(16).padStart(2, "0")}`;
  return {
    portNo: no,
    hwAddr: mac,
    name: `s${dpid}-eth${no}`.slice(0, 15),
    config: 0,
    state: 0,
    curr: 0,
    advertised: 0,
    supported: 0,
    peer: 0,
    currSpeed: 0,
    maxSpeed: 0,
  };
}

/** switchAnswers answers the handshake like OVS on OpenFlow 1.3; `onOther` sees everything else. */
function scriptedSwitch(sock: Socket, dpid: bigint, onOther?: (m: OfMessage) => void): void {
  const framer = new Framer();
  sock.setNoDelay(true);
  sock.write(encodeMessage(buildHello([1, 4], 1)));
  sock.on("data", (chunk: Buffer) => {
    for (const f of framer.push(chunk)) {
      const m = decodeMessage(f);
      switch (m.type) {
        case "features_request":
          sock.write(
            encodeMessage({
              type: "features_reply",
              version: 4,
              xid: m.xid,
              datapathId: dpid,
              nBuffers: 0,
              nTables: 254,
              auxiliaryId: 0,
              capabilities: 0x4f,
              reserved: 0,
            }),
          );
          break;
        case "port_desc_request":
          sock.write(
            encodeMessage({
              type: "port_desc_reply",
              version: 4,
              xid: m.xid,
              flags: 0,
              ports: [1, 2, 3, 4].map((n) => port(n, dpid)),
            }),
          );
          break;
        case "echo_request":
          sock.write(encodeMessage({ type: "echo_reply", version: 4, xid: m.xid, data: m.data }));
          break;
        default:
          onOther?.(m);
      }
    }
  });
}

function connectTo(p: number): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const s = connect({ host: "127.0.0.1", port: p });
    s.once("connect", () => resolve(s));
    s.once("error", reject);
  });
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

// ---- 1. handshake capacity ----------------------------------------------------------------------

async function handshakeCapacity(): Promise<Record<string, number>> {
  const { child, port: p } = await spawnController({
    listen: { host: "127.0.0.1", port: 0 },
    mode: "listen",
    versions: [1, 4],
  });
  await child.gc();
  const base = await child.stats();
  const sockets: Socket[] = [];
  const t0 = performance.now();
  // Connect in waves of 100 so the accept backlog is never the bottleneck being measured.
  for (let i = 0; i < N; i += 100) {
    const wave = await Promise.all(
      Array.from({ length: Math.min(100, N - i) }, (_, j) => connectTo(p).then((s) => ({ s, k: i + j }))),
    );
    for (const { s, k } of wave) {
      scriptedSwitch(s, BigInt(k + 1));
      sockets.push(s);
    }
  }
  let st = await child.stats();
  while (st.ups < N) {
    await sleep(5);
    st = await child.stats();
  }
  const elapsed = performance.now() - t0;
  await sleep(200);
  await child.gc();
  const after = await child.stats();
  for (const s of sockets) s.destroy();
  await child.close();
  return {
    switches: N,
    totalMs: round(elapsed),
    perSwitchMs: round(elapsed / N, 3),
    rssBaseMiB: round(base.rss / 2 ** 20),
    rssAfterMiB: round(after.rss / 2 ** 20),
    rssPerConnectionKiB: round((after.rss - base.rss) / N / 1024),
    heapPerConnectionKiB: round((after.heapUsed - base.heapUsed) / N / 1024),
  };
}

// ---- 2. relay cost -------------------------------------------------------------------------------

/** Upstream is the scripted real controller: HELLO, FEATURES_REQUEST, answers ECHO, counts PACKET_IN bytes. */
class Upstream {
  private readonly server: Server;
  port = 0;
  floodBytes = 0;
  private floodWaiter: (() => void) | undefined;
  private floodTarget = Infinity;

  constructor() {
    this.server = createServer({ noDelay: true }, (sock) => this.serve(sock));
  }

  async listen(): Promise<void> {
    await new Promise<void>((r) => this.server.listen({ host: "127.0.0.1", port: 0 }, r));
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
        if (type === 10) {
          this.floodBytes += len;
        } else if (type === 2) {
          // ECHO_REQUEST -> ECHO_REPLY with the same xid and payload
          const r = Buffer.from(data.subarray(pos, pos + len));
          r[1] = 3;
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

  close(): Promise<void> {
    return new Promise((r) => this.server.close(() => r()));
  }
}

/** openSession connects a scripted switch and resolves once the upstream's handshake went through. */
async function openSession(p: number): Promise<{ sock: Socket; echo: () => Promise<number> }> {
  const sock = await connectTo(p);
  let pendingEcho: ((t: number) => void) | undefined;
  let featuresSeen!: () => void;
  const ready = new Promise<void>((r) => (featuresSeen = r));
  let asked = 0;
  const framer = new Framer();
  sock.setNoDelay(true);
  sock.write(encodeMessage(buildHello([4], 1)));
  sock.on("data", (chunk: Buffer) => {
    for (const f of framer.push(chunk)) {
      const type = f[1];
      if (type === 3 && pendingEcho) {
        const w = pendingEcho;
        pendingEcho = undefined;
        w(performance.now());
        continue;
      }
      const m = decodeMessage(f);
      if (m.type === "features_request") {
        sock.write(
          encodeMessage({
            type: "features_reply",
            version: 4,
            xid: m.xid,
            datapathId: 0x42n,
            nBuffers: 0,
            nTables: 254,
            auxiliaryId: 0,
            capabilities: 0,
            reserved: 0,
          }),
        );
        if (++asked === 2) featuresSeen();
      } else if (m.type === "port_desc_request") {
        sock.write(
          encodeMessage({
            type: "port_desc_reply",
            version: 4,
            xid: m.xid,
            flags: 0,
            ports: [port(1, 0x42n)],
          }),
        );
        if (++asked === 2) featuresSeen();
      } else if (m.type === "echo_request") {
        sock.write(encodeMessage({ type: "echo_reply", version: 4, xid: m.xid, data: m.data }));
      }
    }
  });
  await ready;
  const req = encodeMessage({ type: "echo_request", version: 4, xid: 9, data: Buffer.alloc(8) });
  const echo = () =>
    new Promise<number>((resolve) => {
      const t0 = performance.now();
      pendingEcho = (t1) => resolve(t1 - t0);
      sock.write(req);
    });
  return { sock, echo };
}

function packetInBatch(): Buffer {
  const one = Buffer.alloc(PKT, 0xab);
  one.writeUInt8(4, 0);
  one.writeUInt8(10, 1);
  one.writeUInt16BE(PKT, 2);
  one.writeUInt32BE(0, 4);
  return Buffer.concat(Array.from({ length: 512 }, () => one)); // 64 KiB
}

async function flood(sock: Socket, up: Upstream): Promise<{ msgsPerSec: number; mibPerSec: number }> {
  const batch = packetInBatch();
  const batches = Math.ceil((FLOOD_MB * 2 ** 20) / batch.length);
  const total = batches * batch.length;
  const done = up.expectFlood(total);
  const t0 = performance.now();
  for (let i = 0; i < batches; i++) {
    if (!sock.write(batch)) await new Promise((r) => sock.once("drain", r));
  }
  await done;
  const s = (performance.now() - t0) / 1000;
  return { msgsPerSec: round(total / PKT / s), mibPerSec: round(total / 2 ** 20 / s, 1) };
}

async function echoes(echo: () => Promise<number>): Promise<{ p50: number; p99: number; mean: number }> {
  for (let i = 0; i < 200; i++) await echo(); // warm-up
  const xs: number[] = [];
  for (let i = 0; i < ECHOES; i++) xs.push(await echo());
  xs.sort((a, b) => a - b);
  return {
    p50: round(xs[Math.floor(xs.length * 0.5)]!, 4),
    p99: round(xs[Math.floor(xs.length * 0.99)]!, 4),
    mean: round(xs.reduce((a, b) => a + b, 0) / xs.length, 4),
  };
}

async function relayCost(): Promise<Record<string, unknown>> {
  const up = new Upstream();
  await up.listen();
  const { child, port: relayPort } = await spawnController({
    listen: { host: "127.0.0.1", port: 0 },
    mode: "relay",
    upstream: { host: "127.0.0.1", port: up.port },
    echoIntervalMs: 60_000,
  });
  const direct = await openSession(up.port);
  const relayed = await openSession(relayPort);
  const echoDirect = await echoes(direct.echo);
  const echoRelay = await echoes(relayed.echo);
  // Floods: PAIRS interleaved pairs (direct then relay, order alternating) so that machine noise hits
  // both paths alike; the ratio is the median of the per-pair ratios. The relay's own CPU time per
  // MiB forwarded is measured too: it does not depend on what else the machine is running.
  const floodsDirect: { msgsPerSec: number; mibPerSec: number }[] = [];
  const floodsRelay: { msgsPerSec: number; mibPerSec: number }[] = [];
  const ratios: number[] = [];
  const relayCpuUsPerMiB: number[] = [];
  for (let i = 0; i < PAIRS; i++) {
    const runDirect = () => flood(direct.sock, up);
    const runRelay = async () => {
      const c0 = (await child.stats()).cpuUs;
      const r = await flood(relayed.sock, up);
      const c1 = (await child.stats()).cpuUs;
      relayCpuUsPerMiB.push(round((c1 - c0) / FLOOD_MB));
      return r;
    };
    let d, r;
    if (i % 2 === 0) {
      d = await runDirect();
      r = await runRelay();
    } else {
      r = await runRelay();
      d = await runDirect();
    }
    floodsDirect.push(d);
    floodsRelay.push(r);
    ratios.push(r.msgsPerSec / d.msgsPerSec);
  }
  const fd = median(floodsDirect.map((x) => x.msgsPerSec));
  const fr = median(floodsRelay.map((x) => x.msgsPerSec));
  direct.sock.destroy();
  relayed.sock.destroy();
  await child.close();
  await up.close();
  return {
    echoMs: { direct: echoDirect, relay: echoRelay },
    echoAddedP50Ms: round(echoRelay.p50 - echoDirect.p50, 4),
    echoAddedP99Ms: round(echoRelay.p99 - echoDirect.p99, 4),
    flood: {
      messageBytes: PKT,
      mibPerRun: FLOOD_MB,
      pairs: PAIRS,
      directMedianMsgsPerSec: round(fd),
      relayMedianMsgsPerSec: round(fr),
      runs: { direct: floodsDirect, relay: floodsRelay },
      pairRatios: ratios.map((x) => round(x, 3)),
    },
    throughputRatio: round(median(ratios), 3),
    relayCpuMsPerGiB: round((median(relayCpuUsPerMiB) * 1024) / 1000),
    relayCpuBoundMsgsPerSec: round((2 ** 20 / PKT) * (1e6 / median(relayCpuUsPerMiB))),
    loadAverage: (await import("node:os")).loadavg().map((x) => round(x)),
    targets: { throughputRatioMin: 0.9, echoAddedP50MsMax: 0.2 },
  };
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2;
}

function round(x: number, digits = 2): number {
  const f = 10 ** digits;
  return Math.round(x * f) / f;
}

async function main(): Promise<void> {
  const hs = await handshakeCapacity();
  const relay = await relayCost();
  const result = {
    bench: "controller",
    date: new Date().toISOString(),
    node: process.version,
    cpus: (await import("node:os")).cpus().length,
    handshake: hs,
    relay,
  };
  mkdirSync(dirname(OUT), { recursive: true });
  writeFileSync(OUT, JSON.stringify(result, null, 2) + "\n");
  const r = relay as {
    echoMs: { direct: { p50: number; p99: number }; relay: { p50: number; p99: number } };
    echoAddedP50Ms: number;
    flood: { directMedianMsgsPerSec: number; relayMedianMsgsPerSec: number; pairRatios: number[] };
    throughputRatio: number;
    relayCpuMsPerGiB: number;
    relayCpuBoundMsgsPerSec: number;
    loadAverage: number[];
  };
  const rows: [string, string][] = [
    [`handshake: ${hs.switches} switches up`, `${hs.totalMs} ms (${hs.perSwitchMs} ms/switch)`],
    ["controller RSS per connection", `${hs.rssPerConnectionKiB} KiB (heap ${hs.heapPerConnectionKiB} KiB)`],
    ["echo RTT direct p50 / p99", `${r.echoMs.direct.p50} / ${r.echoMs.direct.p99} ms`],
    ["echo RTT relay  p50 / p99", `${r.echoMs.relay.p50} / ${r.echoMs.relay.p99} ms`],
    ["echo p50 added by relay", `${r.echoAddedP50Ms} ms (target < 0.2)`],
    [`packet-in flood (${PKT} B) direct, median`, `${r.flood.directMedianMsgsPerSec} msg/s`],
    [`packet-in flood (${PKT} B) relay, median`, `${r.flood.relayMedianMsgsPerSec} msg/s`],
    [
      "relay/direct throughput (median of pairs)",
      `${r.throughputRatio} (target >= 0.9) pairs ${r.flood.pairRatios.join(" ")}`,
    ],
    [
      "relay CPU per GiB forwarded",
      `${r.relayCpuMsPerGiB} ms (CPU-bound ceiling ${r.relayCpuBoundMsgsPerSec} msg/s)`,
    ],
    ["load average during the run", r.loadAverage.join(" ")],
  ];
  const w = Math.max(...rows.map(([a]) => a.length));
  for (const [a, b] of rows) console.log(`${a.padEnd(w)}  ${b}`);
  console.log(`\nwritten: ${OUT}`);
}

await main();
