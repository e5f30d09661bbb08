/**
 * bench/controller.ts: the controller's measured costs. Not a timed test.
 *
 *   node --import tsx bench/controller.ts      (JSON to bench/out/controller.json + a table; ~25-30 s)
 *   RFBOOT_BENCH_SWITCHES=1000 RFBOOT_BENCH_ECHO_BLOCKS=9 RFBOOT_BENCH_ECHOES=400 (echoes per block)
 *   RFBOOT_BENCH_FLOOD_MB=512 RFBOOT_BENCH_TRIPLES=9 (defaults; RFBOOT_BENCH_PAIRS, the old name, is
 *   still read); RFBOOT_BENCH_CPU_PROF=DIR profiles the controller children (--cpu-prof)
 *
 * The controller runs in a child process (bench/lib/controller-child.ts) so its RSS and CPU are its
 * own (as does the flood's reference forwarder, bench/lib/pipe-child.ts); scripted switches run in this
 * process on loopback.
 * 1. Handshake capacity: N switches (OpenFlow 1.3: HELLO, FEATURES, PORT_DESC with 4 ports) connect at
 *    once to a listen-mode controller; time until all N are reported `up`, and the controller's RSS
 *    growth per connection.
 * 2. Relay cost (targets: relay throughput >= 90% of direct, p50 latency added < 0.2 ms), each against
 *    a direct connection measured in the same run, with the process boundaries chosen for what is
 *    measured:
 *    - ECHO latency (the target figure, `echoAddedP50Ms`): the upstream controller runs in a process of
 *      its own (bench/lib/upstream-child.ts), as rfproxy does, apart from Open vSwitch and rfboot. So a
 *      direct round trip (switch -> upstream -> switch) crosses two process boundaries, as it does in
 *      the deployment, and the relayed one (switch -> relay -> upstream -> relay -> switch) four: the
 *      difference is what the relay adds, its two wake-ups included. On a VM each wake-up of an idle
 *      process costs tens of µs, so where the upstream sits matters.
 *      Sequential echoes in ECHO_BLOCKS blocks of ECHO_BLOCK per path (after 200 warm-up echoes), the
 *      direct/relay order alternating from block to block, so a burst of load from elsewhere hits both
 *      alike; added = median over blocks of (relay p50 - direct p50). Also: the relay process's CPU per
 *      relayed echo, and the cores the rest of the machine used meanwhile.
 *    - Secondary ECHO figure (`echoInProcessUpstream`, not judged against the target): the same with the
 *      upstream in this process, as bench runs before this change measured it. Its direct round trip
 *      wakes no other process while the relayed one crosses four boundaries, so it overstates what the
 *      relay adds; kept so that nothing is hidden. Its blocks are interleaved with the ones above.
 *    - PACKET_IN flood (`throughputRatio`): 128-byte OpenFlow 1.3 messages, FLOOD_MB per run, sender
 *      honours backpressure; rate counted at the upstream. Sender and upstream run in this process
 *      and the relay in its own, so on a 2-core machine the relay has a core of its own and is compared
 *      with the path it sits in (the direct path is this process alone). A third path, measured the
 *      same way: the reference forwarder (bench/lib/pipe-child.ts), a process that only does
 *      `sock.pipe(up); up.pipe(sock)` per connection, with no parsing and no OpenFlow knowledge: the
 *      cheapest relay Node can be. It separates the part of the gap to direct that any Node relay in a
 *      process of its own pays (a third process's CPU on two cores, the extra loopback hop) from rfboot's
 *      own work: `referenceRatio` (reference / direct) is about the best any Node relay can score here,
 *      and `relayVsReference` (relay / reference) is rfboot against that floor. TRIPLES triples (direct,
 *      relay, reference) after one warm-up run per path, the order rotating from triple to triple (D R P,
 *      R P D, P D R, ...) so that noise hits all three alike; each ratio = median of per-triple ratios;
 *      `throughputRatio` (relay / direct) keeps its meaning and is the judged figure. Per run also: this
 *      process's and each forwarder's CPU per GiB (`relayCpuMsPerGiB`, `referenceCpuMsPerGiB`: the
 *      medians over the runs through each) and the cores the rest of the machine used meanwhile
 *      (/proc/stat). A run with a busy neighbour understates a forwarder, whose path needs both cores,
 *      while the direct path needs one; the medians of the quiet triples are reported beside the
 *      headline figures, for information.
 */
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import type { Socket } from "node:net";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import {
  Framer,
  buildHello,
  decodeMessage,
  encodeMessage,
  type ControllerOptions,
} from "../src/controller/index.js";
import type { ReadPortStats } from "../src/controller/readport.js";
import type { ReplyPollStats } from "../src/controller/replypoll.js";
import {
  Child,
  connectTo,
  port,
  scriptedSwitch,
  sleep,
  spawnController,
  spawnReference,
  spawnUpstream,
} from "./lib/sessions.js";
import { Upstream } from "./lib/upstream.js";

const HERE = dirname(fileURLToPath(import.meta.url));
const OUT = join(HERE, "out", "controller.json");
const N = Number(process.env.RFBOOT_BENCH_SWITCHES ?? 1000);
const ECHO_BLOCKS = Number(process.env.RFBOOT_BENCH_ECHO_BLOCKS ?? 9);
const ECHO_BLOCK = Number(process.env.RFBOOT_BENCH_ECHOES ?? 400);
/** A flood pair is "quiet" when the rest of the machine used less than this many cores in both runs. */
const QUIET_CORES = 0.25;
const ECHO_WARMUP = 200;
const FLOOD_MB = Number(process.env.RFBOOT_BENCH_FLOOD_MB ?? 512);
const PKT = 128;
/** Flood triples; RFBOOT_BENCH_PAIRS, the name from when they were pairs, is still read. */
const TRIPLES = Number(process.env.RFBOOT_BENCH_TRIPLES ?? process.env.RFBOOT_BENCH_PAIRS ?? 9);

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
  while ((st.ups ?? 0) < N) {
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

/**
 * machineCpuMs reads the whole machine's CPU time from /proc/stat (USER_HZ = 100 on Linux): `busy`
 * (user, nice, system, irq, softirq) and `steal` (taken by the hypervisor), in ms summed over cores.
 * Undefined where /proc/stat is not there.
 */
function machineCpuMs(): { busy: number; steal: number } | undefined {
  let line: string;
  try {
    line = readFileSync("/proc/stat", "utf8").split("\n", 1)[0]!;
  } catch {
    return undefined;
  }
  const f = line.trim().split(/\s+/).slice(1).map(Number);
  const [user = 0, nice = 0, system = 0, , , irq = 0, softirq = 0, steal = 0] = f;
  return { busy: (user + nice + system + irq + softirq) * 10, steal: steal * 10 };
}

/** ownContextSwitches reads this process's voluntary context switches (Linux), else undefined. */
function ownContextSwitches(): number | undefined {
  try {
    const m = /voluntary_ctxt_switches:\s+(\d+)/.exec(readFileSync("/proc/self/status", "utf8"));
    return m ? Number(m[1]) : undefined;
  } catch {
    return undefined;
  }
}

/**
 * FloodRun is one flood: its rate, the CPU per GiB of this process (sender + upstream), of the rfboot
 * relay child and of the reference forwarder child (each measured in every run, whichever path the
 * run took: an idle forwarder costs next to nothing), and the cores the rest of the machine used
 * meanwhile (`otherCores`: machine busy time minus the bench's and both forwarders', per wall second;
 * includes kernel time not charged to a process; `stealCores`: time the hypervisor took). On 2 cores a
 * forwarded path needs both, so a busy neighbour slows it more than the direct path, which needs one:
 * `otherCores` says how quiet a run was.
 */
type FloodRun = {
  msgsPerSec: number;
  mibPerSec: number;
  benchCpuMsPerGiB: number;
  /** How often this process slept (voluntary context switches) per MiB sent: waits on the path. */
  benchSleepsPerMiB: number | null;
  /** The rfboot relay child's CPU per GiB sent in this run. */
  relayCpuMsPerGiB: number;
  /** The kernel's part of the relay's CPU (system time / total). */
  relaySystemShare: number;
  /**
   * How the relay's reads landed in this run (readport.ts): reads per MiB forwarded, the share of bytes
   * read into a port's own buffer (written on without a copy), and own buffers pinned by a queued write.
   */
  relayReads: { perMiB: number; lentShare: number; pins: number; overBudget: number } | null;
  /** The reference forwarder child's (bench/lib/pipe-child.ts) CPU per GiB sent in this run. */
  referenceCpuMsPerGiB: number;
  /** The rfboot relay child with relayReusesReadMemory false (Node's own read buffers): CPU per GiB. */
  nodeReadsCpuMsPerGiB: number;
  /** The kernel's part of the reference forwarder's CPU. */
  referenceSystemShare: number;
  otherCores: number | null;
  stealCores: number | null;
};

/** The two forwarder children a flood measures: the rfboot relay and the reference `pipe` forwarder. */
type Forwarders = { relay: Child; reference: Child; nodeReads: Child };

async function flood(sock: Socket, up: Upstream, fw: Forwarders, mib = FLOOD_MB): Promise<FloodRun> {
  const batch = packetInBatch();
  const batches = Math.ceil((mib * 2 ** 20) / batch.length);
  const total = batches * batch.length;
  const gib = total / 2 ** 30;
  const [r0, p0, n0] = await Promise.all([fw.relay.stats(), fw.reference.stats(), fw.nodeReads.stats()]);
  const done = up.expectFlood(total);
  const m0 = machineCpuMs();
  const x0 = ownContextSwitches();
  const c0 = process.cpuUsage();
  const t0 = performance.now();
  for (let i = 0; i < batches; i++) {
    if (!sock.write(batch)) await new Promise((r) => sock.once("drain", r));
  }
  await done;
  const ms = performance.now() - t0;
  const c = process.cpuUsage(c0);
  const x1 = ownContextSwitches();
  const m1 = machineCpuMs();
  const [r1, p1, n1] = await Promise.all([fw.relay.stats(), fw.reference.stats(), fw.nodeReads.stats()]);
  const relayMs = (r1.cpuUs - r0.cpuUs) / 1000;
  const refMs = (p1.cpuUs - p0.cpuUs) / 1000;
  const nodeReadsMs = (n1.cpuUs - n0.cpuUs) / 1000;
  const benchMs = (c.user + c.system) / 1000;
  return {
    msgsPerSec: round(total / PKT / (ms / 1000)),
    mibPerSec: round(total / 2 ** 20 / (ms / 1000), 1),
    benchCpuMsPerGiB: round(benchMs / gib),
    benchSleepsPerMiB: x0 !== undefined && x1 !== undefined ? round((x1 - x0) / (gib * 1024), 2) : null,
    relayCpuMsPerGiB: round(relayMs / gib),
    relaySystemShare: relayMs > 0 ? round((r1.cpuSystemUs - r0.cpuSystemUs) / 1000 / relayMs) : 0,
    relayReads: readsBetween(r0.readPorts, r1.readPorts),
    referenceCpuMsPerGiB: round(refMs / gib),
    referenceSystemShare: refMs > 0 ? round((p1.cpuSystemUs - p0.cpuSystemUs) / 1000 / refMs) : 0,
    nodeReadsCpuMsPerGiB: round(nodeReadsMs / gib),
    otherCores: m0 && m1 ? round((m1.busy - m0.busy - benchMs - relayMs - refMs - nodeReadsMs) / ms) : null,
    stealCores: m0 && m1 ? round((m1.steal - m0.steal) / ms) : null,
  };
}

/** pollBetween is the difference of two reply-poll counters (null when the relay does not poll). */
function pollBetween(a: ReplyPollStats | undefined, b: ReplyPollStats | undefined): ReplyPollStats | null {
  if (!a || !b) return null;
  return {
    polls: b.polls - a.polls,
    answered: b.answered - a.answered,
    expired: b.expired - a.expired,
    overBudget: b.overBudget - a.overBudget,
    polledMs: round(b.polledMs - a.polledMs, 1),
  };
}

/** readsBetween summarises the relay child's read counters between two stats (FloodRun.relayReads). */
function readsBetween(a: ReadPortStats | undefined, b: ReadPortStats | undefined): FloodRun["relayReads"] {
  if (!a || !b) return null;
  const bytes = b.lentBytes - a.lentBytes + b.scratchBytes - a.scratchBytes;
  const reads = b.lentReads - a.lentReads + b.scratchReads - a.scratchReads;
  return {
    perMiB: bytes > 0 ? round(reads / (bytes / 2 ** 20)) : 0,
    lentShare: bytes > 0 ? round((b.lentBytes - a.lentBytes) / bytes) : 0,
    pins: b.pins - a.pins,
    overBudget: b.overBudget - a.overBudget,
  };
}

/**
 * othersDuring runs `fn` and says how many cores the rest of the machine used meanwhile, as in
 * FloodRun: machine busy time minus the CPU of this process and of `children`, per wall second.
 */
async function othersDuring<T>(
  children: Child[],
  fn: () => Promise<T>,
): Promise<{ value: T; otherCores: number | null; stealCores: number | null }> {
  const k0 = await Promise.all(children.map((c) => c.stats()));
  const m0 = machineCpuMs();
  const c0 = process.cpuUsage();
  const t0 = performance.now();
  const value = await fn();
  const ms = performance.now() - t0;
  const c = process.cpuUsage(c0);
  const m1 = machineCpuMs();
  const k1 = await Promise.all(children.map((ch) => ch.stats()));
  const ownMs = (c.user + c.system + k1.reduce((a, k, i) => a + k.cpuUs - k0[i]!.cpuUs, 0)) / 1000;
  return {
    value,
    otherCores: m0 && m1 ? round((m1.busy - m0.busy - ownMs) / ms) : null,
    stealCores: m0 && m1 ? round((m1.steal - m0.steal) / ms) : null,
  };
}

type Echo = () => Promise<number>;
type EchoStats = { p50: number; p99: number; mean: number };

function echoStats(xs: number[]): EchoStats {
  const s = [...xs].sort((a, b) => a - b);
  return {
    p50: round(s[Math.floor(s.length * 0.5)]!, 4),
    p99: round(s[Math.floor(s.length * 0.99)]!, 4),
    mean: round(s.reduce((a, b) => a + b, 0) / s.length, 4),
  };
}

async function echoRun(echo: Echo, n: number): Promise<number[]> {
  const xs: number[] = [];
  for (let i = 0; i < n; i++) xs.push(await echo());
  return xs;
}

/** EchoComparison is one direct-vs-relay echo comparison (see `compareEchoes`). */
interface EchoComparison {
  direct: EchoStats;
  relay: EchoStats;
  /** Per block: relay p50 minus direct p50 (ms). */
  blockAddedP50Ms: number[];
  /** The median of `blockAddedP50Ms`. */
  addedP50Ms: number;
  /** Relay p99 minus direct p99 over all blocks pooled. */
  addedP99Ms: number;
  /**
   * The relay process's CPU per relayed round trip (µs, user + system, warm-up included): its own
   * work on an echo, apart from the time spent waking processes up.
   */
  relayCpuUsPerEcho: number;
  /**
   * The relay's reply poll over the comparison (src/controller/replypoll.ts): polls started, ended by
   * the reply, ended at the window or budget, requests refused for budget, and the ms spent polling.
   */
  replyPoll: ReplyPollStats | null;
}

/**
 * compareEchoes measures sequential ECHO round trips on each (direct, relay) pair of paths in ECHO_BLOCKS
 * blocks of ECHO_BLOCK echoes, the order of the paths alternating from block to block (and the pairs
 * run one after the other within a block), so that a burst of load from elsewhere on the machine hits
 * direct and relay blocks alike. The added latency is the median of the per-block differences of p50s.
 */
async function compareEchoes(
  pairs: { direct: Echo; relay: Echo; relayChild: Child }[],
): Promise<EchoComparison[]> {
  const samples = pairs.map(() => ({ direct: [] as number[], relay: [] as number[], added: [] as number[] }));
  const cpu0 = await Promise.all(pairs.map((p) => p.relayChild.stats()));
  for (const p of pairs) {
    await echoRun(p.direct, ECHO_WARMUP); // warm-up: JIT, socket buffers
    await echoRun(p.relay, ECHO_WARMUP);
  }
  for (let b = 0; b < ECHO_BLOCKS; b++) {
    for (const [k, p] of pairs.entries()) {
      const order = (b + k) % 2 === 0 ? (["direct", "relay"] as const) : (["relay", "direct"] as const);
      const block = { direct: [] as number[], relay: [] as number[] };
      for (const path of order) block[path] = await echoRun(p[path], ECHO_BLOCK);
      samples[k]!.direct.push(...block.direct);
      samples[k]!.relay.push(...block.relay);
      samples[k]!.added.push(echoStats(block.relay).p50 - echoStats(block.direct).p50);
    }
  }
  const cpu1 = await Promise.all(pairs.map((p) => p.relayChild.stats()));
  return samples.map((s, k) => {
    const direct = echoStats(s.direct);
    const relay = echoStats(s.relay);
    return {
      direct,
      relay,
      blockAddedP50Ms: s.added.map((x) => round(x, 4)),
      addedP50Ms: round(median(s.added), 4),
      addedP99Ms: round(relay.p99 - direct.p99, 4),
      relayCpuUsPerEcho: round(
        (cpu1[k]!.cpuUs - cpu0[k]!.cpuUs) / (ECHO_WARMUP + ECHO_BLOCKS * ECHO_BLOCK),
        1,
      ),
      replyPoll: pollBetween(cpu0[k]!.replyPoll, cpu1[k]!.replyPoll),
    };
  });
}

async function relayCost(): Promise<Record<string, unknown>> {
  // Echo latency, as deployed: switch, relay and upstream controller each in its own process (the
  // upstream child plays rfproxy). Secondary: the same with the upstream in this process, as the
  // flood below runs it.
  const upChild = await spawnUpstream();
  const up = new Upstream();
  await up.listen();
  const relayOpts = (upstreamPort: number): ControllerOptions => ({
    listen: { host: "127.0.0.1", port: 0 },
    mode: "relay",
    upstream: { host: "127.0.0.1", port: upstreamPort },
    echoIntervalMs: 60_000,
  });
  const relayToChild = await spawnController(relayOpts(upChild.port));
  // The same relay with reply polling off (relayReplyPollUs 0), beside it: what polling buys and costs.
  const noPollToChild = await spawnController({ ...relayOpts(upChild.port), relayReplyPollUs: 0 });
  const { child, port: relayPort } = await spawnController(relayOpts(up.port));
  const directSep = await openSession(upChild.port);
  const relayedSep = await openSession(relayToChild.port);
  const directNoPoll = await openSession(upChild.port);
  const relayedNoPoll = await openSession(noPollToChild.port);
  const direct = await openSession(up.port);
  const relayed = await openSession(relayPort);
  const echoLoad = await othersDuring([relayToChild.child, noPollToChild.child, child, upChild.child], () =>
    compareEchoes([
      { direct: directSep.echo, relay: relayedSep.echo, relayChild: relayToChild.child },
      { direct: direct.echo, relay: relayed.echo, relayChild: child },
      { direct: directNoPoll.echo, relay: relayedNoPoll.echo, relayChild: noPollToChild.child },
    ]),
  );
  const [sep, inProc, noPoll] = echoLoad.value;
  directSep.sock.destroy();
  relayedSep.sock.destroy();
  directNoPoll.sock.destroy();
  relayedNoPoll.sock.destroy();
  await relayToChild.child.close();
  await noPollToChild.child.close();
  await upChild.child.close();
  // Floods: the sender and the upstream in this process, each forwarder in its own (a core of its own
  // on a 2-core machine): the rfboot relay and the reference forwarder (bench/lib/pipe-child.ts: `pipe`
  // both ways, no parsing), the cheapest relay Node can be. Spawned after the echoes so that it cannot
  // disturb them. TRIPLES triples (direct, relay, reference), the order rotating from triple to triple
  // so that machine noise hits all three paths alike; each ratio is the median of the per-triple
  // ratios. Each forwarder's own CPU time per GiB is measured in every run.
  const ref = await spawnReference(up.port);
  const referenced = await openSession(ref.port);
  const legacy = await spawnController({ ...relayOpts(up.port), relayReusesReadMemory: false });
  const legacyRelayed = await openSession(legacy.port);
  const fw: Forwarders = { relay: child, reference: ref.child, nodeReads: legacy.child };
  const socks = {
    direct: direct.sock,
    relay: relayed.sock,
    reference: referenced.sock,
    nodeReads: legacyRelayed.sock,
  };
  const paths = ["direct", "relay", "reference", "nodeReads"] as const;
  type Path = (typeof paths)[number];
  const runs: Record<Path, FloodRun[]> = { direct: [], relay: [], reference: [], nodeReads: [] };
  const orders: Path[][] = [];
  // Warm-up, not counted: JIT, socket buffers, heap growth.
  for (const path of paths) await flood(socks[path], up, fw, 64);
  for (let i = 0; i < TRIPLES; i++) {
    const order = paths.map((_, k) => paths[(i + k) % paths.length]!);
    orders.push(order);
    for (const path of order) runs[path].push(await flood(socks[path], up, fw));
  }
  const perTriple = (a: Path, b: Path) => runs[a].map((x, i) => x.msgsPerSec / runs[b][i]!.msgsPerSec);
  const ratios = perTriple("relay", "direct");
  const refRatios = perTriple("reference", "direct");
  const relayVsRef = perTriple("relay", "reference");
  const nodeReadsRatios = perTriple("nodeReads", "direct");
  const relayVsNodeReads = perTriple("relay", "nodeReads");
  const relayCpu = median(runs.relay.map((x) => x.relayCpuMsPerGiB));
  const refCpu = median(runs.reference.map((x) => x.referenceCpuMsPerGiB));
  const nodeReadsCpu = median(runs.nodeReads.map((x) => x.nodeReadsCpuMsPerGiB));
  const quietIdx = ratios
    .map((_, i) => i)
    .filter((i) => paths.every((path) => (runs[path][i]!.otherCores ?? 1) < QUIET_CORES));
  const quietMedian = (xs: number[]) =>
    quietIdx.length ? round(median(quietIdx.map((i) => xs[i]!)), 3) : null;
  const medianRate = (path: Path) => round(median(runs[path].map((x) => x.msgsPerSec)));
  /** A compared forwarder's summary: its median rate, per-round and median ratio to direct, CPU per GiB. */
  const againstDirect = (path: Path, note: string, toDirect: number[], cpuMsPerGiB: number) => ({
    note,
    medianMsgsPerSec: medianRate(path),
    // Per round: this path / direct.
    pairRatios: toDirect.map((x) => round(x, 3)),
    ratio: round(median(toDirect), 3),
    cpuMsPerGiB,
  });
  direct.sock.destroy();
  relayed.sock.destroy();
  referenced.sock.destroy();
  legacyRelayed.sock.destroy();
  await child.close();
  await ref.child.close();
  await legacy.child.close();
  await up.close();
  return {
    echo: {
      method:
        "sequential ECHO_REQUEST -> ECHO_REPLY; switch (this process), relay and upstream each in its own " +
        `process; ${ECHO_BLOCKS} alternating blocks of ${ECHO_BLOCK} echoes per path`,
      blocks: ECHO_BLOCKS,
      echoesPerBlock: ECHO_BLOCK,
      ...sep,
      otherCores: echoLoad.otherCores,
      stealCores: echoLoad.stealCores,
    },
    echoAddedP50Ms: sep!.addedP50Ms,
    echoAddedP99Ms: sep!.addedP99Ms,
    echoWithoutReplyPoll: {
      method:
        "the target figure's setup with relayReplyPollUs 0 (the relay sleeps between messages), its " +
        "blocks interleaved with the others: what polling for replies buys and costs",
      ...noPoll,
    },
    echoInProcessUpstream: {
      method:
        "secondary, not the target figure: the upstream runs in the switch's process, so the direct " +
        "round trip wakes no other process while the relayed one wakes two (four wake-ups)",
      ...inProc,
    },
    flood: {
      method:
        "sender and upstream in this process, each forwarder in its own; rounds of four paths (direct, " +
        "relay, reference pipe, relay with Node's read buffers), order rotating",
      messageBytes: PKT,
      mibPerRun: FLOOD_MB,
      // Kept from the pair and triple layouts: the number of rounds (now four paths each).
      pairs: TRIPLES,
      triples: TRIPLES,
      rounds: TRIPLES,
      tripleOrders: orders,
      directMedianMsgsPerSec: medianRate("direct"),
      relayMedianMsgsPerSec: medianRate("relay"),
      runs,
      // Per triple: relay / direct (the judged ratio's samples).
      pairRatios: ratios.map((x) => round(x, 3)),
      // Per triple: otherCores of the direct, relay and reference runs.
      pairOtherCores: runs.direct.map((d, i) => [
        d.otherCores,
        runs.relay[i]!.otherCores,
        runs.reference[i]!.otherCores,
      ]),
      quietPairs: {
        note: `rounds where the rest of the machine used < ${QUIET_CORES} cores in every run; informative only`,
        n: quietIdx.length,
        ratioMedian: quietMedian(ratios),
        referenceRatioMedian: quietMedian(refRatios),
        relayVsReferenceMedian: quietMedian(relayVsRef),
      },
      reference: againstDirect(
        "reference",
        "bench/lib/pipe-child.ts: sock.pipe(up); up.pipe(sock), no parsing: the cheapest Node relay, " +
          "in its own process as the rfboot relay is",
        refRatios,
        refCpu,
      ),
      // Per triple: relay / reference.
      relayVsReferencePairRatios: relayVsRef.map((x) => round(x, 3)),
      nodeReads: {
        ...againstDirect(
          "nodeReads",
          "the same rfboot relay with relayReusesReadMemory false: Node's 'data' events, a fresh buffer " +
            "per read (the relay before src/controller/readport.ts), in its own process",
          nodeReadsRatios,
          nodeReadsCpu,
        ),
        // Per round: relay / nodeReads (throughput gained by reusing read memory).
        relayVsNodeReadsPairRatios: relayVsNodeReads.map((x) => round(x, 3)),
        relayVsNodeReads: round(median(relayVsNodeReads), 3),
        // The relay's CPU per GiB over this one's (same run).
        relayCpuShare: round(relayCpu / nodeReadsCpu, 3),
      },
      benchCpuMsPerGiB: {
        direct: round(median(runs.direct.map((x) => x.benchCpuMsPerGiB))),
        relay: round(median(runs.relay.map((x) => x.benchCpuMsPerGiB))),
        reference: round(median(runs.reference.map((x) => x.benchCpuMsPerGiB))),
        nodeReads: round(median(runs.nodeReads.map((x) => x.benchCpuMsPerGiB))),
      },
    },
    throughputRatio: round(median(ratios), 3),
    referenceRatio: round(median(refRatios), 3),
    relayVsReference: round(median(relayVsRef), 3),
    relayCpuMsPerGiB: relayCpu,
    referenceCpuMsPerGiB: refCpu,
    relayCpuBoundMsgsPerSec: round(2 ** 30 / PKT / (relayCpu / 1000)),
    loadAverage: (await import("node:os")).loadavg().map((x) => round(x)),
    targets: { throughputRatioMin: 0.9, echoAddedP50MsMax: 0.2 },
  };
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2;
}

function medianOf(runs: FloodRun[], key: "otherCores" | "stealCores"): string {
  const xs = runs.map((x) => x[key]).filter((x): x is number => x !== null);
  return xs.length ? String(round(median(xs))) : "n/a";
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
    echo: EchoComparison & { otherCores: number | null };
    echoInProcessUpstream: EchoComparison;
    echoWithoutReplyPoll: EchoComparison;
    flood: {
      directMedianMsgsPerSec: number;
      relayMedianMsgsPerSec: number;
      pairRatios: number[];
      runs: { direct: FloodRun[]; relay: FloodRun[]; reference: FloodRun[] };
      quietPairs: {
        n: number;
        ratioMedian: number | null;
        referenceRatioMedian: number | null;
        relayVsReferenceMedian: number | null;
      };
      reference: { medianMsgsPerSec: number; pairRatios: number[]; cpuMsPerGiB: number };
      relayVsReferencePairRatios: number[];
      nodeReads: {
        medianMsgsPerSec: number;
        pairRatios: number[];
        ratio: number;
        cpuMsPerGiB: number;
        relayVsNodeReads: number;
        relayCpuShare: number;
      };
      benchCpuMsPerGiB: { direct: number; relay: number; reference: number; nodeReads: number };
    };
    throughputRatio: number;
    referenceRatio: number;
    relayVsReference: number;
    relayCpuMsPerGiB: number;
    referenceCpuMsPerGiB: number;
    relayCpuBoundMsgsPerSec: number;
    loadAverage: number[];
  };
  const e = r.echo;
  const ei = r.echoInProcessUpstream;
  const en = r.echoWithoutReplyPoll;
  const rows: [string, string][] = [
    [`handshake: ${hs.switches} switches up`, `${hs.totalMs} ms (${hs.perSwitchMs} ms/switch)`],
    ["controller RSS per connection", `${hs.rssPerConnectionKiB} KiB (heap ${hs.heapPerConnectionKiB} KiB)`],
    ["echo RTT direct p50 / p99 (upstream own proc)", `${e.direct.p50} / ${e.direct.p99} ms`],
    ["echo RTT relay  p50 / p99 (upstream own proc)", `${e.relay.p50} / ${e.relay.p99} ms`],
    [
      "echo p50 added by relay (median of blocks)",
      `${e.addedP50Ms} ms (target < 0.2) blocks ${e.blockAddedP50Ms.join(" ")}`,
    ],
    ["relay CPU per relayed echo", `${e.relayCpuUsPerEcho} µs (${ei.relayCpuUsPerEcho} µs in the secondary)`],
    [
      "relay reply poll during echoes",
      e.replyPoll
        ? `${e.replyPoll.polls} polls, ${e.replyPoll.answered} answered, ${e.replyPoll.expired} expired, ` +
          `${e.replyPoll.overBudget} over budget, ${e.replyPoll.polledMs} ms polling`
        : "off",
    ],
    [
      "same relay, reply polling off: p50 added",
      `${en.addedP50Ms} ms (blocks ${en.blockAddedP50Ms.join(" ")}); relay CPU per echo ${en.relayCpuUsPerEcho} µs`,
    ],
    ["secondary, upstream in the switch's process:", ""],
    [
      "  echo RTT direct / relay p50",
      `${ei.direct.p50} / ${ei.relay.p50} ms (p99 ${ei.direct.p99} / ${ei.relay.p99})`,
    ],
    [
      "  echo p50 added (2 more wake-ups, not target)",
      `${ei.addedP50Ms} ms blocks ${ei.blockAddedP50Ms.join(" ")}`,
    ],
    [`packet-in flood (${PKT} B) direct, median`, `${r.flood.directMedianMsgsPerSec} msg/s`],
    [`packet-in flood (${PKT} B) relay, median`, `${r.flood.relayMedianMsgsPerSec} msg/s`],
    [`packet-in flood (${PKT} B) reference pipe, median`, `${r.flood.reference.medianMsgsPerSec} msg/s`],
    [
      "relay/direct throughput (median of triples)",
      `${r.throughputRatio} (target >= 0.9) triples ${r.flood.pairRatios.join(" ")}`,
    ],
    [
      "reference/direct (cheapest Node relay)",
      `${r.referenceRatio} triples ${r.flood.reference.pairRatios.join(" ")}`,
    ],
    ["relay/reference", `${r.relayVsReference} triples ${r.flood.relayVsReferencePairRatios.join(" ")}`],
    [
      `  quiet triples only (others < ${QUIET_CORES} cores)`,
      `relay/direct ${r.flood.quietPairs.ratioMedian ?? "n/a"} reference/direct ` +
        `${r.flood.quietPairs.referenceRatioMedian ?? "n/a"} relay/reference ` +
        `${r.flood.quietPairs.relayVsReferenceMedian ?? "n/a"} (${r.flood.quietPairs.n} of ${r.flood.pairRatios.length})`,
    ],
    [
      "relay CPU per GiB forwarded",
      `${r.relayCpuMsPerGiB} ms (CPU-bound ceiling ${r.relayCpuBoundMsgsPerSec} msg/s)`,
    ],
    ["reference pipe CPU per GiB forwarded", `${r.referenceCpuMsPerGiB} ms`],
    [
      "relay with Node's read buffers (before)",
      `${r.flood.nodeReads.ratio} of direct, ${r.flood.nodeReads.cpuMsPerGiB} ms CPU per GiB; ` +
        `relay/it ${r.flood.nodeReads.relayVsNodeReads}, relay CPU ${r.flood.nodeReads.relayCpuShare} of it`,
    ],
    [
      "bench process CPU per GiB (sender + upstream)",
      `direct ${r.flood.benchCpuMsPerGiB.direct} relay ${r.flood.benchCpuMsPerGiB.relay} ` +
        `reference ${r.flood.benchCpuMsPerGiB.reference} nodeReads ${r.flood.benchCpuMsPerGiB.nodeReads} ms`,
    ],
    ["cores used by others during echoes", String(e.otherCores ?? "n/a")],
    [
      "cores used by others during floods, median",
      `direct ${medianOf(r.flood.runs.direct, "otherCores")} relay ${medianOf(r.flood.runs.relay, "otherCores")} ` +
        `reference ${medianOf(r.flood.runs.reference, "otherCores")} ` +
        `(steal ${medianOf(r.flood.runs.relay, "stealCores")})`,
    ],
    ["load average during the run", r.loadAverage.join(" ")],
  ];
  const w = Math.max(...rows.map(([a]) => a.length));
  for (const [a, b] of rows) console.log(`${a.padEnd(w)}  ${b}`);
  console.log(`\nwritten: ${OUT}`);
}

await main();
