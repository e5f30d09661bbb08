/**
 * Reading the machine the way the kernel and libvirt see it: /proc process tables, zombies and ancestry,
 * /etc/passwd and /etc/group, qemu.conf's QEMU identity, Unix permission checks, cgroup mounts. Pure
 * parsers plus helpers over the `HostFs` seam, so every decision is testable with a fake /proc.
 */
import type { FileStat, HostFs } from "./types.js";

/** ProcInfo is one process from /proc/PID/stat. */
export interface ProcInfo {
  pid: number;
  comm: string;
  /** state: R, S, D, Z, T, ... */
  state: string;
  ppid: number;
}

/**
 * parseStat reads /proc/PID/stat. The command name is in parentheses and may itself contain spaces and
 * parentheses, so the fields are read after the LAST `)`. Undefined for text that is not a stat line.
 */
export function parseStat(text: string): ProcInfo | undefined {
  const open = text.indexOf("(");
  const close = text.lastIndexOf(")");
  if (open < 0 || close < open) return undefined;
  const pid = Number(text.slice(0, open).trim());
  const rest = text
    .slice(close + 1)
    .trim()
    .split(/\s+/);
  const state = rest[0];
  const ppid = Number(rest[1]);
  if (!Number.isInteger(pid) || !state || !Number.isInteger(ppid)) return undefined;
  return { pid, comm: text.slice(open + 1, close), state, ppid };
}

/** listProcesses reads every /proc/PID/stat (processes that vanish meanwhile are skipped). */
export async function listProcesses(fs: HostFs): Promise<ProcInfo[]> {
  const names = (await fs.readdir("/proc")) ?? [];
  const pids = names.filter((n) => /^\d+$/.test(n));
  const out = await Promise.all(
    pids.map(async (p) => {
      const t = await fs.readFile(`/proc/${p}/stat`);
      return t === undefined ? undefined : parseStat(t);
    }),
  );
  return out.filter((p): p is ProcInfo => p !== undefined).sort((a, b) => a.pid - b.pid);
}

/** ZombieGroup is the zombies one parent has not reaped. */
export interface ZombieGroup {
  parent: number;
  /** parentComm is the parent's name, when it is still there. */
  parentComm?: string;
  zombies: ProcInfo[];
}

/** zombiesByParent groups the zombies (state Z) of a process table by parent, most zombies first. */
export function zombiesByParent(procs: readonly ProcInfo[]): ZombieGroup[] {
  const byPid = new Map(procs.map((p) => [p.pid, p]));
  const groups = new Map<number, ProcInfo[]>();
  for (const p of procs) {
    if (p.state !== "Z") continue;
    const g = groups.get(p.ppid) ?? [];
    g.push(p);
    groups.set(p.ppid, g);
  }
  return [...groups.entries()]
    .map(([parent, zombies]) => {
      const comm = byPid.get(parent)?.comm;
      return { parent, ...(comm !== undefined ? { parentComm: comm } : {}), zombies };
    })
    .sort((a, b) => b.zombies.length - a.zombies.length || a.parent - b.parent);
}

/** ancestry is the chain of parents of `pid` (nearest first, PID 1 last); stops at a missing process. */
export function ancestry(procs: readonly ProcInfo[], pid: number): ProcInfo[] {
  const byPid = new Map(procs.map((p) => [p.pid, p]));
  const out: ProcInfo[] = [];
  let cur = byPid.get(pid);
  const seen = new Set<number>();
  while (cur && cur.ppid > 0 && !seen.has(cur.ppid)) {
    seen.add(cur.ppid);
    const parent = byPid.get(cur.ppid);
    if (!parent) break;
    out.push(parent);
    cur = parent;
  }
  return out;
}

/** SUBREAPER_COMMS are init-like programs that adopt and reap orphans below them (tini run with -s). */
export const SUBREAPER_COMMS: readonly string[] = ["tini", "dumb-init", "catatonit", "s6-svscan", "runit"];

/** Account is a user from /etc/passwd. */
export interface Account {
  name: string;
  uid: number;
  gid: number;
}

/** GroupEntry is a group from /etc/group. */
export interface GroupEntry {
  name: string;
  gid: number;
  members: string[];
}

/** parsePasswd reads /etc/passwd lines `name:x:uid:gid:...`. */
export function parsePasswd(text: string): Account[] {
  const out: Account[] = [];
  for (const line of text.split("\n")) {
    const f = line.split(":");
    if (f.length < 4 || !f[0]) continue;
    const uid = Number(f[2]);
    const gid = Number(f[3]);
    if (Number.isInteger(uid) && Number.isInteger(gid)) out.push({ name: f[0], uid, gid });
  }
  return out;
}

/** parseGroup reads /etc/group lines `name:x:gid:member,member`. */
export function parseGroup(text: string): GroupEntry[] {
  const out: GroupEntry[] = [];
  for (const line of text.split("\n")) {
    const f = line.split(":");
    if (f.length < 3 || !f[0]) continue;
    const gid = Number(f[2]);
    if (!Number.isInteger(gid)) continue;
    const members = (f[3] ?? "")
      .split(",")
      .map((s) => s.trim())
      .filter(Boolean);
    out.push({ name: f[0], gid, members });
  }
  return out;
}

/**
 * QEMU_DEFAULT_USER / QEMU_DEFAULT_GROUP are the identity Debian's libvirt runs QEMU as when qemu.conf
 * sets none (the commented `#user`/`#group` lines of Debian's qemu.conf show the same).
 */
export const QEMU_DEFAULT_USER = "libvirt-qemu";
export const QEMU_DEFAULT_GROUP = "libvirt-qemu";

/** QemuConf is what doctor reads from qemu.conf. */
export interface QemuConf {
  user?: string;
  group?: string;
}

/** parseQemuConf reads the uncommented `user = "..."` and `group = "..."` settings of qemu.conf. */
export function parseQemuConf(text: string): QemuConf {
  const out: QemuConf = {};
  for (const raw of text.split("\n")) {
    const line = raw.replace(/#.*$/, "").trim();
    const m = /^(user|group)\s*=\s*"([^"]*)"\s*$/.exec(line);
    if (m?.[1] === "user") out.user = m[2];
    else if (m?.[1] === "group") out.group = m[2];
  }
  return out;
}

/** Identity is a uid with its group set, as a process running under it has. */
export interface Identity {
  user: string;
  uid: number;
  gid: number;
  /** groups: the primary gid and every supplementary group. */
  groups: number[];
}

/**
 * qemuIdentity resolves the identity QEMU runs as. libvirt sets the configured gid plus the user's group
 * list (its /etc/passwd primary group and every /etc/group entry naming it), so all of those count.
 * `+N` means the numeric id N; a bare number is a name first, then an id, as qemu.conf documents.
 */
export function qemuIdentity(
  conf: QemuConf,
  passwd: readonly Account[],
  groups: readonly GroupEntry[],
): Identity | { error: string } {
  const userText = conf.user ?? QEMU_DEFAULT_USER;
  const groupText = conf.group ?? QEMU_DEFAULT_GROUP;
  const acct = lookup(userText, passwd, (a) => a.uid);
  if (!acct) return { error: `QEMU user ${userText} (qemu.conf) is not in /etc/passwd` };
  const grp = lookup(groupText, groups, (g) => g.gid);
  const gid = grp?.gid ?? (/^\+?\d+$/.test(groupText) ? Number(groupText.replace("+", "")) : undefined);
  if (gid === undefined) return { error: `QEMU group ${groupText} (qemu.conf) is not in /etc/group` };
  const set = new Set<number>([gid, acct.gid]);
  for (const g of groups) if (g.members.includes(acct.name)) set.add(g.gid);
  return { user: acct.name, uid: acct.uid, gid, groups: [...set] };
}

function lookup<T extends { name: string }>(
  text: string,
  table: readonly T[],
  id: (t: T) => number,
): T | undefined {
  if (text.startsWith("+")) return table.find((t) => id(t) === Number(text.slice(1)));
  return table.find((t) => t.name === text) ?? table.find((t) => String(id(t)) === text);
}

/** Access is the kind of access asked for. */
export interface Access {
  read?: boolean;
  write?: boolean;
  exec?: boolean;
}

/**
 * canAccess applies the kernel's permission rule: root may read and write anything (and execute when any x
 * bit is set); otherwise the owner class applies if the uid owns the file, else the group class if one of
 * its groups is the file's, else the other class. Only one class is ever consulted.
 */
export function canAccess(id: Pick<Identity, "uid" | "groups">, st: FileStat, want: Access): boolean {
  if (id.uid === 0) return !want.exec || st.kind === "dir" || (st.mode & 0o111) !== 0;
  const shift = st.uid === id.uid ? 6 : id.groups.includes(st.gid) ? 3 : 0;
  const bits = (st.mode >> shift) & 0o7;
  return (
    (!want.read || (bits & 4) !== 0) && (!want.write || (bits & 2) !== 0) && (!want.exec || (bits & 1) !== 0)
  );
}

/** describeStat renders owner, group and mode the way `ls -l` does (`crw------- root root`). */
export function describeStat(
  st: FileStat,
  passwd: readonly Account[],
  groups: readonly GroupEntry[],
): string {
  const type = st.kind === "dir" ? "d" : st.kind === "char" ? "c" : "-";
  let perms = "";
  for (const shift of [6, 3, 0]) {
    const b = (st.mode >> shift) & 7;
    perms += (b & 4 ? "r" : "-") + (b & 2 ? "w" : "-") + (b & 1 ? "x" : "-");
  }
  const owner = passwd.find((a) => a.uid === st.uid)?.name ?? String(st.uid);
  const group = groups.find((g) => g.gid === st.gid)?.name ?? String(st.gid);
  return `${type}${perms} ${owner}:${group} (mode ${(st.mode & 0o7777).toString(8).padStart(4, "0")})`;
}

/** PathVerdict says whether an identity can reach and read a path, and if not, where it stops. */
export type PathVerdict =
  | { ok: true; stat: FileStat }
  | { ok: false; reason: "missing"; path: string }
  | { ok: false; reason: "no-search"; path: string; stat: FileStat }
  | { ok: false; reason: "no-read"; path: string; stat: FileStat };

/**
 * checkPath walks `path` from `/`: every parent directory needs search (x) permission for `id`, the path
 * itself read permission (and search too when it is a directory). `root` prefixes each looked-up path, so
 * another process's view can be read through /proc/PID/root.
 */
export async function checkPath(
  fs: HostFs,
  id: Pick<Identity, "uid" | "groups">,
  path: string,
  root = "",
): Promise<PathVerdict> {
  const parts = path.split("/").filter(Boolean);
  let cur = "";
  for (let i = 0; i < parts.length; i++) {
    const parent = cur || "/";
    const pst = await fs.stat(root + parent);
    if (pst && !canAccess(id, pst, { exec: true }))
      return { ok: false, reason: "no-search", path: parent, stat: pst };
    cur += `/${parts[i]}`;
  }
  const st = await fs.stat(root + (cur || "/"));
  if (!st) return { ok: false, reason: "missing", path };
  const want: Access = st.kind === "dir" ? { read: true, exec: true } : { read: true };
  if (!canAccess(id, st, want)) return { ok: false, reason: "no-read", path, stat: st };
  return { ok: true, stat: st };
}

/** MountEntry is one line of /proc/mounts. */
export interface MountEntry {
  source: string;
  target: string;
  fstype: string;
}

/** parseMounts reads /proc/mounts (octal escapes such as `\040` decoded). */
export function parseMounts(text: string): MountEntry[] {
  const unescape = (s: string) =>
    s.replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(parseInt(o, 8)));
  return text
    .split("\n")
    .map((l) => l.trim().split(/\s+/))
    .filter((f) => f.length >= 3)
    .map((f) => ({ source: unescape(f[0]!), target: unescape(f[1]!), fstype: f[2]! }));
}

/**
 * cgroup2Quirk tells whether libvirt's LXC driver will fail with "Unable to create directory
 * /sys/fs/cgroup/unified": it takes the LAST cgroup2 mount of /proc/mounts as the hierarchy and, when that
 * lies under /sys, tries to recreate it inside the container's own fresh sysfs.
 */
export function cgroup2Quirk(mounts: readonly MountEntry[]): {
  cgroup2: boolean;
  last?: string;
  quirk: boolean;
} {
  const cg2 = mounts.filter((m) => m.fstype === "cgroup2");
  const last = cg2[cg2.length - 1]?.target;
  if (last === undefined) return { cgroup2: false, quirk: false };
  return { cgroup2: true, last, quirk: last === "/sys" || last.startsWith("/sys/") };
}

/**
 * isQemuProbe recognises libvirt's capability probe from a /proc/PID/cmdline argument list:
 * `qemu-system-ARCH -S ... -machine none,...` (a QEMU with no machine, paused, asked only for its features).
 */
export function isQemuProbe(argv: readonly string[]): boolean {
  const exe = argv[0]?.split("/").pop() ?? "";
  if (!exe.startsWith("qemu-system-") && !exe.startsWith("qemu-kvm")) return false;
  if (!argv.includes("-S")) return false;
  const i = argv.findIndex((a) => a === "-machine" || a === "-M");
  const m = i >= 0 ? argv[i + 1] : undefined;
  return m !== undefined && (m === "none" || m.startsWith("none,"));
}

/** parseCmdline splits /proc/PID/cmdline at its NUL bytes. */
export function parseCmdline(text: string): string[] {
  return text.split("\0").filter((s, i, a) => s.length > 0 || i < a.length - 1);
}

/** compareVersions compares dotted versions numerically (`4.10` > `4.4`); missing parts count as 0. */
export function compareVersions(a: string, b: string): number {
  const pa = a.split(/[.-]/).map((s) => parseInt(s, 10));
  const pb = b.split(/[.-]/).map((s) => parseInt(s, 10));
  for (let i = 0; i < Math.max(pa.length, pb.length); i++) {
    const x = Number.isNaN(pa[i] ?? 0) ? 0 : (pa[i] ?? 0);
    const y = Number.isNaN(pb[i] ?? 0) ? 0 : (pb[i] ?? 0);
    if (x !== y) return x < y ? -1 : 1;
  }
  return 0;
}
