/**
 * The seam in front of virsh: every libvirt operation goes through a `VirshRunner`, a function of
 * (uri, args) -> {stdout, stderr}. The default runner starts `virsh -c URI ...` per call through the process
 * seam (argument arrays, `LC_ALL=C`, a timeout per call); `VirshShellRunner` keeps long-lived interactive `virsh` shells per URI for the
 * hot path (~0.15 ms per command instead of ~6-7 ms per spawn, measured on the lab machine) and falls back to spawning.
 * Failures become `VirshError` with a `kind` classified from virsh's stderr text.
 */
import type { ChildProcessWithoutNullStreams } from "node:child_process";
import { VirshError, type VirshErrorKind } from "../../common/errors.js";
import { redactUri } from "../../common/log.js";
import { processes as realProcesses, type ProcessSeam } from "./process.js";

/** VirshRunOptions are per-call options: a timeout and optional stdin text. */
export interface VirshRunOptions {
  /** timeoutMs bounds the call; on expiry the process is killed and a `timeout` VirshError thrown. */
  timeoutMs?: number;
  /** input is written to virsh's stdin (spawn path only). */
  input?: string;
}

/** VirshResult is what a successful virsh call printed. */
export interface VirshResult {
  stdout: string;
  stderr: string;
}

/** VirshRunner runs `virsh -c uri ...args` and resolves with its output, or rejects with a `VirshError`. */
export type VirshRunner = (uri: string, args: string[], opts?: VirshRunOptions) => Promise<VirshResult>;

/** DEFAULT_VIRSH_TIMEOUT_MS is the per-call timeout when the caller gives none (a hung libvirtd must not hang us). */
export const DEFAULT_VIRSH_TIMEOUT_MS = 30_000;

/**
 * VIRSH_ERROR_PATTERNS maps virsh/libvirt error texts (as printed under LC_ALL=C by libvirt 9.0, recorded in
 * test/unit/provisioner/libvirt/virsh.test.ts) to a kind. Order matters: the first matching row wins, so "cannot connect"
 * is checked before anything about domains (a failed connection also fails to get the domain).
 */
export const VIRSH_ERROR_PATTERNS: readonly (readonly [VirshErrorKind, RegExp])[] = [
  ["unreachable", /failed to connect to the hypervisor/i],
  ["unreachable", /Failed to connect socket to/i],
  ["unreachable", /unable to connect to server at/i],
  ["unreachable", /Failed to reconnect to the hypervisor/i],
  ["unreachable", /Cannot (recv|write) data/i],
  ["unreachable", /End of file while reading data/i],
  ["unreachable", /client socket is closed/i],
  ["unreachable", /no valid connection/i],
  ["unreachable", /no connection driver available/i],
  // The connection dropped mid-call (libvirtd stopped or restarted; texts from libvirt 9.0's libvirt.so and
  // virsh): found when the libvirtd outage test stopped libvirtd during a burst.
  ["unreachable", /received hangup event on socket/i],
  ["unreachable", /connection closed due to keepalive timeout/i],
  ["unreachable", /Disconnected from \S+ due to (I\/O error|end of file|keepalive timeout)/i],
  ["domain-missing", /failed to get domain '/i],
  ["domain-missing", /Domain not found/i],
  ["domain-missing", /no domain with matching (name|uuid|id)/i],
  ["already-exists", /already exists with uuid/i],
  ["already-exists", /is already defined with uuid/i],
  ["already-exists", /domain '[^']*' already exists/i],
  ["already-running", /Domain is already active/i],
  ["already-running", /domain is already running/i],
  ["not-running", /domain is not running/i],
  ["not-running", /domain '[^']*' not running/i],
  // Hot-plug refused: a driver without the API (the test driver), or qemu's and lxc's refusals for a device
  // (format strings of libvirt 9.0's libvirt_driver_qemu.so and libvirt_driver_lxc.so).
  ["hotplug-unsupported", /not supported by the connection driver: virDomain(Attach|Detach|Update)Device/i],
  ["hotplug-unsupported", /(live|persistent) (attach|detach) of device (?:'[^']*' )?is not supported/i],
  ["hotplug-unsupported", /device type '[^']*' cannot be (attached|detached)/i],
  ["hotplug-unsupported", /hotplug is not supported for |cannot be hotplugged|cannot be hot unplugged/i],
  ["device-missing", /device not found: /i],
  // Storage pools and volumes (libvirt 9.0's storage driver and virsh, recorded on the lab machine).
  ["pool-missing", /Storage pool not found/i],
  ["pool-missing", /failed to get pool '/i],
  ["pool-inactive", /(storage )?pool '[^']*' is not active/i],
  ["volume-missing", /Storage volume not found/i],
  ["volume-missing", /failed to get vol '/i],
  ["volume-exists", /storage volume '[^']*' exists already/i],
  ["volume-exists", /storage volume name '[^']*' already in use/i],
  ["volume-exists", /volume target path '[^']*' already exists/i],
  ["unsupported", /this function is not supported by the connection driver/i],
] as const;

/** classifyVirshStderr returns the kind of a failure from virsh's stderr; unknown or garbled text is `other`. */
export function classifyVirshStderr(stderr: string): VirshErrorKind {
  for (const [kind, re] of VIRSH_ERROR_PATTERNS) if (re.test(stderr)) return kind;
  return "other";
}

const HINTS: Readonly<Record<VirshErrorKind, string>> = {
  "domain-missing": "the domain is not defined on this host (run `rfboot vm list`)",
  "already-exists": "another domain already uses this name or uuid; remove it or rename the VM",
  "already-running": "the domain is already running",
  "not-running": "the domain is not running",
  unreachable: "check that libvirtd is running and the host URI is right (`rfboot hosts`)",
  timeout: "libvirtd did not answer in time; check its load and logs",
  "hotplug-unsupported":
    "this libvirt driver cannot change the domain's devices here; the change applies when the domain is next defined and started",
  "device-missing": "the domain has no such device (already detached?)",
  "pool-missing": "the storage pool is not defined on this host (rfboot defines it on first use)",
  "pool-inactive": "the storage pool is not started: `virsh pool-start POOL` (rfboot starts it on first use)",
  "volume-missing": "the pool has no such volume (`virsh vol-list POOL`)",
  "volume-exists": "a volume or file of that name is already in the pool",
  unsupported: "this libvirt driver does not offer the operation; do it another way on that host",
  other: "see virsh's message above",
};

/** lastErrorLine picks the most specific `error: ...` line of virsh's stderr (the last one), or its last line. */
export function lastErrorLine(stderr: string): string {
  const lines = stderr
    .split("\n")
    .map((l) => l.trim())
    .filter((l) => l.length > 0);
  const errs = lines.filter((l) => l.startsWith("error:"));
  const pick = errs.length > 0 ? errs[errs.length - 1] : lines[lines.length - 1];
  return (pick ?? "").replace(/^error:\s*/, "").slice(0, 500);
}

/** makeVirshError builds a classified VirshError for a failed call; `timedOut` forces kind `timeout`. */
export function makeVirshError(
  uri: string,
  args: readonly string[],
  stderr: string,
  exitCode: number | undefined,
  opts: { timedOut?: boolean; timeoutMs?: number; cause?: unknown; signal?: string } = {},
): VirshError {
  // SIGPIPE: virsh wrote to its libvirtd connection after the other end closed it (libvirtd stopping) and
  // died before printing anything; found by the libvirtd outage test.
  const kind: VirshErrorKind = opts.timedOut
    ? "timeout"
    : opts.signal === "SIGPIPE"
      ? "unreachable"
      : classifyVirshStderr(stderr);
  const what = `virsh -c ${redactUri(uri)} ${args.join(" ")}`;
  const detail = opts.timedOut
    ? `timed out after ${opts.timeoutMs ?? "?"} ms`
    : `failed (exit ${exitCode ?? "?"}): ${lastErrorLine(stderr) || "no error text"}`;
  return new VirshError(`${what} ${detail} [${kind}]; ${HINTS[kind]}`, kind, [...args], stderr, exitCode, {
    cause: opts.cause,
  });
}

function kindOf(err: unknown): VirshErrorKind | undefined {
  return err instanceof VirshError ? err.kind : undefined;
}

/** isDomainMissing: the named domain is not defined on that host. */
export const isDomainMissing = (err: unknown): boolean => kindOf(err) === "domain-missing";
/** isAlreadyExists: define clashed with a domain of the same name (other uuid) or uuid (other name). */
export const isAlreadyExists = (err: unknown): boolean => kindOf(err) === "already-exists";
/** isAlreadyRunning: start/resume on a domain that is already active. */
export const isAlreadyRunning = (err: unknown): boolean => kindOf(err) === "already-running";
/** isNotRunning: destroy/shutdown/managedsave/suspend on a domain that is not running. */
export const isNotRunning = (err: unknown): boolean => kindOf(err) === "not-running";
/** isUnreachable: libvirtd could not be reached (socket missing, connection refused or dropped). */
export const isUnreachable = (err: unknown): boolean => kindOf(err) === "unreachable";
/** isVirshTimeout: the call did not finish within its timeout. */
export const isVirshTimeout = (err: unknown): boolean => kindOf(err) === "timeout";
/** isHotplugUnsupported: attach-device/detach-device is not supported by the domain's driver (or for that device). */
export const isHotplugUnsupported = (err: unknown): boolean => kindOf(err) === "hotplug-unsupported";
/** isDeviceMissing: detach-device found no device matching the one given. */
export const isDeviceMissing = (err: unknown): boolean => kindOf(err) === "device-missing";
/** isPoolMissing: no storage pool of that name on the host. */
export const isPoolMissing = (err: unknown): boolean => kindOf(err) === "pool-missing";
/** isPoolInactive: the storage pool exists but is not started. */
export const isPoolInactive = (err: unknown): boolean => kindOf(err) === "pool-inactive";
/** isVolumeMissing: the pool has no such volume. */
export const isVolumeMissing = (err: unknown): boolean => kindOf(err) === "volume-missing";
/** isVolumeExists: a volume (or a file at the volume's path) is already there. */
export const isVolumeExists = (err: unknown): boolean => kindOf(err) === "volume-exists";
/** isUnsupported: the connection's driver does not offer the call's API. */
export const isUnsupported = (err: unknown): boolean => kindOf(err) === "unsupported";

/** SpawnRunnerOptions configure the spawning runner. */
export interface SpawnRunnerOptions {
  /** virsh is the executable (default `virsh` from PATH). */
  virsh?: string;
  /** defaultTimeoutMs applies when a call gives none. */
  defaultTimeoutMs?: number;
  /** processes is the process seam (default: real children). */
  processes?: ProcessSeam;
}

/** createSpawnRunner returns the default VirshRunner: one `virsh -c URI ...` process per call, through the process seam. */
export function createSpawnRunner(options: SpawnRunnerOptions = {}): VirshRunner {
  const bin = options.virsh ?? "virsh";
  const defTimeout = options.defaultTimeoutMs ?? DEFAULT_VIRSH_TIMEOUT_MS;
  const seam = options.processes ?? realProcesses;
  return async (uri, args, opts = {}) => {
    const timeoutMs = opts.timeoutMs ?? defTimeout;
    // virsh may run helpers that inherit its pipes (ssh for qemu+ssh://): run it in its own process group and
    // kill the whole group at the timeout, or the call would wait for the helper to close the pipes.
    const r = await seam.run({
      file: bin,
      args: ["-c", uri, ...args],
      timeoutMs,
      processGroup: true,
      ...(opts.input !== undefined ? { input: opts.input } : {}),
      classify: (o) => {
        if (o.timedOut) return makeVirshError(uri, args, o.stderr, o.exitCode, { timedOut: true, timeoutMs });
        if (!o.failed) return undefined;
        // A spawn failure (virsh not installed) has no exit code; keep its summary as stderr so it is not lost.
        const text = o.stderr || (o.exitCode === undefined ? o.summary : "");
        return makeVirshError(uri, args, text, o.exitCode, {
          cause: o.exitCode === undefined ? o.detail : undefined,
          ...(o.signal ? { signal: o.signal } : {}),
        });
      },
    });
    return { stdout: r.stdout, stderr: r.stderr };
  };
}

/**
 * quoteVirshArg quotes one argument for virsh's interactive command parser (vshCommandStringGetArg): inside
 * single quotes nothing is special, so `'` is written as `'\''` exactly as in a POSIX shell. Returns undefined
 * for text the line-based protocol cannot carry (newlines, NUL): such calls go to the spawn path.
 */
export function quoteVirshArg(arg: string): string | undefined {
  if (/[\n\r\0]/.test(arg)) return undefined;
  return `'${arg.replace(/'/g, `'\\''`)}'`;
}

/** Lines virsh prints on its own when a connection drops or comes back; they are not a command's failure. */
const CONNECTION_NOISE = /^error: (Disconnected from .* due to .*|Reconnected to the hypervisor)$/;

interface Pending {
  id: number;
  uri: string;
  args: string[];
  line: string;
  resolve: (r: VirshResult) => void;
  reject: (e: unknown) => void;
  timer: NodeJS.Timeout | undefined;
  timeoutMs: number;
}

/**
 * VirshShell is one interactive `virsh -q -c URI` process. Commands run one at a time: each is followed by
 * `echo --err 'RFBTn' 'ERR'` and `echo 'RFBTn' 'END'`, whose outputs (quoted, so they differ from the echoed
 * command lines) delimit that command's stderr and stdout. A command failed when its stderr has an `error:` line.
 */
export class VirshShell {
  private child: ChildProcessWithoutNullStreams | undefined;
  private out = "";
  private err = "";
  private current: Pending | undefined;
  private readonly waiting: Pending[] = [];
  private seq = 0;
  private closed = false;
  /** dead is true once the process exited; the owner replaces the shell. */
  dead = false;

  constructor(
    readonly uri: string,
    private readonly virsh = "virsh",
    private readonly processes: ProcessSeam = realProcesses,
  ) {}

  /** busy reports whether a command is running or queued. */
  get busy(): boolean {
    return this.current !== undefined || this.waiting.length > 0;
  }

  private ensure(): ChildProcessWithoutNullStreams {
    if (this.child) return this.child;
    const child = this.processes.spawn({ file: this.virsh, args: ["-q", "-c", this.uri] });
    child.stdout.setEncoding("utf8");
    child.stderr.setEncoding("utf8");
    child.stdout.on("data", (d: string) => {
      this.out += d;
      this.pump();
    });
    child.stderr.on("data", (d: string) => {
      this.err += d;
      this.pump();
    });
    child.stdin.on("error", () => undefined);
    child.on("error", (e) => this.die(e));
    child.on("close", () => this.die());
    this.child = child;
    return child;
  }

  /** run queues one command; it rejects with a classified VirshError when virsh reports an error. */
  run(args: string[], timeoutMs: number): Promise<VirshResult> {
    const parts = args.map(quoteVirshArg);
    if (parts.some((p) => p === undefined)) {
      return Promise.reject(new Error("argument not representable in the virsh shell"));
    }
    if (this.dead || this.closed) return Promise.reject(new Error("virsh shell is closed"));
    return new Promise<VirshResult>((resolve, reject) => {
      const p: Pending = {
        id: ++this.seq,
        uri: this.uri,
        args,
        line: parts.join(" "),
        resolve,
        reject,
        timer: undefined,
        timeoutMs,
      };
      this.waiting.push(p);
      this.next();
    });
  }

  private next(): void {
    if (this.current || this.dead) return;
    const p = this.waiting.shift();
    if (!p) return;
    let child: ChildProcessWithoutNullStreams;
    try {
      child = this.ensure();
    } catch (e) {
      p.reject(e);
      return;
    }
    this.current = p;
    // Anything printed while idle (e.g. "Disconnected ... due to end of file") belongs to no command: drop it,
    // but keep lines that explain a failed reconnect, which the next command will also report.
    this.err = this.err
      .split("\n")
      .filter((l) => !CONNECTION_NOISE.test(l.trim()))
      .join("\n");
    p.timer = setTimeout(() => this.onTimeout(p), p.timeoutMs);
    child.stdin.write(`${p.line}\necho --err 'RFBT${p.id}' 'ERR'\necho 'RFBT${p.id}' 'END'\n`);
  }

  private pump(): void {
    const p = this.current;
    if (!p) return;
    const endMark = `RFBT${p.id} END`;
    const errMark = `error: RFBT${p.id} ERR\n`;
    const oi = this.out.indexOf(endMark);
    const ei = this.err.indexOf(errMark);
    if (oi < 0 || ei < 0) return;
    const rawOut = this.out.slice(0, oi);
    this.out = this.out.slice(oi + endMark.length);
    const stderr = this.err.slice(0, ei);
    this.err = this.err.slice(ei + errMark.length);
    this.finish(p);
    // stdout: "virsh # LINE\n" + output + "virsh # echo --err ...\n" + "virsh # echo ...\n"; keep the output.
    let stdout = rawOut;
    const head = stdout.indexOf(`${p.line}\n`);
    if (head >= 0) stdout = stdout.slice(head + p.line.length + 1);
    const tail = stdout.search(new RegExp(`virsh [#>] echo --err 'RFBT${p.id}' 'ERR'\\n`));
    if (tail >= 0) stdout = stdout.slice(0, tail);
    const errLines = stderr
      .split("\n")
      .filter((l) => l.startsWith("error:") && !CONNECTION_NOISE.test(l.trim()));
    if (errLines.length > 0) {
      p.reject(makeVirshError(p.uri, p.args, stderr, 1));
    } else {
      p.resolve({ stdout, stderr });
    }
    this.next();
  }

  private finish(p: Pending): void {
    if (p.timer) clearTimeout(p.timer);
    if (this.current === p) this.current = undefined;
  }

  private onTimeout(p: Pending): void {
    if (this.current !== p) return;
    this.finish(p);
    p.reject(makeVirshError(p.uri, p.args, this.err, undefined, { timedOut: true, timeoutMs: p.timeoutMs }));
    // The shell is now out of step with our markers: kill it; queued commands go to a fresh one.
    const queued = this.waiting.splice(0);
    this.kill();
    for (const q of queued) q.reject(new ShellGone());
  }

  private die(cause?: unknown): void {
    if (this.dead) return;
    this.dead = true;
    this.child = undefined;
    const p = this.current;
    this.current = undefined;
    if (p) {
      this.finish(p);
      const stderr = this.err.trim() ? this.err : "error: virsh shell exited";
      // The shell exits when its initial connection fails: that is what the spawn path would report too.
      p.reject(new ShellGone(makeVirshError(p.uri, p.args, stderr, 1, { cause })));
    }
    for (const q of this.waiting.splice(0)) q.reject(new ShellGone());
  }

  /** kill stops the process (SIGKILL); safe to call twice. */
  kill(): void {
    const c = this.child;
    this.die();
    if (c && c.exitCode === null) c.kill("SIGKILL");
  }

  /** close ends the shell politely (`quit`), killing it if it does not exit within 1 s. */
  async close(): Promise<void> {
    this.closed = true;
    const c = this.child;
    if (!c || c.exitCode !== null) return;
    await new Promise<void>((res) => {
      const t = setTimeout(() => {
        c.kill("SIGKILL");
        res();
      }, 1000);
      c.once("close", () => {
        clearTimeout(t);
        res();
      });
      c.stdin.end("quit\n");
    });
    this.die();
  }
}

/** ShellGone marks a command the shell could not run (it died or was killed); `error` is its own failure, if any. */
class ShellGone extends Error {
  constructor(readonly error?: VirshError) {
    super("virsh shell gone");
  }
}

/** ShellRunnerOptions configure `VirshShellRunner`. */
export interface ShellRunnerOptions {
  /** shellsPerUri is how many interactive shells run in parallel per URI (default 2). */
  shellsPerUri?: number;
  /** fallback runs calls the shell cannot carry (stdin input, newlines) or when it keeps dying. */
  fallback?: VirshRunner;
  virsh?: string;
  defaultTimeoutMs?: number;
  /** processes is the process seam of the shells and of the default fallback (default: real children). */
  processes?: ProcessSeam;
}

/**
 * VirshShellRunner routes calls through persistent interactive virsh shells (one pool per URI), falling back
 * to the spawn runner when a call has stdin input, an argument with a newline, or the shell died under it
 * (libvirtd restarted, connection failed): the fallback then gives the authoritative, classified answer.
 * A shell also keeps its connection open, which keeps `test+unix://` driver state alive between calls.
 */
export class VirshShellRunner {
  private readonly pools = new Map<string, VirshShell[]>();
  private readonly size: number;
  private readonly fallback: VirshRunner;
  private readonly defTimeout: number;
  private closed = false;
  /** stats counts calls served by a shell vs the fallback (for benches and logs). */
  readonly stats = { shell: 0, fallback: 0 };

  constructor(private readonly options: ShellRunnerOptions = {}) {
    this.size = Math.max(1, options.shellsPerUri ?? 2);
    this.defTimeout = options.defaultTimeoutMs ?? DEFAULT_VIRSH_TIMEOUT_MS;
    this.fallback =
      options.fallback ??
      createSpawnRunner({
        virsh: options.virsh,
        defaultTimeoutMs: this.defTimeout,
        ...(options.processes ? { processes: options.processes } : {}),
      });
  }

  /** run is the VirshRunner (bound, so it can be passed around as a function). */
  readonly run: VirshRunner = async (uri, args, opts = {}) => {
    const timeoutMs = opts.timeoutMs ?? this.defTimeout;
    if (this.closed || opts.input !== undefined || args.some((a) => quoteVirshArg(a) === undefined)) {
      this.stats.fallback++;
      return this.fallback(uri, args, opts);
    }
    const shell = this.pick(uri);
    try {
      const r = await shell.run(args, timeoutMs);
      this.stats.shell++;
      return r;
    } catch (e) {
      if (e instanceof ShellGone || !(e instanceof VirshError)) {
        this.stats.fallback++;
        return this.fallback(uri, args, opts);
      }
      this.stats.shell++;
      throw e;
    }
  };

  private pick(uri: string): VirshShell {
    let pool = this.pools.get(uri);
    if (!pool) {
      pool = [];
      this.pools.set(uri, pool);
    }
    for (let i = pool.length - 1; i >= 0; i--) if (pool[i]?.dead) pool.splice(i, 1);
    const idle = pool.find((s) => !s.busy);
    if (idle) return idle;
    if (pool.length < this.size) {
      const s = new VirshShell(uri, this.options.virsh, this.options.processes);
      pool.push(s);
      return s;
    }
    // All busy: queue on the one with the least work (round robin by creation order is good enough).
    const s = pool[this.seq++ % pool.length] as VirshShell;
    return s;
  }
  private seq = 0;

  /** close ends every shell; later calls use the fallback. */
  async close(): Promise<void> {
    this.closed = true;
    const all = [...this.pools.values()].flat();
    this.pools.clear();
    await Promise.all(all.map((s) => s.close()));
  }
}
