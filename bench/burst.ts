/**
 * bench/burst.ts: N switches joining at once -> N test-driver VMs defined and started, rfboot's way (the
 * provisioning queue with a per-host start limit, DomainManager.ensureRunning, persistent virsh shells)
 * against the seed-style procedure (a sequential shell loop of `virsh destroy; undefine; define; start` per
 * VM, each a separate virsh process), on the same machine in the same run. Also rfboot's way with the spawn
 * runner (one virsh process per call), to separate the gain of the shells from that of concurrency.
 *
 *   node --import tsx bench/burst.ts             (64 and 256 VMs; JSON to bench/out/burst.json + a table)
 *   RFBOOT_BURST_SIZES=16,64 ...                 (other sizes)
 *
 * Each run gets a fresh private libvirtd (test/helpers/libvirt-hosts.ts: test driver over a unix socket in
 * its own mount namespace), so runs do not see each other's domains and the machine's libvirtd is untouched.
 * "Done" = `virsh list --state-running` on the host shows every VM of the run.
 */
import { execFile } from "node:child_process";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
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
}

async function main(): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), "rfbtv-burst-"));
  const results: SizeResult[] = [];
  try {
    for (const n of SIZES) {
      const seed = await withHost(`seed${n}`, (h) => seedStyle(h, n, dir));
      const shell = new VirshShellRunner({ shellsPerUri: SHELLS_PER_HOST });
      const viaShell = await withHost(`sh${n}`, (h) => rfbootWay(h, n, shell.run)).finally(() =>
        shell.close(),
      );
      const viaSpawn = await withHost(`sp${n}`, (h) => rfbootWay(h, n, createSpawnRunner()));
      const r2 = (x: number) => Math.round(x * 100) / 100;
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
      });
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
    target: "rfboot >= 10x faster than the seed-style loop at 256 VMs",
    results,
  };
  mkdirSync(dirname(OUT), { recursive: true });
  writeFileSync(OUT, JSON.stringify(result, null, 2) + "\n");
  console.log(`burst benchmark (${process.version}; test driver; start limit ${MAX_CONCURRENT_STARTS}/host)`);
  const head = ["VMs", "seed-style loop", "rfboot (shells)", "speedup", "rfboot (spawn)", "speedup"];
  const rows = results.map((r) => [
    String(r.vms),
    `${r.seedStyleMs} ms`,
    `${r.rfbootShellMs} ms`,
    `${r.speedupShell}x`,
    `${r.rfbootSpawnMs} ms`,
    `${r.speedupSpawn}x`,
  ]);
  const w = head.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  for (const r of [head, ...rows]) console.log(r.map((c, i) => c.padStart(w[i]!)).join("  "));
  console.log(`wrote ${OUT}`);
}

await main();
