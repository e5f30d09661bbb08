/**
 * bench/rftest.ts: rftest2 end to end, on demand versus up front.
 *
 *   sudo node --import tsx bench/rftest.ts      (JSON to bench/out/rftest.json, a table on stdout)
 *
 * On demand: `rftest/rftest2 --no-wait` from a torn-down lab, timed from its start until all four VMs are
 * ready, split into lab bring-up (everything before Mininet starts: packages check, MongoDB, libvirtd, OVS,
 * guest cache, dp0/rfbr0, upstream, rfboot), switch join (Mininet start -> rfboot's joinedAt), define/start
 * (joinedAt -> startedAt) and guest boot (startedAt -> readyAt, the guest's console marker), per VM from
 * rfboot's own records in MongoDB. Then pingall through the demo, and teardown.
 * Up front, seed-style (the RouteFlow student fork's libvirt wizard): the same four domains from
 * `rfboot xml`, `virsh define` + `virsh start` one after the other before any switch exists, timed until
 * every console log shows the marker. Needs root and the lab (rftest/lib/lab.sh).
 */
import { mkdirSync, readFileSync, rmSync, writeFileSync, existsSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { execa } from "execa";
import { MongoClient } from "mongodb";

const REPO = join(dirname(fileURLToPath(import.meta.url)), "..");
const OUT = join(REPO, "bench", "out", "rftest.json");
const STATE = join(process.env.RFBOOT_LAB_DIR ?? "/var/lib/rfboot-lab", "rftest2");
const VMS = ["rfvmA", "rfvmB", "rfvmC", "rfvmD"] as const;
const DPIDS = ["5", "6", "7", "8"];
const MARKER = "RFBOOT-GUEST-BOOTED";
const env = { ...process.env, LC_ALL: "C" };

interface VmTimes {
  vm: string;
  joinMs: number;
  defineStartMs: number;
  bootMs: number;
  readyMs: number;
}

const ms = (d: unknown) => (d instanceof Date ? d.getTime() : NaN);
const max = (xs: number[]) => Math.max(...xs);
const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2;
};

async function sh(cmd: string, args: string[], timeout = 600_000) {
  return execa(cmd, args, { env, timeout, all: true, reject: false });
}

async function onDemand() {
  await sh(join(REPO, "rftest", "rftest2"), ["--down"]);
  await sh("node", [join(REPO, "rftest/lib/show-mongo.mjs"), "clear", "--dpids", DPIDS.join(",")]);
  const t0 = Date.now();
  const up = await sh(join(REPO, "rftest", "rftest2"), ["--no-wait"]);
  const wallMs = Date.now() - t0;
  if (up.exitCode !== 0) throw new Error(`rftest2 failed (exit ${up.exitCode}):\n${up.all}`);
  const steps = JSON.parse(readFileSync(join(STATE, "timings.json"), "utf8")) as Record<string, number>;
  const mnStart = Date.parse(
    (
      JSON.parse(readFileSync(join(STATE, "mininet", "events.jsonl"), "utf8").split("\n")[0]!) as {
        ts: string;
      }
    ).ts,
  );
  const client = new MongoClient(process.env.RFBOOT_MONGO_URI ?? "mongodb://127.0.0.1:27017");
  await client.connect();
  const recs = await client
    .db("db")
    .collection("rfboot_vms")
    .find({ dpid: { $in: DPIDS } })
    .toArray();
  await client.close();
  const vms: VmTimes[] = recs.map((r) => ({
    vm: String(r.vmName),
    joinMs: ms(r.joinedAt) - mnStart,
    defineStartMs: ms(r.startedAt) - ms(r.joinedAt),
    bootMs: ms(r.readyAt) - ms(r.startedAt),
    readyMs: ms(r.readyAt) - t0,
  }));
  const ping = await sh(join(REPO, "rftest", "rftest2"), ["--mn", "pingall"]);
  const pingall = JSON.parse(ping.stdout.trim().split("\n").pop() ?? "{}") as {
    ok?: boolean;
    received?: number;
  };
  const down0 = Date.now();
  await sh(join(REPO, "rftest", "rftest2"), ["--down"]);
  return {
    wallMs,
    allReadyMs: max(vms.map((v) => v.readyMs)),
    labBringUpMs: mnStart - t0,
    steps,
    switchJoinMs: { median: median(vms.map((v) => v.joinMs)), max: max(vms.map((v) => v.joinMs)) },
    defineStartMs: {
      median: median(vms.map((v) => v.defineStartMs)),
      max: max(vms.map((v) => v.defineStartMs)),
    },
    guestBootMs: { median: median(vms.map((v) => v.bootMs)), max: max(vms.map((v) => v.bootMs)) },
    vms,
    pingall: { ok: pingall.ok === true, received: pingall.received ?? 0, sent: 12 },
    teardownMs: Date.now() - down0,
  };
}

async function upFront() {
  // The lab as rftest2 leaves it before Mininet: MongoDB/libvirtd/OVS up, dp0 and rfbr0 there.
  const net = await sh("bash", [
    "-c",
    `source ${REPO}/rftest/lib/lab.sh && lab_up && source ${REPO}/rftest/lib/rfnet.sh && rfnet_up`,
  ]);
  if (net.exitCode !== 0) throw new Error(`lab/rfnet failed:\n${net.all}`);
  const dir = join(STATE, "upfront");
  mkdirSync(dir, { recursive: true });
  const logs: string[] = [];
  for (const vm of VMS) {
    const x = await sh(join(REPO, "bin", "rfboot"), [
      "xml",
      "--config",
      join(REPO, "config/rftest2.yaml"),
      "--vm",
      vm,
    ]);
    if (x.exitCode !== 0) throw new Error(`rfboot xml ${vm}: ${x.all}`);
    writeFileSync(join(dir, `${vm}.xml`), x.stdout);
    const log = /<log file=["']([^"']+)["']/.exec(x.stdout)?.[1];
    if (!log) throw new Error(`no serial <log file> in ${vm}'s XML (console.log: true in the config)`);
    logs.push(log);
  }
  for (const l of logs) rmSync(l, { force: true });
  const t0 = Date.now();
  const startedAt: number[] = [];
  for (const vm of VMS) {
    // The wizard's sequence per VM: destroy, undefine, define, start.
    await sh("virsh", ["-c", "qemu:///system", "destroy", vm]);
    await sh("virsh", ["-c", "qemu:///system", "undefine", vm]);
    const d = await sh("virsh", ["-c", "qemu:///system", "define", join(dir, `${vm}.xml`)]);
    const s = await sh("virsh", ["-c", "qemu:///system", "start", vm]);
    if (d.exitCode !== 0 || s.exitCode !== 0) throw new Error(`${vm}: ${d.all}\n${s.all}`);
    startedAt.push(Date.now() - t0);
  }
  const readyAt = new Map<string, number>();
  while (readyAt.size < VMS.length && Date.now() - t0 < 300_000) {
    VMS.forEach((vm, i) => {
      if (!readyAt.has(vm) && existsSync(logs[i]!) && readFileSync(logs[i]!, "utf8").includes(MARKER)) {
        readyAt.set(vm, Date.now() - t0);
      }
    });
    await new Promise((r) => setTimeout(r, 100));
  }
  await sh(join(REPO, "rftest", "rftest2"), ["--down"]);
  if (readyAt.size < VMS.length)
    throw new Error(`up front: only ${readyAt.size} of ${VMS.length} VMs booted`);
  return {
    allStartedMs: max(startedAt),
    allReadyMs: max([...readyAt.values()]),
    vms: VMS.map((vm, i) => ({ vm, startedMs: startedAt[i], readyMs: readyAt.get(vm) })),
  };
}

async function main() {
  if (process.getuid?.() !== 0) {
    console.error("bench/rftest.ts needs root (Mininet, libvirt qemu:///system, OVS)");
    process.exit(2);
  }
  const demand = await onDemand();
  const front = await upFront();
  const result = { bench: "rftest", at: new Date().toISOString(), onDemand: demand, upFront: front };
  mkdirSync(dirname(OUT), { recursive: true });
  writeFileSync(OUT, `${JSON.stringify(result, null, 2)}\n`);
  const row = (k: string, v: number | string) => console.log(`${k.padEnd(44)} ${String(v).padStart(10)}`);
  console.log("rftest2, 4 switches / 4 VMs                        ms");
  row("on demand: rftest2 start -> all 4 VMs ready", demand.allReadyMs);
  row("  lab bring-up (until Mininet starts)", demand.labBringUpMs);
  row("  switch join (Mininet start -> joined), max", demand.switchJoinMs.max);
  row("  define+start (joined -> started), max", demand.defineStartMs.max);
  row("  guest boot (started -> ready), max", demand.guestBootMs.max);
  row("  pingall through the demo", demand.pingall.ok ? `${demand.pingall.received}/12` : "FAILED");
  row("  teardown (rftest2 --down)", demand.teardownMs);
  row("up front, sequential define+start: all started", front.allStartedMs);
  row("up front: all 4 VMs ready", front.allReadyMs);
  console.log(`JSON: ${OUT}`);
}

main().catch((e: unknown) => {
  console.error(e instanceof Error ? e.message : e);
  process.exit(1);
});
