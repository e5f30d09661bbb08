/** `bin/rfboot run --config FILE` as a child process (so a scenario can SIGKILL it), with its JSON log lines. */
import { spawn, type ChildProcess } from "node:child_process";
import { join } from "node:path";
import { REPO } from "../../helpers/env.js";
import { until } from "./util.js";

/** LogLine is one pino line of the child (msg, level and fields). */
export type LogLine = Record<string, unknown> & { msg?: string; level?: number };

/** RfbootProcess runs the daemon binary and collects its log. */
export class RfbootProcess {
  readonly lines: LogLine[] = [];
  readonly proc: ChildProcess;
  private buf = "";

  constructor(config: string, extraArgs: string[] = []) {
    this.proc = spawn(join(REPO, "bin/rfboot"), ["run", "--config", config, ...extraArgs], {
      stdio: ["ignore", "ignore", "pipe"],
      env: { ...process.env, RFBOOT_LOG_JSON: "1", RFBOOT_LOG_LEVEL: "info" },
    });
    this.proc.stderr?.setEncoding("utf8");
    this.proc.stderr?.on("data", (d: string) => {
      this.buf += d;
      let i: number;
      while ((i = this.buf.indexOf("\n")) >= 0) {
        const line = this.buf.slice(0, i);
        this.buf = this.buf.slice(i + 1);
        try {
          this.lines.push(JSON.parse(line) as LogLine);
        } catch {
          this.lines.push({ msg: line });
        }
      }
    });
  }

  /** count counts log lines with this message. */
  count(msg: string): number {
    return this.lines.filter((l) => l.msg === msg).length;
  }

  /** waitFor waits until `pred` holds for the log. */
  waitFor(what: string, pred: (lines: LogLine[]) => boolean, timeoutMs = 60_000): Promise<true> {
    return until(
      what,
      () => {
        if (this.proc.exitCode !== null)
          throw new Error(`rfboot exited (${this.proc.exitCode}): ${this.tail()}`);
        return pred(this.lines) || undefined;
      },
      timeoutMs,
      20,
    );
  }

  /** tail returns the last log lines as text (diagnostics). */
  tail(n = 10): string {
    return this.lines
      .slice(-n)
      .map((l) => JSON.stringify(l))
      .join("\n");
  }

  /** kill sends a signal and waits for the exit. */
  async kill(signal: NodeJS.Signals = "SIGTERM", timeoutMs = 10_000): Promise<void> {
    if (this.proc.exitCode !== null || this.proc.signalCode !== null) return;
    const done = new Promise<void>((r) => this.proc.once("exit", () => r()));
    this.proc.kill(signal);
    await Promise.race([done, new Promise((r) => setTimeout(r, timeoutMs))]);
    if (this.proc.exitCode === null && this.proc.signalCode === null) {
      this.proc.kill("SIGKILL");
      await done;
    }
  }
}
