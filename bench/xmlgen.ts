/**
 * bench/xmlgen.ts: how fast xmlgen turns a VM description into domain XML, and how much memory a burst
 * takes, so it is clear XML generation never limits a burst of switch joins.
 *
 *   node --import tsx bench/xmlgen.ts            (JSON to bench/out/xmlgen.json, a table on stdout)
 *   RFBOOT_BENCH_SECONDS=0.5 ...                 (shorter time box per measurement)
 *
 * Measured in one run, same process: buildDomainXml (validate + render) of a 32-NIC RouteFlow VM, its
 * two halves, a minimal 1-NIC VM and JSON.stringify of the same 32-NIC description as baselines, and a
 * burst of 1000 distinct 32-NIC VMs (throughput and memory held). The comparison point for "never the
 * limit" is libvirt itself: on the lab machine `virsh define` takes ~9 ms and `start` 150-200 ms per domain.
 */
import { mkdirSync, writeFileSync } from "node:fs";
import { setFlagsFromString } from "node:v8";
import { runInNewContext } from "node:vm";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import {
  buildDomainXml,
  routeflowInterfaces,
  validateVmDescription,
  type VmDescription,
} from "../src/xmlgen/index.js";

const SECONDS = Number(process.env.RFBOOT_BENCH_SECONDS ?? 1);
const ROUNDS = 5;
const OUT = join(dirname(fileURLToPath(import.meta.url)), "out", "xmlgen.json");
/** Measured on the lab machine: median cost of `virsh define` of one domain on this class of machine. */
const VIRSH_DEFINE_MS = 9;

/** vm32 is a RouteFlow VM with 32 NICs: eth0 management + eth1..eth31 on dp0. */
function vm32(name: string, vmIdLetter = "a"): VmDescription {
  return {
    name,
    description: `rfboot bench VM ${name}: <32 NICs> & "quotes"`,
    hypervisor: { type: "qemu" },
    arch: "x86_64",
    memoryMiB: 256,
    vcpus: 1,
    lifecycle: { onPoweroff: "destroy", onReboot: "restart", onCrash: "destroy" },
    boot: {
      type: "kernel",
      kernel: "/var/lib/rfboot/guest/vmlinuz",
      initrd: "/var/lib/rfboot/guest/initrd.gz",
      cmdline: `console=ttyS0 quiet rfboot.name=${name}`,
    },
    interfaces: routeflowInterfaces({
      vmName: name,
      vmId: `02:${vmIdLetter}0:${vmIdLetter}0:${vmIdLetter}0:${vmIdLetter}0:${vmIdLetter}0`,
      dataPorts: 31,
      management: { type: "bridge", bridge: "lxcbr0" },
    }),
    console: { logFile: `/var/log/rfboot/${name}.log` },
  };
}

const vmMin: VmDescription = {
  name: "rfvmMin",
  hypervisor: { type: "qemu" },
  arch: "x86_64",
  memoryMiB: 128,
  vcpus: 1,
  boot: { type: "kernel", kernel: "/var/lib/rfboot/guest/vmlinuz" },
  interfaces: [{ type: "bridge", bridge: "lxcbr0", mac: "02:a0:a0:a0:a0:a0" }],
};

let sink = 0; // keeps results alive so the work is not optimised away

interface Rate {
  opsPerSec: number;
  usPerOp: number;
  rounds: number[];
}

/** rate runs `fn` in time-boxed rounds and reports the median rate. */
function rate(fn: () => string | VmDescription): Rate {
  for (let i = 0; i < 200; i++) fn(); // warm-up (JIT)
  const rounds: number[] = [];
  for (let r = 0; r < ROUNDS; r++) {
    let n = 0;
    const t0 = process.hrtime.bigint();
    const limit = t0 + BigInt(Math.round((SECONDS * 1e9) / ROUNDS));
    let now = t0;
    while (now < limit) {
      for (let i = 0; i < 50; i++) {
        const out = fn();
        sink += typeof out === "string" ? out.length : out.interfaces.length;
      }
      n += 50;
      now = process.hrtime.bigint();
    }
    rounds.push(n / (Number(now - t0) / 1e9));
  }
  const sorted = [...rounds].sort((a, b) => a - b);
  const median = sorted[Math.floor(sorted.length / 2)]!;
  return {
    opsPerSec: Math.round(median),
    usPerOp: Number((1e6 / median).toFixed(2)),
    rounds: rounds.map(Math.round),
  };
}

function mib(bytes: number): number {
  return Number((bytes / 1048576).toFixed(1));
}

async function main(): Promise<void> {
  const big = vm32("rfvmBench");
  const normalised = validateVmDescription(big);
  const xml = buildDomainXml(big);

  const build32 = rate(() => buildDomainXml(big));
  const validate32 = rate(() => validateVmDescription(big));
  const renderOnly32 = rate(() => buildDomainXml(normalised));
  const buildMin = rate(() => buildDomainXml(vmMin));
  const json32 = rate(() => JSON.stringify(big));

  // Burst: 1000 distinct 32-NIC VMs generated back to back and all kept (as a provisioner would queue them).
  // A real gc() (without needing --expose-gc on the command line) so the heap figure is what is retained.
  setFlagsFromString("--expose-gc");
  const gc = runInNewContext("gc") as () => void;
  gc();
  const before = process.memoryUsage();
  const letters = "abcdef";
  const t0 = process.hrtime.bigint();
  const docs: string[] = [];
  for (let i = 0; i < 1000; i++) docs.push(buildDomainXml(vm32(`rfvm${i}`, letters[i % letters.length])));
  const burstMs = Number(process.hrtime.bigint() - t0) / 1e6;
  const duringRss = process.memoryUsage().rss;
  gc();
  const after = process.memoryUsage();
  sink += docs.length;
  const docBytes = docs.reduce((a, d) => a + d.length, 0);
  const peakRss = process.resourceUsage().maxRSS * 1024;

  const result = {
    benchmark: "xmlgen",
    date: new Date().toISOString(),
    node: process.version,
    secondsPerMeasurement: SECONDS,
    document: { nics: big.interfaces.length, bytes: Buffer.byteLength(xml) },
    throughput: {
      build32Nic: build32,
      validate32Nic: validate32,
      renderOnly32Nic: renderOnly32,
      baselineBuild1Nic: buildMin,
      baselineJsonStringify32Nic: json32,
    },
    ratios: {
      build32VsJsonStringify: Number((json32.opsPerSec / build32.opsPerSec).toFixed(1)),
      build32VsBuild1Nic: Number((buildMin.opsPerSec / build32.opsPerSec).toFixed(1)),
      virshDefineVsBuild32: Number(((VIRSH_DEFINE_MS * 1000) / build32.usPerOp).toFixed(0)),
    },
    burst: {
      vms: docs.length,
      ms: Number(burstMs.toFixed(1)),
      docsPerSec: Math.round(docs.length / (burstMs / 1000)),
      documentsMiB: mib(docBytes),
      heapRetainedMiB: mib(after.heapUsed - before.heapUsed),
      rssGrowthMiB: mib(duringRss - before.rss),
    },
    memory: {
      peakRssMiB: mib(peakRss),
      heapUsedMiB: mib(after.heapUsed),
      heapTotalMiB: mib(after.heapTotal),
    },
    note: `virsh define costs ~${VIRSH_DEFINE_MS} ms per domain (lab machine); a 32-NIC document costs ${build32.usPerOp} us`,
  };

  mkdirSync(dirname(OUT), { recursive: true });
  writeFileSync(OUT, JSON.stringify(result, null, 2) + "\n");

  const rows: [string, string, string][] = [
    ["buildDomainXml, 32 NICs (validate + render)", `${build32.opsPerSec}/s`, `${build32.usPerOp} us`],
    ["  validateVmDescription only", `${validate32.opsPerSec}/s`, `${validate32.usPerOp} us`],
    ["  render only (already validated)", `${renderOnly32.opsPerSec}/s`, `${renderOnly32.usPerOp} us`],
    ["baseline: buildDomainXml, 1 NIC", `${buildMin.opsPerSec}/s`, `${buildMin.usPerOp} us`],
    ["baseline: JSON.stringify, 32 NICs", `${json32.opsPerSec}/s`, `${json32.usPerOp} us`],
    ["burst: 1000 distinct 32-NIC VMs", `${result.burst.docsPerSec}/s`, `${result.burst.ms} ms total`],
  ];
  const w = Math.max(...rows.map((r) => r[0].length));
  console.log(`xmlgen benchmark (${process.version}; 32-NIC document ${result.document.bytes} bytes)`);
  console.log(`${"measurement".padEnd(w)}  ${"docs/s".padStart(10)}  ${"per doc".padStart(14)}`);
  for (const [a, b, c] of rows) console.log(`${a.padEnd(w)}  ${b.padStart(10)}  ${c.padStart(14)}`);
  console.log(
    `ratios: JSON.stringify is ${result.ratios.build32VsJsonStringify}x faster; 1-NIC is ${result.ratios.build32VsBuild1Nic}x faster; ` +
      `virsh define (~${VIRSH_DEFINE_MS} ms) is ${result.ratios.virshDefineVsBuild32}x slower than generating the 32-NIC XML`,
  );
  console.log(
    `memory: 1000 documents (${result.burst.documentsMiB} MiB of text) held = +${result.burst.heapRetainedMiB} MiB heap after gc, RSS +${result.burst.rssGrowthMiB} MiB during the burst; process peak RSS ${result.memory.peakRssMiB} MiB`,
  );
  console.log(`wrote ${OUT}`);
  if (sink < 0) console.log(sink);
}

await main();
