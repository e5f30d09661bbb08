/**
 * Watching a running domain's console for a boot marker through libvirt's console stream (`virsh console`),
 * for domains whose console has no log file: libvirt's LXC driver offers only a pty console, no `<log>`.
 *
 * Why `virsh console` and not the host pty itself: it goes through libvirtd's stream API, so the same code
 * serves a remote host (`qemu+ssh://`, `lxc+ssh://`), needs no root access to /dev/pts, and libvirtd, not
 * rfboot, owns the pty while we read. What the stream sees depends on the driver (measured on libvirt 9.0):
 * - LXC: the host pty keeps everything the guest printed since start until someone reads it (the guest was
 *   65 s and 6 KB of output ahead, nothing was lost), so a marker printed before we attach is still seen.
 *   One reader consumes what it reads: a later `virsh console` continues where we stopped.
 * - QEMU: the pty chardev drops output while nobody is attached (the `<log>` file still gets it); only lines
 *   printed after the attach are seen. A domain whose boot must be seen whole is therefore started paused
 *   (`start --paused`), its console attached, and only then resumed: `onAttached` says when to resume.
 *   virsh prints its banner right before it opens the console (one RPC later the pty is open), and the
 *   resume is another process and connection, so the first guest output comes long after the open: the
 *   stream then begins with the kernel's first line, as the log file does (measured on libvirt 9.0).
 *
 * `virsh console` refuses to run without a terminal on stdin, and Node cannot make a pty without a native
 * addon, so virsh runs under util-linux `script`, which gives it one. `script -c` takes a shell command:
 * that command is a constant, and the URI, domain and virsh path reach it as environment variables expanded
 * inside double quotes, so no caller text is ever parsed by the shell. Two rules follow from the terminal:
 * stdin stays open until virsh exited (on EOF `script` types the EOF character into the console, i.e. into
 * the guest), and the console is released the way an operator leaves it, with the escape character ^],
 * then SIGTERM and SIGKILL to the process group if virsh does not go.
 *
 * Starting virsh and connecting to libvirtd takes longer than the guest's first output on a busy machine
 * (tens of milliseconds, measured on the lab machine), so a console whose pty keeps early output (LXC) can be
 * prepared while its domain starts (`when`): virsh then runs as an interactive shell, and `console --domain
 * NAME` (quoted for virsh's own parser) is typed at its prompt once the domain runs. The prompt coming back
 * says the console command ended; `quit` at the prompt ends the shell.
 */
import { StringDecoder } from "node:string_decoder";
import type { Readable, Writable } from "node:stream";
import { ConsoleError } from "../../common/errors.js";
import { redactUri } from "../../common/log.js";
import { childEnv, processes } from "./process.js";
import { makeVirshError, quoteVirshArg } from "./virsh.js";

/** ConsoleExit is how the console process ended: an exit code or signal, or the error that kept it from starting. */
export interface ConsoleExit {
  code: number | null;
  signal: string | null;
  error?: Error;
}

/** ConsoleChild is the running console process as the watcher needs it. */
export interface ConsoleChild {
  /** stdout carries the terminal's output: virsh's banner and errors, then the guest's console. */
  readonly stdout: Readable;
  /** stderr carries the wrapper's own complaints (e.g. `script` itself failing). */
  readonly stderr: Readable;
  /** stdin is the terminal's keyboard; it must stay open while the process runs. */
  readonly stdin: Writable;
  /** kill signals the whole process group (virsh runs in a session of its own under `script`). */
  kill(signal: NodeJS.Signals): void;
  /** exited settles (never rejects) when the process is gone. */
  readonly exited: Promise<ConsoleExit>;
}

/** ConsoleSpawn starts `file` with an argument array and an environment: the process seam of this module. */
export type ConsoleSpawn = (file: string, args: readonly string[], env: NodeJS.ProcessEnv) => ConsoleChild;

/** ConsoleTimers is the injected time: a clock and one-shot timers. */
export interface ConsoleTimers {
  now(): number;
  setTimeout(fn: () => void, ms: number): unknown;
  clearTimeout(handle: unknown): void;
}

/** WatchConsoleOptions says which console to watch, for what, and for how long. */
export interface WatchConsoleOptions {
  /** uri is the libvirt connection URI (local or remote). */
  uri: string;
  /** domain is the running domain's name. */
  domain: string;
  /** marker is tested against each complete console line (without its line ending). */
  marker: RegExp;
  /** timeoutMs bounds the whole watch, from the call until the marker. */
  timeoutMs: number;
  /** signal aborts the watch; the console is released before the promise rejects. */
  signal?: AbortSignal;
  /** spawn is the process seam (default: node's spawn, own process group, pipes). */
  spawn?: ConsoleSpawn;
  /** timers is the injected time (default: the real clock). */
  timers?: ConsoleTimers;
  /** virsh is the virsh executable (default `virsh`). */
  virsh?: string;
  /** script is util-linux `script` (default `script`). */
  script?: string;
  /** releaseMs is how long virsh gets to leave after ^] (and again after SIGTERM) before it is killed. */
  releaseMs?: number;
  /**
   * onAttached is called once, when virsh is about to open the console (its banner ended): a domain
   * started paused may be resumed from then on. Never called when virsh fails before.
   */
  onAttached?: () => void;
  /**
   * onMatch is called as soon as a line matched, before the console is released (the promise settles only
   * once the console process is gone, some milliseconds later): the moment the marker was seen.
   */
  onMatch?: (m: ConsoleMatch) => void;
  /**
   * when, given, opens the console only once it resolves (the domain runs), while virsh itself is started and
   * connected at once, as an interactive shell into which `console` is typed then: its start-up and libvirt
   * connection overlap the domain's start instead of following it. A `when` that rejects ends the watch
   * as an abort.
   */
  when?: Promise<void>;
}

/** ConsoleMatch is the console line that matched and when, counted from the call. */
export interface ConsoleMatch {
  line: string;
  elapsedMs: number;
}

/** CONSOLE_ESCAPE is virsh console's default escape character (Ctrl+]): typing it ends the session. */
export const CONSOLE_ESCAPE = "\x1d";

/** The shell command `script` runs: constant; every variable part comes from the environment, quoted. */
const SCRIPT_COMMAND =
  'exec "$RFBOOT_VIRSH" -c "$RFBOOT_CONSOLE_URI" console --domain "$RFBOOT_CONSOLE_DOMAIN"';

/** The shell command of a console opened later (`when`): an interactive virsh, the URI from the environment. */
const SHELL_COMMAND = 'exec "$RFBOOT_VIRSH" -c "$RFBOOT_CONSOLE_URI"';

/** A terminal control sequence (ESC [ ... letter): readline switches bracketed paste on and off around its prompt. */
const CONTROL_SEQUENCE = new RegExp(`${String.fromCharCode(0x1b)}\\[[0-9;?]*[A-Za-z]`, "g");

/** isPrompt: an unfinished output line that is an interactive virsh's prompt (it waits for a command). */
const isPrompt = (rest: string) => rest.replace(CONTROL_SEQUENCE, "").replace(/^\r+/, "") === "virsh # ";

/** virsh prints this line (LC_ALL=C) right before the guest's output starts: everything earlier is virsh's. */
const BANNER_END = /^Escape character is /;

/** A console line longer than this is tested and dropped unfinished, so a guest without newlines cannot grow memory. */
const MAX_LINE = 64 * 1024;

/** How many non-guest lines (banner, errors) are kept to explain a failure. */
const KEEP_LINES = 20;

const realTimers: ConsoleTimers = {
  now: () => performance.now(),
  setTimeout: (fn, ms) => setTimeout(fn, ms),
  clearTimeout: (h) => clearTimeout(h as NodeJS.Timeout),
};

/** spawnConsole is the default ConsoleSpawn: the process seam, pipes, its own process group. */
export const spawnConsole: ConsoleSpawn = (file, args, env) => {
  const child = processes.spawn({ file, args, env, processGroup: true });
  const exited = new Promise<ConsoleExit>((resolve) => {
    child.once("error", (error) => resolve({ code: null, signal: null, error }));
    // `close`, not `exit`: virsh's last words (an error line) may still be in the pipe when the process exits.
    child.once("close", (code, signal) => resolve({ code, signal }));
  });
  child.stdin.on("error", () => undefined);
  return {
    stdout: child.stdout,
    stderr: child.stderr,
    stdin: child.stdin,
    exited,
    kill(signal) {
      try {
        if (child.pid === undefined) return;
        process.kill(-child.pid, signal);
      } catch {
        child.kill(signal);
      }
    },
  };
};

/**
 * watchDomainConsole attaches to `domain`'s console through `virsh console` and resolves with the first line
 * matching `marker`, after releasing the console again so that an operator's `virsh console` can attach. It
 * rejects with a ConsoleError naming the domain on timeout (`timeout`), abort (`aborted`), when virsh ends
 * first (`exited`, e.g. the domain is not running; `cause` is virsh's classified error), or when the console
 * process cannot start (`spawn`). On every path the console process is gone before the promise settles.
 * With `when`, virsh runs as an interactive shell from the call on and `console` is typed into it once
 * `when` resolves; the console is left with ^] and the shell with `quit`.
 */
export function watchDomainConsole(opts: WatchConsoleOptions): Promise<ConsoleMatch> {
  const timers = opts.timers ?? realTimers;
  const releaseMs = opts.releaseMs ?? 1000;
  const { uri, domain } = opts;
  const where = `domain '${domain}' on ${redactUri(uri)}`;
  const t0 = timers.now();
  // A global or sticky marker would carry lastIndex from one line to the next.
  const marker = new RegExp(opts.marker.source, opts.marker.flags.replace(/[gy]/g, ""));
  // The command typed into an interactive virsh; a name its parser cannot carry waits for `when` instead.
  const typed = opts.when ? quoteVirshArg(domain) : undefined;
  const shell = typed !== undefined;

  return new Promise<ConsoleMatch>((resolve, reject) => {
    if (opts.signal?.aborted) {
      reject(
        new ConsoleError(
          `watching the console of ${where} was aborted before it started`,
          "aborted",
          domain,
          uri,
        ),
      );
      return;
    }
    const env = childEnv({
      SHELL: "/bin/sh",
      RFBOOT_VIRSH: opts.virsh ?? "virsh",
      RFBOOT_CONSOLE_URI: uri,
      ...(shell ? {} : { RFBOOT_CONSOLE_DOMAIN: domain }),
    });
    const script = opts.script ?? "script";
    let child: ConsoleChild | undefined;

    let settled = false;
    let gone = false;
    let attached = false;
    /** Interactive virsh: it showed its prompt (ready for a command); the console command was typed. */
    let atPrompt = false;
    let sent = false;
    let running = false;
    let partial = "";
    const virshLines: string[] = [];
    let stderrText = "";
    const decoder = new StringDecoder("utf8");
    /** promptWaiters: the release waits for the prompt that ^] brings back. */
    const promptWaiters: (() => void)[] = [];

    function spawnError(cause: unknown): ConsoleError {
      return new ConsoleError(
        `cannot watch the console of ${where}: ${script} (util-linux) did not start: ${String(
          (cause as Error)?.message ?? cause,
        )}`,
        "spawn",
        domain,
        uri,
        { cause },
      );
    }

    const timer = timers.setTimeout(() => {
      finish(
        new ConsoleError(
          `no console line of ${where} matched ${String(opts.marker)} within ${opts.timeoutMs} ms` +
            (attached ? "" : ` (virsh console never attached${lastWords()})`),
          "timeout",
          domain,
          uri,
        ),
      );
    }, opts.timeoutMs);
    const onAbort = () =>
      finish(new ConsoleError(`watching the console of ${where} was aborted`, "aborted", domain, uri));
    opts.signal?.addEventListener("abort", onAbort, { once: true });

    function lastWords(): string {
      const text = [...virshLines, ...stderrText.split("\n")].map((l) => l.trim()).filter(Boolean);
      const err = text.filter((l) => l.startsWith("error:")).pop() ?? text.pop();
      return err ? `: ${err}` : "";
    }

    /** ended reports that virsh's console is over before a line matched (the process exited, or its shell's prompt came back). */
    function ended(how: string, code?: number): void {
      const text = [...virshLines, stderrText].join("\n");
      const cause = /error:/.test(text)
        ? makeVirshError(uri, ["console", "--domain", domain], text, code)
        : undefined;
      finish(
        new ConsoleError(
          `virsh console for ${where} ended (${how}) before a line matched ${String(opts.marker)}${lastWords()}`,
          "exited",
          domain,
          uri,
          { cause },
        ),
      );
    }

    function onLine(line: string): void {
      if (settled) return;
      if (!attached) {
        // virsh's banner (and any error it prints instead) is not the guest's output: never match it.
        if (BANNER_END.test(line)) {
          attached = true;
          try {
            opts.onAttached?.();
          } catch {
            // the caller's notification must not end the watch
          }
        } else keep(line);
        return;
      }
      if (line.startsWith("error: ")) keep(line);
      if (marker.test(line)) {
        const m = { line, elapsedMs: timers.now() - t0 };
        try {
          opts.onMatch?.(m);
        } catch {
          // the caller's notification must not end the watch
        }
        finish(m);
      }
    }

    /** onPrompt: the interactive virsh waits for a command (first, or again after `console` ended). */
    function onPrompt(): void {
      atPrompt = true;
      for (const w of promptWaiters.splice(0)) w();
      if (settled) return;
      if (sent) {
        ended(attached ? "the console closed" : "virsh's console command failed");
        return;
      }
      typeConsole();
    }

    function typeConsole(): void {
      if (!child || !running || !atPrompt || sent || settled) return;
      sent = true;
      atPrompt = false;
      child.stdin.write(`console --domain ${typed ?? ""}\n`);
    }

    function keep(line: string): void {
      virshLines.push(line);
      if (virshLines.length > KEEP_LINES) virshLines.shift();
    }

    function begin(): void {
      if (settled) return;
      let c: ConsoleChild;
      try {
        const command = shell ? SHELL_COMMAND : SCRIPT_COMMAND;
        c = (opts.spawn ?? spawnConsole)(script, ["-q", "-e", "-c", command, "/dev/null"], env);
      } catch (e) {
        finish(spawnError(e));
        return;
      }
      child = c;
      c.stdout.on("data", (chunk: Buffer | string) => {
        partial += typeof chunk === "string" ? chunk : decoder.write(chunk);
        let nl: number;
        while ((nl = partial.indexOf("\n")) >= 0) {
          onLine(partial.slice(0, nl).replace(/\r+$/, ""));
          partial = partial.slice(nl + 1);
        }
        if (shell && isPrompt(partial)) {
          partial = "";
          onPrompt();
        }
        if (partial.length > MAX_LINE) {
          onLine(partial);
          partial = "";
        }
      });
      c.stderr.on("data", (chunk: Buffer | string) => {
        stderrText = (stderrText + String(chunk)).slice(-4096);
      });
      void c.exited.then((exit) => {
        gone = true;
        for (const w of promptWaiters.splice(0)) w();
        if (settled) return;
        if (exit.error) {
          finish(spawnError(exit.error));
          return;
        }
        if (partial) onLine(partial.replace(/\r+$/, ""));
        if (settled) return;
        ended(exit.signal ? `signal ${exit.signal}` : `exit ${exit.code ?? "?"}`, exit.code ?? undefined);
      });
    }

    if (!opts.when) begin();
    else {
      if (shell) begin();
      opts.when.then(
        () => {
          running = true;
          if (shell) typeConsole();
          else begin();
        },
        () => onAbort(),
      );
    }

    function finish(outcome: ConsoleMatch | ConsoleError): void {
      if (settled) return;
      settled = true;
      timers.clearTimeout(timer);
      opts.signal?.removeEventListener("abort", onAbort);
      void release().then(() => (outcome instanceof ConsoleError ? reject(outcome) : resolve(outcome)));
    }

    /** pause waits for `p`, the process's end or releaseMs, whichever comes first. */
    async function pause(c: ConsoleChild, p?: Promise<void>): Promise<void> {
      let handle: unknown;
      await Promise.race([
        c.exited,
        ...(p ? [p] : []),
        new Promise<void>((r) => (handle = timers.setTimeout(r, releaseMs))),
      ]);
      timers.clearTimeout(handle);
    }

    /**
     * release leaves the console like an operator (^]; an interactive virsh then gets `quit` at its prompt),
     * then escalates; resolves once the process is gone.
     */
    async function release(): Promise<void> {
      const c = child;
      if (!c) return;
      if (shell && !gone) {
        // ^] only while the console command runs: at the prompt readline would take it for a key binding.
        if (sent && !atPrompt) {
          const prompt = new Promise<void>((r) => promptWaiters.push(r));
          try {
            c.stdin.write(CONSOLE_ESCAPE);
          } catch {
            // already gone: the exit promise says so
          }
          await pause(c, prompt);
        }
        if (!gone) {
          try {
            c.stdin.write("quit\n");
          } catch {
            // already gone
          }
          await pause(c);
        }
      }
      const steps: (() => void)[] = [
        ...(shell ? [] : [() => c.stdin.write(CONSOLE_ESCAPE)]),
        () => c.kill("SIGTERM"),
        () => c.kill("SIGKILL"),
      ];
      for (const step of steps) {
        if (gone) break;
        try {
          step();
        } catch {
          // already gone: the exit promise says so
        }
        await pause(c);
      }
      // Only now may stdin close: an EOF while virsh runs would reach the guest as a typed EOF character.
      c.stdin.destroy();
      c.stdout.destroy();
      c.stderr.destroy();
    }
  });
}
