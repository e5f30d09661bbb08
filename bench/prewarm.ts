/**
 * bench/prewarm.ts: a switch's first join -> its VM ready, through the real Daemon, with the rftest guest
 * (QEMU TCG, qemu:///system), three ways in the same run, rounds alternating so load drifts hit each:
 * - cold: prewarm off; the join defines and boots the VM (to its console marker);
 * - prewarmed: prewarm on; the daemon boots the VM ahead, waits for its marker and saves it; once it is
 *   `prewarmed` the switch joins and the VM is restored (ready on its first new console output);
 * - early: prewarm on, the switch joining 2 s after the daemon started (rftest2's switches join seconds
 *   after start): the join waits for the prewarm under way and adopts the VM when it is ready.
 * Each round starts from no domain and no record.
 *
 *   node --import tsx bench/prewarm.ts [--quick]   (JSON to bench/out/prewarm.json)
 *
 * Needs root, Open vSwitch, libvirtd (qemu:///system), a MongoDB-wire server and the rftest guest.
 */
import { mkdirSync, writeFileSync } from "node:fs";
import { loadavg } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { startQemuRig, type QemuRig } from "../test/helpers/qemu-rig.js";
import { addSwitch, shOk } from "../test/helpers/real.js";

const OUT = join(dirname(fileURLToPath(import.meta.url)), "out", "prewarm.json");
const ROUNDS = process.argv.includes("--quick") ? 1 : 3;
const EARLY_JOIN_MS = 2000;

type Mode = "cold" | "prewarmed" | "early";

interface Round {
  mode: Mode;
  via: string;
  /** action is what the join's ensure did (defined+started, started = restored, adopted). */
  action: string;
  /** joinToReadyMs: join -> ready (the daemon's own figure). */
  joinToReadyMs: number;
  /** prewarmMs: daemon start -> the image saved (prewarmed mode). */
  prewarmMs?: number;
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
    datapaths: { [`0x${dpid}`]: { name: vm, vmId: "06:b1:b1:b1:b1:b1", dataPorts: 0 } },
    policies: { leave: { action: "keep" }, prewarm: { enabled: mode !== "cold" } },
    readiness: { timeoutSeconds: 120 },
  });
  const daemon = rig.daemon(config);
  let action = "";
  daemon.on("ensured", (e) => (action = e.action));
  const ready = new Promise<{ via: string; ms: number }>((resolve) => daemon.once("ready", resolve));
  const prewarmed = new Promise<{ ms: number }>((resolve) => daemon.once("prewarmed", resolve));
  const failed = new Promise<never>((_, reject) =>
    daemon.on("failed", (e) => reject(new Error(`${mode}: ${e.error.message}`))),
  );
  const t0 = performance.now();
  await daemon.start();
  try {
    let prewarmMs: number | undefined;
    if (mode === "prewarmed") {
      await Promise.race([prewarmed, failed]);
      prewarmMs = r1(performance.now() - t0);
    } else if (mode === "early") {
      await new Promise((r) => setTimeout(r, Math.max(0, EARLY_JOIN_MS - (performance.now() - t0))));
    }
    await addSwitch(sw, dpid, rig.port);
    const r = await Promise.race([ready, failed]);
    return {
      mode,
      via: r.via,
      action,
      joinToReadyMs: r1(r.ms),
      ...(prewarmMs !== undefined ? { prewarmMs } : {}),
      load1: r1(loadavg()[0]!),
    };
  } finally {
    await shOk("ovs-vsctl", ["--if-exists", "del-br", sw]);
    await daemon.stop();
    await rig.removeDomains();
    // The next round starts without a record (no image, no readyAt) and without leases.
    await rig.db.dropDatabase().catch(() => undefined);
  }
}

async function main(): Promise<void> {
  const rig = await startQemuRig({ letter: "w" });
  const rounds: Round[] = [];
  const orders: Mode[][] = [
    ["cold", "prewarmed", "early"],
    ["prewarmed", "early", "cold"],
    ["early", "cold", "prewarmed"],
  ];
  try {
    for (let i = 0; i < ROUNDS; i++) {
      for (const mode of orders[i % orders.length]!) {
        const r = await round(mode, rig);
        rounds.push(r);
        const pw = r.prewarmMs !== undefined ? `  (prewarm took ${r.prewarmMs} ms)` : "";
        process.stdout.write(
          `${mode.padEnd(9)} ${r.action.padEnd(15)} via ${r.via.padEnd(36)} join->ready ${String(r.joinToReadyMs).padStart(8)} ms  load ${r.load1}${pw}\n`,
        );
      }
    }
  } finally {
    await rig.cleanup();
  }
  const of = (m: Mode) => r1(median(rounds.filter((r) => r.mode === m).map((r) => r.joinToReadyMs)));
  const medianJoinToReadyMs = { cold: of("cold"), prewarmed: of("prewarmed"), early: of("early") };
  const summary = {
    medianJoinToReadyMs,
    ratioColdToPrewarmed: r1(medianJoinToReadyMs.cold / medianJoinToReadyMs.prewarmed),
    ratioColdToEarly: r1(medianJoinToReadyMs.cold / medianJoinToReadyMs.early),
    medianPrewarmMs: r1(median(rounds.flatMap((r) => (r.prewarmMs !== undefined ? [r.prewarmMs] : [])))),
    load1: { min: Math.min(...rounds.map((r) => r.load1)), max: Math.max(...rounds.map((r) => r.load1)) },
  };
  const result = {
    at: new Date().toISOString(),
    rounds: ROUNDS,
    earlyJoinMs: EARLY_JOIN_MS,
    summary,
    runs: rounds,
  };
  mkdirSync(dirname(OUT), { recursive: true });
  writeFileSync(OUT, JSON.stringify(result, null, 2) + "\n");
  process.stdout.write(
    `\n| mode | median join -> ready |\n| --- | --- |\n` +
      `| cold (no image) | ${medianJoinToReadyMs.cold} ms |\n` +
      `| prewarmed (restore) | ${medianJoinToReadyMs.prewarmed} ms (${summary.ratioColdToPrewarmed}x faster) |\n` +
      `| early join (${EARLY_JOIN_MS} ms after start, prewarm under way) | ${medianJoinToReadyMs.early} ms (${summary.ratioColdToEarly}x) |\n` +
      `JSON: ${OUT}\n`,
  );
}

await main();
