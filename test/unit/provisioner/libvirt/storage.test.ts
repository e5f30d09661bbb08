/**
 * Host storage through a fake libvirt storage driver (state kept per pool, error texts as libvirt 9.0 prints
 * them): exact virsh arguments for pools, overlays, copies, removal, uploads; errors naming host, pool and
 * volume; the marker sweep; an upload whose verification does not match is deleted again.
 */
import { spawnSync } from "node:child_process";
import { copyFileSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { StorageError } from "../../../../src/common/errors.js";
import {
  HostStorage,
  markerName,
  parseMarker,
  parseVolList,
  type StorageSpec,
} from "../../../../src/provisioner/libvirt/storage.js";
import { makeVirshError, type VirshRunner } from "../../../../src/provisioner/libvirt/virsh.js";

const URI = "qemu+tcp://10.0.0.2/system";

interface Vol {
  bytes: Buffer;
  format: string;
}
interface Pool {
  target: string;
  active: boolean;
  vols: Map<string, Vol>;
}

/** fakeLibvirt is a storage driver in memory; `download` can corrupt what vol-download returns. */
function fakeLibvirt(opts: { upload?: boolean; corrupt?: boolean } = {}) {
  const pools = new Map<string, Pool>();
  const calls: string[][] = [];
  const xmls: string[] = [];
  const fail = (args: string[], text: string) => makeVirshError(URI, args, text, 1);
  const pool = (args: string[], name: string, needActive = true): Pool => {
    const p = pools.get(name);
    if (!p)
      throw fail(
        args,
        `error: failed to get pool '${name}'\nerror: Storage pool not found: no storage pool with matching name '${name}'\n`,
      );
    if (needActive && !p.active) throw fail(args, `error: pool '${name}' is not active\n`);
    return p;
  };
  const vol = (args: string[], p: Pool, name: string): Vol => {
    const v = p.vols.get(name);
    if (!v)
      throw fail(
        args,
        `error: failed to get vol '${name}'\nerror: Storage volume not found: no storage vol with matching path '${name}'\n`,
      );
    return v;
  };
  const create = (args: string[], p: Pool, name: string, v: Vol) => {
    if (p.vols.has(name))
      throw fail(
        args,
        `error: Failed to create vol ${name}\nerror: storage volume '${name}' exists already\n`,
      );
    p.vols.set(name, v);
  };
  const opt = (args: string[], flag: string) => args[args.indexOf(flag) + 1]!;
  const run: VirshRunner = async (uri, args) => {
    expect(uri).toBe(URI);
    calls.push(args);
    const [cmd] = args;
    const pos = args.filter((a, i) => !a.startsWith("--") && !args[i - 1]?.startsWith("--"));
    const out = (stdout = "") => ({ stdout, stderr: "" });
    switch (cmd) {
      case "pool-info": {
        const p = pool(args, args[1]!, false);
        return out(`Name:           ${args[1]}\nState:          ${p.active ? "running" : "inactive"}\n`);
      }
      case "pool-dumpxml":
        return out(
          `<pool type='dir'><target>\n    <path>${pool(args, args[1]!, false).target}</path></target></pool>`,
        );
      case "pool-define-as":
      case "pool-create-as": {
        const target = opt(args, "--target");
        const clash = [...pools.entries()].find(([, p]) => p.target === target);
        if (clash)
          throw fail(args, `error: operation failed: Storage source conflict with pool: '${clash[0]}'\n`);
        pools.set(args[1]!, { target, active: cmd === "pool-create-as", vols: new Map() });
        return out();
      }
      case "pool-build":
      case "pool-autostart":
        pool(args, args[1]!, false);
        return out();
      case "pool-start":
        pool(args, args[1]!, false).active = true;
        return out();
      case "pool-destroy":
        pools.delete(args[1]!);
        return out();
      case "pool-refresh":
        pool(args, args[1]!);
        return out();
      case "vol-path": {
        const p = pool(args, opt(args, "--pool"));
        vol(args, p, pos[1]!);
        return out(`${p.target}/${pos[1]}\n`);
      }
      case "vol-info": {
        const v = vol(args, pool(args, opt(args, "--pool")), pos[1]!);
        return out(
          `Name:           ${pos[1]}\nType:           file\nCapacity:       ${v.bytes.length} bytes\n`,
        );
      }
      case "vol-list":
        return out(
          ` Name   Path\n--------------\n` +
            [...pool(args, args[1]!).vols.keys()].map((n) => ` ${n}   /x/${n}\n`).join(""),
        );
      case "vol-create-as":
        create(args, pool(args, args[1]!), args[2]!, {
          bytes: Buffer.alloc(Number(args[3])),
          format: opt(args, "--format"),
        });
        return out();
      case "vol-create":
      case "vol-create-from": {
        const xml = readFileSync(args[2]!, "utf8");
        xmls.push(xml);
        const name = /<name>([^<]+)<\/name>/.exec(xml)![1]!;
        create(args, pool(args, args[1]!), name, { bytes: Buffer.from("made"), format: "qcow2" });
        return out();
      }
      case "vol-clone": {
        const p = pool(args, opt(args, "--pool"));
        create(args, p, pos[2]!, { ...vol(args, p, pos[1]!) });
        return out();
      }
      case "vol-delete": {
        const p = pool(args, opt(args, "--pool"));
        vol(args, p, pos[1]!);
        p.vols.delete(pos[1]!);
        return out();
      }
      case "vol-upload": {
        if (opts.upload === false)
          throw fail(
            args,
            `error: cannot upload to volume ${pos[1]}\nerror: this function is not supported by the connection driver: virStorageVolUpload\n`,
          );
        vol(args, pool(args, opt(args, "--pool")), pos[1]!).bytes = readFileSync(pos[2]!);
        return out();
      }
      case "vol-download": {
        const v = vol(args, pool(args, opt(args, "--pool")), pos[1]!);
        writeFileSync(pos[2]!, opts.corrupt ? Buffer.concat([v.bytes, Buffer.from("x")]) : v.bytes);
        return out();
      }
    }
    throw new Error(`unexpected virsh ${args.join(" ")}`);
  };
  return { run, calls, pools, xmls };
}

const SPEC: StorageSpec = {
  pool: "rfboot",
  storageDir: "/srv/disks",
  consoleLogDir: "/srv/console",
  images: "path",
  upload: false,
};

function storage(
  f: ReturnType<typeof fakeLibvirt>,
  spec: Partial<StorageSpec> = {},
  alive?: (p: number) => boolean,
) {
  return new HostStorage({
    host: { name: "far", uri: URI },
    spec: { ...SPEC, ...spec },
    run: f.run,
    machine: "here",
    ...(alive ? { alive } : {}),
  });
}

const markers = (f: ReturnType<typeof fakeLibvirt>) =>
  [...(f.pools.get("rfboot")?.vols.keys() ?? [])].filter((n) => n.startsWith("rfboot-part."));

describe("HostStorage pools", () => {
  it("defines, builds, starts and autostarts a missing pool and the console pool, once", async () => {
    const f = fakeLibvirt();
    const s = storage(f);
    await s.ready();
    await s.ready();
    expect(f.calls).toEqual([
      ["pool-info", "rfboot"],
      ["pool-define-as", "rfboot", "dir", "--target", "/srv/disks"],
      ["pool-build", "rfboot"],
      ["pool-start", "rfboot"],
      ["pool-autostart", "rfboot"],
      ["pool-info", "rfboot-console"],
      ["pool-define-as", "rfboot-console", "dir", "--target", "/srv/console"],
      ["pool-build", "rfboot-console"],
      ["pool-start", "rfboot-console"],
      ["pool-autostart", "rfboot-console"],
    ]);
  });
  it("an inactive pool is built and started; one console directory equal to storageDir is one pool", async () => {
    const f = fakeLibvirt();
    f.pools.set("rfboot", { target: "/srv/disks", active: false, vols: new Map() });
    await storage(f, { consoleLogDir: "/srv/disks/" }).ready();
    expect(f.calls).toEqual([
      ["pool-info", "rfboot"],
      ["pool-dumpxml", "rfboot"],
      ["pool-build", "rfboot"],
      ["pool-start", "rfboot"],
    ]);
  });
  it("a pool of that name with another target is an error naming host, pool and both directories", async () => {
    const f = fakeLibvirt();
    f.pools.set("rfboot", { target: "/elsewhere", active: true, vols: new Map() });
    const e = await storage(f)
      .ready()
      .catch((x: unknown) => x);
    expect(e).toBeInstanceOf(StorageError);
    expect((e as StorageError).message).toMatch(
      /storage pool rfboot on host far \(qemu\+tcp:\/\/10\.0\.0\.2\/system\) has target \/elsewhere, not \/srv\/disks/,
    );
  });
  it("a console directory another pool serves is served by that pool", async () => {
    const f = fakeLibvirt();
    f.pools.set("logs", { target: "/srv/console", active: false, vols: new Map() });
    await storage(f).ready();
    expect(f.calls.slice(5)).toEqual([
      ["pool-info", "rfboot-console"],
      ["pool-define-as", "rfboot-console", "dir", "--target", "/srv/console"],
      ["pool-info", "logs"],
      ["pool-dumpxml", "logs"],
      ["pool-build", "logs"],
      ["pool-start", "logs"],
    ]);
  });
  it("a storageDir another pool already serves: the volumes go to that pool", async () => {
    const f = fakeLibvirt();
    f.pools.set("default", { target: "/srv/disks", active: true, vols: new Map() });
    const s = storage(f);
    expect(
      await s.prepareDisk({
        kind: "overlay",
        base: "/img/b.qcow2",
        format: "qcow2",
        path: "/srv/disks/vm.qcow2",
      }),
    ).toBe(true);
    expect([...f.pools.get("default")!.vols.keys()]).toEqual(["vm.qcow2"]);
    expect(f.pools.has("rfboot")).toBe(false);
  });
  it("a pool that went inactive (libvirtd restarted) is started again and the call retried", async () => {
    const f = fakeLibvirt();
    const s = storage(f);
    await s.ready();
    f.pools.get("rfboot")!.active = false;
    f.calls.length = 0;
    expect(
      await s.removeDisk({ kind: "overlay", base: "/b", format: "qcow2", path: "/srv/disks/vm.qcow2" }),
    ).toBe(false);
    expect(f.calls.map((c) => c[0])).toEqual([
      "vol-delete",
      "pool-info",
      "pool-dumpxml",
      "pool-build",
      "pool-start",
      "pool-info",
      "pool-dumpxml",
      "vol-delete",
    ]);
  });
});

describe("HostStorage disks", () => {
  it("overlay on a plain path (images: path): vol-create with a backingStore and capacity 0, under a marker", async () => {
    const f = fakeLibvirt();
    const s = storage(f);
    await s.ready();
    f.calls.length = 0;
    const disk = {
      kind: "overlay",
      base: "/img/base.qcow2",
      format: "raw",
      path: "/srv/disks/vm1.qcow2",
    } as const;
    expect(await s.prepareDisk(disk)).toBe(true);
    expect(f.calls[0]).toEqual(["vol-path", "--pool", "rfboot", "vm1.qcow2"]);
    expect(f.calls[1]!.slice(0, 2)).toEqual(["vol-create-as", "rfboot"]);
    expect(parseMarker(f.calls[1]![2]!)).toEqual({ host: "here", pid: process.pid, target: "vm1.qcow2" });
    expect(f.calls[1]!.slice(3)).toEqual(["0", "--format", "raw"]);
    expect(f.calls[2]!.slice(0, 2)).toEqual(["vol-create", "rfboot"]);
    expect(f.xmls[0]).toBe(
      "<volume><name>vm1.qcow2</name><capacity>0</capacity><target><format type='qcow2'/></target>" +
        "<backingStore><path>/img/base.qcow2</path><format type='raw'/></backingStore></volume>",
    );
    expect(f.calls[3]).toEqual(["vol-delete", "--pool", "rfboot", f.calls[1]![2]]);
    expect(markers(f)).toEqual([]);
    // An existing volume is the VM's state: never made again.
    f.calls.length = 0;
    expect(await s.prepareDisk(disk)).toBe(false);
    expect(f.calls).toEqual([["vol-path", "--pool", "rfboot", "vm1.qcow2"]]);
  });
  it("overlay on a volume of the pool: vol-create-as with the base's capacity and --backing-vol", async () => {
    const f = fakeLibvirt();
    const s = storage(f, { images: "pool" });
    await s.ready();
    f.pools.get("rfboot")!.vols.set("base.qcow2", { bytes: Buffer.alloc(4096), format: "qcow2" });
    f.calls.length = 0;
    const disk = {
      kind: "overlay",
      base: "/srv/disks/base.qcow2",
      format: "qcow2",
      path: "/srv/disks/vm1.qcow2",
    } as const;
    expect(await s.prepareDisk(disk)).toBe(true);
    expect(f.calls.filter((c) => !c.some((a) => a.startsWith("rfboot-part.")))).toEqual([
      ["vol-path", "--pool", "rfboot", "vm1.qcow2"],
      ["vol-path", "--pool", "rfboot", "base.qcow2"],
      ["vol-info", "--bytes", "--pool", "rfboot", "base.qcow2"],
      [
        "vol-create-as",
        "rfboot",
        "vm1.qcow2",
        "4096",
        "--format",
        "qcow2",
        "--backing-vol",
        "base.qcow2",
        "--backing-vol-format",
        "qcow2",
      ],
    ]);
  });
  it("copy of a volume is vol-clone; copy of a path goes through a transient pool over its directory", async () => {
    const f = fakeLibvirt();
    const s = storage(f);
    await s.ready();
    f.pools.get("rfboot")!.vols.set("base.img", { bytes: Buffer.alloc(10), format: "raw" });
    f.calls.length = 0;
    await s.prepareDisk({
      kind: "copy",
      base: "/srv/disks/base.img",
      format: "raw",
      path: "/srv/disks/a.img",
    });
    expect(f.calls).toContainEqual(["vol-clone", "--pool", "rfboot", "base.img", "a.img"]);
    f.calls.length = 0;
    await s
      .prepareDisk({ kind: "copy", base: "/img/b.img", format: "raw", path: "/srv/disks/b.img" })
      .catch(() => undefined);
    const create = f.calls.find((c) => c[0] === "pool-create-as")!;
    expect(create.slice(2)).toEqual(["dir", "--target", "/img"]);
    const src = create[1]!;
    expect(src).toMatch(/^rfboot-src-[0-9a-f]{8}$/);
    // The transient pool is gone afterwards, whatever happened.
    expect(f.calls).toContainEqual(["pool-destroy", src]);
    expect(f.pools.has(src)).toBe(false);
  });
  it("a copy from a path really reads the base through vol-create-from with its capacity", async () => {
    const f = fakeLibvirt();
    const s = storage(f);
    await s.ready();
    const real = f.run;
    // The transient pool finds the base the way libvirt's refresh would.
    const run: VirshRunner = async (uri, args, o) => {
      const r = await real(uri, args, o);
      if (args[0] === "pool-create-as")
        f.pools.get(args[1]!)!.vols.set("b.img", { bytes: Buffer.alloc(7), format: "raw" });
      return r;
    };
    const s2 = new HostStorage({ host: { name: "far", uri: URI }, spec: SPEC, run, machine: "here" });
    await s2.ready();
    f.calls.length = 0;
    expect(
      await s2.prepareDisk({ kind: "copy", base: "/img/b.img", format: "raw", path: "/srv/disks/b.img" }),
    ).toBe(true);
    const from = f.calls.find((c) => c[0] === "vol-create-from")!;
    expect(from[1]).toBe("rfboot");
    expect(from.slice(3)).toEqual([
      "--inputpool",
      f.calls.find((c) => c[0] === "pool-create-as")![1],
      "b.img",
    ]);
    expect(f.xmls.at(-1)).toBe(
      "<volume><name>b.img</name><capacity>7</capacity><target><format type='raw'/></target></volume>",
    );
    await s.dispose();
  });
  it("a missing base volume is a StorageError naming host, pool and volume; nothing is left behind", async () => {
    const f = fakeLibvirt();
    const s = storage(f, { images: "pool" });
    const e = await s
      .prepareDisk({
        kind: "overlay",
        base: "/srv/disks/gone.qcow2",
        format: "qcow2",
        path: "/srv/disks/vm.qcow2",
      })
      .catch((x: unknown) => x);
    expect(e).toBeInstanceOf(StorageError);
    expect(e).toMatchObject({ host: "far", pool: "rfboot", volume: "gone.qcow2", kind: "missing" });
    expect([...f.pools.get("rfboot")!.vols.keys()]).toEqual([]);
  });
  it("a disk outside the pool's directory is refused", async () => {
    const s = storage(fakeLibvirt());
    await expect(
      s.prepareDisk({ kind: "overlay", base: "/b", format: "qcow2", path: "/other/vm.qcow2" }),
    ).rejects.toThrow(/disk \/other\/vm\.qcow2 is not in pool rfboot \(target \/srv\/disks\) on host far/);
  });
  it("removal is vol-delete --pool; a missing volume is no error", async () => {
    const f = fakeLibvirt();
    const s = storage(f);
    await s.ready();
    f.pools.get("rfboot")!.vols.set("vm.qcow2", { bytes: Buffer.alloc(1), format: "qcow2" });
    f.calls.length = 0;
    const disk = { kind: "overlay", base: "/b", format: "qcow2", path: "/srv/disks/vm.qcow2" } as const;
    expect(await s.removeDisk(disk)).toBe(true);
    expect(await s.removeDisk(disk)).toBe(false);
    expect(f.calls).toEqual([
      ["vol-delete", "--pool", "rfboot", "vm.qcow2"],
      ["vol-delete", "--pool", "rfboot", "vm.qcow2"],
    ]);
  });
});

describe("HostStorage sweep", () => {
  it("deletes the targets and markers of dead local builders only", async () => {
    const f = fakeLibvirt();
    const s = storage(f, {}, (pid) => pid === 42);
    await s.ready();
    const dead = spawnSync("true").pid!;
    const vols = f.pools.get("rfboot")!.vols;
    const put = (n: string) => vols.set(n, { bytes: Buffer.alloc(1), format: "qcow2" });
    const names = {
      deadTarget: markerName("half.qcow2", "here", dead),
      liveTarget: markerName("busy.qcow2", "here", 42),
      deadOnBusy: markerName("busy.qcow2", "here", dead),
      mine: markerName("mine.qcow2", "here"),
      otherMachine: markerName("theirs.qcow2", "there", dead),
    };
    for (const n of [
      ...Object.values(names),
      "half.qcow2",
      "busy.qcow2",
      "mine.qcow2",
      "theirs.qcow2",
      "vm.qcow2",
    ])
      put(n);
    expect(await s.sweep()).toEqual(["half.qcow2"]);
    expect([...vols.keys()].sort()).toEqual(
      [
        names.liveTarget,
        names.mine,
        names.otherMachine,
        "busy.qcow2",
        "mine.qcow2",
        "theirs.qcow2",
        "vm.qcow2",
      ].sort(),
    );
  });
  it("reads vol-list and marker names", () => {
    expect(parseVolList(" Name   Path\n------------\n a.qcow2  /p/a.qcow2\n b  /p/b\n\n")).toEqual([
      "a.qcow2",
      "b",
    ]);
    expect(parseMarker("rfboot-part.h_1.12.0123456789ab.vm.1.qcow2")).toEqual({
      host: "h_1",
      pid: 12,
      target: "vm.1.qcow2",
    });
    expect(parseMarker("vm.qcow2")).toBeUndefined();
    expect(markerName("t", "a.b", 7)).toMatch(/^rfboot-part\.a_b\.7\.[0-9a-f]{12}\.t$/);
  });
});

describe("HostStorage images", () => {
  const dir = mkdtempSync(join(tmpdir(), "rfbtv-up-"));
  const kernel = join(dir, "vmlinuz");
  writeFileSync(kernel, "KERNEL-BYTES");
  afterAll(() => rmSync(dir, { recursive: true, force: true }));
  const a = { path: kernel, role: "kernel" } as const;

  it("images: path finds the configured path as is, without a call", async () => {
    const f = fakeLibvirt();
    expect(await storage(f).locate(a)).toBe(kernel);
    expect(f.calls).toEqual([]);
  });
  it("images: pool finds the volume named after the file, refreshing the pool once on a miss", async () => {
    const f = fakeLibvirt();
    const s = storage(f, { images: "pool" });
    await s.ready();
    f.pools.get("rfboot")!.vols.set("vmlinuz", { bytes: Buffer.from("K"), format: "raw" });
    f.calls.length = 0;
    expect(await s.locate(a)).toBe("/srv/disks/vmlinuz");
    expect(f.calls).toEqual([["vol-path", "--pool", "rfboot", "vmlinuz"]]);
  });
  it("missing without upload: an error naming host, pool, volume and both fixes", async () => {
    const f = fakeLibvirt();
    const e = await storage(f, { images: "pool" })
      .locate(a)
      .catch((x: unknown) => x);
    expect(e).toMatchObject({
      name: "StorageError",
      kind: "missing",
      host: "far",
      pool: "rfboot",
      volume: "vmlinuz",
    });
    const m = (e as Error).message;
    expect(m).toContain(
      `kernel ${kernel}: host far (qemu+tcp://10.0.0.2/system) has no volume vmlinuz in pool rfboot`,
    );
    expect(m).toContain(`virsh -c qemu+tcp://10.0.0.2/system vol-upload --pool rfboot vmlinuz ${kernel}`);
    expect(m).toContain("upload: true");
  });
  it("missing with upload: created with the file's size and format, uploaded, verified, once for concurrent asks", async () => {
    const f = fakeLibvirt();
    const s = storage(f, { images: "pool", upload: true });
    const [p1, p2] = await Promise.all([s.locate(a), s.locate(a)]);
    expect(p1).toBe("/srv/disks/vmlinuz");
    expect(p2).toBe(p1);
    const real = f.calls.filter(
      (c) => !c.some((x) => x.startsWith("rfboot-part.")) && !c[0]!.startsWith("pool-"),
    );
    expect(real[0]).toEqual(["vol-path", "--pool", "rfboot", "vmlinuz"]);
    expect(real).toContainEqual(["vol-create-as", "rfboot", "vmlinuz", "12", "--format", "raw"]);
    expect(real).toContainEqual(["vol-upload", "--pool", "rfboot", "vmlinuz", kernel]);
    expect(f.calls.filter((c) => c[0] === "vol-upload")).toHaveLength(1);
    const dl = real.find((c) => c[0] === "vol-download")!;
    expect(dl.slice(0, 4)).toEqual(["vol-download", "--pool", "rfboot", "vmlinuz"]);
    expect(f.pools.get("rfboot")!.vols.get("vmlinuz")!.bytes.toString()).toBe("KERNEL-BYTES");
    expect(markers(f)).toEqual([]);
  });
  it("an upload whose download does not match is deleted, with both sizes and digests in the error", async () => {
    const f = fakeLibvirt({ corrupt: true });
    const e = await storage(f, { images: "pool", upload: true })
      .locate(a)
      .catch((x: unknown) => x);
    expect(e).toMatchObject({ name: "StorageError", kind: "upload", volume: "vmlinuz" });
    expect((e as Error).message).toMatch(
      /verification mismatch: the host holds 13 bytes .* the local file is 12 bytes/,
    );
    expect(f.pools.get("rfboot")!.vols.has("vmlinuz")).toBe(false);
    expect(markers(f)).toEqual([]);
  });
  it("a driver without vol-upload (the test driver): the volume is deleted and the error says so", async () => {
    const f = fakeLibvirt({ upload: false });
    const e = await storage(f, { images: "pool", upload: true })
      .locate(a)
      .catch((x: unknown) => x);
    expect(e).toMatchObject({ name: "StorageError", kind: "upload" });
    expect((e as Error).message).toMatch(/cannot upload or download volumes; put the volume there yourself/);
    expect(f.pools.get("rfboot")!.vols.has("vmlinuz")).toBe(false);
  });
  it("inspect reports found, missing and will-upload without creating anything", async () => {
    const f = fakeLibvirt();
    const copy = join(dir, "initrd.gz");
    copyFileSync(kernel, copy);
    f.pools.set("rfboot", {
      target: "/srv/disks",
      active: true,
      vols: new Map([["vmlinuz", { bytes: Buffer.alloc(1), format: "raw" }]]),
    });
    const r = await storage(f, { images: "pool" }).inspect([a, { path: copy, role: "initrd" }]);
    expect(r.poolState).toBe("running");
    expect(r.artifacts.map((x) => [x.role, x.status, x.hostPath])).toEqual([
      ["kernel", "found", "/srv/disks/vmlinuz"],
      ["initrd", "missing", undefined],
    ]);
    expect(r.problems).toHaveLength(1);
    expect(r.problems[0]).toContain("has no volume initrd.gz in pool rfboot");
    const up = await storage(f, { images: "pool", upload: true }).inspect([{ path: copy, role: "initrd" }]);
    expect(up.artifacts[0]!.status).toBe("will-upload");
    expect(up.problems).toEqual([]);
    expect(f.calls.some((c) => /^(vol-create|vol-upload|pool-define)/.test(c[0]!))).toBe(false);
  });
});
