/**
 * Out of file descriptors (EMFILE): a Controller in a child process limited to a few descriptors
 * (prlimit) is flooded with connections. libuv reports EMFILE to the accept callback and Node emits
 * 'error' on the server: without a handler that error kills the daemon. The child must stay up, count the
 * accept errors, say once that the open-files limit is reached (how many of how many, and the fix), and
 * accept a well-behaved switch once the flood is gone.
 */
import { execa, type ResultPromise } from "execa";
import { createInterface } from "node:readline";
import { createServer, type AddressInfo, type Socket } from "node:net";
import { afterAll, describe, expect, it } from "vitest";
import { REPO } from "../helpers/env.js";
import { connectFrom, rawConnect, sleep, until } from "./helpers.js";

const CHILD = `${REPO}/test/security/fixtures/controller-child.ts`;

/** startChild runs the controller child under a limit of 80 descriptors; its stdout events and log lines. */
async function startChild(overrides: Record<string, unknown>) {
  const child = execa(
    "prlimit",
    ["--nofile=80:80", process.execPath, "--import", "tsx", CHILD, JSON.stringify(overrides)],
    { cwd: REPO, reject: false, stdin: "pipe", stdout: "pipe", stderr: "pipe" },
  );
  const lines: Record<string, unknown>[] = [];
  createInterface({ input: child.stdout! }).on("line", (l) =>
    lines.push(JSON.parse(l) as Record<string, unknown>),
  );
  const logged: Record<string, unknown>[] = [];
  createInterface({ input: child.stderr! }).on("line", (l) => {
    if (l.startsWith("{")) logged.push(JSON.parse(l) as Record<string, unknown>);
  });
  await until(() => lines.some((l) => "listening" in l), 30_000, "child listening");
  const port = lines.find((l) => "listening" in l)!.listening as number;
  return { child, lines, logged, port };
}

describe("accept errors", () => {
  let child: ResultPromise | undefined;
  afterAll(() => {
    child?.kill("SIGKILL");
  });

  it(
    "EMFILE while accepting: the process stays up and serves a switch once descriptors are free",
    { timeout: 60_000 },
    async () => {
      const c = await startChild({});
      child = c.child;
      const { lines, logged, port } = c;

      const flood: Socket[] = [];
      for (let i = 0; i < 200; i++) {
        try {
          const s = await rawConnect(port);
          s.on("error", () => undefined);
          flood.push(s);
        } catch {
          // the backlog may refuse
        }
      }
      const dropped = new Set<Socket>();
      for (const s of flood) {
        s.once("close", () => dropped.add(s));
        s.resume();
      }
      await sleep(1000);
      child.stdin!.write("stats\n");
      await until(() => lines.some((l) => "stats" in l), 5000, "stats");
      const stats = lines.find((l) => "stats" in l)!.stats as { acceptErrors: number; open: number };
      // libuv answers EMFILE with its reserve-descriptor trick (accept and close what is pending) or passes
      // the error up (the server's 'error' handler counts it): either way the child dropped flood
      // connections and holds fewer than its descriptor limit.
      expect(stats.acceptErrors + dropped.size).toBeGreaterThan(0);
      expect(stats.open).toBeLessThan(80);
      expect(child.exitCode).toBeNull();
      // Whichever way libuv took, the limit reached is said once, with the numbers and the fix.
      await until(() => logged.some((l) => l.where === "accept"), 5000, "out-of-files error logged");
      const errors = logged.filter((l) => String(l.msg).startsWith("out of open files"));
      expect(errors).toHaveLength(1);
      expect(errors[0]).toMatchObject({ level: 50, code: "EMFILE", limit: 80 });
      expect(errors[0]!.open).toBeGreaterThan(70);
      expect(errors[0]!.msg).toBe(
        `out of open files: ${String(errors[0]!.open)} of 80 in use (RLIMIT_NOFILE); switches beyond this ` +
          "are not accepted; raise LimitNOFILE= in rfboot.service (systemctl edit rfboot), or `ulimit -Hn` " +
          "before starting rfboot by hand",
      );

      for (const s of flood) s.destroy();
      await sleep(500);
      const p = await connectFrom(port, "127.0.0.2");
      p.actAsSwitch({ dpid: 0x77n, versions: [4], ports: [] });
      await until(() => lines.some((l) => l.up === "0000000000000077"), 15_000, "up after the flood");
      p.destroy();
      expect(child.exitCode).toBeNull();
      child.stdin!.write("quit\n");
      const r = await child;
      expect(r.exitCode).toBe(0);
      expect(String(r.stderr)).not.toMatch(/Unhandled|uncaught/i);
    },
  );
});

describe("out of descriptors in relay mode", () => {
  let child: ResultPromise | undefined;
  const upstream = createServer((s) => s.on("error", () => undefined));
  afterAll(() => {
    child?.kill("SIGKILL");
    upstream.close();
  });

  it(
    "the upstream connect that finds no descriptor is said, counted, and the switch is still detected",
    { timeout: 60_000 },
    async () => {
      await new Promise<void>((r) => upstream.listen(0, "127.0.0.1", r));
      const upPort = (upstream.address() as AddressInfo).port;
      const c = await startChild({ mode: "relay", upstream: { host: "127.0.0.1", port: upPort } });
      child = c.child;
      // One descriptor left: the switch's accept takes it, and its upstream connection finds none.
      child.stdin!.write("fill\n");
      await until(() => c.lines.some((l) => "filled" in l), 5000, "filled");
      const p = await connectFrom(c.port, "127.0.0.2");
      p.actAsSwitch({ dpid: 0x78n, versions: [4], ports: [] });
      // Upstream unreachable, the relay serves the switch standalone: the datapath is still detected.
      await until(() => c.lines.some((l) => l.up === "0000000000000078"), 15_000, "up without upstream");
      await until(() => c.logged.some((l) => l.where === "upstream"), 5000, "out-of-files error logged");
      const line = c.logged.find((l) => l.where === "upstream")!;
      expect(line).toMatchObject({ level: 50, code: "EMFILE", open: 80, limit: 80 });
      expect(line.msg).toBe(
        "out of open files: 80 of 80 in use (RLIMIT_NOFILE); relayed switches get no upstream connection; " +
          "raise LimitNOFILE= in rfboot.service (systemctl edit rfboot), or `ulimit -Hn` before starting rfboot by hand",
      );
      child.stdin!.write("stats\n");
      await until(() => c.lines.some((l) => "stats" in l), 5000, "stats");
      const stats = c.lines.find((l) => "stats" in l)!.stats as { outOfFiles: Record<string, number> };
      expect(stats.outOfFiles.upstream).toBeGreaterThanOrEqual(1);
      expect(child.exitCode).toBeNull();
      p.destroy();
      child.stdin!.write("quit\n");
      expect((await child).exitCode).toBe(0);
    },
  );
});
