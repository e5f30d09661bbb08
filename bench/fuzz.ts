/**
 * bench/fuzz.ts: the OpenFlow fuzz campaign (hostile input): millions of mutated and generated
 * frames through the codec (decode, re-encode, framing) and into live Session instances of every mode and
 * state with time advancing. The engine and its invariants are in bench/lib/fuzz-core.ts.
 *
 *   node --import tsx bench/fuzz.ts [--frames N] [--seed S]     (default 10,000,000 frames, random seed)
 *
 * Writes bench/out/fuzz.json (frames, time, findings, buckets, states, what was sent back) and prints a
 * table. Exit code 1 when there is a finding (each with the hex of its first input, replayable by seed).
 */
import { mkdirSync, writeFileSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { runFuzz } from "./lib/fuzz-core.js";

const HERE = dirname(fileURLToPath(import.meta.url));
const OUT = join(HERE, "out", "fuzz.json");
const VECTORS = join(process.env.RFBOOT_SHARED ?? resolve(HERE, "../../shared"), "openflow-vectors");

function arg(name: string): string | undefined {
  const i = process.argv.indexOf(name);
  return i >= 0 ? process.argv[i + 1] : undefined;
}

const frames = Number(arg("--frames") ?? 10_000_000);
const seed = Number(arg("--seed") ?? Math.floor(Math.random() * 2 ** 32));
if (!Number.isInteger(frames) || frames <= 0 || !Number.isInteger(seed) || seed < 0) {
  process.stderr.write("usage: bench/fuzz.ts [--frames N] [--seed S] (positive integers)\n");
  process.exit(2);
}

process.stderr.write(`fuzz: ${frames.toLocaleString("en")} frames, seed ${seed}, vectors ${VECTORS}\n`);
const result = runFuzz({
  frames,
  seed,
  vectorsDir: VECTORS,
  progressEvery: 1_000_000,
  onProgress: (p) =>
    process.stderr.write(
      `  ${p.frames.toLocaleString("en")} frames, ${p.seconds.toFixed(0)} s, ${p.buckets} buckets, ${p.findings} findings\n`,
    ),
});

const report = {
  benchmark: "fuzz",
  date: new Date().toISOString(),
  node: process.version,
  command: `node --import tsx bench/fuzz.ts --frames ${frames} --seed ${seed}`,
  ...result,
};
mkdirSync(dirname(OUT), { recursive: true });
writeFileSync(OUT, `${JSON.stringify(report, null, 2)}\n`);

const rows: [string, string][] = [
  ["frames", result.frames.toLocaleString("en")],
  ["seconds", result.seconds.toFixed(1)],
  ["frames/s", result.framesPerSecond.toLocaleString("en")],
  ["seed", String(seed)],
  [
    "decoded / decode errors",
    `${result.decoded.toLocaleString("en")} / ${result.decodeErrors.toLocaleString("en")}`,
  ],
  ["framer split checks", result.framerChecks.toLocaleString("en")],
  ["sessions created / closed", `${result.sessionsCreated} / ${result.sessionsClosed}`],
  ["timer ticks", result.ticks.toLocaleString("en")],
  ["coverage buckets", String(result.buckets)],
  ["corpus (seeds)", `${result.corpusSize} (${result.seeds})`],
  ["session states fed", Object.keys(result.statesVisited).sort().join(" ")],
  ["findings", String(result.findings.length)],
];
const w = Math.max(...rows.map(([k]) => k.length));
for (const [k, v] of rows) process.stdout.write(`${k.padEnd(w)}  ${v}\n`);
for (const f of result.findings) {
  process.stdout.write(
    `FINDING ${f.kind} x${f.count}: ${f.message} [${f.state ?? "-"}] input ${f.inputHex.slice(0, 120)}\n`,
  );
}
process.stdout.write(`wrote ${OUT}\n`);
process.exit(result.findings.length > 0 ? 1 : 0);
