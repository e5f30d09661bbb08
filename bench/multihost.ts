/**
 * bench/multihost.ts: rfboot with hosts that share nothing (namespace hosts, test/helpers/netns-hosts.ts, each
 * its own libvirtd reached over TCP), two figures, each against its one-host baseline in the same run:
 *  - burst: 64 switches join an in-process Daemon at once (scripted switches, an in-memory store) and their
 *    test-driver VMs are defined and started on two namespace hosts (`test+tcp://ADDR/default`), against the
 *    same burst on one of them; "done" is the daemon's `ensured` for every VM.
 *  - join -> ready of the rftest guest (TCG, console marker through the console stream): on a namespace host
 *    over `qemu+tcp://` (kernel and initrd uploaded into its pool by rfboot on the first round) against the
 *    machine's own `qemu:///system`, real OVS switch, real MongoDB-wire store; rounds alternate the two.
 *
 *   node --import tsx bench/multihost.ts [--quick]   (JSON to bench/out/multihost.json)
 *
 * Needs root, Open vSwitch, libvirtd, iproute2 netns, tini, a MongoDB-wire server and the rftest guest.
 */
import { randomBytes } from "node:crypto";
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { loadavg, tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { execa } from "execa";
import { silentLogger } from "../src/common/log.js";
import { Daemon, controllerFromConfig, parseConfig } from "../src/provisioner/index.js";
import { hostExec, startNetnsHosts, stopNetnsHosts, type NetnsHost } from "../test/helpers/netns-hosts.js";
import { addSwitch, freePort, sh, shOk } from "../test/helpers/real.js";
import { FakeClock, FakeSwitches, RecordingStore } from "../test/unit/provisioner/daemon/fakes.js";

const OUT = join(dirname(fileURLToPath(import.meta.url)), "out", "multihost.json");
const GUEST = process.env.RFBOOT_GUEST_DIR ?? "/var/lib/rfboot/guest";
const MONGO = process.env.RFBOOT_TEST_MONGO_URI ?? "mongodb://127.0.0.1:27017";
const QUICK = process.argv.includes("--quick");
const BURST = 64;
const BURST_ROUNDS = QUICK ? 1 : 3;
const READY_ROUNDS = QUICK ? 2 : 3;
const TAG = randomBytes(3).toString("hex");
const MGMT = "rfmhbm0";
const LOCAL_MGMT = `rfmhbm${TAG.slice(0, 4)}`;
const VM = `rfmhb${TAG}`;
const SWITCH = `rfmhbs${TAG.slice(0, 4)}`;
const DPID = `b1${TAG}`;

const r1 = (x: number) => Math.round(x * 10) / 10;
const median = (xs: readonly number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  const m = Math.floor(s.length / 2);
  return s.length === 0 ? NaN : s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
};

/** burst joins BURST scripted switches at once; the VMs go to `uris` (test driver); ms until all are ensured. */
async function burst(uris: readonly string[], round: number, stateDir: string): Promise<number> {
  const name = (i: number) => `rfmhb${round}x${String(i).padStart(3, "0")}`;
  const datapaths: Record<string, unknown> = {};
  for (let i = 0; i < BURST; i++)
    datapaths[`0x${(0xb00000 + round * 0x1000 + i).toString(16)}`] = {
      name: name(i),
      vmId: `02:b0:00:0${round}:${(i >> 8).toString(16).padStart(2, "0")}:${(i & 255).toString(16).padStart(2, "0")}`,
      dataPorts: 0,
    };
  const config = parseConfig(
    JSON.stringify({
      stateDir,
      openflow: { mode: "listen", listen: { host: "127.0.0.1", port: 1 } },
      mongo: { uri: "mongodb://127.0.0.1:1/x" },
      hosts: uris.map((uri, k) => ({
        name: `t${k + 1}`,
        uri,
        images: "path",
        maxVms: BURST,
        maxConcurrentStarts: 4,
      })),
      defaults: {
        hypervisor: "test",
        memoryMiB: 64,
        network: { management: { type: "bridge", bridge: MGMT } },
        console: { log: false, pty: false },
      },
      datapaths,
      policies: { leave: { action: "keep" } },
      readiness: { consoleMarker: null },
    }),
    { format: "json", source: "bench/multihost" },
  );
  const switches = new FakeSwitches();
  const daemon = new Daemon({
    config,
    logger: silentLogger,
    instanceId: `bmh-${TAG}-${round}`,
    controller: switches,
    store: new RecordingStore(new FakeClock()),
    watchLibvirtEvents: false,
  });
  let ensured = 0;
  let failed = "";
  const done = new Promise<void>((resolve, reject) => {
    daemon.on("ensured", () => {
      if (++ensured === BURST) resolve();
    });
    daemon.on("failed", (e: { error: Error }) => {
      failed ||= e.error.message;
      reject(new Error(`burst: ${failed}`));
    });
  });
  await daemon.start();
  try {
    const t0 = performance.now();
    for (let i = 0; i < BURST; i++) switches.join(BigInt(0xb00000 + round * 0x1000 + i), []);
    await done;
    return performance.now() - t0;
  } finally {
    await daemon.stop();
    for (const uri of uris)
      for (let i = 0; i < BURST; i++) {
        await shOk("virsh", ["-c", uri, "destroy", name(i)]);
        await shOk("virsh", ["-c", uri, "undefine", name(i)]);
      }
  }
}

interface ReadyRound {
  where: "remote" | "local";
  joinToReadyMs: number;
  via: string;
  load1: number;
}

/** ready joins one real OVS switch; its VM boots on `host` (remote) or qemu:///system; join -> ready. */
async function ready(
  where: "remote" | "local",
  host: NetnsHost,
  stateDir: string,
  port: number,
): Promise<ReadyRound> {
  const db = `rfbt_bmh_${TAG}`;
  const hostEntry =
    where === "remote"
      ? {
          name: "far",
          uri: host.uri,
          images: "pool",
          upload: true,
          storageDir: host.storageDir,
          consoleLogDir: host.consoleDir,
          maxVms: 2,
        }
      : { name: "local", uri: "qemu:///system", maxVms: 2, pool: `rfbt-bmh-${TAG}` };
  const config = parseConfig(
    JSON.stringify({
      stateDir,
      openflow: { mode: "listen", listen: { host: "127.0.0.1", port }, versions: ["1.3"] },
      mongo: { uri: MONGO, database: db },
      hosts: [hostEntry],
      defaults: {
        hypervisor: "qemu",
        memoryMiB: 112,
        boot: { type: "kernel", kernel: `${GUEST}/vmlinuz`, initrd: `${GUEST}/initrd.gz` },
        network: { management: { type: "bridge", bridge: where === "remote" ? MGMT : LOCAL_MGMT } },
      },
      datapaths: { [`0x${DPID}`]: { name: VM, vmId: "06:b1:b1:b1:b1:b1", dataPorts: 0 } },
      policies: { leave: { action: "keep" } },
      readiness: { timeoutSeconds: 180 },
    }),
    { format: "json", source: "bench/multihost" },
  );
  const daemon = new Daemon({
    config,
    logger: silentLogger,
    instanceId: `bmhr-${TAG}`,
    createController: controllerFromConfig,
  });
  const uri = where === "remote" ? host.uri : "qemu:///system";
  const got = new Promise<{ via: string; ms: number }>((resolve) => daemon.once("ready", resolve));
  const failed = new Promise<never>((_, reject) =>
    daemon.on("failed", (e: { error: Error }) => reject(new Error(`${where}: ${e.error.message}`))),
  );
  await daemon.start();
  try {
    await addSwitch(SWITCH, DPID, port);
    const r = await Promise.race([got, failed]);
    return { where, joinToReadyMs: r1(r.ms), via: r.via, load1: r1(loadavg()[0]!) };
  } finally {
    await shOk("ovs-vsctl", ["--if-exists", "del-br", SWITCH]);
    await daemon.stop();
    await shOk("virsh", ["-c", uri, "destroy", VM]);
    await shOk("virsh", ["-c", uri, "undefine", VM]);
    await shOk("virsh", ["-c", uri, "vol-delete", "--pool", "rfboot", `${VM}.qcow2`]);
  }
}

async function main(): Promise<void> {
  if (!existsSync(join(GUEST, "vmlinuz")))
    throw new Error(`no rftest guest in ${GUEST}: run rftest/guest/build-guest.sh`);
  const stateDir = mkdtempSync(join(tmpdir(), "rfbt-bmh-"));
  const hosts = await startNetnsHosts(2);
  const bursts: { hosts: number; ms: number }[] = [];
  const readies: ReadyRound[] = [];
  try {
    for (const h of hosts) {
      await hostExec(h, ["ip", "link", "add", MGMT, "type", "bridge"]);
      await hostExec(h, ["ip", "link", "set", MGMT, "up"]);
    }
    await sh("ip", ["link", "add", LOCAL_MGMT, "type", "bridge"]);
    await sh("ip", ["link", "set", LOCAL_MGMT, "up"]);
    // The test driver keeps its state while a connection stays open: hold one per host for the whole run.
    const holders = hosts.map((h) =>
      execa("virsh", ["-c", h.testUri, "event", "--loop", "--all"], { reject: false }),
    );
    try {
      for (let r = 0; r < BURST_ROUNDS; r++) {
        for (const n of r % 2 ? [1, 2] : [2, 1]) {
          const ms = await burst(
            hosts.slice(0, n).map((h) => h.testUri),
            r * 2 + n,
            stateDir,
          );
          bursts.push({ hosts: n, ms: r1(ms) });
          process.stdout.write(`burst ${BURST} joins on ${n} host(s): ${r1(ms)} ms\n`);
        }
      }
    } finally {
      for (const p of holders) p.kill();
      await Promise.allSettled(holders);
    }
    const port = await freePort();
    for (let r = 0; r < READY_ROUNDS; r++) {
      for (const where of (r % 2 ? ["local", "remote"] : ["remote", "local"]) as ("remote" | "local")[]) {
        const x = await ready(where, hosts[0]!, stateDir, port);
        readies.push(x);
        process.stdout.write(
          `${where.padEnd(6)} join->ready ${x.joinToReadyMs} ms via ${x.via}, load ${x.load1}\n`,
        );
      }
    }
  } finally {
    await shOk("ip", ["link", "del", LOCAL_MGMT]);
    // The local host's pool and its console pool (`<pool>-console`), both made by rfboot.
    for (const pool of [`rfbt-bmh-${TAG}`, `rfbt-bmh-${TAG}-console`]) {
      await shOk("virsh", ["-c", "qemu:///system", "pool-destroy", pool]);
      await shOk("virsh", ["-c", "qemu:///system", "pool-undefine", pool]);
    }
    await stopNetnsHosts(hosts);
    const { MongoClient } = await import("mongodb");
    const mongo = await MongoClient.connect(MONGO).catch(() => undefined);
    await mongo
      ?.db(`rfbt_bmh_${TAG}`)
      .dropDatabase()
      .catch(() => undefined);
    await mongo?.close();
    rmSync(stateDir, { recursive: true, force: true });
  }
  const summary = {
    burstMedianMs: {
      twoHosts: r1(median(bursts.filter((b) => b.hosts === 2).map((b) => b.ms))),
      oneHost: r1(median(bursts.filter((b) => b.hosts === 1).map((b) => b.ms))),
    },
    joinToReadyMedianMs: {
      remote: r1(median(readies.filter((r) => r.where === "remote").map((r) => r.joinToReadyMs))),
      local: r1(median(readies.filter((r) => r.where === "local").map((r) => r.joinToReadyMs))),
    },
    firstRemoteRoundMs: readies.find((r) => r.where === "remote")?.joinToReadyMs ?? null,
  };
  const result = { at: new Date().toISOString(), burst: BURST, summary, bursts, readies };
  mkdirSync(dirname(OUT), { recursive: true });
  writeFileSync(OUT, JSON.stringify(result, null, 2) + "\n");
  process.stdout.write(`${JSON.stringify(summary)}\nJSON: ${OUT}\n`);
}

await main();
