/**
 * Domain lifecycle on one libvirt host, through the virsh seam: disk preparation, define (upsert by stable
 * uuid), start/adopt/resume with rollback of what this attempt created, leave policies, removal, listing.
 */
import { randomBytes } from "node:crypto";
import { constants as fsc } from "node:fs";
import {
  access,
  chmod,
  chown,
  copyFile,
  mkdtemp,
  readdir,
  rename,
  rm,
  stat,
  writeFile,
} from "node:fs/promises";
import { hostname, tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { execa } from "execa";
import { RfbootError, VirshError } from "../../common/errors.js";
import { silentLogger, type Logger } from "../../common/log.js";
import { processAlive } from "../../common/proc.js";
import {
  isAlreadyRunning,
  isDomainMissing,
  isNotRunning,
  lastErrorLine,
  type VirshRunner,
  type VirshRunOptions,
} from "./virsh.js";

/** DomainState is libvirt's virDomainState, by name. */
export type DomainState =
  "nostate" | "running" | "blocked" | "paused" | "shutdown" | "shutoff" | "crashed" | "pmsuspended";

/** DOMAIN_STATE_CODES maps virDomainState numbers (libvirt-domain.h) to names; `domstats` prints the numbers. */
export const DOMAIN_STATE_CODES: Readonly<Record<number, DomainState>> = Object.freeze({
  0: "nostate",
  1: "running",
  2: "blocked",
  3: "paused",
  4: "shutdown",
  5: "shutoff",
  6: "crashed",
  7: "pmsuspended",
});

/** DOMAIN_STATE_TEXTS maps `virsh domstate` words (virshDomainStateToString, C locale) to names. */
export const DOMAIN_STATE_TEXTS: Readonly<Record<string, DomainState>> = Object.freeze({
  "no state": "nostate",
  running: "running",
  idle: "blocked",
  paused: "paused",
  "in shutdown": "shutdown",
  "shut off": "shutoff",
  crashed: "crashed",
  pmsuspended: "pmsuspended",
});

/** isActive: states in which the domain has a live process (libvirt's "active"). */
export function isActive(s: DomainState): boolean {
  return s === "running" || s === "blocked" || s === "paused" || s === "shutdown" || s === "pmsuspended";
}

/** DiskPlan says how a VM's disk is prepared: a qcow2 overlay on a base, a full copy, or nothing. */
export type DiskPlan =
  | { kind: "none" }
  | {
      kind: "overlay" | "copy";
      /** base is the image the overlay points at (or that is copied); never modified or deleted. */
      base: string;
      /** format is the base image's format (`-F` of qemu-img), e.g. qcow2 or raw. */
      format: string;
      /** path is the VM's own disk; it holds the VM's state and is never overwritten once it exists. */
      path: string;
      /** mode of a created file (default 0o640); owner optional (e.g. libvirt-qemu:kvm). */
      mode?: number;
      owner?: { uid: number; gid: number };
    };

/**
 * diskPlanFrom adapts the config's per-host disk plan (`{kind, base, baseFormat, path}`) to the lifecycle's:
 * `format` here is the base's format (qemu-img's `-F`). Kind none uses the base in place: nothing to prepare.
 */
export function diskPlanFrom(p: {
  readonly kind: "overlay" | "copy" | "none";
  readonly base: string;
  readonly baseFormat: string;
  readonly path: string;
}): DiskPlan {
  if (p.kind === "none") return { kind: "none" };
  return { kind: p.kind, base: p.base, format: p.baseFormat, path: p.path };
}

/** PART_SUFFIX ends the temporary name a disk is built under before its atomic rename to the final path. */
export const PART_SUFFIX = ".rfboot-part";

/**
 * partFileName names a disk under construction `.<hostname>.<pid>.<random>.rfboot-part`: the machine and
 * process that build it are in the name, so a later sweep can tell a crashed builder's leftover from a file
 * another live rfboot is still writing (a shared storage directory).
 */
export function partFileName(host = hostname(), pid = process.pid): string {
  const safeHost = host.replace(/[^A-Za-z0-9_-]/g, "_");
  return `.${safeHost}.${pid}.${randomBytes(6).toString("hex")}${PART_SUFFIX}`;
}

/**
 * sweepPartFiles removes the half-built disks (`*.rfboot-part`) that a killed rfboot left in `dir`: those
 * made on this machine by a process that no longer runs, and those of the old unqualified naming
 * (`.<random>.rfboot-part`). Files of another machine, or of a live process, are left alone. Returns the
 * paths removed. A missing directory is not an error.
 */
export async function sweepPartFiles(dir: string, host = hostname()): Promise<string[]> {
  let names: string[];
  try {
    names = await readdir(dir);
  } catch {
    return [];
  }
  const safeHost = host.replace(/[^A-Za-z0-9_-]/g, "_");
  const removed: string[] = [];
  for (const n of names) {
    if (!n.startsWith(".") || !n.endsWith(PART_SUFFIX)) continue;
    const m = /^\.(.+)\.(\d+)\.[0-9a-f]{12}\.rfboot-part$/.exec(n);
    const stale = m
      ? m[1] === safeHost && Number(m[2]) !== process.pid && !processAlive(Number(m[2]))
      : /^\.[0-9a-f]{12}\.rfboot-part$/.test(n);
    if (!stale) continue;
    await rm(join(dir, n), { force: true });
    removed.push(join(dir, n));
  }
  return removed;
}

/** HostRef names the libvirt host a manager acts on. */
export interface HostRef {
  name: string;
  uri: string;
}

/** EnsureSpec is what `ensureRunning` needs: name, stable uuid, domain XML, disk plan. */
export interface EnsureSpec {
  name: string;
  /** uuid is the stable uuid inside `xml` (for logs; define's upsert relies on the XML's own uuid). */
  uuid?: string;
  xml: string;
  disk?: DiskPlan;
  /** redefine (default true) upserts the XML even for an existing domain, so config changes apply at next start. */
  redefine?: boolean;
  /**
   * onStarting is called once, before the disk is prepared, when this attempt will define and start, start or
   * resume the domain; never when it finds the domain already running (an adopted VM never "starts").
   */
  onStarting?: () => void;
  /** onDefined is called right after `virsh define` succeeded, with the wall-clock moment it completed. */
  onDefined?: (at: Date) => void;
}

/** EnsureAction tells what ensureRunning had to do. */
export type EnsureAction = "adopted" | "started" | "resumed" | "defined+started";

/** EnsureTimings are milliseconds spent per step (absent when the step did not run). */
export interface EnsureTimings {
  totalMs: number;
  stateMs?: number;
  diskMs?: number;
  defineMs?: number;
  startMs?: number;
}

/** EnsureResult reports the outcome of ensureRunning. */
export interface EnsureResult {
  action: EnsureAction;
  host: string;
  /** restored is true when start brought back a managed-save image instead of booting. */
  restored: boolean;
  /** createdDisk is true when this attempt created the overlay/copy. */
  createdDisk: boolean;
  timings: EnsureTimings;
  /** definedAt is the wall-clock moment this attempt's `virsh define` completed (absent: no define). */
  definedAt?: Date;
  /** startedAt is the wall-clock moment this attempt's `virsh start`/`resume` completed (absent: adopted). */
  startedAt?: Date;
}

/** LeaveAction is the leave policy applied to a VM whose switch left. */
export type LeaveAction = "keep" | "shutdown" | "destroy" | "suspend";

/** LeaveOutcome tells what leave did. */
export type LeaveOutcome = "kept" | "shutdown" | "destroyed" | "saved" | "not-running" | "missing";

/** DomainInfo is one row of `list()`. */
export interface DomainInfo {
  name: string;
  uuid: string;
  state: DomainState;
  /** reason is libvirt's numeric state reason (e.g. shut off 5 = saved). */
  reason: number;
  managedSave: boolean;
  cpuTimeNs?: bigint;
  memoryKiB?: number;
  rssKiB?: number;
  vcpus?: number;
}

/** ToolRunner runs a non-virsh tool (qemu-img); a seam so tests can assert the exact arguments. */
export type ToolRunner = (
  cmd: string,
  args: string[],
  opts?: { timeoutMs?: number },
) => Promise<{ stdout: string; stderr: string }>;

/** defaultToolRunner runs a tool with execa (argument array, C locale, timeout); failures become VirshError. */
export const defaultToolRunner: ToolRunner = async (cmd, args, opts = {}) => {
  const r = await execa(cmd, args, {
    env: { LC_ALL: "C" },
    timeout: opts.timeoutMs ?? 60_000,
    reject: false,
    stdin: "ignore",
  });
  if (r.failed) {
    const stderr = typeof r.stderr === "string" && r.stderr ? r.stderr : (r.shortMessage ?? "");
    throw new VirshError(
      `${cmd} ${args.join(" ")} failed: ${lastErrorLine(stderr)}; check the image paths and permissions`,
      r.timedOut ? "timeout" : "other",
      [cmd, ...args],
      stderr,
      r.exitCode,
    );
  }
  return { stdout: String(r.stdout), stderr: String(r.stderr) };
};

/** DomainManagerOptions configure a manager for one host. */
export interface DomainManagerOptions {
  host: HostRef;
  run: VirshRunner;
  tools?: ToolRunner;
  log?: Logger;
  /** timeoutMs per virsh call (default 30 s; start of a big domain can be slow). */
  timeoutMs?: number;
  /** shutdownTimeoutMs before `shutdown` falls back to `destroy` (default 30 s). */
  shutdownTimeoutMs?: number;
  /** pollMs between state checks while waiting for a shutdown (default 250 ms). */
  pollMs?: number;
  /** tmpDir holds transient XML files (default a private 0700 dir under the OS tmpdir). */
  tmpDir?: string;
}

async function exists(path: string): Promise<boolean> {
  try {
    await access(path, fsc.F_OK);
    return true;
  } catch {
    return false;
  }
}

/**
 * DomainManager performs lifecycle operations on the domains of one libvirt host. It never restarts a running
 * domain and undoes only what the failing attempt itself created.
 */
export class DomainManager {
  readonly host: HostRef;
  private readonly run: VirshRunner;
  private readonly tools: ToolRunner;
  private readonly log: Logger;
  private readonly timeoutMs: number;
  private readonly shutdownTimeoutMs: number;
  private readonly pollMs: number;
  private tmp: Promise<string> | undefined;

  constructor(private readonly options: DomainManagerOptions) {
    this.host = options.host;
    this.run = options.run;
    this.tools = options.tools ?? defaultToolRunner;
    this.log = options.log ?? silentLogger;
    this.timeoutMs = options.timeoutMs ?? 30_000;
    this.shutdownTimeoutMs = options.shutdownTimeoutMs ?? 30_000;
    this.pollMs = options.pollMs ?? 250;
  }

  /** virsh runs one command on this host with the manager's timeout. */
  virsh(args: string[], opts: VirshRunOptions = {}): Promise<{ stdout: string; stderr: string }> {
    return this.run(this.host.uri, args, { timeoutMs: this.timeoutMs, ...opts });
  }

  /** state returns the domain's state and reason (`domstate --reason`), or undefined when it is not defined. */
  async state(name: string): Promise<{ state: DomainState; reason: string } | undefined> {
    try {
      const { stdout } = await this.virsh(["domstate", name, "--reason"]);
      return parseDomstate(stdout);
    } catch (e) {
      if (isDomainMissing(e)) return undefined;
      throw e;
    }
  }

  /**
   * ensureRunning makes the domain run: adopt a running one, resume a paused one, start a shut-off (or
   * managed-saved) one, or prepare the disk, define and start a new one. On failure it rolls back what this
   * attempt created (the domain it defined, the disk it created) and rethrows.
   */
  async ensureRunning(spec: EnsureSpec): Promise<EnsureResult> {
    const t0 = performance.now();
    const timings: EnsureTimings = { totalMs: 0 };
    const lap = (k: Exclude<keyof EnsureTimings, "totalMs">, since: number) => {
      timings[k] = (timings[k] ?? 0) + (performance.now() - since);
    };
    let t = performance.now();
    const st = await this.state(spec.name);
    lap("stateMs", t);
    let createdDisk = false;
    let definedNew = false;
    let definedAt: Date | undefined;
    let startedAt: Date | undefined;
    const done = (action: EnsureAction, restored = false): EnsureResult => {
      timings.totalMs = performance.now() - t0;
      this.log.debug(
        { host: this.host.name, vm: spec.name, uuid: spec.uuid, action, timings },
        "domain ensured running",
      );
      return {
        action,
        host: this.host.name,
        restored,
        createdDisk,
        timings,
        ...(definedAt ? { definedAt } : {}),
        ...(startedAt ? { startedAt } : {}),
      };
    };
    try {
      // "paused" counts as active, but it is resumed: that is a start as far as the caller's record goes.
      if (!st || st.state === "paused" || !isActive(st.state)) this.notify(spec.onStarting, spec.name);
      t = performance.now();
      createdDisk = await this.prepareDisk(spec.disk);
      lap("diskMs", t);
      if (!st || spec.redefine !== false) {
        t = performance.now();
        await this.define(spec.name, spec.xml);
        definedNew = !st;
        lap("defineMs", t);
        const at = new Date();
        definedAt = at;
        const onDefined = spec.onDefined;
        if (onDefined) this.notify(() => onDefined(at), spec.name);
      }
      if (st && st.state === "paused") {
        t = performance.now();
        await this.virsh(["resume", spec.name]);
        lap("startMs", t);
        startedAt = new Date();
        return done("resumed");
      }
      if (st && isActive(st.state)) return done("adopted");
      const restored = st?.reason === "saved" || (st ? await this.hasManagedSave(spec.name) : false);
      t = performance.now();
      try {
        await this.virsh(["start", spec.name]);
      } catch (e) {
        // Someone else (another attempt, an operator) started it in between: that is success, adopt it.
        if (isAlreadyRunning(e)) return done("adopted");
        throw e;
      }
      lap("startMs", t);
      startedAt = new Date();
      return done(definedNew ? "defined+started" : "started", restored);
    } catch (err) {
      await this.rollback(spec, definedNew, createdDisk, err);
      throw err;
    }
  }

  /** notify runs a caller's progress callback; its failure is logged, never the attempt's failure. */
  private notify(cb: (() => void) | undefined, vm: string): void {
    if (!cb) return;
    try {
      cb();
    } catch (e) {
      this.log.warn({ host: this.host.name, vm, err: e }, "ensureRunning progress callback failed");
    }
  }

  private async rollback(
    spec: EnsureSpec,
    definedNew: boolean,
    createdDisk: boolean,
    err: unknown,
  ): Promise<void> {
    const undo: string[] = [];
    if (definedNew) {
      try {
        await this.virsh(["destroy", spec.name]).catch((e: unknown) => {
          if (!isNotRunning(e) && !isDomainMissing(e)) throw e;
        });
        await this.virsh(["undefine", spec.name, "--managed-save"]);
        undo.push("undefined");
      } catch (e) {
        if (!isDomainMissing(e)) this.log.warn({ vm: spec.name, err: e }, "rollback: undefine failed");
      }
    }
    if (createdDisk && spec.disk && spec.disk.kind !== "none") {
      await rm(spec.disk.path, { force: true });
      undo.push("disk removed");
    }
    this.log.warn({ host: this.host.name, vm: spec.name, undo, err }, "ensureRunning failed; rolled back");
  }

  private async hasManagedSave(name: string): Promise<boolean> {
    try {
      const { stdout } = await this.virsh(["dominfo", name]);
      return parseDominfo(stdout)["Managed save"] === "yes";
    } catch {
      return false;
    }
  }

  /**
   * prepareDisk creates the VM's overlay (`qemu-img create -f qcow2 -b BASE -F FMT PATH`) or copy when it does
   * not exist yet; an existing file is the VM's state and is kept. Returns true when it created the file.
   */
  async prepareDisk(disk: DiskPlan | undefined): Promise<boolean> {
    if (!disk || disk.kind === "none") return false;
    if (await exists(disk.path)) return false;
    if (!(await exists(disk.base))) {
      throw new RfbootError(
        `base image ${disk.base} for ${disk.path} does not exist; fix the VM's image path in the config`,
      );
    }
    // Build under a temporary name then rename: a crash never leaves a half-written disk at the final path.
    const part = join(dirname(disk.path), partFileName());
    try {
      if (disk.kind === "overlay") {
        await this.tools("qemu-img", [
          "create",
          "-q",
          "-f",
          "qcow2",
          "-b",
          disk.base,
          "-F",
          disk.format,
          part,
        ]);
      } else {
        await copyFile(disk.base, part, fsc.COPYFILE_FICLONE);
      }
      await chmod(part, disk.mode ?? 0o640);
      if (disk.owner) await chown(part, disk.owner.uid, disk.owner.gid);
      // link-free "create if absent": if another attempt won the race, keep its file and drop ours.
      if (await exists(disk.path)) {
        await rm(part, { force: true });
        return false;
      }
      await rename(part, disk.path);
      return true;
    } catch (e) {
      await rm(part, { force: true });
      throw e;
    }
  }

  /** define upserts the domain from XML written to a private temp file (0600); the stable uuid makes it an upsert. */
  async define(name: string, xml: string): Promise<void> {
    const dir = await this.tmpDir();
    const file = join(dir, `${name.replace(/[^A-Za-z0-9_.-]/g, "_")}-${randomBytes(4).toString("hex")}.xml`);
    await writeFile(file, xml, { mode: 0o600 });
    try {
      await this.virsh(["define", file]);
    } finally {
      await rm(file, { force: true });
    }
  }

  private tmpDir(): Promise<string> {
    if (this.options.tmpDir) return Promise.resolve(this.options.tmpDir);
    this.tmp ??= mkdtemp(join(tmpdir(), "rfboot-xml-"));
    return this.tmp;
  }

  /**
   * leave applies a leave policy: keep; shutdown (ACPI, then destroy after the timeout); destroy; suspend =
   * `managedsave` (the next start restores the saved image instead of booting).
   */
  async leave(name: string, action: LeaveAction): Promise<LeaveOutcome> {
    if (action === "keep") return "kept";
    const st = await this.state(name);
    if (!st) return "missing";
    if (!isActive(st.state)) return "not-running";
    try {
      switch (action) {
        case "destroy":
          await this.virsh(["destroy", name]);
          return "destroyed";
        case "suspend":
          await this.virsh(["managedsave", name], { timeoutMs: Math.max(this.timeoutMs, 120_000) });
          return "saved";
        case "shutdown":
          return await this.shutdown(name);
      }
    } catch (e) {
      if (isNotRunning(e)) return "not-running";
      if (isDomainMissing(e)) return "missing";
      throw e;
    }
  }

  private async shutdown(name: string): Promise<LeaveOutcome> {
    await this.virsh(["shutdown", name]);
    const deadline = performance.now() + this.shutdownTimeoutMs;
    while (performance.now() < deadline) {
      const st = await this.state(name);
      if (!st) return "missing";
      if (!isActive(st.state)) return "shutdown";
      await new Promise((r) => setTimeout(r, this.pollMs));
    }
    this.log.info({ host: this.host.name, vm: name }, "shutdown timed out; destroying");
    try {
      await this.virsh(["destroy", name]);
    } catch (e) {
      if (isNotRunning(e)) return "shutdown";
      throw e;
    }
    return "destroyed";
  }

  /**
   * remove destroys and undefines the domain (with its managed-save image) and deletes its rfboot-made disk
   * (`disk.path` of an overlay or copy; never the base). Returns false when there was no such domain.
   */
  async remove(name: string, disk?: DiskPlan): Promise<boolean> {
    let found = true;
    try {
      await this.virsh(["destroy", name]);
    } catch (e) {
      if (isDomainMissing(e)) found = false;
      else if (!isNotRunning(e)) throw e;
    }
    if (found) {
      try {
        await this.virsh(["undefine", name, "--managed-save"]);
      } catch (e) {
        if (!isDomainMissing(e)) throw e;
        found = false;
      }
    }
    if (disk && disk.kind !== "none") await rm(disk.path, { force: true });
    return found;
  }

  /**
   * list returns every domain of the host with state, managed-save flag and (with `stats`) CPU and memory
   * figures, in three virsh calls: `list --all --uuid --name`, `domstats`, `list --all --name --with-managed-save`.
   */
  async list(options: { stats?: boolean } = {}): Promise<DomainInfo[]> {
    const ids = await this.virsh(["list", "--all", "--uuid", "--name"]);
    const statArgs = options.stats
      ? ["domstats", "--state", "--cpu-total", "--balloon", "--vcpu"]
      : ["domstats", "--state"];
    const [stats, saved] = await Promise.all([
      this.virsh(statArgs),
      this.virsh(["list", "--all", "--name", "--with-managed-save"]),
    ]);
    const byName = parseDomstats(stats.stdout);
    const savedSet = new Set(parseNameList(saved.stdout));
    return parseUuidNameList(ids.stdout).map(({ uuid, name }) => {
      const s = byName.get(name);
      const info: DomainInfo = {
        name,
        uuid,
        state: DOMAIN_STATE_CODES[Number(s?.["state.state"] ?? 0)] ?? "nostate",
        reason: Number(s?.["state.reason"] ?? 0),
        managedSave: savedSet.has(name),
      };
      if (s?.["cpu.time"] !== undefined) info.cpuTimeNs = BigInt(s["cpu.time"]);
      if (s?.["balloon.current"] !== undefined) info.memoryKiB = Number(s["balloon.current"]);
      if (s?.["balloon.rss"] !== undefined) info.rssKiB = Number(s["balloon.rss"]);
      if (s?.["vcpu.current"] !== undefined) info.vcpus = Number(s["vcpu.current"]);
      return info;
    });
  }

  /** dominfo returns `virsh dominfo NAME` as key/value pairs, or undefined when the domain is missing. */
  async dominfo(name: string): Promise<Record<string, string> | undefined> {
    try {
      return parseDominfo((await this.virsh(["dominfo", name])).stdout);
    } catch (e) {
      if (isDomainMissing(e)) return undefined;
      throw e;
    }
  }

  /** ping checks that the host answers (`virsh version`-free: `uri` is the cheapest round trip). */
  async ping(): Promise<void> {
    await this.virsh(["uri"]);
  }

  /** dispose removes the manager's private temp dir. */
  async dispose(): Promise<void> {
    if (this.tmp) await rm(await this.tmp, { recursive: true, force: true });
    this.tmp = undefined;
  }
}

/** parseDomstate parses `virsh domstate --reason` output such as `shut off (saved)`. */
export function parseDomstate(stdout: string): { state: DomainState; reason: string } {
  const line = stdout.trim().split("\n")[0]?.trim() ?? "";
  const m = /^(.*?)\s*(?:\(([^)]*)\))?$/.exec(line);
  const word = (m?.[1] ?? line).trim();
  // Own keys only: `toString` or `constructor` from a garbled output must not find Object.prototype members.
  const state = Object.hasOwn(DOMAIN_STATE_TEXTS, word) ? DOMAIN_STATE_TEXTS[word] : undefined;
  if (!state) throw new RfbootError(`unexpected virsh domstate output ${JSON.stringify(line.slice(0, 80))}`);
  return { state, reason: (m?.[2] ?? "").trim() };
}

/** parseDominfo parses `Key:   value` lines of `virsh dominfo`. */
export function parseDominfo(stdout: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const line of stdout.split("\n")) {
    const i = line.indexOf(":");
    if (i <= 0) continue;
    out[line.slice(0, i).trim()] = line.slice(i + 1).trim();
  }
  return out;
}

/** parseDomstats parses `virsh domstats` output into name -> {key: value}. */
export function parseDomstats(stdout: string): Map<string, Record<string, string>> {
  const out = new Map<string, Record<string, string>>();
  let cur: Record<string, string> | undefined;
  for (const line of stdout.split("\n")) {
    const m = /^Domain: '(.*)'\s*$/.exec(line);
    if (m) {
      cur = {};
      out.set(m[1] as string, cur);
      continue;
    }
    const kv = /^\s+([^=\s]+)=(.*)$/.exec(line);
    if (kv && cur) cur[kv[1] as string] = (kv[2] as string).trim();
  }
  return out;
}

/** parseUuidNameList parses `virsh list --all --uuid --name` lines (`UUID NAME`). */
export function parseUuidNameList(stdout: string): { uuid: string; name: string }[] {
  const out: { uuid: string; name: string }[] = [];
  for (const line of stdout.split("\n")) {
    const m = /^([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})\s+(.+?)\s*$/i.exec(
      line.trim(),
    );
    if (m) out.push({ uuid: (m[1] as string).toLowerCase(), name: m[2] as string });
  }
  return out;
}

/** parseNameList parses `virsh list --name` output (one name per line, blank lines ignored). */
export function parseNameList(stdout: string): string[] {
  return stdout
    .split("\n")
    .map((l) => l.trim())
    .filter((l) => l.length > 0);
}

/** fileMode returns a file's permission bits (for tests and diagnostics). */
export async function fileMode(path: string): Promise<number> {
  return (await stat(path)).mode & 0o777;
}
