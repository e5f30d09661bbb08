/**
 * Runs every bench script one after another (each in its own process, so their measurements do not
 * disturb each other) and prints where their JSON went. `npm run bench -- --quick` passes --quick on.
 */
import { spawnSync } from "node:child_process";
import { resolve } from "node:path";

const BENCHES = [
  "xmlgen",
  "controller",
  "scale",
  "burst",
  "capacity",
  "provisioner",
  "console-readiness",
  "prewarm",
  "multihost",
  "lxc",
  "rftest",
  "reliability",
  "fuzz",
];
const args = process.argv.slice(2);
const only = args.filter((a) => !a.startsWith("-"));
const flags = args.filter((a) => a.startsWith("-"));
let failed = 0;
for (const name of only.length > 0 ? only : BENCHES) {
  const file = resolve(import.meta.dirname, `${name}.ts`);
  process.stdout.write(`\n== bench/${name}.ts ${flags.join(" ")}\n`);
  const r = spawnSync(process.execPath, ["--import", "tsx", file, ...flags], { stdio: "inherit" });
  if (r.status !== 0) {
    failed++;
    process.stdout.write(`bench/${name}.ts exited ${r.status ?? r.signal}\n`);
  }
}
process.exitCode = failed > 0 ? 1 : 0;
