/**
 * bench/capacity.ts: a burst of N joins (default 64) placed and started across two libvirt hosts against the
 * same burst on one host, in the same run. Each join is placed as the daemon places it (`place` over the
 * registry's capacities and the placements made so far, so the burst counts against each host), then queued
 * with the host's start limit and started by that host's DomainManager (persistent virsh shells). Also the
 * cost of a probe with the host figures (nodeinfo, nodememstats) against the bare domain listing.
 *
 *   node --import tsx bench/capacity.ts          (3 rounds of 64; JSON to bench/out/capacity.json + a table)
 *   RFBOOT_CAPACITY_VMS=128 RFBOOT_CAPACITY_ROUNDS=5 ...
 *
 * Every round gets fresh private libvirtd hosts (test/helpers/libvirt-hosts.ts: test driver over a unix
 * socket in its own mount namespace); the order of the two variants alternates between rounds. "Done" = every
 * ensure returned and `virsh list --state-running` on each host shows the VMs placed there.
 */
import { mkdirSync, writeFileSync } from "node:fs";
import { loadavg } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { HostRegistry, type HostSpec } from "../src/provisioner/libvirt/hosts.js";
import { DomainManager } from "../src/provisioner/libvirt/lifecycle.js";
import { VirshShellRunner } from "../src/provisioner/libvirt/virsh.js";
import { place, type KnownPlacement } from "../src/provisioner/placement.js";
import { ActionQueue } from "../src/provisioner/queue.js";
import { startLibvirtHost, stopLibvirtHosts, type LibvirtTestHost } from "../test/helpers/libvirt-hosts.js";
import { testDomains } from "./lib/test-domains.js";

const OUT = join(dirname(fileURLToPath(import.meta.url)), "out", "capacity.json");
const N = Number(process.env.RFBOOT_CAPACITY_VMS ?? 64);
const ROUNDS = Number(process.env.RFBOOT_CAPACITY_ROUNDS ?? 3);
/** Per-host start limit (config maxConcurrentStarts) and shells per host, as bench/burst.ts. */
const MAX_CONCURRENT_STARTS = 8;
const SHELLS_PER_HOST = 4;
const PROBES = 20;

const { name, uuid, xml, runningCount } = testDomains("c");

const median = (xs: readonly number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
};
const r2 = (x: number) => Math.round(x * 100) / 100;

interface BurstResult {
  hosts: number;
  ms: number;
  perHost: Record<string, number>;
  placeMs: number;
}

/** burst places and starts N VMs over `hosts` the daemon's way and returns the time to all running. */
async function burst(hosts: readonly LibvirtTestHost[]): Promise<BurstResult> {
  const shell = new VirshShellRunner({ shellsPerUri: SHELLS_PER_HOST, defaultTimeoutMs: 30_000 });
  const specs: HostSpec[] = hosts.map((h, i) => ({
    name: `h${i + 1}`,
    uri: h.testUri,
    maxVms: N,
    memoryMiB: N * 128,
    maxConcurrentStarts: MAX_CONCURRENT_STARTS,
    memoryReserveMiB: 256,
  }));
  const reg = new HostRegistry({ hosts: specs, run: shell.run });
  try {
    // The daemon has probed its hosts and holds its shells open long before a burst arrives.
    await reg.probeAll();
    await Promise.all(specs.map((s) => shell.run(s.uri, ["uri"])));
    const q = new ActionQueue<string, { i: number; host: string }>({
      classify: (a) => ({ host: a.host, limited: true }),
      hostLimit: () => MAX_CONCURRENT_STARTS,
      handler: (vm, a) => reg.manager(a.host).ensureRunning({ name: vm, uuid: uuid(a.i), xml: xml(a.i) }),
    });
    const placements: KnownPlacement[] = [];
    const perHost: Record<string, number> = {};
    let placeMs = 0;
    const t0 = performance.now();
    const outs = Array.from({ length: N }, (_, i) => {
      const p0 = performance.now();
      const d = place({ vm: name(i), memoryMiB: 128 }, reg.capacities(), placements);
      placeMs += performance.now() - p0;
      placements.push({ vm: name(i), host: d.host, memoryMiB: 128 });
      perHost[d.host] = (perHost[d.host] ?? 0) + 1;
      return q.submit(name(i), { i, host: d.host });
    });
    const done = await Promise.all(outs);
    const ms = performance.now() - t0;
    const failed = done.filter((o) => o.status !== "done");
    if (failed.length) throw new Error(`${failed.length} ensures failed: ${JSON.stringify(failed[0])}`);
    for (const s of specs) {
      const c = await runningCount(s.uri);
      if (c !== (perHost[s.name] ?? 0)) throw new Error(`${s.name}: ${c}/${perHost[s.name]} running`);
    }
    return { hosts: hosts.length, ms, perHost, placeMs };
  } finally {
    await reg.dispose();
    await shell.close();
  }
}

/** probeCost times the registry's probe (listing + host figures) against the bare listing, on a host with N VMs. */
async function probeCost(host: LibvirtTestHost): Promise<{ probeMs: number; listMs: number }> {
  const shell = new VirshShellRunner({ shellsPerUri: SHELLS_PER_HOST });
  const spec: HostSpec = { name: "h1", uri: host.testUri, maxVms: N, maxConcurrentStarts: 8 };
  const reg = new HostRegistry({ hosts: [spec], run: shell.run });
  const mgr = new DomainManager({ host: { name: "h1", uri: host.testUri }, run: shell.run });
  try {
    await reg.probe("h1");
    const probe: number[] = [];
    const list: number[] = [];
    for (let k = 0; k < PROBES; k++) {
      let t = performance.now();
      await reg.probe("h1");
      probe.push(performance.now() - t);
      t = performance.now();
      await mgr.list({ stats: true });
      list.push(performance.now() - t);
    }
    return { probeMs: median(probe), listMs: median(list) };
  } finally {
    await mgr.dispose();
    await reg.dispose();
    await shell.close();
  }
}

async function main(): Promise<void> {
  const rounds: {
    round: number;
    order: string;
    oneHostMs: number;
    twoHostsMs: number;
    speedup: number;
    twoHostsSplit: Record<string, number>;
    placeUsPerJoin: { oneHost: number; twoHosts: number };
    probeMs: number;
    listMs: number;
    probeOverListRatio: number;
  }[] = [];
  const load = { before: loadavg()[0]!, after: 0 };
  for (let round = 1; round <= ROUNDS; round++) {
    const hosts = await Promise.all(
      ["a", "b", "c"].map((t) => startLibvirtHost(`rfbtv-cap-${t}${round}-${process.pid}`)),
    );
    try {
      const [solo, pairA, pairB] = hosts as [LibvirtTestHost, LibvirtTestHost, LibvirtTestHost];
      const twoFirst = round % 2 === 0;
      let one: BurstResult;
      let two: BurstResult;
      if (twoFirst) {
        two = await burst([pairA, pairB]);
        one = await burst([solo]);
      } else {
        one = await burst([solo]);
        two = await burst([pairA, pairB]);
      }
      const cost = await probeCost(solo);
      rounds.push({
        round,
        order: twoFirst ? "two hosts first" : "one host first",
        oneHostMs: Math.round(one.ms),
        twoHostsMs: Math.round(two.ms),
        speedup: r2(one.ms / two.ms),
        twoHostsSplit: two.perHost,
        placeUsPerJoin: { oneHost: r2((one.placeMs * 1000) / N), twoHosts: r2((two.placeMs * 1000) / N) },
        probeMs: r2(cost.probeMs),
        listMs: r2(cost.listMs),
        probeOverListRatio: r2(cost.probeMs / cost.listMs),
      });
    } finally {
      await stopLibvirtHosts(hosts);
    }
  }
  load.after = loadavg()[0]!;
  const result = {
    bench: "capacity",
    date: new Date().toISOString(),
    node: process.version,
    driver: "test (private libvirtd per host and round, test+unix socket)",
    vms: N,
    maxConcurrentStarts: MAX_CONCURRENT_STARTS,
    shellsPerHost: SHELLS_PER_HOST,
    loadavg1: { before: r2(load.before), after: r2(load.after) },
    medianSpeedup: r2(median(rounds.map((r) => r.speedup))),
    medianProbeOverListRatio: r2(median(rounds.map((r) => r.probeOverListRatio))),
    rounds,
  };
  mkdirSync(dirname(OUT), { recursive: true });
  writeFileSync(OUT, JSON.stringify(result, null, 2) + "\n");
  console.log(
    `capacity benchmark (${process.version}; test driver; ${N} joins; start limit ${MAX_CONCURRENT_STARTS}/host)`,
  );
  const head = ["round", "one host", "two hosts", "speedup", "split", "probe / list"];
  const rows = rounds.map((r) => [
    `${r.round} (${r.order})`,
    `${r.oneHostMs} ms`,
    `${r.twoHostsMs} ms`,
    `${r.speedup}x`,
    Object.values(r.twoHostsSplit).join("/"),
    `${r.probeMs}/${r.listMs} ms`,
  ]);
  const w = head.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  for (const r of [head, ...rows]) console.log(r.map((c, i) => c.padStart(w[i]!)).join("  "));
  console.log(`median speedup ${result.medianSpeedup}x; wrote ${OUT}`);
}

await main();
