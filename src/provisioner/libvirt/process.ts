/**
 * The libvirt wing's one process seam: every child it starts (a virsh call, the interactive virsh shells, the
 * `virsh event` stream, `virsh console` under `script`) goes through here. Files and argument
 * arrays only, never a shell string; the C locale, because callers classify failures by libvirt's untranslated
 * English messages; a timeout on every request/response call; and the caller's `classify` hook, which turns
 * the outcome into the caller's own error (a `VirshError` with its kind) or accepts it.
 */
import { spawn, type ChildProcessWithoutNullStreams } from "node:child_process";
import { execa } from "execa";
import { errorMessage } from "../../common/errors.js";
import { descriptorLeft, isOutOfFiles, outOfFiles } from "../../common/nofile.js";

/** C_LOCALE_ENV pins the C locale for every child of the wing. */
export const C_LOCALE_ENV = Object.freeze({ LC_ALL: "C", LANG: "C", LANGUAGE: "" });

/** childEnv is the environment a child gets: ours, the C locale, then the caller's own variables. */
export function childEnv(extra: NodeJS.ProcessEnv = {}): NodeJS.ProcessEnv {
  return { ...process.env, ...C_LOCALE_ENV, ...extra };
}

/** RunOutcome is how a request/response child ended, whether or not that is a failure for the caller. */
export interface RunOutcome {
  file: string;
  args: readonly string[];
  /** stdout and stderr as printed (final newline kept; empty when the child never started). */
  stdout: string;
  stderr: string;
  /** exitCode is undefined when the child could not start or was killed by a signal. */
  exitCode?: number;
  signal?: string;
  /** timedOut: the child was still running at `timeoutMs` and was killed. */
  timedOut: boolean;
  /** failed: a non-zero exit, a signal, a timeout, or no start at all. */
  failed: boolean;
  /** summary is one line saying why the child failed (e.g. `spawn virsh ENOENT`); empty when it did not. */
  summary: string;
  /** detail is the underlying result, to be carried as an error's `cause`. */
  detail: unknown;
}

/** RunRequest is one request/response child: run `file args`, collect its output, classify the outcome. */
export interface RunRequest {
  file: string;
  args: readonly string[];
  /** timeoutMs bounds the call: on expiry the child is killed and the outcome is `timedOut`. */
  timeoutMs: number;
  /** input is written to the child's stdin; without it stdin is closed (`/dev/null`). */
  input?: string;
  /**
   * processGroup: the child leads a process group of its own and a timeout kills the whole group with SIGKILL,
   * because helpers it starts (ssh for a `qemu+ssh://` URI) inherit its pipes and would keep the call waiting.
   * Without it a timeout sends SIGTERM to the child alone, then SIGKILL 5 s later.
   */
  processGroup?: boolean;
  /** classify returns the error the call rejects with, or undefined when the outcome is a success. */
  classify: (outcome: RunOutcome) => Error | undefined;
}

/** SpawnRequest is one long-running child whose output the caller streams (shells, event loop, console). */
export interface SpawnRequest {
  file: string;
  args: readonly string[];
  /** env replaces the default `childEnv()`; build it with `childEnv(extra)` so the locale stays pinned. */
  env?: NodeJS.ProcessEnv;
  /** processGroup: the child leads a process group of its own, so the caller can signal the group. */
  processGroup?: boolean;
}

/** ProcessSeam is the two ways the wing starts children; tests inject their own. */
export interface ProcessSeam {
  /** run starts a request/response child and resolves with its outcome, or rejects with `classify`'s error. */
  run(req: RunRequest): Promise<RunOutcome>;
  /** spawn starts a streaming child with piped stdin, stdout and stderr. */
  spawn(req: SpawnRequest): ChildProcessWithoutNullStreams;
}

/** runProcess is the default `ProcessSeam.run`, with execa. */
export async function runProcess(req: RunRequest): Promise<RunOutcome> {
  const group = req.processGroup === true;
  let sub: ReturnType<typeof startExeca>;
  try {
    // Without descriptors for its pipes, execa throws a TypeError and the child it made then emits an
    // 'error' nobody listens to, which would end this process: such a child is not started at all.
    if (!descriptorLeft(CHILD_DESCRIPTORS).left) throw outOfFilesError(req.file);
    sub = startExeca(req, group);
  } catch (e) {
    const cause = descriptorLeft().left && !isOutOfFiles(e) ? e : outOfFilesError(req.file);
    if (isOutOfFiles(cause)) outOfFiles.report("spawn", cause);
    const outcome: RunOutcome = {
      file: req.file,
      args: req.args,
      stdout: "",
      stderr: "",
      timedOut: false,
      failed: true,
      summary: errorMessage(cause),
      detail: cause,
    };
    throw req.classify(outcome) ?? cause;
  }
  let groupTimedOut = false;
  const timer = group
    ? setTimeout(() => {
        groupTimedOut = true;
        try {
          if (sub.pid !== undefined) process.kill(-sub.pid, "SIGKILL");
        } catch {
          sub.kill("SIGKILL");
        }
      }, req.timeoutMs)
    : undefined;
  const r = await sub.finally(() => clearTimeout(timer));
  const outcome: RunOutcome = {
    file: req.file,
    args: req.args,
    stdout: typeof r.stdout === "string" ? r.stdout : "",
    stderr: typeof r.stderr === "string" ? r.stderr : "",
    ...(r.exitCode !== undefined ? { exitCode: r.exitCode } : {}),
    ...(r.signal ? { signal: r.signal } : {}),
    timedOut: groupTimedOut || r.timedOut,
    failed: groupTimedOut || r.failed || r.exitCode !== 0,
    summary: r.failed ? (r.shortMessage ?? "") : "",
    detail: r,
  };
  if (isOutOfFiles(r)) outOfFiles.report("spawn", r);
  const err = req.classify(outcome);
  if (err) throw err;
  return outcome;
}

function startExeca(req: RunRequest, group: boolean) {
  return execa(req.file, [...req.args], {
    env: C_LOCALE_ENV,
    extendEnv: true,
    reject: false,
    stripFinalNewline: false,
    detached: group,
    input: req.input,
    stdin: req.input === undefined ? "ignore" : "pipe",
    ...(group ? {} : { timeout: req.timeoutMs }),
  });
}

/** CHILD_DESCRIPTORS: a child's three pipes (two ends each) and the one that reports a failed exec. */
const CHILD_DESCRIPTORS = 8;

/** outOfFilesError is the error of a child that could not start for want of descriptors. */
function outOfFilesError(file: string): Error {
  return Object.assign(new Error(`spawn ${file}: out of open files (EMFILE)`), { code: "EMFILE" });
}

/** spawnProcess is the default `ProcessSeam.spawn`: pipes on all three streams, the C locale unless `env`. */
export function spawnProcess(req: SpawnRequest): ChildProcessWithoutNullStreams {
  const child = spawn(req.file, [...req.args], {
    env: req.env ?? childEnv(),
    stdio: ["pipe", "pipe", "pipe"],
    ...(req.processGroup ? { detached: true } : {}),
  });
  // Not a handler of the caller's errors (each caller has its own): a look at the one that matters here.
  child.prependListener("error", (e) => {
    if (isOutOfFiles(e)) outOfFiles.report("spawn", e);
  });
  // Out of descriptors, Node cannot make the pipes: the child has no streams and only an 'error' to come.
  // Failing here names the cause; the caller's first use of child.stdin would be a TypeError instead.
  if (!child.stdin || !child.stdout || !child.stderr) throw outOfFilesError(req.file);
  return child;
}

/** processes is the real seam. */
export const processes: ProcessSeam = Object.freeze({ run: runProcess, spawn: spawnProcess });
