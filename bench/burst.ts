/**
 * bench/burst.ts: N switches joining at once -> N test-driver VMs defined and started, rfboot's way (the
 * provisioning queue with a per-host start limit, DomainManager.ensureRunning, persistent virsh shells)
 * against the seed-style procedure (a sequential shell loop of `virsh destroy; undefine; define; start` per
 * VM, each a separate virsh process), on the same machine in the same run. Also rfboot's way with the spawn
 * runner (one virsh process per call), to separate the gain of the shells from that of concurrency.
 *
 *   node --import tsx bench/burst.ts             (64 and 256 VMs; JSON to bench/out/burst.json + a table)
 *   RFBOOT_BURST_SIZES=64,256,1024 ...           (other sizes; 1,024 takes about 5 minutes, the loops most of it)
 *
 * Per size the JSON also has the time per VM of each way against the smallest size (`perVmVsSmallest`: 1 means
 * the cost per VM does not grow with N), the latency of each virsh command rfboot's way sent through the shells
 * (`shellCalls`: count, median, p90, total), and, with the N VMs still defined and running, bare virsh calls
 * on the same host (`bareCalls`: 20 each of `domstate` as a process of its own and through a shell, and of the
 * full listing): what grows with N inside libvirt's test driver rather than in rfboot.
 *
 * Each run gets a fresh private libvirtd (test/helpers/libvirt-hosts.ts: test driver over a unix socket in
 * its own mount namespace), so runs do not see each other's domains and the machine's libvirtd is untouched.
 * "Done" = `virsh list --state-running` on the host shows every VM of the run.
 */
import { execFile } from "node:child_process";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { loadavg, tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { DomainManager } from "../src/provisioner/libvirt/lifecycle.js";
import { ActionQueue } from "../src/provisioner/queue.js";
import { createSpawnRunner, VirshShellRunner, type VirshRunner } from "../src/provisioner/libvirt/virsh.js";
import { startLibvirtHost, stopLibvirtHost, type LibvirtTestHost } from "../test/helpers/libvirt-hosts.js";
import { testDomains } from "./lib/test-domains.js";

const pexec = promisify(execFile);
const OUT = join(dirname(fileURLToPath(import.meta.url)), "out", "burst.json");
const SIZES = (process.env.RFBOOT_BURST_SIZES ?? "64,256").split(",").map(Number);
/** Per-host start limit (config maxConcurrentStarts) and shells per host used by rfboot's run. */
const MAX_CONCURRENT_STARTS = 8;
const SHELLS_PER_HOST = 4;

const { name, uuid, xml, runningCount } = testDomains("b");

/** seedStyle: what RouteFlow-era scripts do: a sequential shell loop, four virsh processes per VM. */
async function seedStyle(host: LibvirtTestHost, n: number, dir: string): Promise<number> {
  for (let i = 0; i < n; i++) writeFileSync(join(dir, `${name(i)}.xml`), xml(i));
  const script = [
    `for i in $(seq 0 ${n - 1}); do`,
    `  n=$(printf 'rfbtv-b%04d' "$i")`,
    `  virsh -c "$URI" destroy "$n" >/dev/null 2>&1`,
    `  virsh -c "$URI" undefine "$n" >/dev/null 2>&1`,
    `  virsh -c "$URI" define "$DIR/$n.xml" >/dev/null`,
    `  virsh -c "$URI" start "$n" >/dev/null`,
    `done`,
  ].join("\n");
  const t0 = performance.now();
  await pexec("bash", ["-c", script], {
    env: { ...process.env, LC_ALL: "C", URI: host.testUri, DIR: dir },
    maxBuffer: 1 << 24,
  });
  const ms = performance.now() - t0;
  const c = await runningCount(host.testUri);
  if (c !== n) throw new Error(`seed-style: ${c}/${n} running`);
  return ms;
}

/** CallTimes collects the latency of each virsh command (ms), by command name. */
type CallTimes = Map<string, number[]>;

/** timed wraps a runner so that every call's latency lands in `times` under its command name. */
function timed(run: VirshRunner, times: CallTimes): VirshRunner {
  return async (uri, args, opts) => {
    const t0 = performance.now();
    try {
      return await run(uri, args, opts);
    } finally {
      const ms = performance.now() - t0;
      const key = args[0] ?? "?";
      let list = times.get(key);
      if (!list) times.set(key, (list = []));
      list.push(ms);
    }
  };
}

const r2 = (x: number) => Math.round(x * 100) / 100;
function quantile(xs: readonly number[], q: number): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor(q * s.length))] ?? 0;
}
function summary(xs: readonly number[]) {
  return {
    count: xs.length,
    medianMs: r2(quantile(xs, 0.5)),
    p90Ms: r2(quantile(xs, 0.9)),
    totalMs: Math.round(xs.reduce((a, b) => a + b, 0)),
  };
}

/**
 * bareCalls times plain virsh calls on a host holding the run's N VMs: `domstate` of one of them as its own
 * process (a fresh connection each time, as the seed-style loop and the spawn runner pay) and through a
 * persistent shell, and the full listing. 20 each, after 2 warm-up calls.
 */
async function bareCalls(host: LibvirtTestHost, n: number, shell: VirshRunner) {
  const env = { ...process.env, LC_ALL: "C" };
  const time20 = async (call: () => Promise<unknown>) => {
    const times: number[] = [];
    for (let i = 0; i < 22; i++) {
      const t0 = performance.now();
      await call();
      if (i >= 2) times.push(performance.now() - t0);
    }
    return summary(times);
  };
  return {
    domstateSpawned: await time20(() =>
      pexec("virsh", ["-c", host.testUri, "domstate", name(n - 1)], { env }),
    ),
    domstateShell: await time20(() => shell(host.testUri, ["domstate", name(n - 1)])),
    listAllShell: await time20(() => shell(host.testUri, ["list", "--all", "--name"])),
  };
}

/** rfbootWay: every join submitted at once to the queue; ensureRunning per VM with a per-host start limit. */
async function rfbootWay(
  host: LibvirtTestHost,
  n: number,
  run: VirshRunner,
): Promise<{ ms: number; peak: number }> {
  const mgr = new DomainManager({ host: { name: host.name, uri: host.testUri }, run });
  let live = 0;
  let peak = 0;
  const q = new ActionQueue<string, number>({
    classify: () => ({ host: host.name, limited: true }),
    hostLimit: () => MAX_CONCURRENT_STARTS,
    handler: async (vm, i) => {
      live++;
      peak = Math.max(peak, live);
      try {
        return await mgr.ensureRunning({ name: vm, uuid: uuid(i), xml: xml(i) });
      } finally {
        live--;
      }
    },
  });
  // Warm-up outside the timing: the daemon holds its shells open long before a burst arrives.
  await run(host.testUri, ["uri"]);
  const t0 = performance.now();
  const outs = await Promise.all(Array.from({ length: n }, (_, i) => q.submit(name(i), i)));
  const ms = performance.now() - t0;
  await mgr.dispose();
  const failed = outs.filter((o) => o.status !== "done");
  if (failed.length) throw new Error(`rfboot: ${failed.length} failed: ${JSON.stringify(failed[0])}`);
  const c = await runningCount(host.testUri);
  if (c !== n) throw new Error(`rfboot: ${c}/${n} running`);
  return { ms, peak };
}

async function withHost<T>(tag: string, fn: (h: LibvirtTestHost) => Promise<T>): Promise<T> {
  const h = await startLibvirtHost(`rfbtv-burst-${tag}-${process.pid}`);
  try {
    return await fn(h);
  } finally {
    await stopLibvirtHost(h);
  }
}

interface SizeResult {
  vms: number;
  seedStyleMs: number;
  rfbootShellMs: number;
  rfbootSpawnMs: number;
  speedupShell: number;
  speedupSpawn: number;
  peakConcurrentStarts: number;
  perVmMs: { seedStyle: number; rfbootShell: number; rfbootSpawn: number };
  perVmVsSmallest: { seedStyle: number; rfbootShell: number; rfbootSpawn: number };
  shellCalls: Record<string, ReturnType<typeof summary>>;
  bareCalls: Awaited<ReturnType<typeof bareCalls>>;
  /** loadavg1: the 1-minute load average when the size was done. */
  loadavg1: number;
}

async function main(): Promise<void> {
  const loadBefore = r2(loadavg()[0]!);
  const dir = mkdtempSync(join(tmpdir(), "rfbtv-burst-"));
  const results: SizeResult[] = [];
  try {
    for (const n of SIZES) {
      const seed = await withHost(`seed${n}`, (h) => seedStyle(h, n, dir));
      const shell = new VirshShellRunner({ shellsPerUri: SHELLS_PER_HOST });
      const times: CallTimes = new Map();
      const { viaShell, bare } = await withHost(`sh${n}`, async (h) => ({
        viaShell: await rfbootWay(h, n, timed(shell.run, times)),
        bare: await bareCalls(h, n, shell.run),
      })).finally(() => shell.close());
      const viaSpawn = await withHost(`sp${n}`, (h) => rfbootWay(h, n, createSpawnRunner()));
      results.push({
        vms: n,
        seedStyleMs: Math.round(seed),
        rfbootShellMs: Math.round(viaShell.ms),
        rfbootSpawnMs: Math.round(viaSpawn.ms),
        speedupShell: r2(seed / viaShell.ms),
        speedupSpawn: r2(seed / viaSpawn.ms),
        peakConcurrentStarts: Math.max(viaShell.peak, viaSpawn.peak),
        perVmMs: {
          seedStyle: r2(seed / n),
          rfbootShell: r2(viaShell.ms / n),
          rfbootSpawn: r2(viaSpawn.ms / n),
        },
        perVmVsSmallest: { seedStyle: 0, rfbootShell: 0, rfbootSpawn: 0 },
        shellCalls: Object.fromEntries([...times].map(([cmd, xs]) => [cmd, summary(xs)])),
        bareCalls: bare,
        loadavg1: r2(loadavg()[0]!),
      });
      const first = results[0]!.perVmMs;
      const last = results[results.length - 1]!;
      last.perVmVsSmallest = {
        seedStyle: r2(last.perVmMs.seedStyle / first.seedStyle),
        rfbootShell: r2(last.perVmMs.rfbootShell / first.rfbootShell),
        rfbootSpawn: r2(last.perVmMs.rfbootSpawn / first.rfbootSpawn),
      };
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  const result = {
    bench: "burst",
    date: new Date().toISOString(),
    node: process.version,
    driver: "test (private libvirtd per run, test+unix socket)",
    maxConcurrentStarts: MAX_CONCURRENT_STARTS,
    shellsPerHost: SHELLS_PER_HOST,
    target:
      "rfboot >= 10x faster than the seed-style loop at 256 VMs; per VM at the largest size <= 1.5x the smallest",
    loadavg1: { before: loadBefore, after: r2(loadavg()[0]!) },
    results,
  };
  mkdirSync(dirname(OUT), { recursive: true });
  writeFileSync(OUT, JSON.stringify(result, null, 2) + "\n");
  console.log(`burst benchmark (${process.version}; test driver; start limit ${MAX_CONCURRENT_STARTS}/host)`);
  const head = [
    "VMs",
    "seed-style loop",
    "rfboot (shells)",
    "speedup",
    "per VM (vs smallest)",
    "rfboot (spawn)",
    "speedup",
    "bare domstate spawned / shell",
  ];
  const rows = results.map((r) => [
    String(r.vms),
    `${r.seedStyleMs} ms`,
    `${r.rfbootShellMs} ms`,
    `${r.speedupShell}x`,
    `${r.perVmMs.rfbootShell} ms (${r.perVmVsSmallest.rfbootShell}x)`,
    `${r.rfbootSpawnMs} ms`,
    `${r.speedupSpawn}x`,
    `${r.bareCalls.domstateSpawned.medianMs} / ${r.bareCalls.domstateShell.medianMs} ms`,
  ]);
  const w = head.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  for (const r of [head, ...rows]) console.log(r.map((c, i) => c.padStart(w[i]!)).join("  "));
  console.log(`wrote ${OUT}`);
}

await main();
