import { readFileSync } from "node:fs";
import { Writable } from "node:stream";
import { describe, expect, it } from "vitest";
import { createLogger } from "../../../src/common/log.js";
import {
  NOFILE_RESERVE,
  OutOfFiles,
  isOutOfFiles,
  logNofile,
  outOfFilesMessage,
  parseNofileLimits,
  raiseNofile,
  sessionCapacity,
  type NofileLimits,
} from "../../../src/common/nofile.js";
import { REPO } from "../../helpers/env.js";

const fixture = (name: string) => readFileSync(`${REPO}/test/fixtures/nofile/${name}.limits`, "utf8");

/** capture is a logger whose JSON lines land in `lines`. */
function capture(): { log: ReturnType<typeof createLogger>; lines: Record<string, unknown>[] } {
  const lines: Record<string, unknown>[] = [];
  const destination = new Writable({
    write(chunk: Buffer, _enc, done) {
      for (const l of chunk.toString().split("\n").filter(Boolean))
        lines.push(JSON.parse(l) as Record<string, unknown>);
      done();
    },
  });
  return { log: createLogger({ destination, pretty: false, level: "debug" }), lines };
}

describe("parseNofileLimits", () => {
  it("reads the soft and hard limit of /proc/PID/limits texts", () => {
    expect(parseNofileLimits(fixture("debian12-root"))).toEqual({ soft: 20000, hard: 20000 });
    expect(parseNofileLimits(fixture("systemd-default"))).toEqual({ soft: 1024, hard: 524288 });
    expect(parseNofileLimits(fixture("unlimited"))).toEqual({
      soft: Number.POSITIVE_INFINITY,
      hard: Number.POSITIVE_INFINITY,
    });
  });

  it("names the file and the line when there is no limit to read", () => {
    expect(() => parseNofileLimits(fixture("no-nofile"), "/proc/42/limits")).toThrow(
      '/proc/42/limits: no "Max open files" line',
    );
    expect(() => parseNofileLimits(fixture("garbled"))).toThrow(
      /\/proc\/self\/limits: "Max open files" line has no soft and hard limit: "Max open files\s+lots/,
    );
  });

  it("reads this process's own limits the way the kernel writes them", () => {
    const own = parseNofileLimits(readFileSync("/proc/self/limits", "utf8"));
    expect(own.soft).toBeGreaterThan(0);
    expect(own.hard).toBeGreaterThanOrEqual(own.soft);
  });
});

describe("raiseNofile", () => {
  /** limits is a fake process whose prlimit sets the soft limit to what it was asked, unless refused. */
  function fakeProcess(start: NofileLimits, prlimit: "works" | "fails" | "ignored") {
    let now = { ...start };
    const calls: (readonly string[])[] = [];
    return {
      calls,
      read: () => ({ ...now }),
      run: async (args: readonly string[]) => {
        calls.push(args);
        if (prlimit === "fails") throw new Error("prlimit: failed to set the NOFILE resource limit: EPERM");
        const m = /^--nofile=(\d+):(\d+)$/.exec(args[2] ?? "");
        if (prlimit === "works" && m) now = { soft: Number(m[1]), hard: Number(m[2]) };
      },
    };
  }

  it("asks prlimit for the hard limit on its own pid and reads the raise back", async () => {
    const p = fakeProcess({ soft: 1024, hard: 524288 }, "works");
    const r = await raiseNofile({ ...p, pid: 4242 });
    expect(p.calls).toEqual([["--pid", "4242", "--nofile=524288:524288"]]);
    expect(r).toEqual({ soft: 524288, hard: 524288, before: 1024, raised: true });
  });

  it("does nothing when the soft limit is already the hard one", async () => {
    const p = fakeProcess({ soft: 20000, hard: 20000 }, "works");
    expect(await raiseNofile(p)).toEqual({ soft: 20000, hard: 20000, before: 20000, raised: false });
    expect(p.calls).toEqual([]);
  });

  it("returns why it failed and the limit that stays, without throwing", async () => {
    const failing = fakeProcess({ soft: 256, hard: 4096 }, "fails");
    const r = await raiseNofile(failing);
    expect(r).toMatchObject({ soft: 256, hard: 4096, before: 256, raised: false });
    expect(r.error).toMatch(/^prlimit failed: .*EPERM/);

    const ignored = fakeProcess({ soft: 256, hard: 4096 }, "ignored");
    expect((await raiseNofile(ignored)).error).toBe("prlimit ran but the soft limit is still 256");

    const unreadable = await raiseNofile({
      read: () => {
        throw new Error("/proc/self/limits: ENOENT");
      },
    });
    expect(unreadable).toMatchObject({ raised: false, error: "/proc/self/limits: ENOENT" });
  });
});

describe("what the limit allows", () => {
  it("sets the reserve aside: one descriptor per switch listening, two relaying", () => {
    expect(sessionCapacity(20000)).toEqual({
      listen: 20000 - NOFILE_RESERVE,
      relay: (20000 - NOFILE_RESERVE) / 2,
    });
    expect(sessionCapacity(1025 + NOFILE_RESERVE)).toEqual({ listen: 1025, relay: 512 });
    expect(sessionCapacity(10)).toEqual({ listen: 0, relay: 0 });
  });

  it("logs the limit once, and warns when it allows fewer sessions than the listener would accept", () => {
    const { log, lines } = capture();
    logNofile(
      log,
      { soft: 4096, hard: 4096, before: 256, raised: true },
      { mode: "listen", maxConnections: 4096 },
    );
    expect(lines.map((l) => l.msg)).toEqual([
      "open files: soft 4096 (raised from 256), hard 4096",
      `open files allow ${4096 - NOFILE_RESERVE} switch sessions in listen mode, fewer than openflow.maxConnections 4096; raise LimitNOFILE= in rfboot.service (systemctl edit rfboot), or \`ulimit -Hn\` before starting rfboot by hand`,
    ]);
    expect(lines[0]).toMatchObject({ level: 30, soft: 4096, hard: 4096, sessions: 4096 - NOFILE_RESERVE });
    expect(lines[1]).toMatchObject({ level: 40 });

    lines.length = 0;
    logNofile(
      log,
      { soft: 256, hard: 4096, before: 256, raised: false, error: "prlimit failed: EPERM" },
      { mode: "relay", maxConnections: 10 },
    );
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatchObject({
      level: 40,
      err: "prlimit failed: EPERM",
      msg: "open files: soft 256, hard 4096; raising the soft limit failed, it stays",
      sessions: 64,
    });
  });
});

describe("out of open files", () => {
  it("recognises EMFILE and ENFILE, nothing else", () => {
    expect(isOutOfFiles(Object.assign(new Error("accept EMFILE"), { code: "EMFILE" }))).toBe(true);
    expect(isOutOfFiles({ code: "ENFILE" })).toBe(true);
    expect(isOutOfFiles({ code: "ECONNRESET" })).toBe(false);
    expect(isOutOfFiles(undefined)).toBe(false);
    expect(isOutOfFiles(new Error("EMFILE"))).toBe(false);
  });

  it("names the limit, the open count, what fails and the fix", () => {
    expect(outOfFilesMessage("accept", 20000, 20000, "EMFILE")).toBe(
      "out of open files: 20000 of 20000 in use (RLIMIT_NOFILE); switches beyond this are not accepted; " +
        "raise LimitNOFILE= in rfboot.service (systemctl edit rfboot), or `ulimit -Hn` before starting rfboot by hand",
    );
    expect(outOfFilesMessage("upstream", 9, 10, "EMFILE")).toContain(
      "relayed switches get no upstream connection",
    );
    expect(outOfFilesMessage("spawn", 9, 10, "EMFILE")).toContain("virsh cannot be started");
    expect(outOfFilesMessage("accept", 300, 20000, "ENFILE")).toBe(
      "out of open files system-wide (ENFILE, fs.file-max); switches beyond this are not accepted; rfboot " +
        "holds 300 of its 20000; raise fs.file-max (sysctl) or close other processes' files",
    );
  });

  it("counts every report and logs at most one line per 5 s, with the count since the last", () => {
    let t = 1_000_000;
    let open: number | undefined = 80;
    const seen = new OutOfFiles(
      () => t,
      () => ({ soft: 80, hard: 80 }),
      () => open,
    );
    const { log, lines } = capture();
    seen.useLogger(log);
    seen.report("accept", { code: "EMFILE" });
    seen.report("accept");
    t += 4_999;
    seen.report("spawn");
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatchObject({
      level: 50,
      where: "accept",
      code: "EMFILE",
      open: 80,
      limit: 80,
      msg: expect.stringMatching(/^out of open files: 80 of 80 in use \(RLIMIT_NOFILE\); switches beyond/),
    });
    t += 1;
    open = undefined; // no descriptor left to list /proc/self/fd: all of them are in use
    const other = capture();
    seen.report("upstream", { code: "EMFILE" }, other.log);
    expect(lines).toHaveLength(1);
    expect(other.lines[0]).toMatchObject({ where: "upstream", open: 80, sinceLastLine: 2 });
    expect([...seen.counts()]).toEqual([
      ["accept", 2],
      ["spawn", 1],
      ["upstream", 1],
    ]);
  });
});
