/**
 * bench/lxc.ts: real LXC VMs, join to `ready`, through the real Daemon (OpenFlow controller, placement,
 * queue, lifecycle, console stream, FerretDB) with simulated OpenFlow 1.3 switches on loopback. Not a test.
 *
 *   node --import tsx bench/lxc.ts [--quick]      (JSON to bench/out/lxc.json + a table; needs the lab up:
 *                                                 libvirtd with LXC, its cgroup2 mount, OVS, FerretDB, the
 *                                                 rftest guest's rootfs in /var/lib/rfboot/guest/rootfs-lxc)
 *   RFBOOT_LXC_JOINS=16 RFBOOT_LXC_BURST=64        (defaults; --quick: 8 and 16; BURST=0 runs the joins only)
 *   RFBOOT_LXC_VIRSH=shell                         (default: virsh shells, as `rfboot run` drives virsh;
 *                                                 `spawn`: one virsh process per call, the Daemon's default)
 *   RFBOOT_LXC_SPLITS=1                            (also print every join's split on stderr)
 *
 * Each VM is the rftest guest's busybox rootfs (`/init` prints the boot marker on the console), with its
 * management NIC on a Linux bridge and one data NIC on an Open vSwitch bridge (netdev), as RouteFlow's dp0.
 * 1. Joins in a row: one switch at a time, each waits for its VM's `ready` (console marker read through
 *    libvirt's console stream). Per join: rfboot's own time (FEATURES_REPLY -> `virsh start` issued, the
 *    daemon's reaction), libvirt's (start issued -> the domain runs, `ensured`), the guest's (runs -> marker
 *    seen, `ready`), and the whole join -> ready; p50 and p99. `splitP50Ms` cuts each join finer, in order
 *    (each part runs from the end of the previous one, so they add up): controller -> `joined`, the lease
 *    claim, `domstate`, `define`, `start`, the console's attach (virsh console's banner ended), the marker
 *    line, `ready`; beside them when the guest printed its marker (its /proc/uptime, which an LXC guest
 *    shares with the host; 10 ms steps) after the start returned, and how long that line took to reach rfboot.
 * 2. A burst: BURST switches at once -> every VM ready, against the seed-style loop in the same run (each
 *    VM `virsh define` then `virsh start`, one after the other, a virsh process per call, the same XML) timed
 *    until every domain runs; the daemon's figure to every VM running is reported beside its figure to ready.
 */
import { execFile } from "node:child_process";
import { randomBytes } from "node:crypto";
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { loadavg, tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { readFileSync } from "node:fs";
import { MongoClient } from "mongodb";
import { silentLogger } from "../src/common/log.js";
import {
  Daemon,
  MongoStore,
  VirshShellRunner,
  controllerFromConfig,
  createSpawnRunner,
  listConfiguredVms,
  parseConfig,
  type RfbootConfig,
  type VirshRunner,
} from "../src/provisioner/index.js";
import { watchDomainConsole } from "../src/provisioner/libvirt/console.js";
import type { DomainConsoleWatch } from "../src/provisioner/vm-readiness.js";
import { buildDomainXml } from "../src/xmlgen/index.js";
import { summary } from "./lib/instrument.js";
import { freePort } from "../test/helpers/real.js";
import { connectSimSwitch, type SimSwitch } from "./lib/sim-switch.js";

const pexec = promisify(execFile);
const OUT = join(dirname(fileURLToPath(import.meta.url)), "out", "lxc.json");
const QUICK = process.argv.includes("--quick");
const JOINS = Number(process.env.RFBOOT_LXC_JOINS ?? (QUICK ? 8 : 16));
const BURST = Number(process.env.RFBOOT_LXC_BURST ?? (QUICK ? 16 : 64));
const MONGO_URI = process.env.RFBOOT_BENCH_MONGO_URI ?? "mongodb://127.0.0.1:27017";
const GUEST = process.env.RFBOOT_GUEST_DIR ?? "/var/lib/rfboot/guest";
const LXC = "lxc:///system";
const TAG = randomBytes(2).toString("hex");
const DATA = `rfbtxd${TAG}`;
const MGMT = `rfbtxm${TAG}`;
const ENV = { ...process.env, LC_ALL: "C" };
const r2 = (x: number) => Math.round(x * 100) / 100;

const virsh = (args: string[]) => pexec("virsh", ["-c", LXC, ...args], { env: ENV });
const quiet = (cmd: string, args: string[]) => pexec(cmd, args, { env: ENV }).catch(() => undefined);
const vmName = (set: string, i: number) => `rfbtx${TAG}${set}${String(i).padStart(3, "0")}`;
const dpidOf = (set: string, i: number) =>
  0xc7_0000_0000n + (BigInt(Number.parseInt(TAG, 16)) << 12n) + (set === "b" ? 0x800n : 0n) + BigInt(i);
const hex16 = (d: bigint) => d.toString(16).padStart(16, "0");
const vmIdOf = (set: string, i: number) => {
  const b = (x: number) => x.toString(16).padStart(2, "0");
  const t = Number.parseInt(TAG, 16);
  return `02:c7:${b(t >> 8)}:${b(t & 0xff)}:${b(set === "b" ? 0x80 | (i >> 8) : i >> 8)}:${b(i & 0xff)}`;
};

function config(set: string, n: number, port: number, db: string, stateDir: string): RfbootConfig {
  const lines = Array.from(
    { length: n },
    (_, i) =>
      `  "0x${hex16(dpidOf(set, i))}": { name: ${vmName(set, i)}, vmId: "${vmIdOf(set, i)}", dataPorts: 1 }`,
  );
  return parseConfig(
    `
stateDir: ${stateDir}
openflow: { mode: listen, listen: { host: 127.0.0.1, port: ${port} }, versions: ["1.3"] }
mongo: { uri: "${MONGO_URI}", database: ${db} }
hosts:
  # The machine's own pool (libvirt keeps one pool per directory): the VMs here have no disk.
  - { name: lxc, uri: "${LXC}", maxVms: ${n + 8}, maxConcurrentStarts: 8, storageDir: /var/lib/rfboot/disks, consoleLogDir: /var/lib/rfboot/console }
defaults:
  hypervisor: lxc
  memoryMiB: 64
  boot: { type: init, init: /init, args: ["rfboot.name={name}"], rootfs: ${GUEST}/rootfs-lxc }
  network:
    management: { type: bridge, bridge: ${MGMT} }
    data: { bridge: ${DATA}, openvswitch: true }
datapaths:
${lines.join("\n")}
policies: { leave: { action: keep } }
readiness: { timeoutSeconds: 120 }
`,
    { format: "yaml", source: "bench/lxc" },
  );
}

interface Marks {
  ensuredAt?: number;
  reactionMs?: number;
  readyAt?: number;
}

/** Step is one timed call made for a VM on its way to `ready` (virsh, MongoDB). */
interface Step {
  what: string;
  t0: number;
  t1: number;
}

/** Trace is what happened for one VM, on this process's clock (performance.now()). */
interface Trace {
  steps: Step[];
  joinedAt?: number;
  /** consoleAt: readiness asked for the console; attachedAt: virsh console's banner ended. */
  consoleAt?: number;
  attachedAt?: number;
  /** markerAt: the marker line reached rfboot; consoleDoneAt: the watch settled (console released). */
  markerAt?: number;
  consoleDoneAt?: number;
  /** printedAt: the guest's own `uptime=` in its marker line, moved onto this process's clock. */
  printedAt?: number;
}

/** uptimeOffsetMs maps /proc/uptime (which an LXC guest shares with the host) onto performance.now(). */
function uptimeOffsetMs(): number {
  const up = Number(readFileSync("/proc/uptime", "utf8").split(" ")[0]) * 1000;
  return up - performance.now();
}

/** Tracer collects a Trace per VM name from a wrapped virsh runner, store and console watch. */
class Tracer {
  readonly byVm = new Map<string, Trace>();
  /** others: virsh calls that name no VM (the pool check before a first define, the event loop). */
  readonly others: Step[] = [];
  private readonly vmOfDpid = new Map<string, string>();
  private readonly names = new Set<string>();
  private readonly offset = uptimeOffsetMs();

  constructor(cfg: RfbootConfig) {
    for (const vm of listConfiguredVms(cfg)) {
      this.vmOfDpid.set(vm.dpidHex, vm.name);
      this.names.add(vm.name);
    }
  }

  of(vm: string): Trace {
    let t = this.byVm.get(vm);
    if (!t) this.byVm.set(vm, (t = { steps: [] }));
    return t;
  }

  /** vmIn: the configured VM an argument names (itself, or the XML file `define` is given for it). */
  private vmIn(arg: string): string | undefined {
    if (this.names.has(arg)) return arg;
    const stem = /\/([^/]+)-[0-9a-f]{8}\.xml$/.exec(arg)?.[1];
    return stem !== undefined && this.names.has(stem) ? stem : undefined;
  }

  ofDpid(dpidHex: string): Trace | undefined {
    const vm = this.vmOfDpid.get(dpidHex);
    return vm ? this.of(vm) : undefined;
  }

  /** runner times every virsh call that names one of the configured VMs. */
  runner(run: VirshRunner): VirshRunner {
    return async (uri, args, opts) => {
      const t0 = performance.now();
      try {
        return await run(uri, args, opts);
      } finally {
        const name = args.map((a) => this.vmIn(a)).find((v) => v !== undefined);
        const step = { what: `virsh ${args[0] ?? ""}`, t0, t1: performance.now() };
        if (name) this.of(name).steps.push(step);
        else this.others.push(step);
      }
    };
  }

  /** store times the lease claim and rfconfig upsert (the store calls awaited before the start). */
  store(store: MongoStore): MongoStore {
    const claim = store.claim.bind(store);
    store.claim = async (dpidHex, owner, ttlMs, now) => {
      const t0 = performance.now();
      try {
        return await claim(dpidHex, owner, ttlMs, now);
      } finally {
        this.ofDpid(dpidHex)?.steps.push({ what: "mongo claim", t0, t1: performance.now() });
      }
    };
    return store;
  }

  /** console wraps the console watch: when it was asked for, attached, saw the marker, and let go. */
  console(watch: DomainConsoleWatch = watchDomainConsole): DomainConsoleWatch {
    return async (o) => {
      const tr = this.of(o.domain);
      const t0 = performance.now();
      tr.consoleAt = t0;
      const seen = (m: { line?: string; elapsedMs?: number }) => {
        if (m.elapsedMs !== undefined) tr.markerAt = t0 + m.elapsedMs;
        const up = /uptime=([\d.]+)/.exec(m.line ?? "")?.[1];
        if (up !== undefined) tr.printedAt = Number(up) * 1000 - this.offset;
      };
      const m = (await watch({
        ...o,
        onAttached: () => {
          tr.attachedAt = performance.now();
          o.onAttached?.();
        },
        onMatch: (x) => {
          seen(x);
          o.onMatch?.(x);
        },
      })) as { line?: string; elapsedMs?: number };
      tr.consoleDoneAt = performance.now();
      seen(m);
      return m;
    };
  }
}

/** VIRSH: `shell` drives virsh as `rfboot run` does (long-lived virsh shells); `spawn`, a process per call. */
const VIRSH = process.env.RFBOOT_LXC_VIRSH ?? "shell";

/** startDaemon runs a Daemon for `set` and records, per dpid, when its VM ran and was ready. */
async function startDaemon(set: string, n: number) {
  const stateDir = mkdtempSync(join(tmpdir(), "rfbtx-"));
  const db = `rfbt_lxc_${TAG}_${set}`;
  const port = await freePort();
  const cfg = config(set, n, port, db, stateDir);
  const instanceId = `bench-lxc-${set}`;
  const tracer = new Tracer(cfg);
  const shells = VIRSH === "shell" ? new VirshShellRunner({ shellsPerUri: 4 }) : undefined;
  const store = tracer.store(
    await MongoStore.open({
      uri: MONGO_URI,
      database: db,
      prefix: `${cfg.mongo.collectionPrefix}_`,
      owner: instanceId,
      logger: silentLogger,
      stateDir,
      rfconfigConflicts: cfg.policies.rfconfigConflicts,
    }),
  );
  const daemon = new Daemon({
    config: cfg,
    logger: silentLogger,
    instanceId,
    store,
    runner: tracer.runner(shells ? shells.run : createSpawnRunner()),
    domainConsole: tracer.console(),
    createController: controllerFromConfig,
  });
  const marks = new Map<string, Marks>();
  const mark = (d: string) => marks.get(d) ?? (marks.set(d, {}), marks.get(d)!);
  daemon.on("joined", (e) => {
    const tr = tracer.ofDpid(e.dpidHex);
    if (tr) tr.joinedAt = performance.now();
  });
  daemon.on("ensured", (e) =>
    Object.assign(mark(e.dpidHex), { ensuredAt: performance.now(), reactionMs: e.reactionMs }),
  );
  daemon.on("ready", (e) => (mark(e.dpidHex).readyAt = performance.now()));
  daemon.on("failed", (e) => console.error(`bench/lxc: ${e.dpidHex} failed: ${e.error.message}`));
  await daemon.start();
  // A daemon that has been up a moment: its configured VMs' domains and leases readied ahead of their joins
  // (policies.defineAhead and leaseAhead, the defaults).
  await daemon.idle();
  return { daemon, port, marks, cfg, db, stateDir, tracer, shells, store };
}

async function until(what: string, fn: () => boolean, timeoutMs: number): Promise<void> {
  const end = performance.now() + timeoutMs;
  while (!fn()) {
    if (performance.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

async function cleanDomains(prefix: string): Promise<void> {
  const { stdout } = await virsh(["list", "--all", "--name"]);
  const names = stdout.split("\n").filter((l) => l.startsWith(prefix));
  await Promise.all(
    names.map(async (d) => {
      await quiet("virsh", ["-c", LXC, "destroy", d]);
      await quiet("virsh", ["-c", LXC, "undefine", d]);
    }),
  );
}

async function stopDaemon(r: Awaited<ReturnType<typeof startDaemon>>, switches: SimSwitch[]): Promise<void> {
  for (const s of switches) s.close();
  await r.daemon.stop();
  await r.shells?.close();
  const c = await MongoClient.connect(MONGO_URI);
  await c
    .db(r.db)
    .dropDatabase()
    .catch(() => undefined);
  await c.close();
  rmSync(r.stateDir, { recursive: true, force: true });
}

/** Split is one join cut into consecutive parts (ms), plus the guest's own moments. */
type Split = Record<string, number>;

/**
 * splitOf cuts one join (FEATURES_REPLY at `t0`) into consecutive parts from its trace: each is the time
 * from the end of the previous mark to the end of its own, so the parts add up to the join's total.
 */
function splitOf(t0: number, m: Marks, tr: Trace, others: readonly Step[]): Split {
  // The join's own calls: those made ahead of it (domains and leases ahead, at start-up) are not its parts.
  const step = (what: string) => tr.steps.find((x) => x.what === what && x.t0 >= t0);
  const start = step("virsh start");
  const claim = step("mongo claim");
  const state = step("virsh domstate");
  const define = step("virsh define");
  const out: Split = {};
  let at = t0;
  const to = (k: string, t: number | undefined) => {
    if (t === undefined) return;
    out[k] = r2(t - at);
    at = t;
  };
  to("controllerToJoined", tr.joinedAt);
  if (claim) {
    to("toClaim", claim.t0);
    to("leaseClaim", claim.t1);
  }
  const pool = others.filter((x) => x.t0 >= at && start && x.t1 <= start.t0);
  if (pool.length > 0) out.poolCalls = r2(pool.reduce((a, x) => a + x.t1 - x.t0, 0));
  if (state) {
    to("toDomstate", state.t0);
    to("domstate", state.t1);
  }
  if (define) {
    to("toDefine", define.t0);
    to("define", define.t1);
  }
  if (start) {
    to("toStart", start.t0);
    to("virshStart", start.t1);
  }
  to("toEnsured", m.ensuredAt);
  // An LXC console is prepared before the start (virsh connects meanwhile): not a part after it.
  if (tr.consoleAt !== undefined && tr.consoleAt < at && start) {
    out.consolePreparedBeforeStart = r2(start.t0 - tr.consoleAt);
  } else to("toConsole", tr.consoleAt);
  to("consoleAttach", tr.attachedAt);
  to("toMarker", tr.markerAt);
  to("markerToReady", m.readyAt);
  out.consoleReleased = r2((tr.consoleDoneAt ?? NaN) - (tr.markerAt ?? NaN));
  // The guest's own clock (/proc/uptime, 10 ms steps): when it printed the marker, from the start's return,
  // and how long the line took from the guest to rfboot.
  if (start && tr.printedAt !== undefined && tr.markerAt !== undefined) {
    out.printedAfterStart = r2(tr.printedAt - start.t1);
    out.printedToSeen = r2(tr.markerAt - tr.printedAt);
  }
  return out;
}

/** splitSummary gives the p50 of every part over the joins. */
function splitSummary(splits: readonly Split[]): Record<string, number> {
  const keys = [...new Set(splits.flatMap((x) => Object.keys(x)))];
  return Object.fromEntries(
    keys.map((k) => [k, summary(splits.map((x) => x[k]).filter((v): v is number => v !== undefined)).p50!]),
  );
}

async function joinsInARow(): Promise<Record<string, unknown>> {
  const r = await startDaemon("a", JOINS);
  const switches: SimSwitch[] = [];
  const own: number[] = [];
  const libvirt: number[] = [];
  const guest: number[] = [];
  const total: number[] = [];
  const splits: Split[] = [];
  try {
    for (let i = 0; i < JOINS; i++) {
      const d = hex16(dpidOf("a", i));
      const s = await connectSimSwitch(r.port, dpidOf("a", i), 1);
      switches.push(s);
      const t0 = await s.featuresAt;
      await until(`${d} ready`, () => r.marks.get(d)?.readyAt !== undefined, 120_000);
      const m = r.marks.get(d)!;
      const tr = r.tracer.of(vmName("a", i));
      // The console's release follows `ready`: wait for it, so the next join does not run beside it.
      await until(`${d} console released`, () => tr.consoleDoneAt !== undefined, 10_000);
      const startIssued = t0 + (m.reactionMs ?? 0);
      own.push(m.reactionMs ?? 0);
      libvirt.push(m.ensuredAt! - startIssued);
      guest.push(m.readyAt! - m.ensuredAt!);
      total.push(m.readyAt! - t0);
      splits.push(splitOf(t0, m, tr, r.tracer.others));
    }
  } finally {
    await stopDaemon(r, switches);
    await cleanDomains(`rfbtx${TAG}a`);
  }
  if (process.env.RFBOOT_LXC_SPLITS) console.error(JSON.stringify(splits));
  return {
    joins: JOINS,
    virsh: VIRSH,
    joinToReadyMs: summary(total),
    rfbootOwnMs: summary(own),
    libvirtMs: summary(libvirt),
    guestMs: summary(guest),
    splitP50Ms: splitSummary(splits),
  };
}

async function seedLoop(cfg: RfbootConfig, dir: string): Promise<number> {
  const host = cfg.hosts[0]!;
  const vms = listConfiguredVms(cfg);
  const files = vms.map((vm) => {
    const f = join(dir, `${vm.name}.xml`);
    writeFileSync(f, buildDomainXml(vm.describe(host)));
    return f;
  });
  const t0 = performance.now();
  for (const [i, vm] of vms.entries()) {
    await virsh(["define", files[i]!]);
    await virsh(["start", vm.name]);
  }
  return performance.now() - t0;
}

async function burst(): Promise<Record<string, unknown>> {
  // The seed-style loop first, on its own VMs (set "s"), then removed; then rfboot's burst (set "b").
  const dir = mkdtempSync(join(tmpdir(), "rfbtx-seed-"));
  let seedMs: number;
  try {
    seedMs = await seedLoop(config("s", BURST, 1, "unused", dir), dir);
  } finally {
    await cleanDomains(`rfbtx${TAG}s`);
    rmSync(dir, { recursive: true, force: true });
  }
  const r = await startDaemon("b", BURST);
  const switches: SimSwitch[] = [];
  let runningMs: number;
  let readyMs: number;
  try {
    const t0 = performance.now();
    switches.push(
      ...(await Promise.all(
        Array.from({ length: BURST }, (_, i) => connectSimSwitch(r.port, dpidOf("b", i), 1)),
      )),
    );
    const all = (k: keyof Marks) => () =>
      [...r.marks.values()].filter((m) => m[k] !== undefined).length >= BURST;
    await until("every VM running", all("ensuredAt"), 300_000);
    runningMs = performance.now() - t0;
    await until("every VM ready", all("readyAt"), 300_000);
    readyMs = performance.now() - t0;
  } finally {
    await stopDaemon(r, switches);
    await cleanDomains(`rfbtx${TAG}b`);
  }
  return {
    vms: BURST,
    seedLoopToRunningMs: r2(seedMs),
    rfbootToRunningMs: r2(runningMs),
    rfbootToReadyMs: r2(readyMs),
    speedupToRunning: r2(seedMs / runningMs),
    perVmRfbootMs: r2(runningMs / BURST),
    perVmSeedMs: r2(seedMs / BURST),
  };
}

async function main(): Promise<void> {
  if (!existsSync(join(GUEST, "rootfs-lxc", "init")))
    throw new Error(`the rftest guest's LXC rootfs is missing in ${GUEST}: run rftest/guest/build-guest.sh`);
  await pexec("ip", ["link", "add", MGMT, "type", "bridge"]);
  await pexec("ip", ["link", "set", MGMT, "up"]);
  await pexec("ovs-vsctl", ["add-br", DATA, "--", "set", "bridge", DATA, "datapath_type=netdev"]);
  const load0 = loadavg().map(r2);
  try {
    const row = await joinsInARow();
    const b = BURST > 0 ? await burst() : undefined;
    const result = {
      bench: "lxc",
      date: new Date().toISOString(),
      load: { before: load0, after: loadavg().map(r2) },
      joinsInARow: row,
      burst: b,
    };
    mkdirSync(dirname(OUT), { recursive: true });
    writeFileSync(OUT, `${JSON.stringify(result, null, 2)}\n`);
    console.log(JSON.stringify(result, null, 2));
    console.log(`wrote ${OUT}`);
  } finally {
    await quiet("ovs-vsctl", ["--if-exists", "del-br", DATA]);
    await quiet("ip", ["link", "del", MGMT]);
  }
}

await main();
