/** Doctor's decisions with fakes: a fake /proc and /etc, a scripted command runner and a fake clock. */
import { describe, expect, it } from "vitest";
import { parseConfig } from "../../../src/provisioner/config/index.js";
import {
  checkHost,
  checkMongo,
  checkOvs,
  Deadline,
  locateDaemon,
  orphanProbe,
  parseLibvirtUri,
  storageVerdict,
  systemFacts,
} from "../../../src/provisioner/doctor/checks.js";
import {
  ancestry,
  canAccess,
  cgroup2Quirk,
  checkPath,
  compareVersions,
  isQemuProbe,
  listProcesses,
  parseGroup,
  parseMounts,
  parsePasswd,
  parseQemuConf,
  parseStat,
  qemuIdentity,
  zombiesByParent,
} from "../../../src/provisioner/doctor/proc.js";
import { formatReport, runDoctor } from "../../../src/provisioner/doctor/run.js";
import { defaultTargets, targetsFromConfig } from "../../../src/provisioner/doctor/targets.js";
import type {
  Check,
  CommandResult,
  DoctorSeams,
  FileStat,
  HostFs,
} from "../../../src/provisioner/doctor/types.js";
import {
  KVM_FIX,
  REAPER_FIX,
  clockVerdict,
  doctorExitCode,
  kvmVerdict,
  MIN_SESSIONS,
  mongoVerdict,
  openFilesVerdict,
  pid1Verdict,
  reaperVerdict,
  reprobeVerdict,
  zombieVerdict,
} from "../../../src/provisioner/doctor/verdicts.js";

const PASSWD = [
  "root:x:0:0:root:/root:/bin/bash",
  "libvirt-qemu:x:64055:108:Libvirt Qemu,,,:/var/lib/libvirt:/usr/sbin/nologin",
  "alice:x:1000:1000::/home/alice:/bin/sh",
].join("\n");
const GROUP = ["root:x:0:", "kvm:x:108:", "libvirt-qemu:x:64055:libvirt-qemu", "video:x:44:alice"].join("\n");

const dev = (uid: number, gid: number, mode: number): FileStat => ({
  kind: "char",
  uid,
  gid,
  mode,
  mtimeMs: 0,
  ino: 1,
});
const dir = (mode = 0o755, uid = 0, gid = 0): FileStat => ({
  kind: "dir",
  uid,
  gid,
  mode,
  mtimeMs: 0,
  ino: 2,
});
const file = (mode = 0o644, uid = 0, gid = 0): FileStat => ({
  kind: "file",
  uid,
  gid,
  mode,
  mtimeMs: 0,
  ino: 3,
});

/** FakeFs is an in-memory /proc and /etc: files by path, stats by path, links by path. */
class FakeFs implements HostFs {
  files = new Map<string, string>();
  stats = new Map<string, FileStat>();
  links = new Map<string, string>();
  proc(pid: number, comm: string, state: string, ppid: number, cmdline?: string[]): this {
    this.files.set(`/proc/${pid}/stat`, `${pid} (${comm}) ${state} ${ppid} ${pid} ${pid} 0 -1 4194304`);
    this.files.set(`/proc/${pid}/comm`, `${comm}\n`);
    if (cmdline) this.files.set(`/proc/${pid}/cmdline`, cmdline.join("\0") + "\0");
    return this;
  }
  remove(pid: number): void {
    for (const k of [...this.files.keys()]) if (k.startsWith(`/proc/${pid}/`)) this.files.delete(k);
  }
  readFile(p: string) {
    return Promise.resolve(this.files.get(p));
  }
  readdir(p: string) {
    const prefix = p.endsWith("/") ? p : `${p}/`;
    const names = new Set<string>();
    for (const k of [...this.files.keys(), ...this.stats.keys(), ...this.links.keys()]) {
      if (k.startsWith(prefix)) names.add(k.slice(prefix.length).split("/")[0]!);
    }
    return Promise.resolve(names.size > 0 || this.stats.has(p) ? [...names] : undefined);
  }
  stat(p: string) {
    const s = this.stats.get(p.length > 1 ? p.replace(/\/$/, "") : p);
    if (s) return Promise.resolve(s);
    return Promise.resolve(this.files.has(p) ? file() : undefined);
  }
  readlink(p: string) {
    return Promise.resolve(this.links.get(p));
  }
}

/** fakeSeams: `script` answers each command; its `ms` advances the fake monotonic clock. */
function fakeSeams(
  fs: FakeFs,
  script: (cmd: string, args: readonly string[]) => Partial<CommandResult> & { ms?: number },
  mongo: DoctorSeams["mongo"] = () => Promise.reject(new Error("connection refused")),
): DoctorSeams & { calls: string[][]; t: { mono: number } } {
  const t = { mono: 0 };
  const calls: string[][] = [];
  return {
    t,
    calls,
    fs,
    mongo,
    clock: {
      now: () => 1_000_000 + t.mono,
      mono: () => t.mono,
      sleep: (ms) => ((t.mono += ms), Promise.resolve()),
    },
    run: (cmd, args) => {
      calls.push([cmd, ...args]);
      const r = script(cmd, args);
      t.mono += r.ms ?? 5;
      return Promise.resolve({ exitCode: 0, stdout: "", stderr: "", timedOut: false, ...r });
    },
  };
}

function etc(fs: FakeFs, root = "", qemuConf = ""): FakeFs {
  fs.files.set(`${root}/etc/passwd`, PASSWD);
  fs.files.set(`${root}/etc/group`, GROUP);
  fs.files.set(`${root}/etc/libvirt/qemu.conf`, qemuConf);
  return fs;
}

const VERSION_OUT =
  "Compiled against library: libvirt 9.0.0\nUsing library: libvirt 9.0.0\nUsing API: QEMU 9.0.0\nRunning hypervisor: QEMU 7.2.22\n";

describe("proc parsing", () => {
  it("reads /proc/PID/stat after the last ')' even when the name has spaces and parentheses", () => {
    expect(parseStat("42 (a) b) Z 7 42 42 0")).toEqual({ pid: 42, comm: "a) b", state: "Z", ppid: 7 });
    expect(parseStat("garbage")).toBeUndefined();
  });
  it("groups zombies by parent, most first, naming the parent", async () => {
    const fs = new FakeFs().proc(1, "process_api", "S", 0).proc(10, "sleep", "S", 1);
    fs.proc(11, "sh", "Z", 10)
      .proc(12, "qemu-system-x86", "Z", 1)
      .proc(13, "true", "Z", 1)
      .proc(14, "bash", "S", 1);
    const groups = zombiesByParent(await listProcesses(fs));
    expect(groups.map((g) => [g.parent, g.parentComm, g.zombies.map((z) => z.pid)])).toEqual([
      [1, "process_api", [12, 13]],
      [10, "sleep", [11]],
    ]);
    const v = zombieVerdict(groups);
    expect(v.status).toBe("warn");
    expect(v.detail).toContain("2 under pid 1 (process_api)");
    expect(v.detail).toContain("1 under pid 10 (sleep): 11 sh");
    expect(zombieVerdict([]).status).toBe("ok");
  });
  it("walks the parent chain", async () => {
    const fs = new FakeFs().proc(1, "init", "S", 0).proc(5, "tini", "S", 1).proc(9, "libvirtd", "S", 5);
    expect(ancestry(await listProcesses(fs), 9).map((p) => p.pid)).toEqual([5, 1]);
  });
  it("recognises libvirt's QEMU capability probe and nothing else", () => {
    expect(
      isQemuProbe(["/usr/bin/qemu-system-x86_64", "-S", "-no-user-config", "-machine", "none,accel=kvm:tcg"]),
    ).toBe(true);
    expect(isQemuProbe(["/usr/bin/qemu-system-x86_64", "-S", "-machine", "pc-q35-7.2"])).toBe(false);
    expect(isQemuProbe(["/usr/bin/qemu-system-x86_64", "-machine", "none"])).toBe(false);
    expect(isQemuProbe(["/bin/sleep", "-S", "-machine", "none"])).toBe(false);
  });
  it("finds the cgroup2 quirk from the LAST cgroup2 line of /proc/mounts", () => {
    const sys = parseMounts(
      "tmpfs /sys/fs/cgroup tmpfs rw 0 0\ncgroup2 /sys/fs/cgroup/unified cgroup2 rw 0 0\n",
    );
    expect(cgroup2Quirk(sys)).toEqual({ cgroup2: true, last: "/sys/fs/cgroup/unified", quirk: true });
    const fixed = parseMounts(
      "cgroup2 /sys/fs/cgroup/unified cgroup2 rw 0 0\ncgroup2 /run/cg2 cgroup2 rw 0 0\n",
    );
    expect(cgroup2Quirk(fixed).quirk).toBe(false);
    expect(cgroup2Quirk(parseMounts("proc /proc proc rw 0 0\n"))).toEqual({ cgroup2: false, quirk: false });
  });
  it("compares versions numerically", () => {
    expect(compareVersions("4.10", "4.4")).toBe(1);
    expect(compareVersions("4.4.0", "4.4")).toBe(0);
    expect(compareVersions("4.2.24", "4.4")).toBe(-1);
    expect(compareVersions("7.0.42", "4.4")).toBe(1);
  });
  it("parses libvirt URIs: local or not, and the daemon's socket", () => {
    expect(parseLibvirtUri("qemu:///system")).toEqual({
      driver: "qemu",
      local: true,
      socket: "/run/libvirt/libvirt-sock",
    });
    expect(parseLibvirtUri("qemu+unix:///system?socket=/run/h/libvirt-sock")).toEqual({
      driver: "qemu",
      local: true,
      socket: "/run/h/libvirt-sock",
    });
    expect(parseLibvirtUri("qemu+ssh://root@h2/system")).toEqual({ driver: "qemu", local: false });
    expect(parseLibvirtUri("lxc:///system").driver).toBe("lxc");
    expect(parseLibvirtUri("test:///default")).toEqual({ driver: "test", local: true });
  });
});

describe("the QEMU user and /dev/kvm", () => {
  const passwd = parsePasswd(PASSWD);
  const groups = parseGroup(GROUP);
  const id = qemuIdentity({}, passwd, groups);
  it("takes Debian's defaults and the user's groups from /etc/passwd and /etc/group", () => {
    expect(id).toEqual({ user: "libvirt-qemu", uid: 64055, gid: 64055, groups: [64055, 108] });
    expect(
      qemuIdentity(parseQemuConf('user = "alice"\n#group = "kvm"\ngroup = "kvm"\n'), passwd, groups),
    ).toEqual({
      user: "alice",
      uid: 1000,
      gid: 108,
      groups: [108, 1000, 44],
    });
    expect(qemuIdentity({ user: "+0", group: "+0" }, passwd, groups)).toMatchObject({ user: "root", uid: 0 });
    expect(qemuIdentity({ user: "nobody-here" }, passwd, groups)).toEqual({
      error: expect.stringContaining("nobody-here"),
    });
  });
  it("applies one permission class: owner, else group, else other", () => {
    if ("error" in id) throw new Error("no identity");
    expect(canAccess(id, dev(0, 0, 0o600), { read: true, write: true })).toBe(false);
    expect(canAccess(id, dev(0, 108, 0o660), { read: true, write: true })).toBe(true);
    expect(canAccess(id, dev(0, 108, 0o640), { read: true, write: true })).toBe(false);
    expect(canAccess(id, dev(0, 0, 0o666), { read: true, write: true })).toBe(true);
    // The owner class wins even when it grants less than the group class.
    expect(canAccess(id, dev(64055, 108, 0o060), { read: true })).toBe(false);
    expect(canAccess({ uid: 0, groups: [0] }, dev(0, 0, 0o600), { read: true, write: true })).toBe(true);
  });
  it("fails the /dev/kvm trap (0600 root:root) with the udev fix, blocking even without kvm domains", () => {
    const v = kvmVerdict({
      local: true,
      devKvm: dev(0, 0, 0o600),
      identity: id,
      passwd,
      groups,
      domcaps: { ok: false, error: "KVM is not supported" },
      needsKvm: false,
    });
    expect(v).toMatchObject({ status: "fail", blocking: true, fix: KVM_FIX });
    expect(v.detail).toContain("crw------- root:root");
    expect(v.detail).toContain("libvirt-qemu");
    expect(v.detail).toContain("only qemu (TCG) domains will boot");
  });
  it("is ok when the kvm group can open it, and says both domain types boot", () => {
    const v = kvmVerdict({
      local: true,
      devKvm: dev(0, 108, 0o660),
      identity: id,
      passwd,
      groups,
      domcaps: { ok: true },
      needsKvm: true,
    });
    expect(v.status).toBe("ok");
    expect(v.detail).toContain("kvm and qemu (TCG) domains can boot");
  });
  it("blocks on a missing /dev/kvm only when the config asks for kvm domains", () => {
    expect(kvmVerdict({ local: true, passwd, groups, needsKvm: false })).toMatchObject({
      status: "ok",
      blocking: false,
    });
    expect(kvmVerdict({ local: true, passwd, groups, needsKvm: true })).toMatchObject({
      status: "fail",
      blocking: true,
    });
    expect(
      kvmVerdict({ local: false, passwd, groups, domcaps: { ok: false, error: "x" }, needsKvm: true }),
    ).toMatchObject({ status: "fail", blocking: true });
    expect(
      kvmVerdict({ local: false, passwd, groups, domcaps: { ok: false, error: "x" }, needsKvm: false }),
    ).toMatchObject({ status: "warn", blocking: false });
  });
  it("checks search permission on every directory above a path", async () => {
    const fs = new FakeFs();
    fs.stats.set("/", dir()).set("/srv", dir(0o700)).set("/srv/k", file(0o644));
    if ("error" in id) throw new Error("no identity");
    expect(await checkPath(fs, id, "/srv/k")).toMatchObject({ ok: false, reason: "no-search", path: "/srv" });
    fs.stats.set("/srv", dir(0o711));
    expect(await checkPath(fs, id, "/srv/k")).toMatchObject({ ok: true });
    expect(await checkPath(fs, id, "/srv/missing")).toMatchObject({ ok: false, reason: "missing" });
    fs.stats.set("/srv/k", file(0o600));
    expect(await checkPath(fs, id, "/srv/k")).toMatchObject({ ok: false, reason: "no-read" });
  });
});

describe("re-probing", () => {
  const fast = [
    { ms: 12, timedOut: false },
    { ms: 9, timedOut: false },
    { ms: 8, timedOut: false },
  ];
  const slow = [
    { ms: 2100, timedOut: false },
    { ms: 2300, timedOut: false },
    { ms: 1900, timedOut: false },
  ];
  it("fails when every cheap call is slow", () => {
    const v = reprobeVerdict({ samples: slow, probes: 0, churn: 0, local: false });
    expect(v).toMatchObject({ status: "fail", blocking: true });
    expect(v.detail).toContain("libvirt re-probes QEMU on every call");
  });
  it("fails when the capabilities cache is rewritten after most calls, even if fast", () => {
    expect(reprobeVerdict({ samples: fast, probes: 3, churn: 2, local: true }).status).toBe("fail");
  });
  it("fails a call that timed out while QEMU was probed again and again", () => {
    const hung = [{ ms: 8000, timedOut: true }];
    expect(reprobeVerdict({ samples: hung, probes: 4, churn: 0, local: true })).toMatchObject({
      status: "fail",
      blocking: true,
    });
    expect(reprobeVerdict({ samples: hung, probes: 1, churn: 0, local: true }).status).toBe("warn");
  });
  it("only warns about one slow call or a single probe", () => {
    const once = [
      { ms: 2100, timedOut: false },
      { ms: 9, timedOut: false },
      { ms: 8, timedOut: false },
    ];
    expect(reprobeVerdict({ samples: once, probes: 0, churn: 0, local: true }).status).toBe("ok");
    expect(reprobeVerdict({ samples: once, probes: 1, churn: 1, local: true }).status).toBe("warn");
    expect(reprobeVerdict({ samples: fast, probes: 0, churn: 0, local: true }).status).toBe("ok");
  });
  it("checkHost sees slow calls, probe processes and cache churn on a trapped local host", async () => {
    const sock = "/run/h1/libvirt-sock";
    const fs = new FakeFs().proc(1, "init", "S", 0).proc(300, "libvirtd", "S", 1);
    fs.files.set(
      "/proc/net/unix",
      `Num RefCount Protocol Flags Type St Inode Path\n0000: 00000002 00000000 00010000 0001 01 777 ${sock}\n`,
    );
    fs.links
      .set("/proc/300/fd/3", "socket:[777]")
      .set("/proc/300/ns/mnt", "mnt:[9]")
      .set("/proc/300/root", "/");
    const root = "/proc/300/root";
    fs.stats.set(`${root}`, dir()).set(`${root}/dev/kvm`, dev(0, 0, 0o600));
    etc(fs, root);
    let gen = 0;
    const seams = fakeSeams(fs, (_cmd, args) => {
      if (args.includes("version")) {
        // Each call re-probes: a probe process exists while it runs, and the cache file is replaced.
        gen++;
        fs.proc(400 + gen, "qemu-system-x86", "S", 1, [
          "/usr/bin/qemu-system-x86_64",
          "-S",
          "-machine",
          "none,accel=kvm:tcg",
        ]);
        fs.links.set(`/proc/${400 + gen}/ns/mnt`, "mnt:[9]");
        fs.stats.set(`${root}/var/cache/libvirt/qemu/capabilities/x86_64.xml`, { ...file(), ino: gen });
        return { stdout: VERSION_OUT, ms: 2500 };
      }
      return {
        exitCode: 1,
        stderr:
          "error: unsupported configuration: KVM is not supported by '/usr/bin/qemu-system-x86_64' on this host\n",
        ms: 2500,
      };
    });
    const facts = systemFacts(seams, new Deadline(seams.clock.mono, 25_000));
    const checks = await checkHost(
      seams,
      { name: "h1", uri: `qemu+unix:///system?socket=${sock}`, needsKvm: false, needsLxc: false, paths: [] },
      new Deadline(seams.clock.mono, 25_000),
      facts,
    );
    const by = (id: string) => checks.find((c) => c.id === id)!;
    expect(by("libvirt.connect")).toMatchObject({ status: "ok" });
    expect(by("libvirt.connect").detail).toContain("daemon libvirtd pid 300");
    expect(by("libvirt.reprobe")).toMatchObject({ status: "fail", blocking: true });
    expect(by("libvirt.reprobe").detail).toMatch(/QEMU capability probe/);
    expect(by("libvirt.reprobe").detail).toMatch(/cache rewritten after [23] of 3 calls/);
    expect(by("libvirt.kvm")).toMatchObject({ status: "fail", blocking: true, fix: KVM_FIX });
    expect(by("libvirt.kvm").detail).toContain("KVM is not supported");
    expect(seams.calls.filter((c) => c[0] === "virsh").map((c) => c.slice(3).join(" "))).toEqual([
      "version",
      "version",
      "version",
      "domcapabilities --virttype kvm",
    ]);
  });
  it("a hung libvirtd costs one timed-out call, not the budget", async () => {
    const fs = new FakeFs().proc(1, "init", "S", 0);
    const seams = fakeSeams(fs, () => ({ exitCode: undefined, timedOut: true, ms: 8000 }));
    const deadline = new Deadline(seams.clock.mono, 25_000);
    const checks = await checkHost(
      seams,
      { name: "h", uri: "qemu+ssh://h/system", needsKvm: false, needsLxc: false, paths: [] },
      deadline,
      systemFacts(seams, deadline),
    );
    expect(checks.find((c) => c.id === "libvirt.connect")).toMatchObject({ status: "fail", blocking: true });
    expect(checks.find((c) => c.id === "libvirt.connect")!.detail).toContain("did not answer in time");
    expect(seams.calls.filter((c) => c[0] === "virsh")).toHaveLength(1);
  });
  it("the deadline cuts every call's timeout to what is left", () => {
    let now = 0;
    const d = new Deadline(() => now, 10_000);
    expect(d.timeout(8000)).toBe(8000);
    now = 7000;
    expect(d.timeout(8000)).toBe(3000);
    now = 9900;
    expect(d.expired).toBe(true);
  });
});

describe("reaping", () => {
  it("an orphan adopted by PID 1 that stays a zombie: PID 1 does not reap", async () => {
    const fs = new FakeFs().proc(1, "process_api", "S", 0);
    const seams = fakeSeams(fs, (cmd, args) => {
      expect(cmd).toBe("sh");
      expect(args[0]).toBe("-c");
      fs.proc(555, "sleep", "S", 1);
      return { stdout: "555\n" };
    });
    // It exits after 200 ms and nobody waits for it.
    const sleep = seams.clock.sleep;
    seams.clock.sleep = async (ms) => {
      await sleep(ms);
      if (seams.t.mono >= 200) fs.proc(555, "sleep", "Z", 1);
    };
    const o = await orphanProbe(seams, new Deadline(seams.clock.mono, 25_000));
    expect(o).toEqual({ adopter: 1, adopterComm: "process_api", reaped: false, zombieMs: 300 });
    expect(pid1Verdict({ comm: "process_api", zombies: 0, orphan: o! })).toMatchObject({
      status: "warn",
      fix: REAPER_FIX,
    });
    expect(pid1Verdict({ comm: "process_api", zombies: 0, orphan: o! }).detail).toContain(
      "PID 1 (process_api) does not reap orphans promptly: an orphan doctor made was still a zombie 300 ms after it exited",
    );
  });
  it("an orphan that disappears was reaped", async () => {
    const fs = new FakeFs().proc(1, "systemd", "S", 0);
    const seams = fakeSeams(fs, () => (fs.proc(556, "sleep", "S", 1), { stdout: "556\n" }));
    const sleep = seams.clock.sleep;
    seams.clock.sleep = async (ms) => {
      await sleep(ms);
      if (seams.t.mono >= 200) fs.remove(556);
    };
    const o = await orphanProbe(seams, new Deadline(seams.clock.mono, 25_000));
    expect(o).toEqual({ adopter: 1, adopterComm: "systemd", reaped: true });
    expect(pid1Verdict({ comm: "systemd", zombies: 0, orphan: o! }).status).toBe("ok");
  });
  it("does not make an orphan when PID 1 already holds zombies", async () => {
    const fs = new FakeFs().proc(1, "process_api", "S", 0).proc(7, "qemu-system-x86", "Z", 1);
    const seams = fakeSeams(fs, () => ({}));
    const f = await systemFacts(seams, new Deadline(seams.clock.mono, 25_000));
    expect(f.pid1).toEqual({ comm: "process_api", zombies: 1 });
    expect(seams.calls).toEqual([]);
  });
  const pid1 = { comm: "process_api", zombies: 2 };
  const procs = (parent: number) => [
    { pid: 1, comm: "process_api", state: "S", ppid: 0 },
    { pid: 5, comm: "tini", state: "S", ppid: 1 },
    { pid: 6, comm: "bash", state: "S", ppid: 1 },
    { pid: 9, comm: "libvirtd", state: "S", ppid: parent },
  ];
  const daemon = { pid: 9, comm: "libvirtd" };
  it("blocks when libvirtd is a child of a non-reaping PID 1 with zombies", () => {
    const v = reaperVerdict({ daemon, chain: ancestry(procs(1), 9), pid1, subreapers: ["tini"] });
    expect(v).toMatchObject({ status: "fail", blocking: true, fix: REAPER_FIX });
  });
  it("is ok under tini, and only warns without a subreaper when libvirtd's parent is not PID 1", () => {
    expect(reaperVerdict({ daemon, chain: ancestry(procs(5), 9), pid1, subreapers: ["tini"] })).toMatchObject(
      { status: "ok" },
    );
    expect(reaperVerdict({ daemon, chain: ancestry(procs(6), 9), pid1, subreapers: ["tini"] })).toMatchObject(
      { status: "warn", blocking: false },
    );
    expect(
      reaperVerdict({
        daemon,
        chain: ancestry(procs(1), 9),
        pid1: { comm: "systemd", zombies: 0 },
        subreapers: ["tini"],
      }).status,
    ).toBe("ok");
  });
  it("finds the daemon by its socket inode, or by the pid file beside the socket", async () => {
    const fs = new FakeFs().proc(1, "init", "S", 0).proc(20, "libvirtd", "S", 1).proc(21, "libvirtd", "S", 1);
    fs.files.set("/proc/net/unix", "Num ...\n0000: 2 0 10000 1 01 4242 /var/run/libvirt/libvirt-sock\n");
    fs.links.set("/proc/20/fd/5", "socket:[1]").set("/proc/21/fd/5", "socket:[4242]");
    const procs = await listProcesses(fs);
    expect((await locateDaemon(fs, "/run/libvirt/libvirt-sock", procs))?.pid).toBe(21);
    fs.files.set("/run/x/libvirtd.pid", "20\n");
    expect((await locateDaemon(fs, "/run/x/libvirt-sock", procs))?.pid).toBe(20);
    expect(await locateDaemon(fs, "/run/y/libvirt-sock", procs)).toBeUndefined();
  });
});

describe("storage", () => {
  const ids = {
    identity: qemuIdentity({}, parsePasswd(PASSWD), parseGroup(GROUP)),
    passwd: parsePasswd(PASSWD),
    groups: parseGroup(GROUP),
  };
  it("fails a missing kernel, warns about a directory rfboot will create", async () => {
    const fs = new FakeFs();
    fs.stats.set("/", dir()).set("/var", dir()).set("/var/lib", dir()).set("/var/lib/rfboot", dir());
    const v = await storageVerdict(
      fs,
      [
        { path: "/var/lib/rfboot/disks", role: "storageDir", readBy: "qemu", vms: [] },
        { path: "/var/lib/rfboot/guest/vmlinuz", role: "kernel", readBy: "qemu", vms: ["rfvmA"] },
      ],
      ids,
    );
    expect(v).toMatchObject({ status: "fail", blocking: true });
    expect(v.detail).toContain("kernel /var/lib/rfboot/guest/vmlinuz (rfvmA) is missing");
    expect(v.detail).toContain("storageDir /var/lib/rfboot/disks does not exist yet");
  });
  it("fails a kernel the QEMU user cannot reach", async () => {
    const fs = new FakeFs();
    fs.stats.set("/", dir()).set("/root", dir(0o700)).set("/root/vmlinuz", file());
    const v = await storageVerdict(
      fs,
      [{ path: "/root/vmlinuz", role: "kernel", readBy: "qemu", vms: ["a"] }],
      ids,
    );
    expect(v).toMatchObject({ status: "fail", blocking: true });
    expect(v.detail).toContain("libvirt-qemu cannot enter /root");
  });
  it("is ok when everything is there", async () => {
    const fs = new FakeFs();
    fs.stats.set("/", dir()).set("/k", file());
    expect(
      (await storageVerdict(fs, [{ path: "/k", role: "kernel", readBy: "qemu", vms: [] }], ids)).status,
    ).toBe("ok");
  });
});

describe("MongoDB and clocks", () => {
  it("accepts FerretDB's MongoDB-compatible version and refuses servers older than 4.4", () => {
    expect(mongoVerdict({ version: "7.0.42", ferretdb: "v1.24.2" })).toMatchObject({
      status: "ok",
      detail: "FerretDB v1.24.2 (reports MongoDB 7.0.42)",
    });
    expect(mongoVerdict({ version: "4.4.0" }).status).toBe("ok");
    expect(mongoVerdict({ version: "4.2.24" })).toMatchObject({ status: "fail", blocking: true });
    expect(mongoVerdict({ error: "connect ECONNREFUSED" })).toMatchObject({ status: "fail", blocking: true });
  });
  it("judges skew at the midpoint of the round trip against 1 s and the lease slack", () => {
    const at = (skew: number) =>
      clockVerdict({ serverTime: 10_050 + skew, sentAt: 10_000, receivedAt: 10_100, slackMs: 2000 });
    expect(at(300).status).toBe("ok");
    expect(at(1500)).toMatchObject({ status: "warn", blocking: false });
    expect(at(-2600)).toMatchObject({ status: "fail", blocking: true });
    expect(at(-2600).detail).toContain("ahead of");
    // Within the measurement's error it is not a failure.
    expect(
      clockVerdict({ serverTime: 12_100, sentAt: 10_000, receivedAt: 10_400, slackMs: 2000 }).status,
    ).toBe("warn");
  });
  it("checkMongo reports skew from hello's localTime", async () => {
    const seams = fakeSeams(
      new FakeFs(),
      () => ({}),
      () =>
        Promise.resolve({ version: "7.0.42", localTime: new Date(5_000), sentAt: 7_990, receivedAt: 8_010 }),
    );
    const checks = await checkMongo(
      seams,
      "mongodb://x",
      "mongodb://x",
      2000,
      new Deadline(seams.clock.mono, 25_000),
    );
    expect(checks.map((c) => [c.id, c.status])).toEqual([
      ["mongo.server", "ok"],
      ["clock.skew", "fail"],
    ]);
    expect(checks[1]!.detail).toContain("3.0 s ahead of");
  });
});

describe("Open vSwitch", () => {
  it("a missing bridge blocks only when VMs plug into it", async () => {
    const seams = fakeSeams(new FakeFs(), (_c, args) =>
      args.includes("br-exists") ? { exitCode: 2 } : { stdout: 'ovs_version: "3.1.0"\n' },
    );
    const d = new Deadline(seams.clock.mono, 25_000);
    const needed = await checkOvs(seams, [{ name: "dp0", needed: true }], d);
    expect(needed.map((c) => [c.id, c.status, c.blocking])).toEqual([
      ["ovs.reachable", "ok", false],
      ["ovs.bridge", "fail", true],
    ]);
    const optional = await checkOvs(seams, [{ name: "dp0", needed: false }], d);
    expect(optional[1]).toMatchObject({ status: "warn", blocking: false });
    expect(seams.calls[1]).toEqual(["ovs-vsctl", "--timeout=3", "br-exists", "dp0"]);
  });
  it("unreachable OVS warns without a config that needs it", async () => {
    const seams = fakeSeams(new FakeFs(), () => ({
      exitCode: 1,
      stderr: "ovs-vsctl: unix:/var/run/openvswitch/db.sock: database connection failed\n",
    }));
    const d = new Deadline(seams.clock.mono, 25_000);
    expect((await checkOvs(seams, [{ name: "dp0", needed: false }], d))[0]).toMatchObject({
      status: "warn",
      blocking: false,
    });
    expect((await checkOvs(seams, [{ name: "dp0", needed: true }], d))[0]).toMatchObject({
      status: "fail",
      blocking: true,
    });
  });
});

describe("the host's storage pool", () => {
  const remote = "qemu+tcp://10.0.0.2/system";
  const host = (images: "path" | "pool", upload = false) => ({
    name: "far",
    uri: remote,
    needsKvm: false,
    needsLxc: false,
    paths: [],
    storage: {
      spec: { pool: "rfboot", storageDir: "/srv/disks", consoleLogDir: "/srv/console", images, upload },
      artifacts: [{ path: "/var/lib/rfboot/guest/vmlinuz", role: "kernel" as const }],
    },
  });
  const seamsWith = (vols: string[], pool: "running" | "missing") =>
    fakeSeams(new FakeFs(), (_cmd, args) => {
      const sub = args.slice(2);
      if (sub[0] === "version") return { stdout: VERSION_OUT };
      if (sub[0] === "pool-info")
        return pool === "missing"
          ? {
              exitCode: 1,
              stderr:
                "error: failed to get pool 'rfboot'\nerror: Storage pool not found: no storage pool with matching name 'rfboot'\n",
            }
          : { stdout: "Name:           rfboot\nState:          running\n" };
      if (sub[0] === "pool-dumpxml")
        return { stdout: "<pool><target><path>/srv/disks</path></target></pool>" };
      if (sub[0] === "vol-path") {
        const v = sub.at(-1)!;
        return vols.includes(v)
          ? { stdout: `/srv/disks/${v}\n` }
          : {
              exitCode: 1,
              stderr: `error: failed to get vol '${v}'\nerror: Storage volume not found: no storage vol with matching path '${v}'\n`,
            };
      }
      return {};
    });
  const poolOf = async (h: ReturnType<typeof host>, seams: ReturnType<typeof seamsWith>) => {
    const facts = systemFacts(seams, new Deadline(seams.clock.mono, 25_000));
    const checks = await checkHost(seams, h, new Deadline(seams.clock.mono, 25_000), facts);
    return checks.find((c) => c.id === "libvirt.pool")!;
  };
  it("a kernel missing from a remote host's pool blocks, naming host, pool, volume and the fix", async () => {
    const c = await poolOf(host("pool"), seamsWith([], "running"));
    expect(c).toMatchObject({ status: "fail", blocking: true });
    expect(c.detail).toContain("has no volume vmlinuz in pool rfboot");
    expect(c.detail).toContain(
      `virsh -c ${remote} vol-upload --pool rfboot vmlinuz /var/lib/rfboot/guest/vmlinuz`,
    );
    expect(c.fix).toMatch(/upload: true/);
  });
  it("found in the pool, or a pool rfboot will define: ok; upload: true counts it as an upload to come", async () => {
    expect(await poolOf(host("pool"), seamsWith(["vmlinuz"], "running"))).toMatchObject({ status: "ok" });
    const fresh = await poolOf(host("path"), seamsWith([], "missing"));
    expect(fresh).toMatchObject({ status: "ok", blocking: false });
    expect(fresh.detail).toContain("pool rfboot not defined yet (rfboot defines it with target /srv/disks)");
  });
});

describe("open files", () => {
  it("counts the switch sessions the hard limit allows and warns below 4,096, with the fix", () => {
    expect(MIN_SESSIONS).toBe(4096);
    const ok = openFilesVerdict({ soft: 1024, hard: 524288 }, "relay");
    expect(ok).toMatchObject({ status: "ok", blocking: false, fix: "" });
    expect(ok.detail).toBe(
      "hard limit 524288 (soft 1024): 262080 switch sessions in relay mode (listen 524160, relay 262080); " +
        "under systemd the unit's LimitNOFILE= applies instead",
    );
    // 8,192 descriptors are plenty listening and too few relaying.
    expect(openFilesVerdict({ soft: 8192, hard: 8192 }, "listen").status).toBe("ok");
    const relay = openFilesVerdict({ soft: 8192, hard: 8192 }, "relay");
    expect(relay).toMatchObject({ status: "warn", blocking: false });
    expect(relay.detail).toMatch(/: 4032 switch sessions in relay mode .*, fewer than 4096$/);
    expect(relay.fix).toMatch(/^raise LimitNOFILE= in rfboot\.service .*ulimit -Hn/);
    expect(openFilesVerdict(undefined, "listen")).toMatchObject({ status: "warn", blocking: false });
    expect(openFilesVerdict(undefined, "listen").fix).not.toBe("");
  });
  it("takes the mode from the config and reads the limit doctor's own process has", async () => {
    const config = parseConfig("openflow: { mode: relay }\n");
    expect(targetsFromConfig(config).openflowMode).toBe("relay");
    expect(defaultTargets().openflowMode).toBeUndefined();
  });
});

describe("targets and the whole run", () => {
  it("derives needs from the config: kvm and lxc hosts, OVS bridges, paths", () => {
    const config = parseConfig(
      [
        "hosts:",
        "  - { name: a, uri: 'qemu:///system', storageDir: /srv/disks }",
        "  - { name: c, uri: 'lxc:///system' }",
        "datapaths:",
        "  '0x1': { name: rfvmA, vmId: '02:a0:a0:a0:a0:a0', dataPorts: 2, hypervisor: kvm, host: a, boot: { type: kernel, kernel: /srv/vmlinuz, initrd: /srv/initrd.gz } }",
        "  '0x2': { name: rfvmB, vmId: '02:b0:b0:b0:b0:b0', dataPorts: 1, hypervisor: lxc, boot: { type: init, init: /sbin/init, rootfs: /srv/rootfs } }",
        "",
      ].join("\n"),
    );
    const t = targetsFromConfig(config);
    const [a, c] = t.hosts;
    expect(a).toMatchObject({ name: "a", needsKvm: true, needsLxc: false });
    expect(a!.paths.map((p) => [p.role, p.path, p.readBy])).toEqual([
      ["storageDir", "/srv/disks", "qemu"],
      ["consoleLogDir", "/var/lib/rfboot/console", "root"],
      ["kernel", "/srv/vmlinuz", "qemu"],
      ["initrd", "/srv/initrd.gz", "qemu"],
    ]);
    expect(c).toMatchObject({ name: "c", needsKvm: false, needsLxc: true });
    expect(c!.paths.find((p) => p.role === "rootfs")).toMatchObject({
      path: "/srv/rootfs",
      readBy: "root",
      vms: ["rfvmB"],
    });
    expect(t.bridges).toEqual([{ name: "dp0", needed: true }]);
    expect(t.leaseSlackMs).toBe(2000);
  });
  it("a data-plane host needs its trunk bridge and RouteFlow's data bridge here, each named with its purpose", () => {
    const config = parseConfig(
      [
        "hosts:",
        "  - { name: far, uri: 'qemu+ssh://far.example/system', dataPlane: { trunkBridge: trunk0, bridge: br-vms } }",
        "  - { name: near, uri: 'qemu+ssh://near.example/system', dataPlane: { trunkBridge: trunk1 } }",
        "datapaths:",
        "  '0x1': { name: rfvmA, vmId: '02:a0:a0:a0:a0:a0', dataPorts: 2, host: far }",
        "",
      ].join("\n"),
    );
    expect(targetsFromConfig(config).bridges).toEqual([
      {
        name: "dp0",
        needed: true,
        purpose: "RouteFlow's virtual switch for host far; RouteFlow's virtual switch for host near",
      },
      { name: "trunk0", needed: true, purpose: "trunk of host far" },
      { name: "trunk1", needed: true, purpose: "trunk of host near" },
    ]);
  });
  it("a missing trunk bridge blocks, says whose trunk it is and points to the tunnel set-up", async () => {
    const seams = fakeSeams(new FakeFs(), (_c, args) =>
      args.includes("br-exists")
        ? { exitCode: args.includes("trunk0") ? 2 : 0 }
        : { stdout: 'ovs_version: "3.1.0"\n' },
    );
    const d = new Deadline(seams.clock.mono, 25_000);
    const checks = await checkOvs(
      seams,
      [
        { name: "dp0", needed: true, purpose: "RouteFlow's virtual switch for host far" },
        { name: "trunk0", needed: true, purpose: "trunk of host far" },
      ],
      d,
    );
    expect(checks.map((c) => [c.id, c.target, c.status, c.blocking])).toEqual([
      ["ovs.reachable", "ovs-vswitchd", "ok", false],
      ["ovs.bridge", "dp0", "ok", false],
      ["ovs.bridge", "trunk0", "fail", true],
    ]);
    expect(checks[1]!.detail).toBe("bridge dp0 exists (RouteFlow's virtual switch for host far)");
    expect(checks[2]!.detail).toBe("bridge trunk0 does not exist (trunk of host far)");
    expect(checks[2]!.fix).toMatch(/ovs-vsctl add-br trunk0 .*then its tunnel port: docs\/multi-host\.md$/);
  });
  it("without a config: qemu:///system, the local MongoDB and dp0, none required", () => {
    expect(defaultTargets()).toMatchObject({
      hosts: [{ uri: "qemu:///system", needsKvm: false, paths: [] }],
      mongoUri: "mongodb://127.0.0.1:27017",
      bridges: [{ name: "dp0", needed: false }],
    });
  });
  const healthy = () => {
    const fs = etc(
      new FakeFs().proc(1, "systemd", "S", 0).proc(2, "chronyd", "S", 1).proc(9, "libvirtd", "S", 1),
    );
    fs.files.set("/proc/net/unix", "Num\n0: 2 0 10000 1 01 99 /run/libvirt/libvirt-sock\n");
    fs.links.set("/proc/9/fd/3", "socket:[99]");
    fs.stats.set("/proc/9/root", dir()).set("/proc/9/root/dev/kvm", dev(0, 108, 0o660));
    etc(fs, "/proc/9/root");
    fs.files.set(
      "/proc/self/limits",
      "Max open files            1024                 524288               files\n",
    );
    return fs;
  };
  const script = (cmd: string, args: readonly string[]) =>
    cmd === "sh"
      ? { stdout: "" }
      : cmd === "ovs-vsctl"
        ? { stdout: 'ovs_version: "3.1.0"\n' }
        : args.includes("version")
          ? { stdout: VERSION_OUT }
          : {};
  const mongo = () =>
    Promise.resolve({
      version: "7.0.42",
      localTime: new Date(1_000_000),
      sentAt: 1_000_000,
      receivedAt: 1_000_002,
    });
  it("a healthy host exits 0; a blocking check makes it 1", async () => {
    const checks = await runDoctor({
      targets: defaultTargets(),
      seams: fakeSeams(healthy(), script, mongo),
      arch: "x64",
    });
    expect(checks.filter((c) => c.status !== "ok")).toEqual([]);
    expect(doctorExitCode(checks)).toBe(0);
    expect(formatReport(checks)).toMatch(/doctor: nothing blocks rfboot here\n$/);
    const down = await runDoctor({
      targets: defaultTargets(),
      seams: fakeSeams(healthy(), script),
      arch: "x64",
    });
    expect(doctorExitCode(down)).toBe(1);
    const report = formatReport(down);
    expect(report).toMatch(
      /^FAIL mongo\.server mongodb:\/\/127\.0\.0\.1:27017: unreachable: connection refused.* -> fix: start MongoDB/m,
    );
    expect(report).toContain("doctor: 1 blocking problem(s): mongo.server");
  });
  it("every check has an id, a target, a status and a fix when not ok", async () => {
    const fs = healthy();
    fs.stats.set("/proc/9/root/dev/kvm", dev(0, 0, 0o600));
    const checks: Check[] = await runDoctor({
      targets: defaultTargets(),
      seams: fakeSeams(fs, script),
      arch: "x64",
    });
    for (const c of checks) {
      expect(c.id).toMatch(/^[a-z0-9]+\.[a-z0-9-]+$/);
      expect(c.target).not.toBe("");
      expect(["ok", "warn", "fail"]).toContain(c.status);
      if (c.status !== "ok") expect(c.fix).not.toBe("");
    }
    expect(checks.find((c) => c.id === "libvirt.kvm")).toMatchObject({ status: "fail", blocking: true });
  });
});
