/**
 * bench/provisioner.ts: the provisioner measured end to end, through the real Daemon (OpenFlow controller,
 * placement, queue, lifecycle, MongoDB store) with simulated OpenFlow 1.3 switches on loopback.
 *
 *   node --import tsx bench/provisioner.ts [--quick]      (JSON to bench/out/provisioner.json + a table)
 *   RFBOOT_BENCH_ONLY=reaction,burst,resume               (run some parts only)
 *   RFBOOT_BENCH_BURST_SIZES=64,1024 RFBOOT_BENCH_BURST_SPAWN=0   (burst sizes; 0: no burst through the spawn runner)
 *
 * 1. Reaction: FEATURES_REPLY written by the switch -> `virsh start` issued, one join at a time, with three
 *    VirshRunners: a stub that answers at once (no libvirt: rfboot + MongoDB only), createSpawnRunner (one
 *    virsh process per call; the fallback when a shell cannot start) and VirshShellRunner (persistent virsh
 *    shells; what `rfboot run` uses). "Own time" is the reaction minus the awaited external calls on the way
 *    (MongoDB lease claim and rfconfig upsert, virsh domstate and define), measured per join.
 * 2. Burst: N switches connect at once; time until every VM runs (daemon's `ensured` for all N, checked with
 *    `virsh list`), against the seed-style procedure in the same run on the same machine: a sequential loop
 *    of `virsh destroy; undefine; define; start` per VM, each its own virsh process (no shell), XML from
 *    buildDomainXml of the same config. Test driver, a fresh private libvirtd per run
 *    (test/helpers/libvirt-hosts.ts), FerretDB for the daemon.
 * 3. Resume: the rftest guest under QEMU TCG on qemu:///system; cold boot (start -> boot marker on the
 *    console) against resume from managedsave (start -> first heartbeat line newer than the last one before
 *    the save), through DomainManager (what the daemon calls).
 * Never a timed test: figures depend on the machine and its load, which is recorded (os.loadavg).
 */
import { randomBytes } from "node:crypto";
import { execFile } from "node:child_process";
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  rmSync,
  truncateSync,
  writeFileSync,
} from "node:fs";
import { cpus, loadavg, tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { MongoClient } from "mongodb";
import { silentLogger } from "../src/common/log.js";
import {
  Daemon,
  DomainManager,
  MongoStore,
  controllerFromConfig,
  createSpawnRunner,
  listConfiguredVms,
  parseConfig,
  VirshShellRunner,
  type DaemonEvents,
  type RfbootConfig,
  type VirshRunner,
} from "../src/provisioner/index.js";
import { buildDomainXml } from "../src/xmlgen/index.js";
import { startLibvirtHost, stopLibvirtHost, type LibvirtTestHost } from "../test/helpers/libvirt-hosts.js";
import {
  CallLog,
  instrumentRunner,
  instrumentStore,
  nullStore,
  stubRunner,
  summary,
} from "./lib/instrument.js";
import { connectSimSwitch, type SimSwitch } from "./lib/sim-switch.js";

const pexec = promisify(execFile);
const OUT = join(dirname(fileURLToPath(import.meta.url)), "out", "provisioner.json");
const QUICK = process.argv.includes("--quick");
const MONGO_URI = process.env.RFBOOT_BENCH_MONGO_URI ?? "mongodb://127.0.0.1:27017";
const GUEST = process.env.RFBOOT_GUEST_DIR ?? "/var/lib/rfboot/guest";
const REACTION_JOINS = Number(process.env.RFBOOT_BENCH_JOINS ?? (QUICK ? 50 : 60));
const REACTION_WARMUP = 5;
/** RFBOOT_BENCH_GAP_MS: the pause between one join's start and the next join of the reaction (default 5 ms). */
const JOIN_GAP_MS = Number(process.env.RFBOOT_BENCH_GAP_MS ?? 5);
/** RFBOOT_BENCH_RUNNERS=none,shell picks the reaction's runners (default all five). */
const REACTION_RUNNERS = (process.env.RFBOOT_BENCH_RUNNERS ?? "none,stub,spawn,shell,shell-claim,shell-cold")
  .split(",")
  .filter((k): k is RunnerKind =>
    ["none", "stub", "spawn", "shell", "shell-claim", "shell-cold"].includes(k),
  );
const BURST_SIZES = process.env.RFBOOT_BENCH_BURST_SIZES
  ? process.env.RFBOOT_BENCH_BURST_SIZES.split(",").map(Number)
  : QUICK
    ? [64]
    : [64, 256];
/** maxConcurrentStarts of the bench host (RFBOOT_BENCH_STARTS overrides; default 8). */
const MAX_CONCURRENT_STARTS = Number(process.env.RFBOOT_BENCH_STARTS ?? 8);
const RESUME_REPS = 3;
/**
 * RFBOOT_BENCH_BURST_SPAWN=0 leaves out the burst through the spawn runner (at 1,024 switches it alone takes
 * minutes on a busy machine, and `rfboot run` uses the shells).
 */
const BURST_SPAWN = process.env.RFBOOT_BENCH_BURST_SPAWN !== "0";
/** RFBOOT_BENCH_ONLY=reaction,burst,resume runs only those parts (default all). */
const ONLY = new Set((process.env.RFBOOT_BENCH_ONLY ?? "reaction,burst,resume").split(","));
const TAG = randomBytes(2).toString("hex");
const ENV = { ...process.env, LC_ALL: "C" };
/** commandStats: MongoDB commands by name under RFBOOT_BENCH_DEBUG (count, summed duration in ms). */
const commandStats: Record<string, { n: number; ms: number }> = {};
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const r2 = (x: number) => Math.round(x * 100) / 100;
const load = () => loadavg().map(r2);

/** none: stub runner and no MongoDB (rfboot alone); stub: stub runner + FerretDB; spawn, shell: real virsh. */
/**
 * shell-claim: shell + FerretDB with policies.leaseAhead off (the lease is claimed at the join); shell-cold:
 * with policies.defineAhead off too (the domain is defined at the join).
 */
type RunnerKind = "none" | "stub" | "spawn" | "shell" | "shell-claim" | "shell-cold";
type EnsureOutcomeEvent = DaemonEvents["ensured"][0];

async function freePort(): Promise<number> {
  const { createServer } = await import("node:net");
  return new Promise((res) => {
    const s = createServer();
    s.listen(0, "127.0.0.1", () => {
      const a = s.address();
      s.close(() => res(typeof a === "object" && a ? a.port : 0));
    });
  });
}

const vmName = (i: number) => `rfbtp${TAG}${String(i).padStart(4, "0")}`;
const dpidOf = (i: number) => 0xb7_0000_0000n + (BigInt(Number.parseInt(TAG, 16)) << 16n) + BigInt(i);
const dpidHex = (i: number) => dpidOf(i).toString(16).padStart(16, "0");
const vmIdOf = (i: number) => {
  const b = (x: number) => x.toString(16).padStart(2, "0");
  const t = Number.parseInt(TAG, 16);
  return `02:b7:${b(t >> 8)}:${b(t & 0xff)}:${b(i >> 8)}:${b(i & 0xff)}`;
};

/** testConfig: n test-driver datapaths (2 data ports each) on one host with room for all of them. */
function testConfig(o: {
  n: number;
  uri: string;
  port: number;
  db: string;
  stateDir: string;
  defineAhead?: boolean;
  leaseAhead?: boolean;
}): RfbootConfig {
  const lines = Array.from(
    { length: o.n },
    (_, i) => `  "0x${dpidHex(i)}": { name: ${vmName(i)}, vmId: "${vmIdOf(i)}", dataPorts: 2 }`,
  );
  const yaml = `
stateDir: ${o.stateDir}
openflow: { mode: listen, listen: { host: 127.0.0.1, port: ${o.port} }, versions: ["1.3"] }
mongo: { uri: "${MONGO_URI}", database: ${o.db} }
hosts:
  - { name: h1, uri: "${o.uri}", maxVms: ${o.n + 8}, maxConcurrentStarts: ${MAX_CONCURRENT_STARTS} }
defaults: { hypervisor: test, memoryMiB: 64 }
datapaths:
${lines.join("\n")}
policies: { leave: { action: keep }, defineAhead: ${o.defineAhead ?? false}, leaseAhead: ${o.leaseAhead ?? false} }
readiness: { consoleMarker: null }
`;
  return parseConfig(yaml, { format: "yaml", source: "bench/provisioner" });
}

interface Rig {
  daemon: Daemon;
  log: CallLog;
  port: number;
  host?: LibvirtTestHost;
  db: string;
  stateDir: string;
  shell?: VirshShellRunner;
  ensured: Map<string, EnsureOutcomeEvent>;
  waiters: Map<string, (e: EnsureOutcomeEvent) => void>;
  failures: number;
}

async function startRig(
  kind: RunnerKind,
  n: number,
  label: string,
  noStore = false,
  monitor = false,
  ahead = false,
): Promise<Rig> {
  const host =
    kind === "stub" || kind === "none" ? undefined : await startLibvirtHost(`rfbtp-${label}-${process.pid}`);
  const stateDir = mkdtempSync(join(tmpdir(), "rfbtp-"));
  const db = `rfbt_bench_${TAG}_${label}`;
  const port = await freePort();
  const config = testConfig({
    n,
    uri: host?.testUri ?? "test:///default",
    port,
    db,
    stateDir,
    defineAhead: ahead && kind !== "shell-cold",
    leaseAhead: ahead && kind !== "shell-cold" && kind !== "shell-claim",
  });
  const log = new CallLog();
  let shell: VirshShellRunner | undefined;
  let base: VirshRunner;
  if (kind === "stub" || kind === "none") base = stubRunner();
  else if (kind === "spawn") base = createSpawnRunner();
  else {
    shell = new VirshShellRunner({ shellsPerUri: 4 });
    base = shell.run;
  }
  const instanceId = `bench-${label}`;
  const store =
    kind === "none" || noStore
      ? nullStore()
      : await MongoStore.open({
          uri: MONGO_URI,
          database: db,
          prefix: "rfboot_",
          owner: instanceId,
          logger: silentLogger,
          stateDir,
          ...(process.env.RFBOOT_BENCH_DEBUG || monitor ? { clientOptions: { monitorCommands: true } } : {}),
        });
  if (process.env.RFBOOT_BENCH_DEBUG && !(kind === "none" || noStore)) {
    // Debug only: MongoDB commands by name (count, total ms), printed with the progress lines.
    const client = (store as unknown as { client: import("mongodb").MongoClient }).client;
    const names = new Map<number, string>();
    client.on("commandStarted", (e) => {
      const coll: unknown = (e.command as Record<string, unknown>)[e.commandName];
      names.set(e.requestId, `${e.commandName} ${typeof coll === "string" ? coll : ""}`);
    });
    client.on("commandSucceeded", (e) => {
      const k = names.get(e.requestId) ?? e.commandName;
      names.delete(e.requestId);
      const c = (commandStats[k] ??= { n: 0, ms: 0 });
      c.n++;
      c.ms += e.duration;
    });
  }
  if (monitor && !(kind === "none" || noStore)) {
    // The commands sent between a FEATURES_REPLY and its `virsh start` are the round trips on the path.
    const client = (store as unknown as { client: import("mongodb").MongoClient }).client;
    client.on("commandStarted", (e) => {
      const coll: unknown = (e.command as Record<string, unknown>)[e.commandName];
      log.commands.push({
        t: performance.now(),
        what: `${e.commandName} ${typeof coll === "string" ? coll : ""}`,
      });
    });
  }
  instrumentStore(store, log);
  const daemon = new Daemon({
    config,
    store,
    runner: instrumentRunner(base, log),
    instanceId,
    createController: controllerFromConfig,
    watchLibvirtEvents: kind === "spawn" || kind.startsWith("shell"),
  });
  const rig: Rig = {
    daemon,
    log,
    port,
    ...(host ? { host } : {}),
    db,
    stateDir,
    ...(shell ? { shell } : {}),
    ensured: new Map(),
    waiters: new Map(),
    failures: 0,
  };
  daemon.on("ensured", (e) => {
    rig.ensured.set(e.dpidHex, e);
    rig.waiters.get(e.dpidHex)?.(e);
    rig.waiters.delete(e.dpidHex);
  });
  daemon.on("failed", () => rig.failures++);
  await daemon.start();
  // The daemon's shells and connections are warm long before switches arrive.
  if (host) await base(host.testUri, ["uri"]);
  return rig;
}

function ensuredOf(rig: Rig, dpid: string): Promise<EnsureOutcomeEvent> {
  const e = rig.ensured.get(dpid);
  if (e) return Promise.resolve(e);
  return new Promise((r) => rig.waiters.set(dpid, r));
}

async function stopRig(rig: Rig, switches: SimSwitch[]): Promise<void> {
  for (const s of switches) s.close();
  await rig.daemon.stop();
  await rig.shell?.close();
  if (rig.host) await stopLibvirtHost(rig.host);
  const c = await MongoClient.connect(MONGO_URI);
  await c
    .db(rig.db)
    .dropDatabase()
    .catch(() => undefined);
  await c.close();
  rmSync(rig.stateDir, { recursive: true, force: true });
}

async function runningCount(uri: string, prefix: string): Promise<number> {
  const { stdout } = await pexec("virsh", ["-c", uri, "list", "--name", "--state-running"], { env: ENV });
  return stdout.split("\n").filter((l) => l.startsWith(prefix)).length;
}

// ---- 1. reaction ---------------------------------------------------------------------------------------

interface ReactionResult {
  runner: RunnerKind;
  joins: number;
  /** reactionMs: switch's FEATURES_REPLY write -> `virsh start` issued (both timestamps in this process). */
  reactionMs: Record<string, number>;
  /** ownMs: reaction minus the awaited MongoDB and virsh calls on the way. */
  ownMs: Record<string, number>;
  /** waitedMs: time with an awaited external call in flight (claim, rfconfig upsert, domstate, define). */
  waitedMs: Record<string, number>;
  /** waitedByKindMs: per kind of external call, its time within the reaction per join (0 when absent). */
  waitedByKindMs: Record<string, Record<string, number>>;
  /** mongoCommands: MongoDB commands started within the reaction, per join; byName: total over the joins. */
  mongoCommands: { perJoin: Record<string, number>; byName: Record<string, number> };
  /** toJoinMs: FEATURES_REPLY written -> the daemon's `joined` event (TCP, framing, decoding, session). */
  toJoinMs: Record<string, number>;
  /** ownCpuMs: CPU time (user + system) this process used between FEATURES_REPLY and `virsh start`. */
  ownCpuMs: Record<string, number>;
  /** ownUserCpuMs: the user part only (the system part is mostly the kernel's loopback TCP to FerretDB). */
  ownUserCpuMs: Record<string, number>;
  /** daemonReactionMs: the daemon's own figure (`ensured.reactionMs`: its join event -> start issued). */
  daemonReactionMs: Record<string, number>;
  /** histogram: rfboot_reaction_seconds as the daemon's Metrics saw it (count, sum in ms). */
  histogram: { count: number; sumMs: number };
  failures: number;
}

async function reaction(kind: RunnerKind): Promise<ReactionResult> {
  const total = REACTION_WARMUP + REACTION_JOINS;
  // The reaction of a daemon that has been up a moment: its domains defined and its leases claimed ahead
  // (policies.defineAhead and leaseAhead, the defaults), but for shell-claim (leases claimed at the join) and
  // shell-cold (neither).
  const rig = await startRig(kind, total, `r${kind}`, false, true, true);
  await rig.daemon.idle();
  const switches: SimSwitch[] = [];
  const reactionMs: number[] = [];
  const ownMs: number[] = [];
  const waitedMs: number[] = [];
  const daemonMs: number[] = [];
  const toJoinMs: number[] = [];
  const cpuMs: number[] = [];
  const userMs: number[] = [];
  const byKind: Map<string, number>[] = [];
  const commandCounts: number[] = [];
  const byName: Record<string, number> = {};
  const joinedAt = new Map<string, number>();
  rig.daemon.on("joined", (e) => joinedAt.set(e.dpidHex, performance.now()));
  try {
    for (let i = 0; i < total; i++) {
      const sw = await connectSimSwitch(rig.port, dpidOf(i), 2);
      switches.push(sw);
      const tF = await sw.featuresAt;
      const tS = await rig.log.started(vmName(i));
      const e = await ensuredOf(rig, dpidHex(i));
      await rig.daemon.idle();
      // Let the fire-and-forget record writes of this join settle before the next one (RFBOOT_BENCH_GAP_MS).
      await sleep(JOIN_GAP_MS);
      if (i < REACTION_WARMUP) continue;
      const waited = rig.log.waitedBetween(tF, tS);
      reactionMs.push(tS - tF);
      waitedMs.push(waited);
      byKind.push(rig.log.waitedByKind(tF, tS));
      const commands = rig.log.commandsBetween(tF, tS);
      commandCounts.push(commands.length);
      if (process.env.RFBOOT_BENCH_DEBUG && i < REACTION_WARMUP + 8) {
        // Debug only: what happened on this join's path, ms after its FEATURES_REPLY.
        const at = (t: number) => (t - tF).toFixed(2);
        const seen = [
          ...rig.log.calls
            .filter((c) => c.t1 >= tF && c.t0 <= tS)
            .map((c) => `${at(c.t0)}-${at(c.t1)} ${c.what}`),
          ...rig.log.commands
            .filter((c) => c.t >= tF - 5 && c.t <= tS)
            .map((c) => `${at(c.t)} cmd ${c.what}`),
        ];
        console.error(
          `debug join ${i} (${kind}): start at ${at(tS)}\n  ${seen.sort((a, b) => parseFloat(a) - parseFloat(b)).join("\n  ")}`,
        );
      }
      for (const c of commands) byName[c] = (byName[c] ?? 0) + 1;
      ownMs.push(tS - tF - waited);
      daemonMs.push(e.reactionMs);
      toJoinMs.push((joinedAt.get(dpidHex(i)) ?? NaN) - tF);
      const c0 = sw.featuresCpu;
      const c1 = rig.log.startCpu.get(vmName(i));
      if (c0 && c1) {
        cpuMs.push((c1.user - c0.user + c1.system - c0.system) / 1000);
        userMs.push((c1.user - c0.user) / 1000);
      }
    }
    const h = (await rig.daemon.metrics.reactionSeconds.get()).values;
    const count = h.find((v) => v.metricName === "rfboot_reaction_seconds_count")?.value ?? 0;
    const sum = h.find((v) => v.metricName === "rfboot_reaction_seconds_sum")?.value ?? 0;
    return {
      runner: kind,
      joins: reactionMs.length,
      reactionMs: summary(reactionMs),
      ownMs: summary(ownMs),
      waitedMs: summary(waitedMs),
      waitedByKindMs: Object.fromEntries(
        [...new Set(byKind.flatMap((m) => [...m.keys()]))]
          .sort()
          .map((k) => [k, summary(byKind.map((m) => m.get(k) ?? 0))]),
      ),
      mongoCommands: { perJoin: summary(commandCounts), byName },
      toJoinMs: summary(toJoinMs),
      ownCpuMs: summary(cpuMs),
      ownUserCpuMs: summary(userMs),
      daemonReactionMs: summary(daemonMs),
      histogram: { count, sumMs: r2(sum * 1000) },
      failures: rig.failures,
    };
  } finally {
    await stopRig(rig, switches);
  }
}

// ---- 2. burst ------------------------------------------------------------------------------------------

async function seedStyle(n: number): Promise<number> {
  const host = await startLibvirtHost(`rfbtp-seed${n}-${process.pid}`);
  const dir = mkdtempSync(join(tmpdir(), "rfbtp-seed-"));
  try {
    const config = testConfig({ n, uri: host.testUri, port: 1, db: "unused", stateDir: dir });
    const hostCfg = config.hosts[0]!;
    const vms = listConfiguredVms(config);
    for (const vm of vms)
      writeFileSync(join(dir, `${vm.name}.xml`), buildDomainXml(vm.plan(hostCfg).description));
    const virsh = (args: string[]) => pexec("virsh", ["-c", host.testUri, ...args], { env: ENV });
    const t0 = performance.now();
    for (const vm of vms) {
      await virsh(["destroy", vm.name]).catch(() => undefined);
      await virsh(["undefine", vm.name]).catch(() => undefined);
      await virsh(["define", join(dir, `${vm.name}.xml`)]);
      await virsh(["start", vm.name]);
    }
    const ms = performance.now() - t0;
    const c = await runningCount(host.testUri, `rfbtp${TAG}`);
    if (c !== n) throw new Error(`seed-style: ${c}/${n} running`);
    return ms;
  } finally {
    await stopLibvirtHost(host);
    rmSync(dir, { recursive: true, force: true });
  }
}

interface BurstRun {
  ms: number;
  /** callsMs: the awaited external calls during the burst by kind (n, p50, p99 ...). */
  callsMs: Record<string, Record<string, number>>;
  reactionMs: Record<string, number>;
  failures: number;
}

async function burstDaemon(n: number, kind: RunnerKind, noStore = false): Promise<BurstRun> {
  const rig = await startRig(kind, n, `b${n}${kind}${noStore ? "n" : ""}`, noStore);
  const switches: SimSwitch[] = [];
  try {
    const all = Array.from({ length: n }, (_, i) => ensuredOf(rig, dpidHex(i)));
    const t0 = performance.now();
    switches.push(...(await Promise.all(all.map((_, i) => connectSimSwitch(rig.port, dpidOf(i), 2)))));
    const dbg = process.env.RFBOOT_BENCH_DEBUG
      ? setInterval(() => {
          const kinds: Record<string, number> = {};
          for (const c of rig.log.calls) kinds[c.what] = (kinds[c.what] ?? 0) + 1;
          console.error(
            "debug",
            rig.ensured.size,
            rig.failures,
            JSON.stringify(kinds),
            JSON.stringify(rig.daemon.store?.stats?.()),
            JSON.stringify(commandStats),
          );
        }, 500)
      : undefined;
    const outs = await Promise.all(all);
    clearInterval(dbg);
    const ms = performance.now() - t0;
    const bad = outs.filter((o) => o.action !== "defined+started");
    if (bad.length) throw new Error(`burst: ${bad.length} not defined+started: ${JSON.stringify(bad[0])}`);
    const c = await runningCount(rig.host!.testUri, `rfbtp${TAG}`);
    if (c !== n) throw new Error(`burst: ${c}/${n} running`);
    const kinds = new Map<string, number[]>();
    for (const c of [...rig.log.calls, ...rig.log.sideCalls]) {
      if (c.t0 < t0) continue;
      kinds.set(c.what, [...(kinds.get(c.what) ?? []), c.t1 - c.t0]);
    }
    const callsMs = Object.fromEntries([...kinds].map(([k, v]) => [k, summary(v)]));
    return { ms, callsMs, reactionMs: summary(outs.map((o) => o.reactionMs)), failures: rig.failures };
  } finally {
    await stopRig(rig, switches);
  }
}

// ---- 3. resume -----------------------------------------------------------------------------------------

interface BootSample {
  /** startMs: ensureRunning call -> returned (libvirt's start or restore). */
  startMs: number;
  /** readyMs: ensureRunning call -> the readiness line on the console. */
  readyMs: number;
}

async function resume(): Promise<{ cold: BootSample[]; resumed: BootSample[] } | { skipped: string }> {
  if (!existsSync(join(GUEST, "vmlinuz")) || !existsSync(join(GUEST, "initrd.gz")))
    return { skipped: `no rftest guest in ${GUEST} (rftest/guest/build-guest.sh)` };
  const mgmt = `rfbtpm${TAG}`;
  const data = `rfbtpd${TAG}`;
  const name = `rfbtpq${TAG}`;
  const stateDir = mkdtempSync(join(tmpdir(), "rfbtp-q-"));
  await pexec("ip", ["link", "add", mgmt, "type", "bridge"]);
  await pexec("ip", ["link", "set", mgmt, "up"]);
  await pexec("ovs-vsctl", ["add-br", data, "--", "set", "bridge", data, "datapath_type=netdev"]);
  const config = parseConfig(
    `
stateDir: ${stateDir}
hosts: [{ name: local, uri: "qemu:///system" }]
defaults:
  hypervisor: qemu
  memoryMiB: 128
  boot: { type: kernel, kernel: ${GUEST}/vmlinuz, initrd: ${GUEST}/initrd.gz, cmdline: "console=ttyS0 no_timer_check rfboot.name={name}" }
  network: { management: { type: bridge, bridge: ${mgmt} }, data: { bridge: ${data}, openvswitch: true } }
datapaths:
  "0x${TAG}": { name: ${name}, vmId: "02:b8:00:00:${TAG.slice(0, 2)}:${TAG.slice(2, 4)}", dataPorts: 2 }
`,
    { format: "yaml", source: "bench/provisioner resume" },
  );
  const hostCfg = config.hosts[0]!;
  mkdirSync(hostCfg.consoleLogDir, { recursive: true });
  const vm = listConfiguredVms(config)[0]!;
  const plan = vm.plan(hostCfg);
  const spec = { name, uuid: plan.description.uuid ?? "", xml: buildDomainXml(plan.description) };
  const consoleLog = plan.consoleLog!;
  const mgr = new DomainManager({ host: { name: "local", uri: "qemu:///system" }, run: createSpawnRunner() });
  const text = () => {
    try {
      return readFileSync(consoleLog, "latin1");
    } catch {
      return "";
    }
  };
  const beats = (t: string) => [...t.matchAll(/RFBOOT-HEARTBEAT n=(\d+)/g)].map((m) => Number(m[1]));
  const clearLog = () => {
    if (existsSync(consoleLog)) truncateSync(consoleLog, 0);
  };
  const waitFor = async (pred: (t: string) => boolean, what: string, ms = 180_000): Promise<number> => {
    const end = performance.now() + ms;
    while (performance.now() < end) {
      if (pred(text())) return performance.now();
      await sleep(10);
    }
    throw new Error(`resume bench: timed out waiting for ${what}`);
  };
  const cold: BootSample[] = [];
  const resumed: BootSample[] = [];
  const coldBoot = async () => {
    clearLog();
    const t0 = performance.now();
    const r = await mgr.ensureRunning(spec);
    const t1 = performance.now();
    if (r.restored) throw new Error("cold boot restored a saved image");
    const t2 = await waitFor((t) => t.includes("RFBOOT-GUEST-BOOTED"), "the boot marker");
    cold.push({ startMs: r2(t1 - t0), readyMs: r2(t2 - t0) });
  };
  try {
    await coldBoot();
    for (let k = 0; k < RESUME_REPS; k++) {
      await waitFor((t) => beats(t).length > 0, "a heartbeat before the save", 30_000);
      await sleep(300);
      const last = Math.max(...beats(text()));
      if ((await mgr.leave(name, "suspend")) !== "saved") throw new Error("managedsave did not save");
      const lastSaved = Math.max(last, ...beats(text()));
      clearLog();
      const t0 = performance.now();
      const r = await mgr.ensureRunning(spec);
      const t1 = performance.now();
      if (!r.restored) throw new Error("resume did not restore the saved image");
      const t2 = await waitFor((t) => beats(t).some((n) => n > lastSaved), "a heartbeat after the resume");
      if (text().includes("RFBOOT-GUEST-BOOTED")) throw new Error("the resumed guest booted again");
      resumed.push({ startMs: r2(t1 - t0), readyMs: r2(t2 - t0) });
    }
    for (let k = 1; k < RESUME_REPS; k++) {
      await mgr.leave(name, "destroy");
      await coldBoot();
    }
    return { cold, resumed };
  } finally {
    await mgr.remove(name).catch(() => undefined);
    await mgr.dispose();
    await pexec("ovs-vsctl", ["--if-exists", "del-br", data]).catch(() => undefined);
    await pexec("ip", ["link", "del", mgmt]).catch(() => undefined);
    rmSync(stateDir, { recursive: true, force: true });
  }
}

// ---- main ----------------------------------------------------------------------------------------------

const median = (xs: readonly number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
};

async function main(): Promise<void> {
  const started = new Date();
  const loadStart = load();
  console.error(`provisioner bench (${QUICK ? "quick" : "full"}); load ${loadStart.join(" ")}`);

  const reactions: ReactionResult[] = [];
  for (const k of ONLY.has("reaction") ? REACTION_RUNNERS : []) {
    console.error(`reaction: ${REACTION_JOINS} joins, runner ${k}`);
    reactions.push(await reaction(k));
  }
  const loadAfterReaction = load();

  const bursts = [];
  for (const n of ONLY.has("burst") ? BURST_SIZES : []) {
    console.error(`burst ${n}: seed-style loop`);
    const seed = await seedStyle(n);
    console.error(`burst ${n}: daemon with virsh shells`);
    const shell = await burstDaemon(n, "shell");
    if (BURST_SPAWN) console.error(`burst ${n}: daemon with one virsh process per call`);
    const spawn = BURST_SPAWN ? await burstDaemon(n, "spawn") : undefined;
    console.error(`burst ${n}: daemon with virsh shells and no MongoDB (null store), for the split`);
    const noStore = await burstDaemon(n, "shell", true);
    bursts.push({
      vms: n,
      seedStyleMs: Math.round(seed),
      daemonShellMs: Math.round(shell.ms),
      daemonSpawnMs: spawn ? Math.round(spawn.ms) : null,
      speedupShell: r2(seed / shell.ms),
      speedupSpawn: spawn ? r2(seed / spawn.ms) : null,
      daemonShellNoMongoMs: Math.round(noStore.ms),
      speedupShellNoMongo: r2(seed / noStore.ms),
      perVmMs: {
        seedStyle: r2(seed / n),
        daemonShell: r2(shell.ms / n),
        daemonSpawn: spawn ? r2(spawn.ms / n) : null,
        daemonShellNoMongo: r2(noStore.ms / n),
      },
      reactionUnderBurstMs: { shell: shell.reactionMs, spawn: spawn?.reactionMs ?? null },
      callsMs: { shell: shell.callsMs, spawn: spawn?.callsMs ?? null },
      failures: { shell: shell.failures, spawn: spawn?.failures ?? null },
      loadavg: load(),
    });
  }

  console.error(`resume: ${RESUME_REPS} cold boots and ${RESUME_REPS} resumes of the rftest guest (TCG)`);
  const res = ONLY.has("resume") ? await resume() : { skipped: "not selected (RFBOOT_BENCH_ONLY)" };
  const resumeOut =
    "skipped" in res
      ? res
      : {
          cold: res.cold,
          resumed: res.resumed,
          medianColdReadyMs: r2(median(res.cold.map((s) => s.readyMs))),
          medianResumeReadyMs: r2(median(res.resumed.map((s) => s.readyMs))),
          medianColdStartMs: r2(median(res.cold.map((s) => s.startMs))),
          medianResumeStartMs: r2(median(res.resumed.map((s) => s.startMs))),
          ratioReady: r2(median(res.cold.map((s) => s.readyMs)) / median(res.resumed.map((s) => s.readyMs))),
          loadavg: load(),
        };

  // rfboot's own time: the whole reaction when nothing external is there (runner "none"); with real peers
  // the reaction minus the awaited external calls.
  const alone = reactions.find((r) => r.runner === "none");
  const ownP50 = alone ? alone.reactionMs.p50! : Math.min(...reactions.map((r) => r.ownMs.p50!));
  const result = {
    bench: "provisioner",
    date: started.toISOString(),
    node: process.version,
    quick: QUICK,
    machine: {
      cpus: cpus().length,
      loadavgStart: loadStart,
      loadavgAfterReaction: loadAfterReaction,
      loadavgEnd: load(),
    },
    reaction: {
      what: "switch writes FEATURES_REPLY -> daemon issues `virsh start` (test driver, private libvirtd; one join at a time)",
      warmupJoins: REACTION_WARMUP,
      target: "p50 of rfboot's own time < 5 ms",
      ownP50Ms: ownP50,
      targetMet: ownP50 < 5,
      runnerKinds: {
        none: "stub runner + a null store: rfboot alone (no MongoDB, no libvirt)",
        stub: "stub runner + FerretDB",
        spawn: "createSpawnRunner (one virsh process per call) + FerretDB, test driver",
        shell: "VirshShellRunner (4 persistent virsh shells) + FerretDB, test driver",
      },
      runners: reactions,
    },
    burst: {
      what: "N switches connect at once -> all N VMs running (daemon: OpenFlow + Mongo + queue + lifecycle) vs the seed-style sequential virsh loop",
      maxConcurrentStarts: MAX_CONCURRENT_STARTS,
      target: "daemon >= 10x faster than the seed-style loop at 256 VMs",
      sizes: bursts,
    },
    resume: {
      what: "cold boot (start -> boot marker) vs managedsave resume (start -> first new heartbeat), rftest guest, QEMU TCG, qemu:///system",
      target: "resume >= 4x faster",
      ...resumeOut,
    },
  };
  mkdirSync(dirname(OUT), { recursive: true });
  writeFileSync(OUT, JSON.stringify(result, null, 2) + "\n");

  const table = (head: string[], rows: string[][]) => {
    const w = head.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
    for (const r of [head, ...rows]) console.log(r.map((c, i) => c.padStart(w[i]!)).join("  "));
  };
  console.log(`provisioner bench (${process.version}, ${cpus().length} cpus, load ${loadStart.join(" ")})`);
  console.log(`\nreaction: FEATURES_REPLY -> virsh start issued, ${REACTION_JOINS} joins (ms)`);
  table(
    [
      "runner",
      "p50",
      "p99",
      "own p50",
      "own p99",
      "CPU p50",
      "user CPU p50",
      "to join p50",
      "waited p50",
      "daemon p50",
    ],
    reactions.map((r) => [
      r.runner,
      String(r.reactionMs.p50),
      String(r.reactionMs.p99),
      String(r.ownMs.p50),
      String(r.ownMs.p99),
      String(r.ownCpuMs.p50),
      String(r.ownUserCpuMs.p50),
      String(r.toJoinMs.p50),
      String(r.waitedMs.p50),
      String(r.daemonReactionMs.p50),
    ]),
  );
  console.log(`\nreaction split: per kind of external call, p50 / p99 of its time per join (ms)`);
  const kinds = [...new Set(reactions.flatMap((r) => Object.keys(r.waitedByKindMs)))].sort();
  table(
    ["runner", ...kinds, "Mongo cmds p50", "p99"],
    reactions.map((r) => [
      r.runner,
      ...kinds.map((k) => {
        const s = r.waitedByKindMs[k];
        return s ? `${s.p50} / ${s.p99}` : "-";
      }),
      String(r.mongoCommands.perJoin.p50),
      String(r.mongoCommands.perJoin.p99),
    ]),
  );
  console.log(
    `\nburst: switches joining at once -> all VMs running (start limit ${MAX_CONCURRENT_STARTS}/host)`,
  );
  table(
    [
      "VMs",
      "seed-style",
      "daemon+shells",
      "speedup",
      "daemon+spawn",
      "speedup",
      "shells, no Mongo",
      "speedup",
    ],
    bursts.map((b) => [
      String(b.vms),
      `${b.seedStyleMs} ms`,
      `${b.daemonShellMs} ms`,
      `${b.speedupShell}x`,
      `${b.daemonSpawnMs} ms`,
      `${b.speedupSpawn}x`,
      `${b.daemonShellNoMongoMs} ms`,
      `${b.speedupShellNoMongo}x`,
    ]),
  );
  if (!("skipped" in resumeOut)) {
    console.log(`\nresume vs cold boot (median of ${RESUME_REPS}, ms)`);
    table(
      ["", "start returned", "guest ready"],
      [
        ["cold boot", String(resumeOut.medianColdStartMs), String(resumeOut.medianColdReadyMs)],
        ["resume", String(resumeOut.medianResumeStartMs), String(resumeOut.medianResumeReadyMs)],
        ["ratio", "", `${resumeOut.ratioReady}x`],
      ],
    );
  } else console.log(`\nresume: skipped (${resumeOut.skipped})`);
  console.log(`\nwrote ${OUT}`);
}

await main();
