/**
 * bench/reliability.ts: the fault scenarios of test/reliability/lib, run once each with real
 * components, written as bench/out/reliability.json and bench/out/reliability.md, and printed as a table:
 * each scenario, what was injected, what was checked, the result and its key figures (time to recover,
 * retries, buffered writes, ...). The same functions back the vitest files in test/reliability.
 *
 *   node --import tsx bench/reliability.ts                 (every scenario; ~3 min)
 *   node --import tsx bench/reliability.ts --quick         (outages of 5 s instead of 20 s)
 *   node --import tsx bench/reliability.ts host-loss ...   (only these scenario ids)
 *
 * Needs root, libvirtd, Open vSwitch, qemu-img, FerretDB on PATH and the lab's MongoDB-wire server
 * (RFBOOT_TEST_MONGO_URI or 127.0.0.1:27017). A scenario that throws is reported as failed with its error.
 */
import { mkdirSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { crashDuringBurst } from "../test/reliability/lib/scenario-crash.js";
import { duplicateDpid } from "../test/reliability/lib/scenario-dup.js";
import { flapping } from "../test/reliability/lib/scenario-flap.js";
import { hostLoss } from "../test/reliability/lib/scenario-hostloss.js";
import { libvirtdOutage } from "../test/reliability/lib/scenario-libvirtd.js";
import { mongoOutage } from "../test/reliability/lib/scenario-mongo.js";
import { upstreamRestart } from "../test/reliability/lib/scenario-relay.js";
import type { ScenarioResult } from "../test/reliability/lib/util.js";
import { markdown, textTable, type ReliabilityReport } from "./lib/reliability-report.js";

const OUT_DIR = join(dirname(fileURLToPath(import.meta.url)), "out");
const args = process.argv.slice(2);
const quick = args.includes("--quick");
const only = new Set(args.filter((a) => !a.startsWith("-")));
const outage = quick ? 5_000 : 20_000;

/** Each entry runs one scenario, or two at once (the outages use disjoint components, as in the tests). */
const PLAN: { ids: string[]; run: () => Promise<ScenarioResult>[] }[] = [
  { ids: ["sigkill-burst"], run: () => [crashDuringBurst(32, 10)] },
  {
    ids: ["libvirtd-outage", "mongodb-outage"],
    run: () => [libvirtdOutage(16, 4, outage), mongoOutage(8, 8, outage)],
  },
  { ids: ["flapping-sim"], run: () => [flapping("sim", 100, 10_000, 5)] },
  { ids: ["flapping-ovs"], run: () => [flapping("ovs", 50, 10_000, 5)] },
  { ids: ["duplicate-dpid"], run: () => [duplicateDpid(8)] },
  { ids: ["host-loss"], run: () => [hostLoss(4, 3)] },
  { ids: ["upstream-restart"], run: () => [upstreamRestart(3000)] },
];

async function main(): Promise<void> {
  const scenarios: ReliabilityReport["scenarios"] = [];
  for (const step of PLAN) {
    if (only.size > 0 && !step.ids.some((id) => only.has(id))) continue;
    process.stderr.write(`running ${step.ids.join(" + ")} ...\n`);
    const settled = await Promise.allSettled(step.run());
    settled.forEach((s, i) => {
      const id = step.ids[i]!;
      if (s.status === "fulfilled") {
        const r = s.value;
        scenarios.push({ ...r, result: r.checks.every((c) => c.ok) ? "pass" : "fail" });
      } else {
        const error = s.reason instanceof Error ? s.reason.message : String(s.reason);
        scenarios.push({
          id,
          title: id,
          injected: "-",
          checks: [],
          figures: {},
          durationMs: 0,
          result: "fail",
          error,
        });
      }
    });
  }
  const report: ReliabilityReport = {
    generatedAt: new Date().toISOString(),
    node: process.version,
    quick,
    passed: scenarios.filter((s) => s.result === "pass").length,
    failed: scenarios.filter((s) => s.result === "fail").length,
    scenarios,
  };
  mkdirSync(OUT_DIR, { recursive: true });
  const json = join(OUT_DIR, "reliability.json");
  const md = join(OUT_DIR, "reliability.md");
  writeFileSync(json, JSON.stringify(report, null, 2) + "\n");
  writeFileSync(md, markdown(report));
  console.log(`reliability (${report.passed} passed, ${report.failed} failed${quick ? ", quick" : ""})`);
  console.log(textTable(report));
  for (const s of scenarios.filter((x) => x.result === "fail")) {
    console.log(`\n${s.id} FAILED${s.error ? `: ${s.error}` : ""}`);
    for (const c of s.checks.filter((x) => !x.ok)) console.log(`  ${c.what}: ${c.detail}`);
  }
  console.log(`wrote ${json} and ${md}`);
  process.exitCode = report.failed > 0 ? 1 : 0;
}

void main();
