/**
 * watchDomainConsole on a real LXC domain (libvirt's LXC driver: a pty console, no console log). The
 * rftest guest's /init prints its boot marker once, ~60 ms after start; the test lets it print before
 * attaching, so the marker is seen only because the host pty kept it. Afterwards nobody holds the pty and
 * no console process of ours is left, and another `virsh console` attaches and reads on. Timeout, abort and
 * a missing domain are exercised for real too. The container gets its own network namespace through a
 * management NIC on a bridge of the test's own (without a NIC an LXC domain shares the host's, and the
 * guest's init would bring host links up). Names start with `rfbtx-`; all removed in afterAll.
 */
import {
  cpSync,
  existsSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  statSync,
  rmSync,
  writeFileSync,
} from "node:fs";
import { join } from "node:path";
import { execa } from "execa";
import { afterAll, beforeAll, expect, it } from "vitest";
import { ConsoleError, VirshError } from "../../src/common/errors.js";
import { watchDomainConsole } from "../../src/provisioner/libvirt/console.js";
import { buildDomainXml, type VmDescription } from "../../src/xmlgen/index.js";
import { describeWith, REPO } from "../helpers/env.js";
import { sleep } from "../helpers/real.js";

const GUEST = process.env.RFBOOT_GUEST_DIR ?? "/var/lib/rfboot/guest";
const RUN = `/var/lib/rfboot/rfbtx-console-${process.pid}`;
const LXC = "lxc:///system";
const NAME = `rfbtx-con${process.pid}`;
const BR = `rfbtx-cb${process.pid % 10000}`;
const ROOTFS = join(RUN, "rootfs");

async function virsh(...args: string[]) {
  return execa("virsh", ["-c", LXC, ...args], { env: { LC_ALL: "C" }, reject: false, timeout: 60_000 });
}

async function ok(...args: string[]): Promise<string> {
  const r = await virsh(...args);
  if (r.exitCode !== 0) throw new Error(`virsh -c ${LXC} ${args.join(" ")} failed: ${r.stderr}`);
  return r.stdout;
}

/** ensureLxcCgroupMount adds the second cgroup2 mount libvirt's LXC driver needs when cgroup v2 is hybrid here. */
async function ensureLxcCgroupMount(): Promise<void> {
  const cg2 = readFileSync("/proc/mounts", "utf8")
    .split("\n")
    .map((l) => l.split(" "))
    .filter((f) => f[2] === "cgroup2");
  if (cg2.length > 0 && cg2[cg2.length - 1]![1] === "/run/cg2") return;
  mkdirSync("/run/cg2", { recursive: true });
  await execa("mount", ["-t", "cgroup2", "cgroup2", "/run/cg2"]);
}

/** ptyHolders lists the processes that have `tty` open (pid and command name). */
function ptyHolders(tty: string): string[] {
  const out: string[] = [];
  // By the file itself, not its name: the container's own processes hold /dev/pts/N of the container's
  // devpts, which may carry the same name as the host's pty.
  const want = statSync(tty);
  for (const pid of readdirSync("/proc").filter((d) => /^\d+$/.test(d))) {
    let fds: string[];
    try {
      fds = readdirSync(`/proc/${pid}/fd`);
    } catch {
      continue;
    }
    for (const fd of fds) {
      try {
        const st = statSync(`/proc/${pid}/fd/${fd}`);
        if (st.dev === want.dev && st.ino === want.ino) {
          out.push(`${pid} ${readFileSync(`/proc/${pid}/comm`, "utf8").trim()}`);
          break;
        }
      } catch {
        // gone meanwhile
      }
    }
  }
  return out;
}

/** consoleProcesses lists live processes whose command line attaches a console to `domain`. */
function consoleProcesses(domain: string): string[] {
  const out: string[] = [];
  for (const pid of readdirSync("/proc").filter((d) => /^\d+$/.test(d))) {
    try {
      const argv = readFileSync(`/proc/${pid}/cmdline`, "utf8").split("\0");
      const state = readFileSync(`/proc/${pid}/stat`, "utf8").split(") ")[1]?.[0];
      if (state !== "Z" && argv.includes("console") && argv.includes(domain))
        out.push(`${pid} ${argv.join(" ")}`);
    } catch {
      // gone meanwhile
    }
  }
  return out;
}

/** ourConsoles lists this test process's `script` children and their children (virsh), alive. */
function ourConsoles(): string[] {
  const parentOf = (pid: string) => {
    try {
      const stat = readFileSync(`/proc/${pid}/stat`, "utf8").split(") ")[1]!.split(" ");
      // After the command name: state, then the parent's pid.
      return stat[0] === "Z" ? undefined : Number(stat[1]);
    } catch {
      return undefined;
    }
  };
  const pids = readdirSync("/proc").filter((d) => /^\d+$/.test(d));
  const scripts = pids.filter((p) => parentOf(p) === process.pid);
  const all = [...scripts, ...pids.filter((p) => scripts.includes(String(parentOf(p))))];
  return all.map((p) => {
    try {
      return `${p} ${readFileSync(`/proc/${p}/cmdline`, "utf8").split("\0").join(" ").trim()}`;
    } catch {
      return `${p} ?`;
    }
  });
}

/**
 * releasedForTheNextReader checks that nothing holds the console's pty any more and no console process of
 * ours is left, then that an operator's `virsh console` (the same command, with a terminal) attaches and
 * reads on.
 */
async function releasedForTheNextReader(tty: string): Promise<void> {
  let holders = ptyHolders(tty);
  for (let i = 0; i < 40 && holders.length > 0; i++) {
    await sleep(50);
    holders = ptyHolders(tty);
  }
  expect(holders).toEqual([]);
  expect(consoleProcesses(NAME)).toEqual([]);
  expect(ourConsoles()).toEqual([]);
  const next = await watchDomainConsole({
    uri: LXC,
    domain: NAME,
    marker: /^RFBOOT-HEARTBEAT n=\d+$/,
    timeoutMs: 10_000,
  });
  expect(next.line).toMatch(/^RFBOOT-HEARTBEAT n=\d+$/);
  expect(consoleProcesses(NAME)).toEqual([]);
}

async function consoleTty(): Promise<string> {
  const xml = await ok("dumpxml", NAME);
  const tty = /<console type='pty' tty='([^']+)'/.exec(xml)?.[1];
  if (!tty) throw new Error(`no pty console in the live XML of ${NAME}:\n${xml}`);
  return tty;
}

const guestLog = () => {
  try {
    return readFileSync(join(ROOTFS, "var/log/rfboot-guest.log"), "utf8");
  } catch {
    return "";
  }
};

describeWith(["libvirt", "root"], "watchDomainConsole on a real LXC domain", () => {
  beforeAll(async () => {
    await execa("bash", [join(REPO, "rftest/guest/build-guest.sh"), GUEST], { timeout: 600_000 });
    await ensureLxcCgroupMount();
    mkdirSync(RUN, { recursive: true, mode: 0o755 });
    // A rootfs of its own: the guest's init writes its log inside the rootfs it runs in.
    cpSync(join(GUEST, "rootfs-lxc"), ROOTFS, { recursive: true, verbatimSymlinks: true });
    await execa("ip", ["link", "add", BR, "type", "bridge"], { reject: false });
    await execa("ip", ["link", "set", BR, "up"]);
    const vm: VmDescription = {
      name: NAME,
      hypervisor: { type: "lxc" },
      arch: "x86_64",
      memoryMiB: 64,
      vcpus: 1,
      boot: { type: "init", init: "/init", args: [`rfboot.name=${NAME}`] },
      filesystems: [{ type: "mount", source: ROOTFS, target: "/" }],
      interfaces: [{ type: "bridge", bridge: BR, mac: "02:cc:00:00:00:01" }],
    };
    const xml = buildDomainXml(vm);
    expect(xml).toContain('<console type="pty">');
    writeFileSync(join(RUN, `${NAME}.xml`), xml);
    await ok("define", join(RUN, `${NAME}.xml`));
  }, 600_000);

  afterAll(async () => {
    await virsh("destroy", NAME);
    await virsh("undefine", NAME);
    await execa("ip", ["link", "del", BR], { reject: false });
    if (existsSync(RUN)) rmSync(RUN, { recursive: true, force: true });
  }, 120_000);

  it("sees the boot marker the guest printed before anyone read, then leaves the console free for the next reader", async () => {
    const t0 = Date.now();
    await ok("start", NAME);
    // Let the guest print first: the marker must come from what the pty kept, not from racing the boot.
    while (!guestLog().includes(`RFBOOT-GUEST-BOOTED name=${NAME} `)) {
      if (Date.now() - t0 > 20_000) throw new Error(`the guest printed no marker in 20 s:\n${guestLog()}`);
      await sleep(50);
    }
    await sleep(1000);
    const tty = await consoleTty();
    expect(ptyHolders(tty)).toEqual([]);

    const marker = new RegExp(`^RFBOOT-GUEST-BOOTED name=${NAME} uptime=`);
    const hit = await watchDomainConsole({ uri: LXC, domain: NAME, marker, timeoutMs: 10_000 });
    expect(hit.line).toMatch(marker);
    expect(hit.elapsedMs).toBeLessThan(5000);
    console.log(
      `[console-lxc] marker read ${hit.elapsedMs.toFixed(0)} ms after attaching, ${Date.now() - t0} ms after start`,
    );

    // Released: libvirtd closed its stream on the pty, and no script/virsh of ours is left.
    await releasedForTheNextReader(tty);
  }, 60_000);

  it("times out with a ConsoleError naming the domain and releases the console", async () => {
    const tty = await consoleTty();
    const t0 = Date.now();
    const err = (await watchDomainConsole({
      uri: LXC,
      domain: NAME,
      marker: /^NEVER-PRINTED$/,
      timeoutMs: 1500,
    }).catch((e: unknown) => e)) as ConsoleError;
    expect(err).toBeInstanceOf(ConsoleError);
    expect(err.kind).toBe("timeout");
    expect(err.message).toContain(`domain '${NAME}'`);
    expect(Date.now() - t0).toBeLessThan(5000);
    expect(consoleProcesses(NAME)).toEqual([]);
    await sleep(300);
    expect(ptyHolders(tty)).toEqual([]);
  }, 30_000);

  it("abort rejects with a ConsoleError and releases the console", async () => {
    const ac = new AbortController();
    const p = watchDomainConsole({
      uri: LXC,
      domain: NAME,
      marker: /^NEVER-PRINTED$/,
      timeoutMs: 30_000,
      signal: ac.signal,
    });
    await sleep(500);
    expect(consoleProcesses(NAME).length).toBeGreaterThan(0);
    ac.abort();
    const err = (await p.catch((e: unknown) => e)) as ConsoleError;
    expect(err.kind).toBe("aborted");
    expect(err.domain).toBe(NAME);
    expect(consoleProcesses(NAME)).toEqual([]);
  }, 30_000);

  it("a domain that is not running or not defined fails at once, with virsh's classified error as cause", async () => {
    await ok("destroy", NAME);
    const down = (await watchDomainConsole({ uri: LXC, domain: NAME, marker: /x/, timeoutMs: 10_000 }).catch(
      (e: unknown) => e,
    )) as ConsoleError;
    expect(down.kind).toBe("exited");
    expect((down.cause as VirshError).kind).toBe("not-running");
    const missing = (await watchDomainConsole({
      uri: LXC,
      domain: `${NAME}-missing`,
      marker: /x/,
      timeoutMs: 10_000,
    }).catch((e: unknown) => e)) as ConsoleError;
    expect(missing.kind).toBe("exited");
    expect((missing.cause as VirshError).kind).toBe("domain-missing");
    expect(missing.message).toContain(`domain '${NAME}-missing'`);
  }, 30_000);

  it("with `when`: virsh waits connected while the domain starts, opens the console once it runs, sees the marker, then leaves nothing holding the pty", async () => {
    let running: () => void = () => undefined;
    const when = new Promise<void>((r) => (running = r));
    const marker = new RegExp(`^RFBOOT-GUEST-BOOTED name=${NAME} uptime=`);
    const t0 = Date.now();
    const p = watchDomainConsole({ uri: LXC, domain: NAME, marker, timeoutMs: 20_000, when });
    await sleep(500);
    // The shell is up before the domain is: `virsh -c URI` under script, no console of the domain yet.
    expect(ourConsoles().some((l) => / virsh -c lxc:\/\/\/system$/.test(l))).toBe(true);
    expect((await ok("domstate", NAME)).trim()).toBe("shut off");
    await ok("start", NAME);
    const started = Date.now();
    running();
    const hit = await p;
    expect(hit.line).toMatch(marker);
    console.log(`[console-lxc] with when: marker seen ${Date.now() - started} ms after the start returned`);
    expect(Date.now() - t0).toBeLessThan(15_000);
    await releasedForTheNextReader(await consoleTty());
  }, 60_000);

  it("with `when` for a domain that is not running: an `exited` error with virsh's classified error; the shell quits", async () => {
    await virsh("destroy", NAME);
    const err = (await watchDomainConsole({
      uri: LXC,
      domain: NAME,
      marker: /x/,
      timeoutMs: 10_000,
      when: Promise.resolve(),
    }).catch((e: unknown) => e)) as ConsoleError;
    expect(err.kind).toBe("exited");
    expect((err.cause as VirshError).kind).toBe("not-running");
    expect(ourConsoles()).toEqual([]);
  }, 30_000);
});
