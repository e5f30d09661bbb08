/**
 * Disk preparation: an overlay is made by qemu-img with exact arguments under a part-file name, an existing
 * disk is never overwritten; sweepPartFiles: half-built disks of dead local processes go; live, foreign and
 * finished files stay.
 */
import { spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync } from "node:fs";
import { hostname, tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, afterEach, describe, expect, it } from "vitest";
import {
  PART_SUFFIX,
  diskPlanFrom,
  partFileName,
  prepareDisk,
  sweepPartFiles,
  type ToolRunner,
} from "../../../../src/provisioner/libvirt/disks.js";

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

describe("prepareDisk", () => {
  const dir = mkdtempSync(join(tmpdir(), "rfbtv-disk-"));
  const base = join(dir, "base.qcow2");
  writeFileSync(base, "BASE");
  afterAll(() => rmSync(dir, { recursive: true, force: true }));
  const fakeImg = () => {
    const calls: string[][] = [];
    const tools: ToolRunner = async (cmd, args) => {
      calls.push([cmd, ...args]);
      writeFileSync(args.at(-1)!, "OVERLAY");
      return { stdout: "", stderr: "" };
    };
    return { tools, calls };
  };
  it("creates an overlay with qemu-img -b BASE -F FMT, mode 0640, under a temp name then renamed", async () => {
    const img = fakeImg();
    const path = join(dir, "vm1.qcow2");
    const created = await prepareDisk({ kind: "overlay", base, format: "qcow2", path }, img.tools);
    expect(created).toBe(true);
    expect(img.calls).toHaveLength(1);
    const c = img.calls[0]!;
    expect(c.slice(0, 8)).toEqual(["qemu-img", "create", "-q", "-f", "qcow2", "-b", base, "-F"]);
    expect(c[8]).toBe("qcow2");
    expect(c[9]).not.toBe(path);
    expect(readFileSync(path, "utf8")).toBe("OVERLAY");
    expect(statSync(path).mode & 0o777).toBe(0o640);
  });
  it("never overwrites an existing overlay (it is the VM's state)", async () => {
    const img = fakeImg();
    const path = join(dir, "vm2.qcow2");
    writeFileSync(path, "STATE");
    expect(await prepareDisk({ kind: "overlay", base, format: "qcow2", path }, img.tools)).toBe(false);
    expect(img.calls).toHaveLength(0);
    expect(readFileSync(path, "utf8")).toBe("STATE");
  });
  it("copy plan copies the base", async () => {
    const path = join(dir, "vm3.img");
    expect(await prepareDisk({ kind: "copy", base, format: "raw", path, mode: 0o600 })).toBe(true);
    expect(readFileSync(path, "utf8")).toBe("BASE");
    expect(statSync(path).mode & 0o777).toBe(0o600);
  });
  it("missing base is a clear error", async () => {
    await expect(
      prepareDisk({
        kind: "overlay",
        base: join(dir, "nope"),
        format: "qcow2",
        path: join(dir, "x"),
      }),
    ).rejects.toThrow(/base image .*nope for .*x does not exist/);
  });
  it("a failing qemu-img leaves neither the disk nor a part file", async () => {
    const path = join(dir, "vm5.qcow2");
    const tools: ToolRunner = async (_cmd, args) => {
      writeFileSync(args.at(-1)!, "HALF");
      throw new Error("qemu-img: disk full");
    };
    await expect(prepareDisk({ kind: "overlay", base, format: "qcow2", path }, tools)).rejects.toThrow(
      /disk full/,
    );
    expect(readdirSync(dir).filter((n) => n.endsWith(PART_SUFFIX) || n === "vm5.qcow2")).toEqual([]);
  });
  it("no plan, or kind none, prepares nothing", async () => {
    const img = fakeImg();
    expect(await prepareDisk(undefined, img.tools)).toBe(false);
    expect(await prepareDisk({ kind: "none" }, img.tools)).toBe(false);
    expect(img.calls).toHaveLength(0);
  });
});

describe("diskPlanFrom", () => {
  it("renames the config's baseFormat to qemu-img's -F format; kind none drops the paths", () => {
    expect(diskPlanFrom({ kind: "overlay", base: "/b.qcow2", baseFormat: "raw", path: "/vm.qcow2" })).toEqual(
      {
        kind: "overlay",
        base: "/b.qcow2",
        format: "raw",
        path: "/vm.qcow2",
      },
    );
    expect(diskPlanFrom({ kind: "none", base: "/b.qcow2", baseFormat: "qcow2", path: "/b.qcow2" })).toEqual({
      kind: "none",
    });
  });
});
