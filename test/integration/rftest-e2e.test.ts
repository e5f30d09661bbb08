/**
 * The demo, end to end, with the real scripts exactly as a user runs them: `rftest/rftest2` brings up
 * RouteFlow's rftest2 (Mininet s5..s8 -> rfboot relay on 6653 -> ovs-testcontroller on 6633), each switch's join
 * boots its routing VM (qemu/TCG, RouteFlow's NICs on dp0), RouteFlow's rfconfig rows land in MongoDB, and the
 * hosts ping each other through the relay. Then one switch leaves (leave policy `suspend`: managedsave) and
 * rejoins (the same domain is restored), rfboot is SIGKILLed and restarted (it adopts the running VMs), and
 * `--down` leaves nothing behind. rftest1 (one VM, dpid 0x99, listen mode) runs in the foreground and is torn
 * down by SIGINT to its process group, as Ctrl-C on a terminal does.
 *
 * Uses the demo's real names and ports (dp0, rfbr0, s5..s8, s99, rfvm*, 6633/6653): test files run one at a
 * time (vitest.config.ts). Every wait polls with a deadline sized for a loaded 2-core machine (guests boot in
 * ~2 s idle under TCG, a minute under load). Each script's output is appended to LAB_DIR/e2e/<demo>.log.
 */
import { execFileSync } from "node:child_process";
import { createWriteStream, existsSync, mkdirSync, readFileSync, readdirSync, statSync } from "node:fs";
import { join } from "node:path";
import { execa, type ResultPromise } from "execa";
import { MongoClient, type Db } from "mongodb";
import { afterAll, beforeAll, expect, it } from "vitest";
import { describeWith, MONGO_URI, REPO, SHARED } from "../helpers/env.js";
import { alive, mininetShells, portOpen } from "../helpers/real.js";

const ENV = { ...process.env, LC_ALL: "C" };
const LAB_DIR = process.env.RFBOOT_LAB_DIR ?? "/var/lib/rfboot-lab";
const LOG_DIR = join(LAB_DIR, "e2e");
/** CONSOLE_DIR: `<stateDir>/console`, stateDir being the configs' default (config/README.md). */
const CONSOLE_DIR = "/var/lib/rfboot/console";
const MARKER = "RFBOOT-GUEST-BOOTED";
const LISTEN = 6653;
const UPSTREAM = 6633;

type Demo = "rftest1" | "rftest2";

interface DemoSpec {
  switches: string[];
  hosts: string[];
  vms: string[];
  /** dpids: decimal strings, as RouteFlow and rfboot's records store them. */
  dpids: string[];
  csv: string;
}

const DEMOS: Record<Demo, DemoSpec> = {
  rftest2: {
    switches: ["s5", "s6", "s7", "s8"],
    hosts: ["h5", "h6", "h7", "h8"],
    vms: ["rfvmA", "rfvmB", "rfvmC", "rfvmD"],
    dpids: ["5", "6", "7", "8"],
    csv: join(SHARED, "routeflow/rftest-config/rftest2config.csv"),
  },
  rftest1: {
    switches: ["s99"],
    hosts: ["h1", "h2"],
    vms: ["rfvm1"],
    dpids: ["153"],
    csv: join(SHARED, "routeflow/rftest-config/rftest1config.csv"),
  },
};

interface VmRecordDoc {
  dpid: string;
  dpidHex: string;
  vmName?: string;
  vmId?: string;
  state: string;
  host?: string;
  hypervisor?: string;
  uuid?: string;
  owner?: string;
  joinedAt?: Date;
  definedAt?: Date;
  startedAt?: Date;
  readyAt?: Date;
  leftAt?: Date;
  switch?: { connected?: boolean; peer?: string; version?: number };
  lastError?: { kind: string; message: string } | null;
}

interface PingAll {
  ok: boolean;
  sent: number;
  received: number;
  failed: string[];
}

// ---------------------------------------------------------------------------------------------- helpers

/** csvRows reads RouteFlow's mapping CSV on its own terms (hex vm_id/dp_id) into decimal-string rows. */
function csvRows(path: string): string[] {
  const lines = readFileSync(path, "utf8").split(/\r?\n/).filter(Boolean);
  expect(lines[0]).toBe("vm_id,vm_port,ct_id,dp_id,dp_port");
  return lines
    .slice(1)
    .map((l) => {
      const [vmId, vmPort, ctId, dpId, dpPort] = l.split(",");
      const hex = (s = "") => BigInt(`0x${s.replace(/^0x/i, "")}`).toString(10);
      const dec = (s = "") => BigInt(s).toString(10);
      return [hex(vmId), dec(vmPort), dec(ctId), hex(dpId), dec(dpPort)].join(",");
    })
    .sort();
}

function sh(cmd: string, args: string[], timeout = 30_000): string {
  return execFileSync(cmd, args, { env: ENV, encoding: "utf8", timeout });
}

function shOk(cmd: string, args: string[]): boolean {
  try {
    execFileSync(cmd, args, { env: ENV, stdio: "ignore", timeout: 30_000 });
    return true;
  } catch {
    return false;
  }
}

/** rftest runs one of the demo scripts, appending its output to LOG_DIR/<demo>.log as it comes. */
async function rftest(demo: Demo, args: string[], timeoutMs: number) {
  const log = createWriteStream(join(LOG_DIR, `${demo}.log`), { flags: "a" });
  log.write(`\n==== ${new Date().toISOString()} rftest/${demo} ${args.join(" ")}\n`);
  const p = execa(join(REPO, "rftest", demo), args, {
    env: ENV,
    reject: false,
    timeout: timeoutMs,
    all: true,
  });
  p.all?.pipe(log, { end: false });
  const r = await p;
  await new Promise<void>((res) => log.end(res));
  return { exitCode: r.exitCode, all: r.all ?? "", timedOut: r.timedOut };
}

async function mn<T>(demo: Demo, ...words: string[]): Promise<T> {
  const r = await rftest(demo, ["--mn", ...words], 150_000);
  return JSON.parse(r.all.trim().split("\n").pop() ?? "{}") as T;
}

/** until polls `fn` until it returns a value other than undefined/false, or throws at the deadline. */
async function until<T>(
  what: string,
  timeoutMs: number,
  fn: () => Promise<T | undefined | false> | T | undefined | false,
  last?: () => string,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn();
    if (v !== undefined && v !== false) return v;
    if (Date.now() > deadline) {
      throw new Error(
        `timed out after ${timeoutMs / 1000} s waiting for ${what}${last ? `: ${last()}` : ""}`,
      );
    }
    await new Promise((r) => setTimeout(r, 250));
  }
}

/** tail returns the last lines of a file, for failure messages. */
function tail(path: string, n = 30): string {
  try {
    return `\n--- ${path} (tail) ---\n${readFileSync(path, "utf8").split("\n").slice(-n).join("\n")}`;
  } catch {
    return `\n--- ${path}: not readable`;
  }
}

function rfbootLog(demo: Demo): string {
  return tail(join(LAB_DIR, demo, "rfboot.log"));
}

function domains(opts: "--all" | "--state-running" = "--all"): string[] {
  return sh("virsh", ["-c", "qemu:///system", "list", opts, "--name"])
    .split("\n")
    .map((s) => s.trim())
    .filter((s) => s.startsWith("rfvm"))
    .sort();
}

function domState(name: string): string {
  return sh("virsh", ["-c", "qemu:///system", "domstate", name, "--reason"]).trim();
}

function domUuid(name: string): string {
  return sh("virsh", ["-c", "qemu:///system", "domuuid", name]).trim();
}

/** qemuPid is the pid libvirt records for a running qemu domain. */
function qemuPid(name: string): number {
  return Number(readFileSync(`/run/libvirt/qemu/${name}.pid`, "utf8").trim());
}

/** consoleLogOf reads the serial log path from the live domain's XML. */
function consoleLogOf(name: string): string {
  const xml = sh("virsh", ["-c", "qemu:///system", "dumpxml", name]);
  return /<serial type=['"]pty['"]>\s*(?:<source[^>]*>\s*)?<log file=['"]([^'"]+)['"]/.exec(xml)?.[1] ?? "";
}

function dp0Ports(): string[] {
  return sh("ovs-vsctl", ["--timeout=10", "list-ports", "dp0"]).split("\n").filter(Boolean).sort();
}

function dataPorts(vms: Record<string, number>): string[] {
  return Object.entries(vms)
    .flatMap(([vm, n]) => Array.from({ length: n }, (_, i) => `${vm}.${i + 1}`))
    .sort();
}

const RFTEST2_PORTS = dataPorts({ rfvmA: 4, rfvmB: 3, rfvmC: 3, rfvmD: 4 });

function bridgeExists(br: string): boolean {
  return shOk("ovs-vsctl", ["--timeout=5", "br-exists", br]);
}

function controllerOf(sw: string): string[] {
  return sh("ovs-vsctl", ["--timeout=10", "get-controller", sw]).split("\n").filter(Boolean).sort();
}

/** ovsConnected: every Controller row of the bridge says is_connected (as ovsdb reports it). */
function ovsConnected(sw: string): boolean {
  const rows = sh("ovs-vsctl", ["--timeout=10", "get", "bridge", sw, "controller"])
    .trim()
    .replace(/^\[|\]$/g, "")
    .split(",")
    .map((s) => s.trim())
    .filter(Boolean);
  return (
    rows.length > 0 &&
    rows.every(
      (r) => sh("ovs-vsctl", ["--timeout=10", "get", "controller", r, "is_connected"]).trim() === "true",
    )
  );
}

function ofDpid(sw: string): string {
  return /dpid:([0-9a-f]{16})/.exec(sh("ovs-ofctl", ["-O", "OpenFlow13", "show", sw]))?.[1] ?? "";
}

function pidFile(demo: Demo, what: string): number {
  return Number(readFileSync(join(LAB_DIR, demo, `${what}.pid`), "utf8").trim());
}

function qemuProcesses(): string[] {
  const found: string[] = [];
  for (const d of readdirSync("/proc")) {
    if (!/^\d+$/.test(d)) continue;
    try {
      const cmd = readFileSync(`/proc/${d}/cmdline`, "utf8");
      const m = /guest=(rfvm[A-Za-z0-9]*)/.exec(cmd);
      if (cmd.includes("qemu-system") && m && alive(Number(d))) found.push(`${m[1]}:${d}`);
    } catch {
      // gone
    }
  }
  return found;
}

let client: MongoClient | undefined;
async function db(): Promise<Db> {
  client ??= await new MongoClient(MONGO_URI, { serverSelectionTimeoutMS: 10_000 }).connect();
  return client.db("db");
}

async function records(spec: DemoSpec): Promise<VmRecordDoc[]> {
  const docs = await (
    await db()
  )
    .collection<VmRecordDoc>("rfboot_vms")
    .find({ $or: [{ dpid: { $in: spec.dpids } }, { vmName: { $in: spec.vms } }] })
    .toArray();
  return docs.sort((a, b) => Number(BigInt(a.dpid) - BigInt(b.dpid)));
}

async function record(spec: DemoSpec, vm: string): Promise<VmRecordDoc | undefined> {
  return (await records(spec)).find((r) => r.vmName === vm);
}

/** rfconfigRows: every row of db.rfconfig that names one of the demo's datapaths or VMs, as CSV lines. */
async function rfconfigRows(spec: DemoSpec): Promise<string[]> {
  const vmIds = csvRows(spec.csv).map((l) => l.split(",")[0]!);
  const rows = await (
    await db()
  )
    .collection("rfconfig")
    .find({ $or: [{ dp_id: { $in: spec.dpids } }, { vm_id: { $in: vmIds } }] }, { projection: { _id: 0 } })
    .toArray();
  return rows
    .map((r) => {
      for (const k of ["vm_id", "vm_port", "ct_id", "dp_id", "dp_port"]) {
        // RouteFlow's rfserver matches with str(v): anything but a string never matches.
        expect(typeof r[k], `rfconfig.${k} of ${JSON.stringify(r)}`).toBe("string");
      }
      return [r.vm_id, r.vm_port, r.ct_id, r.dp_id, r.dp_port].join(",");
    })
    .sort();
}

async function events(dpidHex: string, kind: string, since: number) {
  return (await db())
    .collection<{ at: Date; dpid?: string; kind: string; detail?: string }>("rfboot_events")
    .find({ dpid: dpidHex, kind, at: { $gte: new Date(since) } })
    .toArray();
}

/** eventDetails waits for the event log to hold at least one such event (it is written asynchronously). */
async function eventDetails(
  dpidHex: string,
  kind: string,
  since: number,
): Promise<Array<string | undefined>> {
  return until(`a "${kind}" event for ${dpidHex} in rfboot_events`, 20_000, async () => {
    const xs = await events(dpidHex, kind, since);
    return xs.length > 0 ? xs.map((e) => e.detail) : undefined;
  });
}

async function clearMongo(spec: DemoSpec): Promise<void> {
  const r = await execa(
    "node",
    [join(REPO, "rftest/lib/show-mongo.mjs"), "clear", "--dpids", spec.dpids.join(",")],
    {
      env: ENV,
      reject: false,
      all: true,
    },
  );
  expect(r.exitCode, r.all).toBe(0);
}

const ms = (d: Date | undefined) => (d instanceof Date ? d.getTime() : NaN);
const secs = (x: number) => `${(x / 1000).toFixed(1)} s`;

/** expectNothingLeft: no domain, bridge, link, host shell, qemu or rftest process, listener of the demo. */
async function expectNothingLeft(demo: Demo, spec: DemoSpec, pids: number[]): Promise<void> {
  expect(domains()).toEqual([]);
  expect(qemuProcesses()).toEqual([]);
  for (const br of [...spec.switches, "dp0"]) expect(bridgeExists(br), `bridge ${br}`).toBe(false);
  const links = readdirSync("/sys/class/net");
  expect(links.filter((l) => l === "rfbr0" || l === "dp0" || l.startsWith("rfvm"))).toEqual([]);
  expect(links.filter((l) => spec.switches.some((s) => l === s || l.startsWith(`${s}-eth`)))).toEqual([]);
  expect(mininetShells(spec.hosts)).toEqual([]);
  for (const p of pids) expect(alive(p), `pid ${p} (started by rftest/${demo})`).toBe(false);
  expect(await portOpen(UPSTREAM), `something still listens on ${UPSTREAM}`).toBe(false);
  expect(await portOpen(LISTEN), `something still listens on ${LISTEN}`).toBe(false);
  expect(sh("ip", ["netns", "list"])).not.toMatch(/\b(h[1-8]|s[5-8]|s99)\b/);
  for (const f of ["mininet.pid", "upstream.pid", "rfboot.pid", "rfboot.config"]) {
    expect(existsSync(join(LAB_DIR, demo, f)), `${demo}/${f}`).toBe(false);
  }
  const saves = existsSync("/var/lib/libvirt/qemu/save") ? readdirSync("/var/lib/libvirt/qemu/save") : [];
  expect(saves.filter((f) => f.startsWith("rfvm"))).toEqual([]);
}

// ---------------------------------------------------------------------------------------------- tests

describeWith(
  ["ovs", "libvirt", "mongo", "mininet", "root"],
  "rftest end to end: on-demand VMs for RouteFlow's demos",
  () => {
    const R2 = DEMOS.rftest2;
    const R1 = DEMOS.rftest1;
    /** phase: how far the rftest2 story got; a later step needs the earlier ones. */
    let phase = 0;
    let tUp = 0;
    let rftest1Fg: ResultPromise | undefined;

    beforeAll(async () => {
      mkdirSync(LOG_DIR, { recursive: true });
      // A clean slate: nothing of an earlier run, and no rows or records rfboot did not write in this run.
      for (const d of ["rftest2", "rftest1"] as const) {
        const r = await rftest(d, ["--down"], 180_000);
        expect(r.exitCode, r.all).toBe(0);
      }
      await clearMongo(R2);
      await clearMongo(R1);
    }, 400_000);

    afterAll(async () => {
      if (rftest1Fg?.pid !== undefined && alive(rftest1Fg.pid)) {
        try {
          process.kill(-rftest1Fg.pid, "SIGINT");
        } catch {
          // already gone
        }
        await Promise.race([rftest1Fg, new Promise((r) => setTimeout(r, 60_000))]);
      }
      await rftest("rftest2", ["--down"], 180_000);
      await rftest("rftest1", ["--down"], 180_000);
      await client?.close();
    }, 400_000);

    it("rftest2 comes up: 4 switches joined, 4 VMs booted, dp0's 14 ports, RouteFlow's 14 rows, pingall through the relay", async () => {
      tUp = Date.now();
      // suspend:2: a switch that stays away 2 s gets its VM managed-saved (the shipped config keeps it).
      const r = await rftest("rftest2", ["--no-wait", "--leave", "suspend:2", "--timeout", "420"], 540_000);
      expect(r.exitCode, `${r.all}${rfbootLog("rftest2")}`).toBe(0);
      const upMs = Date.now() - tUp;
      expect(r.all).toContain(
        "relay mode on 127.0.0.1:6653, upstream 127.0.0.1:6633, leave policy suspend:2",
      );

      // Switches: dpids 5..8, pointed at rfboot only (relay), connected; rfboot's records agree.
      for (const [i, sw] of R2.switches.entries()) {
        expect(ofDpid(sw)).toBe(BigInt(R2.dpids[i]!).toString(16).padStart(16, "0"));
        expect(controllerOf(sw)).toEqual([`tcp:127.0.0.1:${LISTEN}`]);
      }
      await until("ovsdb to report s5..s8 connected", 30_000, () => R2.switches.every(ovsConnected));

      // VMs: exactly rfvmA..D, running, booted (marker in the console log the config names).
      expect(domains()).toEqual(R2.vms);
      expect(domains("--state-running")).toEqual(R2.vms);
      for (const vm of R2.vms) {
        const log = consoleLogOf(vm);
        expect(log).toBe(join(CONSOLE_DIR, `${vm}.log`));
        expect(readFileSync(log, "latin1")).toContain(`${MARKER} name=${vm}`);
        expect(statSync(log).mtimeMs).toBeGreaterThanOrEqual(tUp - 1000);
      }
      expect(dp0Ports()).toEqual(RFTEST2_PORTS);
      expect(await rfconfigRows(R2)).toEqual(csvRows(R2.csv));

      const recs = await records(R2);
      expect(recs.map((x) => [x.dpid, x.vmName, x.state])).toEqual(
        R2.dpids.map((d, i) => [d, R2.vms[i], "ready"]),
      );
      for (const x of recs) {
        expect(x).toMatchObject({ host: "local", hypervisor: "qemu", switch: { connected: true } });
        expect(x.uuid).toBe(domUuid(x.vmName!));
        const [j, d, s, rd] = [ms(x.joinedAt), ms(x.definedAt), ms(x.startedAt), ms(x.readyAt)];
        expect(j, `${x.vmName} joinedAt`).toBeGreaterThanOrEqual(tUp);
        // Defined by this run, ahead of the join (policies.defineAhead); started on demand, once its switch
        // joined.
        expect(d, `${x.vmName} definedAt`).toBeGreaterThanOrEqual(tUp);
        expect(s, `${x.vmName} startedAt`).toBeGreaterThanOrEqual(Math.max(d, j));
        expect(rd, `${x.vmName} readyAt`).toBeGreaterThanOrEqual(s);
      }

      // The hosts behind the switches reach each other through rfboot's relay and the upstream controller.
      expect(alive(pidFile("rftest2", "upstream"))).toBe(true);
      const ping = await mn<PingAll>("rftest2", "pingall");
      expect(ping).toMatchObject({ ok: true, sent: 12, received: 12, failed: [] });

      const timings = JSON.parse(readFileSync(join(LAB_DIR, "rftest2", "timings.json"), "utf8")) as Record<
        string,
        number
      >;
      const join0 = Math.min(...recs.map((x) => ms(x.joinedAt)));
      console.log(
        `rftest2 up in ${secs(upMs)} (steps ms ${JSON.stringify(timings)}); all 4 ready ${secs(Math.max(...recs.map((x) => ms(x.readyAt))) - tUp)} after start; ` +
          recs
            .map(
              (x) =>
                `${x.vmName}: joined +${secs(ms(x.joinedAt) - join0)}, started +${secs(ms(x.startedAt) - ms(x.joinedAt))}, ready +${secs(ms(x.readyAt) - ms(x.startedAt))}`,
            )
            .join("; "),
      );
      phase = 1;
    }, 600_000);

    it("s6 leaves: rfvmB is managed-saved; s6 rejoins: the same rfvmB is restored, no duplicate domain or row", async () => {
      expect(phase, "needs the demo up").toBe(1);
      const uuidB = domUuid("rfvmB");
      const tLeave = Date.now();
      expect(await mn<{ ok: boolean }>("rftest2", "switch", "s6", "stop")).toMatchObject({ ok: true });

      const left = await until(
        "rfvmB suspended by the leave policy",
        120_000,
        async () => {
          const b = await record(R2, "rfvmB");
          return b && b.state === "suspended" && domState("rfvmB") === "shut off (saved)" ? b : undefined;
        },
        () => `domstate ${domState("rfvmB")}${rfbootLog("rftest2")}`,
      );
      expect(ms(left.leftAt)).toBeGreaterThanOrEqual(tLeave);
      expect(left.switch?.connected).toBe(false);
      expect(await eventDetails("0000000000000006", "leave-policy", tLeave)).toEqual(["suspend: saved"]);
      // Its dp0 ports went with its qemu; the other three VMs are untouched.
      expect(dp0Ports()).toEqual(RFTEST2_PORTS.filter((p) => !p.startsWith("rfvmB.")));
      expect(domains("--state-running")).toEqual(["rfvmA", "rfvmC", "rfvmD"]);
      for (const vm of ["rfvmA", "rfvmC", "rfvmD"]) expect((await record(R2, vm))?.state).toBe("ready");
      const tSaved = Date.now();

      const tRejoin = Date.now();
      expect(await mn<{ ok: boolean }>("rftest2", "switch", "s6", "start")).toMatchObject({ ok: true });
      const back = await until(
        "rfvmB back after s6 rejoined",
        180_000,
        async () => {
          const b = await record(R2, "rfvmB");
          return b && b.state === "ready" && ms(b.joinedAt) >= tRejoin ? b : undefined;
        },
        () => `domstate ${domState("rfvmB")}${rfbootLog("rftest2")}`,
      );
      const tBack = Date.now();
      expect(back).toMatchObject({ switch: { connected: true }, uuid: uuidB });
      expect(ms(back.startedAt)).toBeGreaterThanOrEqual(tRejoin);
      expect(domUuid("rfvmB")).toBe(uuidB);
      expect(domState("rfvmB")).toMatch(/^running/);
      // Restored from the saved image, not booted again: rfboot says so in its event log.
      expect(await eventDetails("0000000000000006", "boot", tRejoin)).toEqual(["started on local"]);
      expect(await eventDetails("0000000000000006", "ready", tRejoin)).toEqual([
        expect.stringMatching(/restored/),
      ]);
      expect(domains()).toEqual(R2.vms);
      expect(domains("--state-running")).toEqual(R2.vms);
      expect(dp0Ports()).toEqual(RFTEST2_PORTS);
      expect(await rfconfigRows(R2)).toEqual(csvRows(R2.csv));
      expect(await records(R2)).toHaveLength(4);

      await mn("rftest2", "wait-converged", "60");
      const ping = await until("pingall 12/12 after s6 rejoined", 60_000, async () => {
        const p = await mn<PingAll>("rftest2", "pingall");
        return p.ok ? p : undefined;
      });
      expect(ping).toMatchObject({ sent: 12, received: 12 });
      console.log(
        `leave: s6 stop -> rfvmB suspended ${secs(tSaved - tLeave)}; rejoin: s6 start -> rfvmB ready ${secs(tBack - tRejoin)}` +
          ` (restored: boot marker in its console log: ${readFileSync(consoleLogOf("rfvmB"), "latin1").includes(MARKER)})`,
      );
      phase = 2;
    }, 600_000);

    it("rfboot SIGKILLed and restarted: it adopts the 4 running VMs (same qemu, same startedAt), no duplicates", async () => {
      expect(phase, "needs the leave/rejoin step").toBe(2);
      const before = new Map((await records(R2)).map((x) => [x.vmName!, x]));
      const qemu = new Map(R2.vms.map((vm) => [vm, qemuPid(vm)]));
      const uuids = new Map(R2.vms.map((vm) => [vm, domUuid(vm)]));
      const oldPid = pidFile("rftest2", "rfboot");
      expect(alive(oldPid)).toBe(true);

      const tKill = Date.now();
      process.kill(oldPid, "SIGKILL");
      await until("the killed rfboot to be gone", 30_000, () => !alive(oldPid));
      // The relay is gone with it: the switches lose their only controller.
      await until("ovsdb to report s5..s8 disconnected", 30_000, () =>
        R2.switches.every((s) => !ovsConnected(s)),
      );

      // Waits until each switch joined the new rfboot and its VM is ready again. rfvmB included: restored from
      // managedsave above, its console log was truncated (serial <log append='off'>) and never shows the boot
      // marker again; adopted, it is ready because its record says it was ready since its last start.
      const r = await rftest("rftest2", ["--restart-rfboot", "--timeout", "300"], 400_000);
      expect(r.exitCode, `${r.all}${rfbootLog("rftest2")}`).toBe(0);
      const restartMs = Date.now() - tKill;
      const newPid = pidFile("rftest2", "rfboot");
      expect(newPid).not.toBe(oldPid);
      expect(alive(newPid)).toBe(true);
      await until("ovsdb to report s5..s8 connected again", 30_000, () => R2.switches.every(ovsConnected));

      expect(domains()).toEqual(R2.vms);
      expect(domains("--state-running")).toEqual(R2.vms);
      for (const vm of R2.vms) {
        expect(qemuPid(vm), `${vm}'s qemu`).toBe(qemu.get(vm));
        expect(domUuid(vm)).toBe(uuids.get(vm));
      }
      expect(readFileSync(consoleLogOf("rfvmB"), "latin1")).not.toContain(MARKER);
      const after = await records(R2);
      expect(after).toHaveLength(4);
      for (const x of after) {
        const b = before.get(x.vmName!)!;
        expect(x.state, x.vmName).toBe("ready");
        expect(ms(x.readyAt), `${x.vmName} ready for this join`).toBeGreaterThanOrEqual(ms(x.joinedAt));
        expect(x.owner, x.vmName).toMatch(new RegExp(`:${newPid}$`));
        expect(ms(x.joinedAt), `${x.vmName} rejoined the new rfboot`).toBeGreaterThanOrEqual(tKill);
        expect(ms(x.startedAt), `${x.vmName} was not started again`).toBe(ms(b.startedAt));
        expect(x.uuid).toBe(b.uuid);
        expect(await eventDetails(x.dpidHex, "boot", tKill)).toEqual(["adopted on local"]);
      }
      expect(dp0Ports()).toEqual(RFTEST2_PORTS);
      expect(await rfconfigRows(R2)).toEqual(csvRows(R2.csv));
      const ping = await until("pingall 12/12 through the new rfboot", 60_000, async () => {
        const p = await mn<PingAll>("rftest2", "pingall");
        return p.ok ? p : undefined;
      });
      expect(ping.received).toBe(12);
      console.log(`SIGKILL -> restarted rfboot with 4 VMs adopted and ready: ${secs(restartMs)}`);
      phase = 3;
    }, 600_000);

    it("rftest2 --down leaves nothing behind", async () => {
      expect(phase, "needs the demo up").toBeGreaterThanOrEqual(1);
      const pids = ["rfboot", "upstream", "mininet"]
        .filter((f) => existsSync(join(LAB_DIR, "rftest2", `${f}.pid`)))
        .map((f) => pidFile("rftest2", f));
      for (const vm of R2.vms) if (existsSync(`/run/libvirt/qemu/${vm}.pid`)) pids.push(qemuPid(vm));
      const t = Date.now();
      const r = await rftest("rftest2", ["--down"], 180_000);
      expect(r.exitCode, r.all).toBe(0);
      expect(r.all).toContain("teardown: done");
      await expectNothingLeft("rftest2", R2, pids);
      // The demo owns its lab database and resets it as RouteFlow's rftest does: RouteFlow's collections
      // and rfboot's own records are gone, so the next demo starts from an empty mapping.
      expect(r.all).toMatch(/database: reset db: dropped .*rfconfig/);
      expect(await rfconfigRows(R2)).toEqual([]);
      expect(await records(R2)).toEqual([]);
      console.log(`rftest2 --down: ${secs(Date.now() - t)}`);
      phase = 4;
    }, 240_000);

    it("rftest1 in the foreground: rfvm1 boots for dpid 0x99 (listen mode), pingall; Ctrl-C (SIGINT) tears it all down", async () => {
      if (phase < 4) {
        // rftest2's story stopped early: its demo would hold dp0, 6633 and 6653.
        const d = await rftest("rftest2", ["--down"], 180_000);
        expect(d.exitCode, d.all).toBe(0);
      }
      const t0 = Date.now();
      const log = createWriteStream(join(LOG_DIR, "rftest1.log"), { flags: "a" });
      log.write(`\n==== ${new Date().toISOString()} rftest/rftest1 --timeout 300 (foreground, SIGINT)\n`);
      let out = "";
      // Its own process group, as a shell gives a foreground job: SIGINT to the group is what Ctrl-C sends.
      const p = execa(join(REPO, "rftest", "rftest1"), ["--timeout", "300"], {
        env: ENV,
        reject: false,
        all: true,
        detached: true,
        buffer: false,
      });
      rftest1Fg = p;
      p.all?.on("data", (b: Buffer) => {
        out += b.toString();
        log.write(b);
      });
      let exited = false;
      void p.finally(() => {
        exited = true;
      });
      await until(
        "rftest1 to say it is up",
        420_000,
        () => {
          if (exited) throw new Error(`rftest1 exited before it was up:\n${out}${rfbootLog("rftest1")}`);
          return out.includes("up; Ctrl-C tears everything down");
        },
        () => `${out}${rfbootLog("rftest1")}`,
      );
      const upMs = Date.now() - t0;

      expect(out).toContain("listen mode on 127.0.0.1:6653");
      expect(out).toMatch(/rfconfig \(db\.rfconfig, 2 rows\)/);
      expect(ofDpid("s99")).toBe("0000000000000099");
      // Listen mode: the switch has two controllers, the upstream and rfboot.
      expect(controllerOf("s99")).toEqual([`tcp:127.0.0.1:${UPSTREAM}`, `tcp:127.0.0.1:${LISTEN}`]);
      expect(domains()).toEqual(["rfvm1"]);
      expect(domains("--state-running")).toEqual(["rfvm1"]);
      const clog = consoleLogOf("rfvm1");
      expect(clog).toBe(join(CONSOLE_DIR, "rfvm1.log"));
      expect(readFileSync(clog, "latin1")).toContain(`${MARKER} name=rfvm1`);
      expect(dp0Ports()).toEqual(["rfvm1.1", "rfvm1.2"]);
      expect(await rfconfigRows(R1)).toEqual(csvRows(R1.csv));
      // Only rftest1's rows: rftest2's went with its teardown, and the start reset the lab database again.
      expect(await (await db()).collection("rfconfig").countDocuments({})).toBe(csvRows(R1.csv).length);
      const [rec] = await records(R1);
      expect(await records(R1)).toHaveLength(1);
      expect(rec).toMatchObject({
        dpid: "153",
        dpidHex: "0000000000000099",
        vmName: "rfvm1",
        state: "ready",
      });
      expect(rec?.uuid).toBe(domUuid("rfvm1"));
      expect(ms(rec?.joinedAt)).toBeGreaterThanOrEqual(t0);
      expect(ms(rec?.readyAt)).toBeGreaterThanOrEqual(ms(rec?.startedAt));
      expect(await mn<PingAll>("rftest1", "pingall")).toMatchObject({ ok: true, sent: 2, received: 2 });

      const pids = [
        pidFile("rftest1", "rfboot"),
        pidFile("rftest1", "upstream"),
        pidFile("rftest1", "mininet"),
        qemuPid("rfvm1"),
      ];
      const tInt = Date.now();
      process.kill(-p.pid!, "SIGINT");
      const r = await Promise.race([
        p,
        new Promise<undefined>((res) => setTimeout(() => res(undefined), 180_000)),
      ]);
      expect(r, `rftest1 still running 180 s after SIGINT:\n${out}`).toBeDefined();
      await new Promise<void>((res) => log.end(res));
      expect(r?.exitCode, out).toBe(130);
      expect(out).toContain("interrupted: tearing down");
      expect(out).toContain("teardown: done");
      await expectNothingLeft("rftest1", R1, pids);
      console.log(`rftest1: up (rfvm1 ready) in ${secs(upMs)}; SIGINT teardown ${secs(Date.now() - tInt)}`);
    }, 660_000);
  },
);
