/** A private FerretDB (MongoDB wire, SQLite) on a free port with its own directory, to stop and restart it. */
import { spawn, type ChildProcess } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { portOpen } from "../../helpers/real.js";
import { freePort, sleep } from "./util.js";

/** Ferret runs `ferretdb --handler=sqlite` in a temp dir on a free port. */
export class Ferret {
  private proc: ChildProcess | undefined;

  private constructor(
    readonly dir: string,
    readonly port: number,
  ) {}

  /** uri reaches this instance. */
  get uri(): string {
    return `mongodb://127.0.0.1:${this.port}`;
  }

  /** create picks a port and a directory (not started). */
  static async create(): Promise<Ferret> {
    return new Ferret(mkdtempSync(join(tmpdir(), "rfbt-rel-ferret-")), await freePort());
  }

  /** start runs it and waits until the port accepts connections. */
  async start(): Promise<void> {
    if (this.proc && this.proc.exitCode === null) return;
    const proc = spawn(
      "ferretdb",
      [
        "--handler=sqlite",
        `--sqlite-url=file:${this.dir}/`,
        `--listen-addr=127.0.0.1:${this.port}`,
        `--state-dir=${this.dir}`,
        "--telemetry=disable",
        "--debug-addr=-",
        "--log-level=error",
      ],
      { env: { ...process.env, DO_NOT_TRACK: "1" }, stdio: "ignore" },
    );
    this.proc = proc;
    const deadline = Date.now() + 20_000;
    while (!(await portOpen(this.port))) {
      if (Date.now() > deadline || proc.exitCode !== null)
        throw new Error(`ferretdb did not start on ${this.port}`);
      await sleep(50);
    }
  }

  /** kill stops it hard (SIGKILL), as a crash would. */
  async kill(): Promise<void> {
    const p = this.proc;
    this.proc = undefined;
    if (!p || p.exitCode !== null) return;
    const exited = new Promise((r) => p.once("exit", r));
    p.kill("SIGKILL");
    await exited;
  }

  /** dispose kills it and removes its directory. */
  async dispose(): Promise<void> {
    await this.kill();
    rmSync(this.dir, { recursive: true, force: true });
  }
}
