/**
 * The open-files limit (RLIMIT_NOFILE): read it, raise the soft limit to the hard one, count what is open,
 * say how many switch sessions it allows, and report clearly when it is reached. Every switch connection is a
 * descriptor (two in relay mode: the switch and its upstream), so this limit, not memory, is what caps the
 * number of switches one rfboot serves.
 */
import { closeSync, openSync, readdirSync, readFileSync } from "node:fs";
import { execa } from "execa";
import { errorMessage } from "./errors.js";
import type { Logger } from "./log.js";

/** NofileLimits is the soft and hard open-files limit; `Infinity` stands for `unlimited`. */
export interface NofileLimits {
  soft: number;
  hard: number;
}

/**
 * NOFILE_RESERVE is how many descriptors rfboot keeps for everything but switch connections: stdio, the
 * MongoDB driver's pool, the virsh shells and event streams (three pipes each), consoles, the HTTP listener
 * and its clients, the files it writes.
 */
export const NOFILE_RESERVE = 128;

/** NOFILE_FIX says how to give rfboot more descriptors, for the log, doctor and the out-of-files error. */
export const NOFILE_FIX =
  "raise LimitNOFILE= in rfboot.service (systemctl edit rfboot), or `ulimit -Hn` before starting rfboot by hand";

/**
 * parseNofileLimits reads the `Max open files` line of a /proc/PID/limits text. `source` names the file in
 * the error thrown when the line is missing or malformed.
 */
export function parseNofileLimits(text: string, source = "/proc/self/limits"): NofileLimits {
  const line = text.split("\n").find((l) => l.startsWith("Max open files"));
  if (line === undefined) throw new Error(`${source}: no "Max open files" line`);
  const m = /^Max open files\s+(\S+)\s+(\S+)/.exec(line);
  const value = (v: string | undefined): number => {
    if (v === "unlimited") return Number.POSITIVE_INFINITY;
    const n = Number(v);
    if (v === undefined || !/^\d+$/.test(v) || !Number.isSafeInteger(n))
      throw new Error(`${source}: "Max open files" line has no soft and hard limit: ${JSON.stringify(line)}`);
    return n;
  };
  return { soft: value(m?.[1]), hard: value(m?.[2]) };
}

/** readNofileLimits reads this process's open-files limits (or another process's, by pid). */
export function readNofileLimits(pid: number | "self" = "self"): NofileLimits {
  const file = `/proc/${pid}/limits`;
  return parseNofileLimits(readFileSync(file, "utf8"), file);
}

/**
 * countOpenFiles counts this process's open descriptors (/proc/self/fd, less the one the listing itself
 * holds). undefined when it cannot be listed: without /proc, or when no descriptor is left to list it with.
 */
export function countOpenFiles(): number | undefined {
  try {
    return Math.max(0, readdirSync("/proc/self/fd").length - 1);
  } catch {
    return undefined;
  }
}

/** SessionCapacity is how many switches a descriptor limit allows, by OpenFlow mode. */
export interface SessionCapacity {
  /** listen: one descriptor per switch. */
  listen: number;
  /** relay: two per switch (the switch's connection and its upstream one). */
  relay: number;
}

/** sessionCapacity is how many switch sessions `limit` descriptors allow once NOFILE_RESERVE is set aside. */
export function sessionCapacity(limit: number): SessionCapacity {
  const free = Number.isFinite(limit) ? Math.max(0, limit - NOFILE_RESERVE) : Number.MAX_SAFE_INTEGER;
  return { listen: free, relay: Math.floor(free / 2) };
}

/** PrlimitRun runs `prlimit` with an argument array and rejects when it fails; tests pass their own. */
export type PrlimitRun = (args: readonly string[]) => Promise<unknown>;

/** NofileRaise is what raiseNofile did: the limits now in force and, when it tried, what happened. */
export interface NofileRaise extends NofileLimits {
  /** before is the soft limit found. */
  before: number;
  /** raised: the soft limit is now higher than it was. */
  raised: boolean;
  /** error says why the raise failed (the limit `soft` stays in force); absent when it worked or was not needed. */
  error?: string;
}

const prlimit: PrlimitRun = (args) => execa("prlimit", [...args], { timeout: 10_000, stdin: "ignore" });

/**
 * raiseNofile raises this process's soft open-files limit to its hard limit. Node has no setrlimit, so it
 * asks util-linux's `prlimit --pid <own pid>` and reads the result back. It never throws: a failure is
 * returned with the limit that stays. (Node itself raises the soft limit at start-up on Linux, so this is
 * often a no-op; it is what guarantees the raise whatever started the process, and it is the same check.)
 */
export async function raiseNofile(
  opts: { run?: PrlimitRun; read?: () => NofileLimits; pid?: number } = {},
): Promise<NofileRaise> {
  const read = opts.read ?? (() => readNofileLimits());
  let found: NofileLimits;
  try {
    found = read();
  } catch (e) {
    return { soft: 0, hard: 0, before: 0, raised: false, error: errorMessage(e) };
  }
  if (found.soft >= found.hard) return { ...found, before: found.soft, raised: false };
  // The kernel refuses `unlimited` for RLIMIT_NOFILE (it caps it at fs.nr_open): ask for that cap instead.
  const target = Number.isFinite(found.hard) ? String(found.hard) : nrOpen();
  let error: string | undefined;
  try {
    await (opts.run ?? prlimit)(["--pid", String(opts.pid ?? process.pid), `--nofile=${target}:${target}`]);
  } catch (e) {
    error = `prlimit failed: ${errorMessage(e)}`;
  }
  let now: NofileLimits = found;
  try {
    now = read();
  } catch (e) {
    error ??= errorMessage(e);
  }
  if (error === undefined && now.soft < found.hard && Number.isFinite(found.hard))
    error = `prlimit ran but the soft limit is still ${now.soft}`;
  return { ...now, before: found.soft, raised: now.soft > found.soft, ...(error ? { error } : {}) };
}

function nrOpen(): string {
  try {
    return readFileSync("/proc/sys/fs/nr_open", "utf8").trim();
  } catch {
    return "1048576";
  }
}

/**
 * logNofile writes the one start-up line about the limit (`open files: soft N (raised from M), hard H`) with
 * the switch sessions it allows in `mode`. A failed raise is a warning naming why and the limit that stays;
 * so is a limit that allows fewer sessions than `maxConnections`, the most the listener would accept.
 */
export function logNofile(
  log: Logger,
  r: NofileRaise,
  opts: { mode: "listen" | "relay"; maxConnections: number },
): void {
  const sessions = sessionCapacity(r.soft)[opts.mode];
  const fields = {
    soft: r.soft,
    hard: r.hard,
    mode: opts.mode,
    sessions,
    maxConnections: opts.maxConnections,
  };
  const msg = `open files: soft ${r.soft}${r.raised ? ` (raised from ${r.before})` : ""}, hard ${r.hard}`;
  if (r.error) log.warn({ ...fields, err: r.error }, `${msg}; raising the soft limit failed, it stays`);
  else log.info(fields, msg);
  if (sessions < opts.maxConnections)
    log.warn(
      fields,
      `open files allow ${sessions} switch sessions in ${opts.mode} mode, fewer than ` +
        `openflow.maxConnections ${opts.maxConnections}; ${NOFILE_FIX}`,
    );
}

/** isOutOfFiles says whether an error is running out of descriptors: EMFILE (this process) or ENFILE (system). */
export function isOutOfFiles(err: unknown): boolean {
  const code = (err as { code?: unknown } | null | undefined)?.code;
  return code === "EMFILE" || code === "ENFILE";
}

/** OutOfFilesWhere names what could not get a descriptor. */
export type OutOfFilesWhere = "accept" | "upstream" | "spawn";

const CONSEQUENCE: Readonly<Record<OutOfFilesWhere, string>> = Object.freeze({
  accept: "switches beyond this are not accepted",
  upstream: "relayed switches get no upstream connection",
  spawn: "virsh cannot be started",
});

/**
 * outOfFilesMessage is the error line for a limit reached: how many are open of how many, which limit,
 * what does not happen because of it, and the fix.
 */
export function outOfFilesMessage(
  where: OutOfFilesWhere,
  open: number,
  limit: number,
  code: "EMFILE" | "ENFILE",
): string {
  if (code === "ENFILE")
    return (
      `out of open files system-wide (ENFILE, fs.file-max); ${CONSEQUENCE[where]}; rfboot holds ${open} ` +
      `of its ${limit}; raise fs.file-max (sysctl) or close other processes' files`
    );
  return `out of open files: ${open} of ${limit} in use (RLIMIT_NOFILE); ${CONSEQUENCE[where]}; ${NOFILE_FIX}`;
}

/** How often (ms) the out-of-files error is logged while it lasts; the lines between are counted. */
const OUT_OF_FILES_LOG_INTERVAL_MS = 5_000;

/**
 * OutOfFiles records descriptor exhaustion. There is one per process (`outOfFiles`), because the limit is
 * the process's: the controller, the relay and the virsh seam report to it, the error is logged at most
 * every 5 s with the count since the last line, and the metrics read its counts.
 */
export class OutOfFiles {
  private readonly byWhere = new Map<OutOfFilesWhere, number>();
  private lastLogAt = Number.NEGATIVE_INFINITY;
  private sinceLastLine = 0;
  private log: Logger | undefined;
  private lastLimit = 0;

  constructor(
    private readonly now: () => number = Date.now,
    private readonly limits: () => NofileLimits = () => readNofileLimits(),
    private readonly open: () => number | undefined = countOpenFiles,
  ) {}

  /** useLogger sets the logger of reports that come without one (the process seam has none). */
  useLogger(log: Logger | undefined): void {
    this.log = log;
    this.limit();
  }

  /**
   * limit reads the soft limit and keeps it: once the limit is reached no descriptor is left to read
   * /proc/self/limits with, so a report then names the last one read (0 if none ever was). Listeners call it
   * when they start.
   */
  limit(): number {
    try {
      this.lastLimit = this.limits().soft;
    } catch {
      // out of descriptors, or no /proc: the last one read stands
    }
    return this.lastLimit;
  }

  /** report counts one exhaustion at `where` and logs the error unless it was logged in the last 5 s. */
  report(where: OutOfFilesWhere, err?: unknown, log?: Logger): void {
    this.byWhere.set(where, (this.byWhere.get(where) ?? 0) + 1);
    const t = this.now();
    if (t - this.lastLogAt < OUT_OF_FILES_LOG_INTERVAL_MS) {
      this.sinceLastLine++;
      return;
    }
    const limit = this.limit();
    // At the limit there is no descriptor to list /proc/self/fd with: then every one is in use.
    const open = this.open() ?? limit;
    const code = (err as { code?: unknown } | undefined)?.code === "ENFILE" ? "ENFILE" : "EMFILE";
    (log ?? this.log)?.error(
      {
        where,
        code,
        open,
        limit,
        ...(this.sinceLastLine > 0 ? { sinceLastLine: this.sinceLastLine } : {}),
      },
      outOfFilesMessage(where, open, limit, code),
    );
    this.lastLogAt = t;
    this.sinceLastLine = 0;
  }

  /** counts is how many exhaustions were reported, by where. */
  counts(): ReadonlyMap<OutOfFilesWhere, number> {
    return this.byWhere;
  }
}

/** outOfFiles is this process's OutOfFiles. */
export const outOfFiles = new OutOfFiles();

/**
 * descriptorLeft says whether this process can open `count` more files: it opens /dev/null that many times
 * and closes them again. When the accept loop runs out, libuv accepts and closes the waiting connections
 * itself (with a descriptor it keeps in reserve) and Node hears nothing, so this probe is how the listener
 * learns the limit is reached; a child process needs a few (its pipes) before it can be started at all.
 */
export function descriptorLeft(count = 1): { left: boolean; err?: unknown } {
  const fds: number[] = [];
  try {
    while (fds.length < count) fds.push(openSync("/dev/null", "r"));
    return { left: true };
  } catch (e) {
    return isOutOfFiles(e) ? { left: false, err: e } : { left: true };
  } finally {
    for (const fd of fds) closeSync(fd);
  }
}
