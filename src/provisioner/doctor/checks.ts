/**
 * Gathering for `rfboot doctor`: each function looks at one part of the machine through the seams (a
 * command runner, a file reader over /proc and /etc, a MongoDB probe, a clock), hands what it saw to a
 * verdict in verdicts.ts and returns Checks. Nothing here waits longer than the deadline it is given.
 */
import { parseNofileLimits, type NofileLimits } from "../../common/nofile.js";
import { HostStorage, lastErrorLine, makeVirshError, type VirshRunner } from "../libvirt/index.js";
import {
  ancestry,
  cgroup2Quirk,
  checkPath,
  describeStat,
  isQemuProbe,
  listProcesses,
  parseCmdline,
  parseGroup,
  parseMounts,
  parsePasswd,
  parseQemuConf,
  parseStat,
  qemuIdentity,
  zombiesByParent,
  SUBREAPER_COMMS,
  type Account,
  type GroupEntry,
  type Identity,
  type ProcInfo,
} from "./proc.js";
import type { BridgeTarget, HostTarget, PathTarget } from "./targets.js";
import type { Check, CheckStatus, CommandResult, DoctorSeams, HostFs } from "./types.js";
import {
  CGROUP2_FIX,
  clockVerdict,
  kvmVerdict,
  mongoVerdict,
  openFilesVerdict,
  pid1Verdict,
  reaperVerdict,
  reprobeVerdict,
  zombieVerdict,
  type CallSample,
  type OrphanProbe,
  type Pid1Observation,
  type Verdict,
} from "./verdicts.js";

/** Deadline bounds a whole doctor run: every call's timeout is cut to what is left of it. */
export class Deadline {
  private readonly end: number;
  constructor(
    private readonly mono: () => number,
    budgetMs: number,
  ) {
    this.end = mono() + budgetMs;
  }
  /** timeout is `ms`, or less when the run's end is nearer (never below 0). */
  timeout(ms: number): number {
    return Math.max(0, Math.min(ms, this.end - this.mono()));
  }
  /** expired: too little time left to start another call. */
  get expired(): boolean {
    return this.end - this.mono() < 200;
  }
}

/** LibvirtUri is the part of a libvirt URI doctor needs. */
export interface LibvirtUri {
  /** driver: qemu, lxc, test, xen, ... (the scheme before any `+transport`). */
  driver: string;
  /** local: no hostname, so the daemon runs on this machine. */
  local: boolean;
  /** socket: the daemon's unix socket, for a local system URI. */
  socket?: string;
}

/** parseLibvirtUri reads a libvirt connection URI (`qemu:///system`, `qemu+unix:///system?socket=...`). */
export function parseLibvirtUri(uri: string): LibvirtUri {
  let u: URL | undefined;
  try {
    u = new URL(uri);
  } catch {
    u = undefined;
  }
  const [driver = "", transport = ""] = (u?.protocol ?? uri).replace(/:.*$/, "").split("+");
  const local =
    u !== undefined && u.hostname === "" && transport !== "ssh" && transport !== "tcp" && transport !== "tls";
  const param = u?.searchParams.get("socket") ?? undefined;
  const system =
    u?.pathname === "/system" || (driver === "lxc" && (u?.pathname === "/" || u?.pathname === ""));
  const socket = param ?? (local && system && driver !== "test" ? "/run/libvirt/libvirt-sock" : undefined);
  return { driver, local, ...(socket ? { socket } : {}) };
}

/** DAEMON_COMMS are the process names of the daemons that serve libvirt's qemu and lxc drivers. */
export const DAEMON_COMMS: readonly string[] = ["libvirtd", "virtqemud", "virtlxcd"];

const normRun = (p: string) => p.replace(/^\/var\/run\//, "/run/");

/**
 * locateDaemon finds the process listening on a libvirt unix socket: the socket's inode from /proc/net/unix,
 * then the daemon holding that inode among its open files; failing that, the pid file beside the socket.
 */
export async function locateDaemon(
  fs: HostFs,
  socket: string,
  procs: readonly ProcInfo[],
): Promise<ProcInfo | undefined> {
  const daemons = procs.filter((p) => DAEMON_COMMS.includes(p.comm) && p.state !== "Z");
  const unix = (await fs.readFile("/proc/net/unix")) ?? "";
  const inodes = new Set<string>();
  for (const line of unix.split("\n").slice(1)) {
    const f = line.trim().split(/\s+/);
    if (f.length >= 8 && normRun(f[7]!) === normRun(socket)) inodes.add(f[6]!);
  }
  if (inodes.size > 0) {
    for (const d of daemons) {
      const fds = (await fs.readdir(`/proc/${d.pid}/fd`)) ?? [];
      for (const fd of fds) {
        const link = await fs.readlink(`/proc/${d.pid}/fd/${fd}`);
        const m = link ? /^socket:\[(\d+)\]$/.exec(link) : null;
        if (m && inodes.has(m[1]!)) return d;
      }
    }
  }
  const dir = socket.slice(0, socket.lastIndexOf("/"));
  for (const pidFile of [`${dir}/libvirtd.pid`, `${dir}/virtqemud.pid`]) {
    const pid = Number((await fs.readFile(pidFile))?.trim());
    const d = daemons.find((p) => p.pid === pid);
    if (d) return d;
  }
  return undefined;
}

/** HostView is how one libvirt daemon sees the machine: its pid and the root of its mount namespace. */
export interface HostView {
  daemon?: ProcInfo;
  /** root prefixes paths to read them as the daemon sees them (`/proc/PID/root`, or "" for ours). */
  root: string;
  mntNs?: string;
}

async function hostView(fs: HostFs, uri: LibvirtUri, procs: readonly ProcInfo[]): Promise<HostView> {
  if (!uri.local || !uri.socket) return { root: "" };
  const daemon = await locateDaemon(fs, uri.socket, procs);
  if (!daemon) return { root: "" };
  const root = `/proc/${daemon.pid}/root`;
  const readable = (await fs.stat(`${root}/`)) !== undefined;
  const mntNs = await fs.readlink(`/proc/${daemon.pid}/ns/mnt`);
  return { daemon, root: readable ? root : "", ...(mntNs ? { mntNs } : {}) };
}

const CAPS_DIR = "/var/cache/libvirt/qemu/capabilities";

async function cacheSnapshot(fs: HostFs, root: string): Promise<string | undefined> {
  const dir = root + CAPS_DIR;
  const names = await fs.readdir(dir);
  if (names === undefined) return undefined;
  const parts = await Promise.all(
    names.sort().map(async (n) => {
      const st = await fs.stat(`${dir}/${n}`);
      return `${n}:${st?.ino ?? "-"}:${st?.mtimeMs ?? "-"}`;
    }),
  );
  return parts.join("|");
}

/** probePids lists the QEMU capability probes running now (in the daemon's mount namespace when known). */
export async function probePids(fs: HostFs, mntNs?: string): Promise<number[]> {
  const procs = await listProcesses(fs);
  const out: number[] = [];
  for (const p of procs) {
    if (!p.comm.startsWith("qemu-system") && !p.comm.startsWith("qemu-kvm")) continue;
    const argv = parseCmdline((await fs.readFile(`/proc/${p.pid}/cmdline`)) ?? "");
    if (!isQemuProbe(argv)) continue;
    if (mntNs && (await fs.readlink(`/proc/${p.pid}/ns/mnt`)) !== mntNs) continue;
    out.push(p.pid);
  }
  return out;
}

/** watchedCall runs one command while polling /proc for QEMU probes; `seen` collects their pids. */
async function watchedCall(
  seams: DoctorSeams,
  cmd: string,
  args: string[],
  timeoutMs: number,
  watch?: { seen: Set<number>; mntNs?: string },
): Promise<{ res: CommandResult; ms: number }> {
  const t0 = seams.clock.mono();
  let done = false;
  const call = seams.run(cmd, args, { timeoutMs }).finally(() => {
    done = true;
  });
  const poll = (async () => {
    if (!watch) return;
    for (let i = 0; !done && i < 1000; i++) {
      for (const pid of await probePids(seams.fs, watch.mntNs)) watch.seen.add(pid);
      if (!done) await Promise.race([seams.clock.sleep(150), call.then(() => undefined)]);
    }
  })();
  const res = await call;
  await poll;
  return { res, ms: seams.clock.mono() - t0 };
}

function failText(r: CommandResult): string {
  if (r.timedOut) return "did not answer in time";
  if (r.error) return r.error;
  return lastErrorLine(r.stderr) || `exit ${r.exitCode ?? "?"}`;
}

function check(id: string, target: string, v: Verdict, ms?: number): Check {
  return { id, target, ...v, ...(ms !== undefined ? { ms: Math.round(ms) } : {}) };
}

/** SystemFacts are read once per run and shared by every host's checks. */
export interface SystemFacts {
  procs: ProcInfo[];
  pid1: Pid1Observation;
}

/** HostCheckOptions tune the libvirt checks. */
export interface HostCheckOptions {
  /** calls: how many times the cheap call is timed (default 3). */
  calls?: number;
  /** callTimeoutMs for each virsh call (default 8 s, cut to the deadline). */
  callTimeoutMs?: number;
}

const ROOT_ID: Identity = { user: "root", uid: 0, gid: 0, groups: [0] };

/** checkHost runs the libvirt checks of one host: connection, re-probing, KVM, LXC, reaping, storage. */
export async function checkHost(
  seams: DoctorSeams,
  host: HostTarget,
  deadline: Deadline,
  facts: Promise<SystemFacts>,
  opts: HostCheckOptions = {},
): Promise<Check[]> {
  const { fs } = seams;
  const target = `${host.name} (${host.uri})`;
  const uri = parseLibvirtUri(host.uri);
  const out: Check[] = [];
  const sys = await facts;
  const view = await hostView(fs, uri, sys.procs);
  const watch =
    uri.local && uri.driver === "qemu"
      ? { seen: new Set<number>(), ...(view.mntNs ? { mntNs: view.mntNs } : {}) }
      : undefined;
  const callTimeout = opts.callTimeoutMs ?? 8000;

  // Connection and re-probing: the same cheap call a few times, timed, with /proc and the cache watched.
  const samples: CallSample[] = [];
  let churn = 0;
  let before = watch ? await cacheSnapshot(fs, view.root) : undefined;
  let first: { res: CommandResult; ms: number } | undefined;
  for (let i = 0; i < (opts.calls ?? 3) && !deadline.expired; i++) {
    const t = deadline.timeout(callTimeout);
    const r = await watchedCall(seams, "virsh", ["-c", host.uri, "version"], t, watch);
    first ??= r;
    if (r.res.exitCode !== 0 && !r.res.timedOut) break;
    samples.push({ ms: r.ms, timedOut: r.res.timedOut });
    if (watch) {
      const after = await cacheSnapshot(fs, view.root);
      if (before !== undefined && after !== undefined && after !== before) churn++;
      before = after;
    }
    if (r.res.timedOut) break;
  }
  const connected = first !== undefined && first.res.exitCode === 0;
  if (!first) {
    out.push(
      check("libvirt.connect", target, {
        status: "fail",
        blocking: true,
        detail: "not checked: doctor ran out of time",
        fix: "run `rfboot doctor` again",
      }),
    );
  } else if (connected) {
    const ver = /Using library: libvirt (\S+)/.exec(first.res.stdout)?.[1];
    const hv = /Running hypervisor: (.+)/.exec(first.res.stdout)?.[1]?.trim();
    const what = [ver ? `libvirt ${ver}` : "libvirt", hv].filter(Boolean).join(", ");
    const daemon = view.daemon ? `; daemon ${view.daemon.comm} pid ${view.daemon.pid}` : "";
    out.push(
      check(
        "libvirt.connect",
        target,
        { status: "ok", blocking: false, detail: `${what}${daemon}`, fix: "" },
        first.ms,
      ),
    );
  } else {
    out.push(
      check(
        "libvirt.connect",
        target,
        {
          status: "fail",
          blocking: true,
          detail: `virsh -c ${host.uri} version: ${failText(first.res)}`,
          fix: first.res.timedOut
            ? "libvirtd accepted the connection but did not answer: see the re-probe, KVM and reaping checks below, then restart libvirtd"
            : uri.local
              ? "start libvirtd (and virtlogd) on this machine, or fix the host's uri in the config"
              : "check that libvirtd runs on that host and that the URI (and ssh access) is right",
        },
        first.ms,
      ),
    );
  }
  if (samples.length > 0 || (watch && watch.seen.size > 0)) {
    const v = reprobeVerdict({ samples, probes: watch?.seen.size ?? 0, churn, local: watch !== undefined });
    out.push(
      check(
        "libvirt.reprobe",
        target,
        v,
        samples.reduce((n, s) => n + s.ms, 0),
      ),
    );
  }

  // KVM: what /dev/kvm looks like to the QEMU user, and whether libvirt offers kvm domains.
  if (uri.driver === "qemu") {
    let domcaps: { ok: boolean; error?: string } | undefined;
    let ms: number | undefined;
    if (connected && !deadline.expired) {
      const r = await watchedCall(
        seams,
        "virsh",
        ["-c", host.uri, "domcapabilities", "--virttype", "kvm"],
        deadline.timeout(callTimeout),
        watch,
      );
      domcaps = r.res.exitCode === 0 ? { ok: true } : { ok: false, error: failText(r.res) };
      ms = r.ms;
    }
    const local = uri.local;
    const ids = local ? await qemuIdentityOf(fs, view.root) : undefined;
    const devKvm = local ? await fs.stat(`${view.root}/dev/kvm`) : undefined;
    const v = kvmVerdict({
      local,
      ...(devKvm ? { devKvm } : {}),
      ...(ids ? { identity: ids.identity } : {}),
      passwd: ids?.passwd ?? [],
      groups: ids?.groups ?? [],
      ...(domcaps ? { domcaps } : {}),
      needsKvm: host.needsKvm,
    });
    out.push(check("libvirt.kvm", target, v, ms));
  }

  // LXC: libvirt's cgroup2 quirk, from the daemon's own mount table.
  if (host.needsLxc && uri.local) {
    const mounts = parseMounts(
      (await fs.readFile(view.daemon ? `/proc/${view.daemon.pid}/mounts` : "/proc/self/mounts")) ?? "",
    );
    out.push(check("libvirt.lxc-cgroup2", target, lxcVerdict(cgroup2Quirk(mounts), true)));
  }

  // Reaping: where libvirtd's orphans go.
  if (view.daemon) {
    out.push(
      check(
        "libvirt.reaper",
        target,
        reaperVerdict({
          daemon: view.daemon,
          chain: ancestry(sys.procs, view.daemon.pid),
          pid1: sys.pid1,
          subreapers: SUBREAPER_COMMS,
        }),
      ),
    );
  }

  // The pool: the files the VMs' domains read, as this host's libvirt has them (local or not).
  if (host.storage && connected && !deadline.expired) {
    out.push(await poolCheck(seams, host, deadline, callTimeout));
  }

  // Storage: the directories and files the config's VMs use on this host.
  if (host.paths.length > 0) {
    if (!uri.local) {
      out.push(
        check("libvirt.storage", target, {
          status: "warn",
          blocking: false,
          detail: `${host.paths.length} paths on a remote host: not checked from here`,
          fix: "run `rfboot doctor` on that host with the same config",
        }),
      );
    } else {
      const ids = await qemuIdentityOf(fs, view.root);
      out.push(check("libvirt.storage", target, await storageVerdict(fs, host.paths, ids, view.root)));
    }
  }
  return out;
}

/** virshThrough is a VirshRunner over doctor's command seam, each call cut to the run's deadline. */
function virshThrough(seams: DoctorSeams, deadline: Deadline, callTimeoutMs: number): VirshRunner {
  return async (uri, args) => {
    const timeoutMs = deadline.timeout(callTimeoutMs);
    const r = await seams.run("virsh", ["-c", uri, ...args], { timeoutMs });
    if (r.exitCode === 0 && !r.timedOut) return { stdout: r.stdout, stderr: r.stderr };
    throw makeVirshError(uri, args, r.stderr || (r.error ?? ""), r.exitCode, {
      timedOut: r.timedOut,
      timeoutMs,
    });
  };
}

/** poolCheck looks at the host's pool and whether it has each file the VMs' domains read (read only). */
async function poolCheck(
  seams: DoctorSeams,
  host: HostTarget,
  deadline: Deadline,
  callTimeoutMs: number,
): Promise<Check> {
  const target = `${host.name} (${host.uri})`;
  const spec = host.storage!.spec;
  const storage = new HostStorage({
    host: { name: host.name, uri: host.uri },
    spec,
    run: virshThrough(seams, deadline, callTimeoutMs),
  });
  const t0 = seams.clock.mono();
  try {
    const r = await storage.inspect(host.storage!.artifacts);
    const ms = seams.clock.mono() - t0;
    const uploads = r.artifacts.filter((a) => a.status === "will-upload").length;
    const found = r.artifacts.filter((a) => a.status === "found").length;
    const what =
      spec.images === "pool"
        ? `; ${found} of ${r.artifacts.length} images/kernels/initrds in the pool${uploads ? `, ${uploads} to upload at first use` : ""}`
        : "";
    if (r.problems.length > 0) {
      return check(
        "libvirt.pool",
        target,
        {
          status: "fail",
          blocking: true,
          detail: `${r.poolDetail}${what}: ${r.problems.join("; ")}`,
          fix: `put the missing volumes into pool ${spec.pool} (virsh vol-upload, as above), or set upload: true for the host`,
        },
        ms,
      );
    }
    return check(
      "libvirt.pool",
      target,
      {
        status: r.poolState === "inactive" || r.poolState === "other" ? "warn" : "ok",
        blocking: false,
        detail: `${r.poolDetail}${what}`,
        fix:
          r.poolState === "running" || r.poolState === "missing"
            ? ""
            : `virsh -c ${host.uri} pool-start ${spec.pool} (rfboot starts it too)`,
      },
      ms,
    );
  } catch (e) {
    return check("libvirt.pool", target, {
      status: "warn",
      blocking: false,
      detail: `pool ${spec.pool} not checked: ${e instanceof Error ? e.message : String(e)}`,
      fix: "run `rfboot doctor` again once the host answers",
    });
  } finally {
    await storage.dispose();
  }
}

async function qemuIdentityOf(
  fs: HostFs,
  root: string,
): Promise<{ identity: Identity | { error: string }; passwd: Account[]; groups: GroupEntry[] }> {
  const passwd = parsePasswd((await fs.readFile(`${root}/etc/passwd`)) ?? "");
  const groups = parseGroup((await fs.readFile(`${root}/etc/group`)) ?? "");
  const conf = parseQemuConf((await fs.readFile(`${root}/etc/libvirt/qemu.conf`)) ?? "");
  return { identity: qemuIdentity(conf, passwd, groups), passwd, groups };
}

/** lxcVerdict: the cgroup2 quirk fails LXC domains; blocking only when the config uses LXC. */
export function lxcVerdict(q: { cgroup2: boolean; last?: string; quirk: boolean }, needed: boolean): Verdict {
  if (!q.quirk) {
    return {
      status: "ok",
      blocking: false,
      detail: q.cgroup2 ? `last cgroup2 mount is ${q.last}, outside /sys` : "no cgroup2 mount",
      fix: "",
    };
  }
  return {
    status: needed ? "fail" : "warn",
    blocking: needed,
    detail: `the last cgroup2 mount of /proc/mounts is ${q.last}: libvirt's LXC driver fails with "Unable to create directory /sys/fs/cgroup/unified"`,
    fix: CGROUP2_FIX,
  };
}

/** storageVerdict checks each path for existence and for the access its reader needs. */
export async function storageVerdict(
  fs: HostFs,
  paths: readonly PathTarget[],
  ids: { identity: Identity | { error: string }; passwd: Account[]; groups: GroupEntry[] },
  root = "",
): Promise<Verdict> {
  const problems: { status: CheckStatus; text: string; fix: string }[] = [];
  const qemu = "error" in ids.identity ? undefined : ids.identity;
  for (const p of paths) {
    const createdByRfboot = p.role === "storageDir" || p.role === "consoleLogDir";
    const who = p.readBy === "qemu" && qemu ? qemu : ROOT_ID;
    const label = `${p.role} ${p.path}${p.vms.length ? ` (${p.vms.slice(0, 3).join(", ")}${p.vms.length > 3 ? ", ..." : ""})` : ""}`;
    const v = await checkPath(fs, who, p.path, root);
    if (v.ok) continue;
    if (v.reason === "missing") {
      if (createdByRfboot)
        problems.push({
          status: "warn",
          text: `${label} does not exist yet`,
          fix: "`rfboot run` creates it; create it now to check its permissions",
        });
      else
        problems.push({
          status: "fail",
          text: `${label} is missing`,
          fix: `put the file at ${p.path} or fix the path in the config`,
        });
    } else if (v.reason === "no-search") {
      problems.push({
        status: "fail",
        text: `${label}: ${who.user} cannot enter ${v.path} (${describeStat(v.stat, ids.passwd, ids.groups)})`,
        fix: `chmod o+x ${v.path} (or give ${who.user}'s group search permission)`,
      });
    } else {
      // libvirt's DAC driver relabels the files it hands to QEMU, not the directories above them.
      problems.push({
        status: "warn",
        text: `${label} is not readable by ${who.user} (${describeStat(v.stat, ids.passwd, ids.groups)}); libvirt relabels it at start only with dynamic_ownership on`,
        fix: `chmod o+r ${p.path}`,
      });
    }
  }
  if (problems.length === 0) {
    return {
      status: "ok",
      blocking: false,
      detail: `${paths.length} paths present and readable${qemu ? ` by ${qemu.user} where QEMU opens them` : ""}`,
      fix: "",
    };
  }
  const fail = problems.some((p) => p.status === "fail");
  return {
    status: fail ? "fail" : "warn",
    blocking: fail,
    detail: problems.map((p) => p.text).join("; "),
    fix: [...new Set(problems.map((p) => p.fix))].join("; "),
  };
}

/** ORPHAN_SCRIPT leaves a short-lived grandchild behind: the outer shell prints its pid and exits at once. */
const ORPHAN_SCRIPT = `sh -c 'sleep 0.2' >/dev/null 2>&1 </dev/null & echo $!`;

/**
 * orphanProbe makes an orphan and watches what becomes of it: which process adopts it and whether that
 * process reaps it after it exits. On an init that never reaps, this leaves one zombie behind, so it is
 * only run when PID 1 holds no zombie already (which would settle the question).
 */
export async function orphanProbe(seams: DoctorSeams, deadline: Deadline): Promise<OrphanProbe | undefined> {
  const r = await seams.run("sh", ["-c", ORPHAN_SCRIPT], { timeoutMs: deadline.timeout(3000) });
  const pid = Number(r.stdout.trim());
  if (r.exitCode !== 0 || !Number.isInteger(pid) || pid <= 0) return undefined;
  let adopter: number | undefined;
  for (let waited = 0; waited < 2000 && !deadline.expired; waited += 100) {
    const st = parseStat((await seams.fs.readFile(`/proc/${pid}/stat`)) ?? "");
    if (!st)
      return adopter === undefined
        ? { reaped: true }
        : { adopter, ...(await commOf(seams.fs, adopter)), reaped: true };
    adopter = st.ppid;
    if (st.state === "Z" && waited >= 500) {
      return { adopter, ...(await commOf(seams.fs, adopter)), reaped: false, zombieMs: waited - 200 };
    }
    await seams.clock.sleep(100);
  }
  return undefined;
}

async function commOf(fs: HostFs, pid: number): Promise<{ adopterComm?: string }> {
  const c = (await fs.readFile(`/proc/${pid}/comm`))?.trim();
  return c ? { adopterComm: c } : {};
}

/** systemFacts reads the process table and decides about PID 1 (with an orphan probe when needed). */
export async function systemFacts(seams: DoctorSeams, deadline: Deadline): Promise<SystemFacts> {
  const procs = await listProcesses(seams.fs);
  const comm =
    (await seams.fs.readFile("/proc/1/comm"))?.trim() ?? procs.find((p) => p.pid === 1)?.comm ?? "?";
  const zombies = procs.filter((p) => p.ppid === 1 && p.state === "Z").length;
  const orphan = zombies === 0 ? await orphanProbe(seams, deadline) : undefined;
  return { procs, pid1: { comm, zombies, ...(orphan ? { orphan } : {}) } };
}

/**
 * checkSystem reports PID 1's reaping, the zombies by parent, LXC's quirk when only installed, NTP, and the
 * switch sessions the open-files limit allows in the OpenFlow `mode`.
 */
export async function checkSystem(
  seams: DoctorSeams,
  facts: SystemFacts,
  lxcInstalled: boolean,
  mode: "listen" | "relay" = "listen",
): Promise<Check[]> {
  const out: Check[] = [check("system.pid1-reaping", `pid 1 (${facts.pid1.comm})`, pid1Verdict(facts.pid1))];
  out.push(check("system.zombies", "processes", zombieVerdict(zombiesByParent(facts.procs))));
  if (lxcInstalled) {
    const mounts = parseMounts((await seams.fs.readFile("/proc/self/mounts")) ?? "");
    out.push(
      check(
        "libvirt.lxc-cgroup2",
        "local (libvirt's lxc driver is installed)",
        lxcVerdict(cgroup2Quirk(mounts), false),
      ),
    );
  }
  out.push(check("clock.ntp", "local clock", await ntpVerdict(seams.fs, facts.procs)));
  const limits = await seams.fs.readFile("/proc/self/limits");
  let nofile: NofileLimits | undefined;
  try {
    nofile = limits === undefined ? undefined : parseNofileLimits(limits);
  } catch {
    nofile = undefined;
  }
  out.push(check("system.open-files", "RLIMIT_NOFILE", openFilesVerdict(nofile, mode)));
  return out;
}

/** NTP_COMMS are time synchronisation daemons as /proc names them (comm is cut at 15 characters). */
export const NTP_COMMS: readonly string[] = [
  "chronyd",
  "ntpd",
  "ntpsec",
  "openntpd",
  "systemd-timesyn",
  "timesyncd",
  "ptp4l",
  "phc2sys",
];

async function ntpVerdict(fs: HostFs, procs: readonly ProcInfo[]): Promise<Verdict> {
  if ((await fs.stat("/run/systemd/timesync/synchronized")) !== undefined) {
    return {
      status: "ok",
      blocking: false,
      detail: "systemd-timesyncd reports the clock synchronised",
      fix: "",
    };
  }
  const d = procs.find((p) => NTP_COMMS.includes(p.comm) && p.state !== "Z");
  if (d)
    return {
      status: "ok",
      blocking: false,
      detail: `time daemon ${d.comm} (pid ${d.pid}) is running`,
      fix: "",
    };
  return {
    status: "warn",
    blocking: false,
    detail:
      "no time synchronisation daemon seen (chronyd, ntpd, systemd-timesyncd): whether the clock is NTP-synchronised is unknown",
    fix: "run chrony (Debian package chrony) or systemd-timesyncd on every rfboot host, unless the hypervisor keeps the clock",
  };
}

/** lxcDriverInstalled tells whether libvirt's LXC driver module is on this machine. */
export async function lxcDriverInstalled(fs: HostFs, arch: string): Promise<boolean> {
  const triplet = arch === "x64" ? "x86_64" : arch === "arm64" ? "aarch64" : arch;
  for (const dir of [
    `/usr/lib/${triplet}-linux-gnu/libvirt/connection-driver`,
    "/usr/lib64/libvirt/connection-driver",
    "/usr/lib/libvirt/connection-driver",
  ]) {
    if ((await fs.stat(`${dir}/libvirt_driver_lxc.so`)) !== undefined) return true;
  }
  return false;
}

const OVS_START = "/usr/share/openvswitch/scripts/ovs-ctl start (Debian package openvswitch-switch)";

/** checkOvs: ovs-vsctl answers, and each bridge exists; blocking only for bridges VMs plug into. */
export async function checkOvs(
  seams: DoctorSeams,
  bridges: readonly BridgeTarget[],
  deadline: Deadline,
): Promise<Check[]> {
  const needed = bridges.some((b) => b.needed);
  const t0 = seams.clock.mono();
  const show = await seams.run("ovs-vsctl", ["--timeout=3", "show"], { timeoutMs: deadline.timeout(5000) });
  const ms = seams.clock.mono() - t0;
  if (show.exitCode !== 0) {
    return [
      check(
        "ovs.reachable",
        "ovs-vswitchd",
        {
          status: needed ? "fail" : "warn",
          blocking: needed,
          detail: `ovs-vsctl show: ${failText(show)}${needed ? "; the config's VMs plug data NICs into Open vSwitch" : "; no configured VM needs it"}`,
          fix: `start Open vSwitch: ${OVS_START}`,
        },
        ms,
      ),
    ];
  }
  const ver = /ovs_version: "([^"]+)"/.exec(show.stdout)?.[1];
  const out = [
    check(
      "ovs.reachable",
      "ovs-vswitchd",
      { status: "ok", blocking: false, detail: `Open vSwitch ${ver ?? "answers"}`, fix: "" },
      ms,
    ),
  ];
  for (const b of bridges) {
    const r = await seams.run("ovs-vsctl", ["--timeout=3", "br-exists", b.name], {
      timeoutMs: deadline.timeout(5000),
    });
    if (r.exitCode === 0) {
      out.push(
        check("ovs.bridge", b.name, {
          status: "ok",
          blocking: false,
          detail: `bridge ${b.name} exists${b.purpose ? ` (${b.purpose})` : ""}`,
          fix: "",
        }),
      );
    } else {
      const missing = r.exitCode === 2;
      out.push(
        check("ovs.bridge", b.name, {
          status: b.needed ? "fail" : "warn",
          blocking: b.needed,
          detail: missing
            ? `bridge ${b.name} does not exist${b.purpose ? ` (${b.purpose})` : b.needed ? " (the config's VMs plug into it)" : ""}`
            : `ovs-vsctl br-exists ${b.name}: ${failText(r)}`,
          fix: `ovs-vsctl add-br ${b.name} (add -- set bridge ${b.name} datapath_type=netdev where the kernel has no openvswitch module)${b.purpose?.startsWith("trunk") ? ", then its tunnel port: docs/multi-host.md" : ""}`,
        }),
      );
    }
  }
  return out;
}

/** checkMongo: the server answers and is new enough; then its clock against ours. */
export async function checkMongo(
  seams: DoctorSeams,
  uri: string,
  shownUri: string,
  slackMs: number,
  deadline: Deadline,
): Promise<Check[]> {
  const t0 = seams.clock.mono();
  let hello;
  try {
    hello = await seams.mongo(uri, deadline.timeout(2000));
  } catch (e) {
    hello = { error: e instanceof Error ? e.message : String(e) };
  }
  const ms = seams.clock.mono() - t0;
  const out = [check("mongo.server", shownUri, mongoVerdict(hello), ms)];
  if ("error" in hello) return out;
  if (hello.localTime && hello.sentAt !== undefined && hello.receivedAt !== undefined) {
    out.push(
      check(
        "clock.skew",
        shownUri,
        clockVerdict({
          serverTime: hello.localTime.getTime(),
          sentAt: hello.sentAt,
          receivedAt: hello.receivedAt,
          slackMs,
        }),
      ),
    );
  } else {
    out.push(
      check("clock.skew", shownUri, {
        status: "warn",
        blocking: false,
        detail: "the server did not report its clock (hello.localTime)",
        fix: "compare the clocks by hand: leases need them to agree within a second",
      }),
    );
  }
  return out;
}
