/**
 * Doctor's decisions, each a pure function of what was observed: is libvirt re-probing QEMU, can the QEMU
 * user open /dev/kvm, who reaps orphans, is the database new enough, do the clocks agree. The gathering
 * (commands, /proc) lives in checks.ts; these only judge.
 */
import {
  canAccess,
  compareVersions,
  describeStat,
  type Account,
  type GroupEntry,
  type Identity,
  type ProcInfo,
  type ZombieGroup,
} from "./proc.js";
import { NOFILE_FIX, sessionCapacity, type NofileLimits } from "../../common/nofile.js";
import type { Check, CheckStatus, FileStat, MongoHello } from "./types.js";

/** Verdict is a check without its id and target. */
export type Verdict = Pick<Check, "status" | "blocking" | "detail" | "fix">;

/** SLOW_CALL_MS: a cheap libvirt call slower than this every time means libvirtd is doing real work per call. */
export const SLOW_CALL_MS = 1000;

/** MIN_MONGO_VERSION is the oldest server the bundled mongodb driver (7.x) talks to. */
export const MIN_MONGO_VERSION = "4.4";

/** CLOCK_WARN_MS: skew worth a warning even though leases still work. */
export const CLOCK_WARN_MS = 1000;

/** KVM_FIX is what Debian's udev rule does to /dev/kvm at boot; libvirtd caches what it saw at start. */
export const KVM_FIX =
  "chgrp kvm /dev/kvm && chmod 0660 /dev/kvm (what Debian's udev rule does), then restart libvirtd";

/** REAPER_FIX runs the libvirt daemons under a process that reaps the orphans they leave. */
export const REAPER_FIX =
  "run libvirtd and virtlogd in the foreground under a subreaper: `setsid tini -s -- libvirtd` and " +
  "`setsid tini -s -- virtlogd` (Debian package tini), or boot with an init that reaps orphans";

/** CGROUP2_FIX mounts cgroup2 a second time outside /sys so it becomes the last cgroup2 mount. */
export const CGROUP2_FIX = "mkdir -p /run/cg2 && mount -t cgroup2 cgroup2 /run/cg2 (undo: umount /run/cg2)";

/** CallSample is one timed libvirt call. */
export interface CallSample {
  ms: number;
  timedOut: boolean;
}

/** ReprobeObservation is what doctor saw while calling libvirt a few times. */
export interface ReprobeObservation {
  samples: readonly CallSample[];
  /** probes: distinct QEMU capability-probe processes seen during the calls (local hosts). */
  probes: number;
  /** churn: calls after which libvirt's capabilities cache directory had changed (local hosts). */
  churn: number;
  /** local is true when /proc and the cache could be looked at. */
  local: boolean;
}

const secs = (ms: number) => (ms >= 1000 ? `${(ms / 1000).toFixed(1)} s` : `${Math.round(ms)} ms`);
const plural = (n: number, one: string, many = `${one}s`) => `${n} ${n === 1 ? one : many}`;

/**
 * reprobeVerdict: libvirt re-probes QEMU on every call when each cheap call is slow (seconds: a QEMU
 * started and queried each time), when its capabilities cache is rewritten after most calls, or when several
 * probes ran during a slow call. A single probe is normal after libvirtd starts or QEMU is upgraded.
 */
export function reprobeVerdict(o: ReprobeObservation): Verdict {
  const times = o.samples.map((s) => (s.timedOut ? `>${secs(s.ms)}` : secs(s.ms))).join(", ");
  const slow = o.samples.length >= 2 && o.samples.every((s) => s.timedOut || s.ms > SLOW_CALL_MS);
  const calls = o.samples.length;
  const churning = calls >= 2 && o.churn >= calls - 1;
  // Several probes during slow calls: libvirt started QEMU again while one call was still waiting for it.
  const repeated = o.probes >= 2 && o.samples.some((s) => s.timedOut || s.ms > SLOW_CALL_MS);
  const seen: string[] = [];
  if (o.probes > 0)
    seen.push(`${plural(o.probes, "QEMU capability probe")} (qemu-system-* -S -machine none) seen`);
  if (o.churn > 0) seen.push(`capabilities cache rewritten after ${o.churn} of ${calls} calls`);
  const evidence = seen.length > 0 ? `; ${seen.join("; ")}` : "";
  if (slow || churning || repeated) {
    return {
      status: "fail",
      blocking: true,
      detail: `libvirt re-probes QEMU on every call: ${calls} cheap calls took ${times}${evidence}`,
      fix:
        "libvirtd (root) and the QEMU user disagree about a host feature, most often /dev/kvm: make it usable " +
        `by the QEMU user (${KVM_FIX}); see the libvirt.kvm check`,
    };
  }
  if (o.probes > 0 || o.churn > 0) {
    return {
      status: "warn",
      blocking: false,
      detail: `calls took ${times}${evidence} (once is normal after libvirtd starts or QEMU changes)`,
      fix: "run `rfboot doctor` again: a probe on every call means the /dev/kvm trap",
    };
  }
  return {
    status: "ok",
    blocking: false,
    detail: `capabilities stable: ${calls} calls took ${times}${o.local ? ", no QEMU probe seen" : ""}`,
    fix: "",
  };
}

/** KvmObservation is what doctor knows about KVM on one host. */
export interface KvmObservation {
  /** local: /dev/kvm and qemu.conf could be read (a host whose URI has no hostname). */
  local: boolean;
  devKvm?: FileStat;
  /** identity of the QEMU user, or why it could not be resolved. */
  identity?: Identity | { error: string };
  passwd: readonly Account[];
  groups: readonly GroupEntry[];
  /** domcaps: whether `virsh domcapabilities --virttype kvm` succeeded (undefined: not asked). */
  domcaps?: { ok: boolean; error?: string };
  /** needsKvm: the config places kvm domains on this host. */
  needsKvm: boolean;
}

/**
 * kvmVerdict: /dev/kvm present but not openable (rw) by the QEMU user is a failure in any case, because
 * libvirtd (root) sees KVM while its QEMU probes do not, which makes it re-probe on every call. Otherwise
 * KVM merely being unavailable blocks only when the config asks for kvm domains.
 */
export function kvmVerdict(o: KvmObservation): Verdict {
  const caps = o.domcaps;
  const capsText =
    caps === undefined
      ? ""
      : caps.ok
        ? "domcapabilities --virttype kvm: ok"
        : `domcapabilities --virttype kvm failed: ${caps.error ?? "?"}`;
  const boots = (kvm: boolean) =>
    kvm ? "kvm and qemu (TCG) domains can boot" : "only qemu (TCG) domains will boot";
  const parts = (xs: string[]) => xs.filter(Boolean).join("; ");
  if (o.local && o.devKvm) {
    const dev = describeStat(o.devKvm, o.passwd, o.groups);
    const id = o.identity;
    if (id && "error" in id) {
      return {
        status: "warn",
        blocking: o.needsKvm,
        detail: parts([`/dev/kvm is ${dev}`, id.error, capsText]),
        fix: "set user/group in /etc/libvirt/qemu.conf to an existing account",
      };
    }
    if (id) {
      const names = id.groups.map((g) => o.groups.find((e) => e.gid === g)?.name ?? String(g)).join(",");
      const who = `QEMU user ${id.user} (groups ${names})`;
      if (o.devKvm.kind !== "char") {
        return {
          status: o.needsKvm ? "fail" : "warn",
          blocking: o.needsKvm,
          detail: parts([`/dev/kvm is not a character device`, capsText]),
          fix: "recreate it: mknod /dev/kvm c 10 232, then " + KVM_FIX,
        };
      }
      if (!canAccess(id, o.devKvm, { read: true, write: true })) {
        return {
          status: "fail",
          blocking: true,
          detail: parts([
            `/dev/kvm is ${dev}: ${who} cannot open it read-write, libvirtd (root) can`,
            capsText,
            boots(false),
          ]),
          fix: KVM_FIX,
        };
      }
      const kvmOk = caps?.ok ?? true;
      if (!kvmOk) {
        return {
          status: o.needsKvm ? "fail" : "warn",
          blocking: o.needsKvm,
          detail: parts([`/dev/kvm is ${dev}, usable by ${who}`, capsText, boots(false)]),
          fix: "check that the kernel's KVM works (dmesg) and restart libvirtd so it probes again",
        };
      }
      return {
        status: "ok",
        blocking: false,
        detail: parts([`/dev/kvm is ${dev}, usable by ${who}`, capsText, boots(true)]),
        fix: "",
      };
    }
  }
  if (o.local && !o.devKvm) {
    return {
      status: o.needsKvm ? "fail" : "ok",
      blocking: o.needsKvm,
      detail: parts(["no /dev/kvm", boots(false)]),
      fix: o.needsKvm ? "load the kvm module (modprobe kvm_intel or kvm_amd) or use hypervisor: qemu" : "",
    };
  }
  if (caps === undefined) return { status: "warn", blocking: false, detail: "KVM not checked", fix: "" };
  if (caps.ok) return { status: "ok", blocking: false, detail: parts([capsText, boots(true)]), fix: "" };
  return {
    status: o.needsKvm ? "fail" : "warn",
    blocking: o.needsKvm,
    detail: parts([capsText, boots(false)]),
    fix: "on that host, make /dev/kvm usable by the QEMU user: " + KVM_FIX,
  };
}

/** OrphanProbe is what happened to an orphan doctor made. */
export interface OrphanProbe {
  /** adopter is the pid that became its parent (1, or a subreaper above doctor). */
  adopter?: number;
  adopterComm?: string;
  /** reaped: it disappeared after exiting; false: it stayed a zombie. */
  reaped: boolean;
  /** zombieMs: how long after its planned exit it was still seen as a zombie. */
  zombieMs?: number;
}

/** Pid1Observation is what doctor knows about PID 1. */
export interface Pid1Observation {
  comm: string;
  /** zombies whose parent is PID 1. */
  zombies: number;
  orphan?: OrphanProbe;
}

/** pid1Reaps: false when PID 1 holds zombies or let an orphan stay one; undefined when nothing tells. */
export function pid1Reaps(o: Pid1Observation): boolean | undefined {
  if (o.zombies > 0) return false;
  if (o.orphan && o.orphan.adopter === 1) return o.orphan.reaped;
  return undefined;
}

/** pid1Verdict reports whether PID 1 reaps orphans; not blocking by itself (see reaperVerdict). */
export function pid1Verdict(o: Pid1Observation): Verdict {
  const reaps = pid1Reaps(o);
  const name = `PID 1 (${o.comm})`;
  if (reaps === false) {
    const why =
      o.zombies > 0
        ? `${plural(o.zombies, "zombie")} wait under it`
        : `an orphan doctor made was still a zombie ${o.orphan?.zombieMs ?? "?"} ms after it exited`;
    return {
      status: "warn",
      blocking: false,
      detail: `${name} does not reap orphans promptly: ${why}; daemonized children (QEMU's capability probe, anything started with -d) stay zombies and libvirtd waits on them`,
      fix: REAPER_FIX,
    };
  }
  if (reaps === true)
    return {
      status: "ok",
      blocking: false,
      detail: `${name} reaps orphans (an orphan doctor made was reaped)`,
      fix: "",
    };
  const a = o.orphan;
  const via =
    a?.adopter !== undefined
      ? `orphans of doctor go to subreaper ${a.adopterComm ?? "?"} (pid ${a.adopter})${a.reaped ? ", which reaped" : ", which did NOT reap"}`
      : "the orphan probe could not be observed";
  return { status: "ok", blocking: false, detail: `${name}: no zombies under it; ${via}`, fix: "" };
}

/** zombieVerdict lists zombies by parent; a zombie is only its parent's to reap. */
export function zombieVerdict(groups: readonly ZombieGroup[]): Verdict {
  if (groups.length === 0) return { status: "ok", blocking: false, detail: "no zombie processes", fix: "" };
  const total = groups.reduce((n, g) => n + g.zombies.length, 0);
  const list = groups
    .slice(0, 8)
    .map((g) => {
      const pids = g.zombies
        .slice(0, 5)
        .map((z) => `${z.pid} ${z.comm}`)
        .join(", ");
      const more = g.zombies.length > 5 ? `, +${g.zombies.length - 5}` : "";
      return `${g.zombies.length} under pid ${g.parent} (${g.parentComm ?? "?"}): ${pids}${more}`;
    })
    .join("; ");
  const underInit = groups.some((g) => g.parent === 1);
  return {
    status: "warn",
    blocking: false,
    detail: `${plural(total, "zombie process", "zombie processes")}: ${list}${groups.length > 8 ? "; ..." : ""}`,
    fix: underInit
      ? `zombies under PID 1 stay until PID 1 reaps them: ${REAPER_FIX}; others: their parent must wait() or be restarted`
      : "a zombie is removed when its parent waits for it: fix or restart the parent named above",
  };
}

/** ReaperObservation is one libvirtd's place in the process tree. */
export interface ReaperObservation {
  daemon: { pid: number; comm: string };
  /** chain: its ancestors, nearest first. */
  chain: readonly ProcInfo[];
  pid1: Pid1Observation;
  subreapers: readonly string[];
}

/**
 * reaperVerdict: libvirtd's daemonized helpers are orphaned to the nearest subreaper above libvirtd, or to
 * PID 1. Blocking when libvirtd's own parent is a PID 1 known not to reap that already holds zombies.
 */
export function reaperVerdict(o: ReaperObservation): Verdict {
  const parent = o.chain[0];
  const sub = o.chain.find((p) => p.pid !== 1 && o.subreapers.includes(p.comm));
  const reaps = pid1Reaps(o.pid1);
  const me = `${o.daemon.comm} (pid ${o.daemon.pid})`;
  if (sub)
    return {
      status: "ok",
      blocking: false,
      detail: `${me} runs under subreaper ${sub.comm} (pid ${sub.pid})`,
      fix: "",
    };
  if (reaps !== false) {
    return {
      status: "ok",
      blocking: false,
      detail: `${me}: parent ${parent ? `${parent.comm} (pid ${parent.pid})` : "?"}; PID 1 (${o.pid1.comm}) ${reaps ? "reaps orphans" : "has no zombies"}`,
      fix: "",
    };
  }
  if (parent?.pid === 1 && o.pid1.zombies > 0) {
    return {
      status: "fail",
      blocking: true,
      detail: `${me} is a child of PID 1 (${o.pid1.comm}), which does not reap orphans (${plural(o.pid1.zombies, "zombie")} under it): libvirtd waits on such zombies (its QEMU probes) and hangs`,
      fix: REAPER_FIX,
    };
  }
  return {
    status: "warn",
    blocking: false,
    detail: `${me} has no subreaper above it (parent ${parent ? `${parent.comm} (pid ${parent.pid})` : "?"}); its orphans go to PID 1 (${o.pid1.comm}), which does not reap`,
    fix: REAPER_FIX,
  };
}

/** mongoVerdict: reachable and at least MIN_MONGO_VERSION. */
export function mongoVerdict(hello: MongoHello | { error: string }): Verdict {
  if ("error" in hello) {
    return {
      status: "fail",
      blocking: true,
      detail: `unreachable: ${hello.error}`,
      fix: "start MongoDB (or FerretDB) at this address, or set mongo.uri in the config",
    };
  }
  const what = hello.ferretdb
    ? `FerretDB ${hello.ferretdb} (reports MongoDB ${hello.version})`
    : `MongoDB ${hello.version}`;
  if (compareVersions(hello.version, MIN_MONGO_VERSION) < 0) {
    return {
      status: "fail",
      blocking: true,
      detail: `${what} is older than ${MIN_MONGO_VERSION}, the oldest the bundled mongodb driver supports`,
      fix: `upgrade the server to MongoDB ${MIN_MONGO_VERSION} or newer`,
    };
  }
  return { status: "ok", blocking: false, detail: what, fix: "" };
}

/** ClockObservation: the server's clock and the local clock around the request that read it. */
export interface ClockObservation {
  serverTime: number;
  sentAt: number;
  receivedAt: number;
  /** slackMs: how far clocks may disagree before two instances can both believe they hold a lease. */
  slackMs: number;
}

/**
 * clockVerdict compares the server's clock with ours at the midpoint of the round trip (the error is at most
 * half the round trip). Leases compare expiry times written by one instance with another's clock.
 */
export function clockVerdict(o: ClockObservation): Verdict {
  const mid = (o.sentAt + o.receivedAt) / 2;
  const skew = o.serverTime - mid;
  const abs = Math.abs(skew);
  const err = Math.max(0, (o.receivedAt - o.sentAt) / 2);
  const text = `local clock is ${secs(abs)} ${skew > 0 ? "behind" : "ahead of"} the MongoDB server's (±${secs(err)})`;
  const status: CheckStatus = abs - err > o.slackMs ? "fail" : abs - err > CLOCK_WARN_MS ? "warn" : "ok";
  if (status === "ok") return { status, blocking: false, detail: `clocks agree: ${text}`, fix: "" };
  return {
    status,
    blocking: status === "fail",
    detail: `${text}; rfboot instances compare lease expiry with their own clocks, the slack is ${secs(o.slackMs)}`,
    fix: "synchronise the clocks of every rfboot host and the database host (chrony or systemd-timesyncd)",
  };
}

/** exitCode is 1 when a check blocks, else 0. */
export function doctorExitCode(checks: readonly Check[]): number {
  return checks.some((c) => c.blocking) ? 1 : 0;
}

/** MIN_SESSIONS: fewer switch sessions than this (openflow.maxConnections' default) is worth a warning. */
export const MIN_SESSIONS = 4096;

/**
 * openFilesVerdict judges the open-files limit a process started here may have (the hard one: rfboot raises
 * its soft limit to it): how many switch sessions it allows in `mode` (1 descriptor per switch listening,
 * 2 relaying), a warning below MIN_SESSIONS. Under systemd the unit's LimitNOFILE= decides instead.
 */
export function openFilesVerdict(limits: NofileLimits | undefined, mode: "listen" | "relay"): Verdict {
  if (!limits)
    return {
      status: "warn",
      blocking: false,
      detail: "cannot read the open-files limit (/proc/self/limits)",
      fix: "check that /proc is mounted; rfboot counts one descriptor per switch (two in relay mode)",
    };
  const cap = sessionCapacity(limits.hard);
  const sessions = cap[mode];
  const detail =
    `hard limit ${limits.hard} (soft ${limits.soft}): ${sessions} switch sessions in ${mode} mode ` +
    `(listen ${cap.listen}, relay ${cap.relay}); under systemd the unit's LimitNOFILE= applies instead`;
  return sessions < MIN_SESSIONS
    ? { status: "warn", blocking: false, detail: `${detail}, fewer than ${MIN_SESSIONS}`, fix: NOFILE_FIX }
    : { status: "ok", blocking: false, detail, fix: "" };
}
