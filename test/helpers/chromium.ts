/**
 * A headless Chromium (Debian's `chromium`) driven through the DevTools protocol over a pipe
 * (`--remote-debugging-pipe`: fd 3 carries commands in, fd 4 replies and events out, each a JSON message
 * ended by a NUL byte). No browser download, no WebSocket client: only the system browser and node.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Readable, Writable } from "node:stream";

/** CHROMIUM_FLAGS keep a headless run quiet and self-contained (no sandbox: the lab's tests run as root). */
export const CHROMIUM_FLAGS = [
  "--headless",
  "--no-sandbox",
  "--disable-gpu",
  "--no-first-run",
  "--no-default-browser-check",
  "--disable-extensions",
  "--disable-background-networking",
  "--disable-dev-shm-usage",
  "--hide-scrollbars",
];

interface Pending {
  resolve(v: Record<string, unknown>): void;
  reject(e: Error): void;
}

/** Browser is one running headless Chromium. */
export class Browser {
  private nextId = 1;
  private readonly pending = new Map<number, Pending>();
  private buf = "";

  private constructor(
    private readonly child: ChildProcess,
    private readonly dir: string,
  ) {
    const out = child.stdio[4] as Readable;
    out.on("data", (d: Buffer) => {
      this.buf += d.toString();
      let i: number;
      while ((i = this.buf.indexOf("\0")) >= 0) {
        const msg = JSON.parse(this.buf.slice(0, i)) as {
          id?: number;
          result?: Record<string, unknown>;
          error?: { message: string };
        };
        this.buf = this.buf.slice(i + 1);
        const p = msg.id !== undefined ? this.pending.get(msg.id) : undefined;
        if (!p) continue;
        this.pending.delete(msg.id!);
        if (msg.error) p.reject(new Error(`DevTools: ${msg.error.message}`));
        else p.resolve(msg.result ?? {});
      }
    });
  }

  /** launch starts Chromium with a window of `width` x `height`. */
  static launch(width = 1280, height = 1000): Browser {
    const dir = mkdtempSync(join(tmpdir(), "rfbt-chromium-"));
    const child = spawn(
      "chromium",
      [
        ...CHROMIUM_FLAGS,
        `--user-data-dir=${dir}`,
        `--window-size=${width},${height}`,
        "--remote-debugging-pipe",
      ],
      { stdio: ["ignore", "ignore", "ignore", "pipe", "pipe"] },
    );
    return new Browser(child, dir);
  }

  /** send issues one DevTools command (to a page's session when `sessionId` is given). */
  send(
    method: string,
    params: Record<string, unknown> = {},
    sessionId?: string,
  ): Promise<Record<string, unknown>> {
    const id = this.nextId++;
    const msg = JSON.stringify({ id, method, params, ...(sessionId ? { sessionId } : {}) });
    return new Promise((resolve, reject) => {
      this.pending.set(id, { resolve, reject });
      (this.child.stdio[3] as Writable).write(msg + "\0");
    });
  }

  /** open loads `url` in a new page and returns that page's session. */
  async open(url: string): Promise<Page> {
    const { targetId } = (await this.send("Target.createTarget", { url })) as { targetId: string };
    const { sessionId } = (await this.send("Target.attachToTarget", { targetId, flatten: true })) as {
      sessionId: string;
    };
    return new Page(this, sessionId);
  }

  /** close ends the browser and removes its profile. */
  async close(): Promise<void> {
    await this.send("Browser.close").catch(() => undefined);
    if (this.child.exitCode === null) {
      const gone = new Promise((r) => this.child.once("exit", r));
      const t = setTimeout(() => this.child.kill("SIGKILL"), 3000);
      await gone;
      clearTimeout(t);
    }
    rmSync(this.dir, { recursive: true, force: true });
  }
}

/** Page is one tab's session. */
export class Page {
  constructor(
    private readonly browser: Browser,
    private readonly sessionId: string,
  ) {}

  /** evaluate runs `expression` in the page and returns its value. */
  async evaluate<T>(expression: string): Promise<T> {
    const r = (await this.browser.send(
      "Runtime.evaluate",
      { expression, returnByValue: true, awaitPromise: true },
      this.sessionId,
    )) as { result: { value: T }; exceptionDetails?: { text: string } };
    if (r.exceptionDetails) throw new Error(`page: ${r.exceptionDetails.text}`);
    return r.result.value;
  }

  /** screenshot returns a PNG of the whole page. */
  async screenshot(): Promise<Buffer> {
    const r = (await this.browser.send(
      "Page.captureScreenshot",
      { format: "png", captureBeyondViewport: true },
      this.sessionId,
    )) as { data: string };
    return Buffer.from(r.data, "base64");
  }
}
