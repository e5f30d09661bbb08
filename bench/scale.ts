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
 * 2. File descriptors: this process and the controller child raise their soft limit to the hard one as
 *    `rfboot run` does (src/common/nofile.ts), and the JSON has both limits and how many switch sessions they
 *    allow in listen mode (1 per switch) and in relay mode (2 per switch: switch and upstream), after the
 *    descriptors rfboot keeps for everything else.
 * 3. The relay under a crowd: one switch floods PACKET_IN (128-byte messages, honouring backpressure)
 *    through a relay child to an upstream in this process, first alone, then beside IDLE relayed switches
 *    that stay connected (handshake done, echoes every 60 s). Rounds alternate alone/crowded so noise hits
 *    both; the ratio (crowded / alone) is the judged figure: idle sessions must not slow a busy one.
 */
import { mkdirSync, writeFileSync } from "node:fs";
import type { Socket } from "node:net";
import { loadavg } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { connectTo, scriptedSwitch, sleep, spawnController, type Child } from "./lib/sessions.js";
import { Upstream } from "./lib/upstream.js";
import { NOFILE_FIX, raiseNofile, sessionCapacity, type NofileLimits } from "../src/common/nofile.js";

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

async function curvePoint(n: number): Promise<{ point: CurvePoint; nofile?: NofileLimits }> {
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
  const point = {
    sessions: n,
    timeToAllUpMs: round(elapsed),
    perSessionMs: round(elapsed / n, 4),
    rssPerSessionKiB: round((after.rss - base.rss) / n / 1024),
    heapPerSessionKiB: round((after.heapUsed - base.heapUsed) / n / 1024),
    rssAfterMiB: round(after.rss / 2 ** 20),
  };
  return after.nofile ? { point, nofile: after.nofile } : { point };
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
  const loadBefore = round(loadavg()[0]!);
  const raise = await raiseNofile();
  if (raise.error) console.warn(`open files: soft ${raise.soft}, hard ${raise.hard}: ${raise.error}`);
  const limits: NofileLimits = { soft: raise.soft, hard: raise.hard };
  // This process holds the switches' ends, the child their sessions: each needs n descriptors and a few more.
  const tooMany = SIZES.filter((n) => n + 64 > limits.soft);
  if (tooMany.length > 0)
    throw new Error(
      `${tooMany.join(", ")} sessions need that many open files and 64 more in this process and in the ` +
        `controller's; the hard limit is ${limits.hard}: ${NOFILE_FIX}, or lower RFBOOT_SCALE_SIZES`,
    );
  const curve: CurvePoint[] = [];
  let childNofile: NofileLimits | undefined;
  for (const n of SIZES) {
    const { point, nofile } = await curvePoint(n);
    curve.push(point);
    childNofile ??= nofile;
  }
  const first = curve[0]!;
  const relay = await crowdedRelay();
  const result = {
    bench: "scale",
    date: new Date().toISOString(),
    node: process.version,
    loadavg1: { before: loadBefore, after: round(loadavg()[0]!) },
    openFiles: {
      ...limits,
      raisedFrom: raise.raised ? raise.before : null,
      controllerChild: childNofile ?? null,
      listenModeSessions: sessionCapacity(limits.soft).listen,
      relayModeSessions: sessionCapacity(limits.soft).relay,
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
