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
import { randomBytes } from "node:crypto";
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { loadavg, tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { MongoClient } from "mongodb";
import { silentLogger } from "../src/common/log.js";
import { Daemon, controllerFromConfig, parseConfig } from "../src/provisioner/index.js";
import { addSwitch, freePort, sh, shOk } from "../test/helpers/real.js";

const OUT = join(dirname(fileURLToPath(import.meta.url)), "out", "console-readiness.json");
const GUEST = process.env.RFBOOT_GUEST_DIR ?? "/var/lib/rfboot/guest";
const MONGO = process.env.RFBOOT_TEST_MONGO_URI ?? "mongodb://127.0.0.1:27017";
const URI = "qemu:///system";
const TAG = randomBytes(3).toString("hex");
const DB = `rfbt_bcr_${TAG}`;
const VM = `rfbtb${TAG}`;
const MGMT = `rfbtbm${TAG.slice(0, 4)}`;
const SWITCH = `rfbtbs${TAG.slice(0, 4)}`;
const DPID = `b0${TAG}`;
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

async function round(mode: Mode, stateDir: string, port: number): Promise<Round> {
  const yaml = `
stateDir: ${stateDir}
openflow: { mode: listen, listen: { host: 127.0.0.1, port: ${port} }, versions: ["1.3"] }
mongo: { uri: "${MONGO}", database: ${DB} }
hosts:
  - { name: local, uri: "${URI}", maxVms: 2 }
defaults:
  hypervisor: qemu
  memoryMiB: 128
  boot: { type: kernel, kernel: ${GUEST}/vmlinuz, initrd: ${GUEST}/initrd.gz, cmdline: "console=ttyS0 no_timer_check rfboot.name={name}" }
  network: { management: { type: bridge, bridge: ${MGMT} } }
  console: { pty: ${mode === "stream"} }
datapaths:
  "0x${DPID}": { name: ${VM}, vmId: "06:b0:b0:b0:b0:b0", dataPorts: 0 }
policies: { leave: { action: keep } }
readiness: { timeoutSeconds: 120 }
`;
  const daemon = new Daemon({
    config: parseConfig(yaml, { format: "yaml", source: "bench" }),
    logger: silentLogger,
    instanceId: `bcr-${TAG}`,
    createController: controllerFromConfig,
  });
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
    await addSwitch(SWITCH, DPID, port);
    const r = await Promise.race([ready, failed]);
    return {
      mode,
      via: r.via,
      joinToEnsuredMs: r1(ensuredAt - joinedAt),
      joinToReadyMs: r1(r.ms),
      load1: r1(loadavg()[0]!),
    };
  } finally {
    await shOk("ovs-vsctl", ["--if-exists", "del-br", SWITCH]);
    await daemon.stop();
    await shOk("virsh", ["-c", URI, "destroy", VM]);
    await shOk("virsh", ["-c", URI, "undefine", VM, "--managed-save"]);
  }
}

async function main(): Promise<void> {
  if (!existsSync(join(GUEST, "vmlinuz")))
    throw new Error(`no rftest guest in ${GUEST}: run rftest/guest/build-guest.sh`);
  const stateDir = mkdtempSync(join(tmpdir(), "rfbt-bcr-"));
  const mongo = await MongoClient.connect(MONGO);
  await sh("ip", ["link", "add", MGMT, "type", "bridge"]);
  await sh("ip", ["link", "set", MGMT, "up"]);
  const rounds: Round[] = [];
  try {
    const port = await freePort();
    for (let i = 0; i < ROUNDS; i++) {
      for (const mode of (i % 2 ? ["file", "stream"] : ["stream", "file"]) as Mode[]) {
        const r = await round(mode, stateDir, port);
        rounds.push(r);
        process.stdout.write(
          `${mode.padEnd(6)} via ${r.via.padEnd(8)} join->running ${String(r.joinToEnsuredMs).padStart(7)} ms  join->ready ${String(r.joinToReadyMs).padStart(7)} ms  load ${r.load1}\n`,
        );
      }
    }
  } finally {
    await shOk("ip", ["link", "del", MGMT]);
    await mongo
      .db(DB)
      .dropDatabase()
      .catch(() => undefined);
    await mongo.close();
    rmSync(stateDir, { recursive: true, force: true });
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
