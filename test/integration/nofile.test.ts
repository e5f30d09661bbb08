/**
 * The open-files raise for real: a child started under `prlimit --nofile=256:4096` raises its soft limit to
 * 4096 through util-linux's prlimit on its own pid, and a child without prlimit on its PATH keeps its limit
 * and says why. And a process with no descriptor left gets a clear error from the process seam.
 */
import { execa } from "execa";
import { existsSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { REPO } from "../helpers/env.js";

const CHILD = `${REPO}/test/fixtures/nofile/raise-child.ts`;
const SPAWN_CHILD = `${REPO}/test/fixtures/nofile/spawn-child.ts`;
/** PRLIMIT by absolute path: one test takes it off the child's PATH. */
const PRLIMIT =
  (process.env.PATH ?? "")
    .split(":")
    .map((d) => join(d, "prlimit"))
    .find((f) => existsSync(f)) ?? "prlimit";

async function runChild(env: NodeJS.ProcessEnv = process.env) {
  const r = await execa(PRLIMIT, ["--nofile=256:4096", process.execPath, "--import", "tsx", CHILD, "256"], {
    cwd: REPO,
    env: { ...env, RFBOOT_TEST_PRLIMIT: PRLIMIT },
    extendEnv: false,
  });
  const log = r.stderr
    .split("\n")
    .filter((l) => l.startsWith("{"))
    .map((l) => JSON.parse(l) as Record<string, unknown>);
  return { out: JSON.parse(r.stdout) as Record<string, Record<string, unknown>>, log };
}

describe("raising RLIMIT_NOFILE", () => {
  it("raises a soft limit of 256 to the hard 4096 and logs it once", { timeout: 30_000 }, async () => {
    const { out, log } = await runChild();
    // Node's own start-up raise, which is why the child lowers itself first.
    expect(out.atStart).toEqual({ soft: 4096, hard: 4096 });
    expect(out.lowered).toEqual({ soft: 256, hard: 4096 });
    expect(out.result).toEqual({ soft: 4096, hard: 4096, before: 256, raised: true });
    expect(log.filter((l) => String(l.msg).startsWith("open files:")).map((l) => l.msg)).toEqual([
      "open files: soft 4096 (raised from 256), hard 4096",
    ]);
    expect(log.find((l) => l.msg === "open files: soft 4096 (raised from 256), hard 4096")).toMatchObject({
      sessions: (4096 - 128) / 2,
    });
  });

  it("keeps the limit and says why when prlimit cannot be run", { timeout: 30_000 }, async () => {
    // node, tsx and the outer prlimit go by absolute path: only the child's own prlimit call needs PATH.
    const { out, log } = await runChild({ PATH: "/nonexistent", HOME: process.env.HOME ?? "/root" });
    expect(out.result).toMatchObject({ soft: 256, hard: 4096, before: 256, raised: false });
    expect(String(out.result!.error)).toMatch(/^prlimit failed: .*ENOENT/);
    const warn = log.find((l) => String(l.msg).startsWith("open files:"));
    expect(warn).toMatchObject({
      level: 40,
      msg: "open files: soft 256, hard 4096; raising the soft limit failed, it stays",
    });
  });
});

describe("spawning with no descriptor left", () => {
  it("a virsh call fails with an error naming the cause, and is counted; nothing throws a TypeError", async () => {
    const r = await execa(PRLIMIT, ["--nofile=128:128", process.execPath, "--import", "tsx", SPAWN_CHILD], {
      cwd: REPO,
    });
    const out = JSON.parse(r.stdout) as { run: string; spawned: string; counts: Record<string, number> };
    expect(out.run).toBe("classified: spawn true: out of open files (EMFILE)");
    expect(out.spawned).toBe("spawn true: out of open files (EMFILE)");
    expect(out.counts.spawn).toBeGreaterThanOrEqual(2);
  });
});
