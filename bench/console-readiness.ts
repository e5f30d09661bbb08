/**
 * bench/console-readiness.ts: join -> ready of a local QEMU (TCG) guest through the real Daemon, with the
 * boot marker read two ways in the same run: through the domain's console stream (console.pty on: the domain
 * starts paused, `virsh console` attaches, then it is resumed) and from the console log file (console.pty
 * off: a plain start, the serial port logs to a file rfboot polls every 50 ms). Rounds alternate the two, so
 * load drifts hit both; each round defines the domain afresh.
 *
 *   node --import tsx bench/console-readiness.ts [--quick]   (JSON to bench/out/console-readiness.json)
 *
 * Needs root, Open vSwitch, libvirtd (qemu:///system), a MongoDB-wire server and the rftest guest.
 */
import { mkdirSync, writeFileSync } from "node:fs";
import { loadavg } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { startQemuRig, type QemuRig } from "../test/helpers/qemu-rig.js";
import { addSwitch, shOk } from "../test/helpers/real.js";

const OUT = join(dirname(fileURLToPath(import.meta.url)), "out", "console-readiness.json");
const ROUNDS = process.argv.includes("--quick") ? 2 : 5;

type Mode = "stream" | "file";

interface Round {
  mode: Mode;
  via: string;
  /** joinToEnsuredMs: join -> the domain runs (define, start; for stream also the attach and resume). */
  joinToEnsuredMs: number;
  /** joinToReadyMs: join -> the marker seen (the daemon's own figure). */
  joinToReadyMs: number;
  load1: number;
}

const r1 = (x: number) => Math.round(x * 10) / 10;
const median = (xs: readonly number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  const m = Math.floor(s.length / 2);
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
};

async function round(mode: Mode, rig: QemuRig): Promise<Round> {
  const [vm, sw, dpid] = [rig.vm(), rig.switchName(), rig.dpid()];
  const config = rig.config({
    defaults: { console: { pty: mode === "stream" } },
    datapaths: { [`0x${dpid}`]: { name: vm, vmId: "06:b0:b0:b0:b0:b0", dataPorts: 0 } },
    policies: { leave: { action: "keep" } },
    readiness: { timeoutSeconds: 120 },
  });
  const daemon = rig.daemon(config);
  let joinedAt = 0;
  let ensuredAt = 0;
  daemon.on("joined", () => (joinedAt = performance.now()));
  daemon.on("ensured", () => (ensuredAt = performance.now()));
  const ready = new Promise<{ via: string; ms: number }>((resolve) => daemon.once("ready", resolve));
  const failed = new Promise<never>((_, reject) =>
    daemon.on("failed", (e) => reject(new Error(`${mode}: ${e.error.message}`))),
  );
  await daemon.start();
  try {
    await addSwitch(sw, dpid, rig.port);
    const r = await Promise.race([ready, failed]);
    return {
      mode,
      via: r.via,
      joinToEnsuredMs: r1(ensuredAt - joinedAt),
      joinToReadyMs: r1(r.ms),
      load1: r1(loadavg()[0]!),
    };
  } finally {
    await shOk("ovs-vsctl", ["--if-exists", "del-br", sw]);
    await daemon.stop();
    await rig.removeDomains();
  }
}

async function main(): Promise<void> {
  const rig = await startQemuRig({ letter: "b" });
  const rounds: Round[] = [];
  try {
    for (let i = 0; i < ROUNDS; i++) {
      for (const mode of (i % 2 ? ["file", "stream"] : ["stream", "file"]) as Mode[]) {
        const r = await round(mode, rig);
        rounds.push(r);
        process.stdout.write(
          `${mode.padEnd(6)} via ${r.via.padEnd(8)} join->running ${String(r.joinToEnsuredMs).padStart(7)} ms  join->ready ${String(r.joinToReadyMs).padStart(7)} ms  load ${r.load1}\n`,
        );
      }
    }
  } finally {
    await rig.cleanup();
  }
  const of = (m: Mode, k: "joinToEnsuredMs" | "joinToReadyMs") =>
    r1(median(rounds.filter((r) => r.mode === m).map((r) => r[k])));
  const summary = {
    medianJoinToReadyMs: { stream: of("stream", "joinToReadyMs"), file: of("file", "joinToReadyMs") },
    medianJoinToRunningMs: { stream: of("stream", "joinToEnsuredMs"), file: of("file", "joinToEnsuredMs") },
  };
  const result = { at: new Date().toISOString(), rounds: ROUNDS, summary, runs: rounds };
  mkdirSync(dirname(OUT), { recursive: true });
  writeFileSync(OUT, JSON.stringify(result, null, 2) + "\n");
  process.stdout.write(`${JSON.stringify(summary)}\nJSON: ${OUT}\n`);
}

await main();
