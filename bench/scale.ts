/**
 * bench/scale.ts: how the controller's costs grow with the number of switches. Not a timed test.
 *
 *   node --import tsx bench/scale.ts          (JSON to bench/out/scale.json + a table; ~1-2 min)
 *   RFBOOT_SCALE_SIZES=100,1000,10000         (session counts of the curve; the defaults)
 *   RFBOOT_SCALE_IDLE=1000 RFBOOT_SCALE_FLOOD_MB=256 RFBOOT_SCALE_ROUNDS=3 (defaults; --quick: smaller)
 *
 * 1. The curve: for each size N, one fresh listen-mode controller in a child process
 *    (bench/lib/controller-child.ts) and N scripted OpenFlow 1.3 switches (this process, loopback) that
 *    connect in waves of 100: the time until all N are reported `up`, and the child's RSS and heap growth
 *    per session after a GC. The ratios against the smallest size, in the same run, show the shape: per
 *    session cost flat (linear growth) or rising.
 * 2. File descriptors: the limit this process and its children have (Node raises the soft limit to the hard
 *    one at start), and how many switch sessions that allows in listen mode (1 per switch) and in relay
 *    mode (2 per switch: switch and upstream).
 * 3. The relay under a crowd: one switch floods PACKET_IN (128-byte messages, honouring backpressure)
 *    through a relay child to an upstream in this process, first alone, then beside IDLE relayed switches
 *    that stay connected (handshake done, echoes every 60 s). Rounds alternate alone/crowded so noise hits
 *    both; the ratio (crowded / alone) is the judged figure: idle sessions must not slow a busy one.
 */
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import type { Socket } from "node:net";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { connectTo, scriptedSwitch, sleep, spawnController, type Child } from "./lib/sessions.js";
import { Upstream } from "./lib/upstream.js";

const OUT = join(dirname(fileURLToPath(import.meta.url)), "out", "scale.json");
/** --quick: 100 and 1,000 sessions, 200 idle beside a 64 MiB flood, one round. */
const QUICK = process.argv.includes("--quick");
const SIZES = (process.env.RFBOOT_SCALE_SIZES ?? (QUICK ? "100,1000" : "100,1000,10000"))
  .split(",")
  .map(Number);
const IDLE = Number(process.env.RFBOOT_SCALE_IDLE ?? (QUICK ? 200 : 1000));
const FLOOD_MB = Number(process.env.RFBOOT_SCALE_FLOOD_MB ?? (QUICK ? 64 : 256));
const ROUNDS = Number(process.env.RFBOOT_SCALE_ROUNDS ?? (QUICK ? 1 : 3));
const PKT = 128;

const round = (x: number, digits = 2) => Math.round(x * 10 ** digits) / 10 ** digits;
const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2;
};

/** nofile reads this process's open-files limits (a forked child inherits them). */
function nofile(): { soft: number; hard: number } {
  const line = readFileSync("/proc/self/limits", "utf8")
    .split("\n")
    .find((l) => l.startsWith("Max open files"));
  const [, soft = "0", hard = "0"] = /Max open files\s+(\S+)\s+(\S+)/.exec(line ?? "") ?? [];
  const n = (v: string) => (v === "unlimited" ? Number.POSITIVE_INFINITY : Number(v));
  return { soft: n(soft), hard: n(hard) };
}

/** connectWaves connects `n` scripted switches (dpids from `firstDpid`) to `port`, 100 at a time. */
async function connectWaves(port: number, n: number, firstDpid = 1): Promise<Socket[]> {
  const sockets: Socket[] = [];
  for (let i = 0; i < n; i += 100) {
    const wave = await Promise.all(
      Array.from({ length: Math.min(100, n - i) }, (_, j) => connectTo(port).then((s) => ({ s, k: i + j }))),
    );
    for (const { s, k } of wave) {
      scriptedSwitch(s, BigInt(firstDpid + k));
      sockets.push(s);
    }
  }
  return sockets;
}

async function waitUps(child: Child, n: number, timeoutMs: number): Promise<void> {
  const end = performance.now() + timeoutMs;
  while (((await child.stats()).ups ?? 0) < n) {
    if (performance.now() > end) throw new Error(`only ${(await child.stats()).ups} of ${n} switches up`);
    await sleep(5);
  }
}

type CurvePoint = {
  sessions: number;
  timeToAllUpMs: number;
  perSessionMs: number;
  rssPerSessionKiB: number;
  heapPerSessionKiB: number;
  rssAfterMiB: number;
};

async function curvePoint(n: number): Promise<CurvePoint> {
  const { child, port } = await spawnController({
    listen: { host: "127.0.0.1", port: 0 },
    mode: "listen",
    versions: [1, 4],
    maxConnections: n + 16,
    maxConnectionsPerPeer: n + 16,
  });
  await child.gc();
  const base = await child.stats();
  const t0 = performance.now();
  const sockets = await connectWaves(port, n);
  await waitUps(child, n, 300_000);
  const elapsed = performance.now() - t0;
  await sleep(300);
  await child.gc();
  const after = await child.stats();
  for (const s of sockets) s.destroy();
  await child.close();
  return {
    sessions: n,
    timeToAllUpMs: round(elapsed),
    perSessionMs: round(elapsed / n, 4),
    rssPerSessionKiB: round((after.rss - base.rss) / n / 1024),
    heapPerSessionKiB: round((after.heapUsed - base.heapUsed) / n / 1024),
    rssAfterMiB: round(after.rss / 2 ** 20),
  };
}

function packetIns(): Buffer {
  const one = Buffer.alloc(PKT, 0xab);
  one.writeUInt8(4, 0);
  one.writeUInt8(10, 1);
  one.writeUInt16BE(PKT, 2);
  return Buffer.concat(Array.from({ length: 512 }, () => one));
}

/** floodOnce sends FLOOD_MB of PACKET_IN on `sock` and returns MiB/s as counted at the upstream. */
async function floodOnce(sock: Socket, up: Upstream): Promise<number> {
  const batch = packetIns();
  const batches = Math.ceil((FLOOD_MB * 2 ** 20) / batch.length);
  const total = batches * batch.length;
  const done = up.expectFlood(total);
  const t0 = performance.now();
  for (let i = 0; i < batches; i++) if (!sock.write(batch)) await new Promise((r) => sock.once("drain", r));
  await done;
  return total / 2 ** 20 / ((performance.now() - t0) / 1000);
}

async function crowdedRelay(): Promise<Record<string, unknown>> {
  const up = new Upstream();
  await up.listen();
  const { child, port } = await spawnController({
    listen: { host: "127.0.0.1", port: 0 },
    mode: "relay",
    upstream: { host: "127.0.0.1", port: up.port },
    echoIntervalMs: 60_000,
    maxConnections: IDLE + 64,
    maxConnectionsPerPeer: IDLE + 64,
  });
  const [flooder] = await connectWaves(port, 1, 1_000_000);
  await waitUps(child, 1, 30_000);
  await floodOnce(flooder!, up); // warm-up
  const alone: number[] = [];
  const crowded: number[] = [];
  let idle: Socket[] = [];
  let idleUpMs = 0;
  for (let r = 0; r < ROUNDS; r++) {
    for (const withCrowd of r % 2 ? [true, false] : [false, true]) {
      if (withCrowd && idle.length === 0) {
        const ups = (await child.stats()).ups ?? 0;
        const t0 = performance.now();
        idle = await connectWaves(port, IDLE, 1);
        await waitUps(child, ups + IDLE, 120_000);
        idleUpMs = performance.now() - t0;
      }
      if (!withCrowd && idle.length > 0) {
        for (const s of idle) s.destroy();
        idle = [];
        await sleep(500);
      }
      (withCrowd ? crowded : alone).push(await floodOnce(flooder!, up));
    }
  }
  const st = await child.stats();
  for (const s of [...idle, flooder!]) s.destroy();
  await child.close();
  await up.close();
  const ratios = alone.map((a, i) => crowded[i]! / a);
  return {
    idleSessions: IDLE,
    idleSessionsUpMs: round(idleUpMs),
    floodMiB: FLOOD_MB,
    rounds: ROUNDS,
    aloneMiBPerSec: alone.map((x) => round(x, 1)),
    crowdedMiBPerSec: crowded.map((x) => round(x, 1)),
    crowdedVsAlone: round(median(ratios)),
    relayRssMiB: round(st.rss / 2 ** 20),
  };
}

async function main(): Promise<void> {
  const limits = nofile();
  const curve: CurvePoint[] = [];
  for (const n of SIZES) {
    if (n + 64 > limits.soft) {
      throw new Error(
        `${n} sessions need about ${n + 64} open files in this process and in the controller's; ` +
          `the limit is ${limits.soft} (ulimit -n): raise it or lower RFBOOT_SCALE_SIZES`,
      );
    }
    curve.push(await curvePoint(n));
  }
  const first = curve[0]!;
  const relay = await crowdedRelay();
  const result = {
    bench: "scale",
    date: new Date().toISOString(),
    node: process.version,
    openFiles: {
      ...limits,
      listenModeSessions: Math.max(0, limits.soft - 64),
      relayModeSessions: Math.max(0, Math.floor((limits.soft - 64) / 2)),
    },
    curve: curve.map((p) => ({
      ...p,
      perSessionMsVsSmallest: round(p.perSessionMs / first.perSessionMs),
      rssPerSessionVsSmallest:
        first.rssPerSessionKiB > 0 ? round(p.rssPerSessionKiB / first.rssPerSessionKiB) : null,
    })),
    crowdedRelay: relay,
  };
  mkdirSync(dirname(OUT), { recursive: true });
  writeFileSync(OUT, `${JSON.stringify(result, null, 2)}\n`);
  console.table(result.curve);
  console.log(JSON.stringify({ openFiles: result.openFiles, crowdedRelay: relay }, null, 2));
  console.log(`wrote ${OUT}`);
}

await main();
