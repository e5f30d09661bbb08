import { spawn } from "node:child_process";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { processAlive, processState } from "../../../src/common/proc.js";

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe("process liveness", () => {
  const dir = mkdtempSync(join(tmpdir(), "rfboot-proc-"));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it("reads the state after the last parenthesis of a command name with spaces and parentheses", () => {
    mkdirSync(join(dir, "42"));
    writeFileSync(join(dir, "42", "stat"), "42 (a b) (c)) Z 1 42 42 0 -1 4194560\n");
    expect(processState(42, dir)).toBe("Z");
    expect(processState(43, dir)).toBeUndefined();
  });

  it("counts this process alive and a pid that does not exist dead", () => {
    expect(processAlive(process.pid)).toBe(true);
    expect(processAlive(0)).toBe(false);
    expect(processAlive(-1)).toBe(false);
    expect(processAlive(2 ** 22 + 1)).toBe(false);
  });

  it("counts a zombie dead, although kill(pid, 0) still succeeds on it", async () => {
    // The exec'd sleep never waits for its child, which exits after 50 ms and stays a zombie.
    const parent = spawn("sh", ["-c", "sleep 0.05 & echo $!; exec sleep 5"], {
      stdio: ["ignore", "pipe", "ignore"],
    });
    try {
      const pid = Number(
        await new Promise<string>((res) => parent.stdout.once("data", (d: Buffer) => res(d.toString()))),
      );
      await sleep(300);
      expect(processState(pid)).toBe("Z");
      expect(() => process.kill(pid, 0)).not.toThrow();
      expect(processAlive(pid)).toBe(false);
      expect(processAlive(parent.pid ?? -1)).toBe(true);
    } finally {
      parent.kill("SIGKILL");
    }
  });
});
