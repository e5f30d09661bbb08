/** sweepPartFiles: half-built disks of dead local processes go; live, foreign and finished files stay. */
import { spawnSync } from "node:child_process";
import { mkdtempSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { hostname, tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { PART_SUFFIX, partFileName, sweepPartFiles } from "../../../../src/provisioner/libvirt/lifecycle.js";

describe("sweepPartFiles", () => {
  const dirs: string[] = [];
  afterEach(() => {
    for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
  });

  it("names part files after this machine and process", () => {
    const n = partFileName("my.host", 1234);
    expect(n).toMatch(/^\.my_host\.1234\.[0-9a-f]{12}\.rfboot-part$/);
    expect(n.endsWith(PART_SUFFIX)).toBe(true);
  });

  it("removes leftovers of dead local processes and of the old naming, keeps the rest", async () => {
    const dir = mkdtempSync(join(tmpdir(), "rfbt-sweep-"));
    dirs.push(dir);
    const dead = spawnSync("true").pid!;
    const files = {
      deadLocal: partFileName(hostname(), dead),
      oldNaming: ".0123456789ab.rfboot-part",
      liveLocal: partFileName(hostname(), process.ppid),
      mine: partFileName(),
      otherMachine: partFileName("elsewhere", dead),
      disk: "vm1.qcow2",
    };
    for (const f of Object.values(files)) writeFileSync(join(dir, f), "x");
    const removed = await sweepPartFiles(dir);
    expect(removed.sort()).toEqual([join(dir, files.deadLocal), join(dir, files.oldNaming)].sort());
    expect(readdirSync(dir).sort()).toEqual(
      [files.liveLocal, files.mine, files.otherMachine, files.disk].sort(),
    );
  });

  it("a missing directory is not an error", async () => {
    expect(await sweepPartFiles("/nonexistent/rfbt-sweep")).toEqual([]);
  });
});
