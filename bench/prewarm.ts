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
import { randomBytes } from "node:crypto";
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { loadavg, tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { MongoClient } from "mongodb";
import { silentLogger } from "../src/common/log.js";
import { Daemon, controllerFromConfig, parseConfig } from "../src/provisioner/index.js";
import { removePools } from "../test/helpers/libvirt-hosts.js";
import { addSwitch, freePort, sh, shOk } from "../test/helpers/real.js";

const OUT = join(dirname(fileURLToPath(import.meta.url)), "out", "prewarm.json");
const GUEST = process.env.RFBOOT_GUEST_DIR ?? "/var/lib/rfboot/guest";
const MONGO = process.env.RFBOOT_TEST_MONGO_URI ?? "mongodb://127.0.0.1:27017";
const URI = "qemu:///system";
const TAG = randomBytes(3).toString("hex");
const DB = `rfbt_bpw_${TAG}`;
/** POOL is this run's own storage pool on the machine's libvirtd (removed at the end). */
const POOL = `rfbt-bpw-${TAG}`;
const VM = `rfbtw${TAG}`;
const MGMT = `rfbtwm${TAG.slice(0, 4)}`;
const SWITCH = `rfbtws${TAG.slice(0, 4)}`;
const DPID = `b1${TAG}`;
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

async function round(mode: Mode, stateDir: string, port: number): Promise<Round> {
  const yaml = `
stateDir: ${stateDir}
openflow: { mode: listen, listen: { host: 127.0.0.1, port: ${port} }, versions: ["1.3"] }
mongo: { uri: "${MONGO}", database: ${DB} }
hosts:
  - { name: local, uri: "${URI}", maxVms: 2, pool: ${POOL} }
defaults:
  hypervisor: qemu
  memoryMiB: 128
  boot: { type: kernel, kernel: ${GUEST}/vmlinuz, initrd: ${GUEST}/initrd.gz, cmdline: "console=ttyS0 no_timer_check rfboot.name={name}" }
  network: { management: { type: bridge, bridge: ${MGMT} } }
datapaths:
  "0x${DPID}": { name: ${VM}, vmId: "06:b1:b1:b1:b1:b1", dataPorts: 0 }
policies: { leave: { action: keep }, prewarm: { enabled: ${mode !== "cold"} } }
readiness: { timeoutSeconds: 120 }
`;
  const daemon = new Daemon({
    config: parseConfig(yaml, { format: "yaml", source: "bench" }),
    logger: silentLogger,
    instanceId: `bpw-${TAG}`,
    createController: controllerFromConfig,
  });
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
    await addSwitch(SWITCH, DPID, port);
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
    await shOk("ovs-vsctl", ["--if-exists", "del-br", SWITCH]);
    await daemon.stop();
    await shOk("virsh", ["-c", URI, "destroy", VM]);
    await shOk("virsh", ["-c", URI, "undefine", VM, "--managed-save"]);
    // The next round starts without a record (no image, no readyAt) and without leases.
    const mongo = await MongoClient.connect(MONGO);
    await mongo
      .db(DB)
      .dropDatabase()
      .catch(() => undefined);
    await mongo.close();
  }
}

async function main(): Promise<void> {
  if (!existsSync(join(GUEST, "vmlinuz")))
    throw new Error(`no rftest guest in ${GUEST}: run rftest/guest/build-guest.sh`);
  const stateDir = mkdtempSync(join(tmpdir(), "rfbt-bpw-"));
  await sh("ip", ["link", "add", MGMT, "type", "bridge"]);
  await sh("ip", ["link", "set", MGMT, "up"]);
  const rounds: Round[] = [];
  const orders: Mode[][] = [
    ["cold", "prewarmed", "early"],
    ["prewarmed", "early", "cold"],
    ["early", "cold", "prewarmed"],
  ];
  try {
    const port = await freePort();
    for (let i = 0; i < ROUNDS; i++) {
      for (const mode of orders[i % orders.length]!) {
        const r = await round(mode, stateDir, port);
        rounds.push(r);
        const pw = r.prewarmMs !== undefined ? `  (prewarm took ${r.prewarmMs} ms)` : "";
        process.stdout.write(
          `${mode.padEnd(9)} ${r.action.padEnd(15)} via ${r.via.padEnd(36)} join->ready ${String(r.joinToReadyMs).padStart(8)} ms  load ${r.load1}${pw}\n`,
        );
      }
    }
  } finally {
    await shOk("ip", ["link", "del", MGMT]);
    removePools(URI, [POOL]);
    rmSync(stateDir, { recursive: true, force: true });
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
