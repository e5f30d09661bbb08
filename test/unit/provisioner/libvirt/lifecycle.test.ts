import { existsSync, readFileSync, statSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { DomainManager } from "../../../../src/provisioner/libvirt/lifecycle.js";
import type { DiskPlan, HostStorage } from "../../../../src/provisioner/libvirt/storage.js";
import { makeVirshError, type VirshRunner } from "../../../../src/provisioner/libvirt/virsh.js";

const URI = "test+unix:///default";
const UUID = "11111111-2222-3333-4444-555555555555";
const XML = `<domain type='test'><name>vm1</name><uuid>${UUID}</uuid></domain>`;

/** Real stderr texts (see virsh.test.ts). */
const MISSING = "error: failed to get domain 'vm1'\n";
const ACTIVE = "error: Domain is already active\n";
const NOT_RUNNING =
  "error: Failed to destroy domain 'vm1'\nerror: Requested operation is not valid: domain is not running\n";
const EXISTS =
  "error: Failed to define domain from /tmp/x.xml\nerror: operation failed: domain 'vm1' already exists with uuid 99999999-2222-3333-4444-555555555555\n";

type Reply = string | { err: string } | ((args: string[]) => string);

/** fakeVirsh answers by the first argument(s); records every call with the XML of `define` read at call time. */
function fakeVirsh(script: Record<string, Reply | Reply[]>) {
  const calls: string[][] = [];
  const defined: string[] = [];
  const run: VirshRunner = async (uri, args) => {
    expect(uri).toBe(URI);
    calls.push(args);
    if (args[0] === "define") {
      const f = args[1]!;
      defined.push(readFileSync(f, "utf8"));
      expect(statSync(f).mode & 0o777).toBe(0o600);
    }
    const key = [args.slice(0, 2).join(" "), args[0]!].find((k) => k in script);
    if (!key) throw new Error(`unexpected virsh ${args.join(" ")}`);
    let r = script[key]!;
    if (Array.isArray(r)) r = r.length > 1 ? r.shift()! : r[0]!;
    if (typeof r === "function") return { stdout: r(args), stderr: "" };
    if (typeof r === "object") throw makeVirshError(uri, args, r.err, 1);
    return { stdout: r, stderr: "" };
  };
  return { run, calls, defined };
}

/** fakeStorage stands for the host's pool: a set of volume paths, with the calls recorded. */
function fakeStorage(existing: string[] = []) {
  const volumes = new Set(existing);
  const calls: string[] = [];
  const storage = {
    prepareDisk: async (d: DiskPlan) => {
      if (d.kind === "none") return false;
      calls.push(`prepare ${d.path}`);
      if (volumes.has(d.path)) return false;
      volumes.add(d.path);
      return true;
    },
    removeDisk: async (d: DiskPlan) => {
      if (d.kind === "none") return false;
      calls.push(`remove ${d.path}`);
      return volumes.delete(d.path);
    },
  };
  return { storage: storage as unknown as HostStorage, volumes, calls };
}

function mgr(run: VirshRunner, storage?: HostStorage) {
  return new DomainManager({
    host: { name: "h1", uri: URI },
    run,
    ...(storage ? { storage } : {}),
    pollMs: 1,
    shutdownTimeoutMs: 50,
  });
}

describe("DomainManager.ensureRunning", () => {
  it("new domain: domstate -> define FILE -> start = defined+started", async () => {
    const f = fakeVirsh({
      domstate: { err: MISSING },
      define: "Domain 'vm1' defined\n",
      start: "Domain 'vm1' started\n",
    });
    const r = await mgr(f.run).ensureRunning({ name: "vm1", uuid: UUID, xml: XML });
    expect(r.action).toBe("defined+started");
    expect(r.host).toBe("h1");
    expect(f.calls.map((c) => c[0])).toEqual(["domstate", "define", "start"]);
    expect(f.calls[0]).toEqual(["domstate", "vm1", "--reason"]);
    expect(f.calls[2]).toEqual(["start", "vm1"]);
    expect(f.defined).toEqual([XML]);
    expect(existsSync(f.calls[1]![1]!)).toBe(false); // temp XML removed
    expect(r.timings.totalMs).toBeGreaterThanOrEqual(0);
  });
  it("running domain is adopted, never restarted (XML upserted)", async () => {
    const f = fakeVirsh({ domstate: "running (booted)\n", define: "ok\n" });
    const r = await mgr(f.run).ensureRunning({ name: "vm1", uuid: UUID, xml: XML });
    expect(r.action).toBe("adopted");
    expect(f.calls.map((c) => c[0])).toEqual(["domstate", "define"]);
  });
  it("redefine: false adopts with one call", async () => {
    const f = fakeVirsh({ domstate: "running (booted)\n" });
    const r = await mgr(f.run).ensureRunning({ name: "vm1", uuid: UUID, xml: XML, redefine: false });
    expect(r.action).toBe("adopted");
    expect(f.calls).toEqual([["domstate", "vm1", "--reason"]]);
  });
  it("paused domain is resumed", async () => {
    const f = fakeVirsh({ domstate: "paused (user)\n", define: "ok\n", resume: "ok\n" });
    const r = await mgr(f.run).ensureRunning({ name: "vm1", uuid: UUID, xml: XML });
    expect(r.action).toBe("resumed");
    expect(f.calls.at(-1)).toEqual(["resume", "vm1"]);
  });
  it("managed-saved domain without redefine is started and reported restored", async () => {
    const f = fakeVirsh({ domstate: "shut off (saved)\n", start: "ok\n" });
    const r = await mgr(f.run).ensureRunning({ name: "vm1", uuid: UUID, xml: XML, redefine: false });
    expect(r).toMatchObject({ action: "started", restored: true });
    expect(f.calls.map((c) => c[0])).toEqual(["domstate", "start"]);
  });
  it("redefining a managed-saved domain removes the stale image first: it boots the new definition", async () => {
    const f = fakeVirsh({
      domstate: "shut off (saved)\n",
      "managedsave-remove": "ok\n",
      define: "ok\n",
      start: "ok\n",
    });
    const r = await mgr(f.run).ensureRunning({ name: "vm1", uuid: UUID, xml: XML });
    expect(r).toMatchObject({ action: "started", restored: false });
    expect(f.calls).toEqual([
      ["domstate", "vm1", "--reason"],
      ["managedsave-remove", "vm1"],
      ["define", f.calls[2]![1]!],
      ["start", "vm1"],
    ]);
  });
  it("a shut-off domain whose dominfo shows a managed save loses it before a redefine too", async () => {
    const f = fakeVirsh({
      domstate: "shut off (unknown)\n",
      dominfo: "Managed save:   yes\n",
      "managedsave-remove": "ok\n",
      define: "ok\n",
      start: "ok\n",
    });
    const r = await mgr(f.run).ensureRunning({ name: "vm1", uuid: UUID, xml: XML });
    expect(r.restored).toBe(false);
    expect(f.calls.map((c) => c[0])).toEqual([
      "domstate",
      "dominfo",
      "managedsave-remove",
      "define",
      "start",
    ]);
  });
  it("shut-off domain without save image: started, not restored (dominfo checked)", async () => {
    const f = fakeVirsh({
      domstate: "shut off (destroyed)\n",
      define: "ok\n",
      dominfo: "Managed save:   no\n",
      start: "ok\n",
    });
    const r = await mgr(f.run).ensureRunning({ name: "vm1", uuid: UUID, xml: XML });
    expect(r).toMatchObject({ action: "started", restored: false });
    expect(f.calls.map((c) => c[0])).toEqual(["domstate", "dominfo", "define", "start"]);
  });
  it("start racing with another starter: already running = adopted", async () => {
    const f = fakeVirsh({
      domstate: "shut off (shutdown)\n",
      define: "ok\n",
      dominfo: "",
      start: { err: ACTIVE },
    });
    expect((await mgr(f.run).ensureRunning({ name: "vm1", uuid: UUID, xml: XML })).action).toBe("adopted");
  });
  it("failed start of a new domain rolls back: undefine what this attempt defined", async () => {
    const f = fakeVirsh({
      domstate: { err: MISSING },
      define: "ok\n",
      start: {
        err: "error: Failed to start domain 'vm1'\nerror: internal error: qemu unexpectedly closed the monitor\n",
      },
      destroy: { err: NOT_RUNNING },
      undefine: "ok\n",
    });
    const e = await mgr(f.run)
      .ensureRunning({ name: "vm1", uuid: UUID, xml: XML })
      .catch((x: unknown) => x);
    expect((e as Error).message).toContain("qemu unexpectedly closed the monitor");
    expect(f.calls.map((c) => c.join(" "))).toEqual([
      "domstate vm1 --reason",
      expect.stringMatching(/^define /),
      "start vm1",
      "destroy vm1",
      "undefine vm1 --managed-save",
    ]);
  });
  it("failed start of an existing domain does not undefine it", async () => {
    const f = fakeVirsh({
      domstate: "shut off (shutdown)\n",
      define: "ok\n",
      dominfo: "",
      start: { err: "error: boom\n" },
    });
    await expect(mgr(f.run).ensureRunning({ name: "vm1", uuid: UUID, xml: XML })).rejects.toThrow(/boom/);
    expect(f.calls.some((c) => c[0] === "undefine")).toBe(false);
  });
  it("define clash (same name, other uuid) throws already-exists and touches nothing", async () => {
    const f = fakeVirsh({ domstate: "shut off (shutdown)\n", dominfo: "", define: { err: EXISTS } });
    const e = await mgr(f.run)
      .ensureRunning({ name: "vm1", uuid: UUID, xml: XML })
      .catch((x: unknown) => x);
    expect((e as { kind: string }).kind).toBe("already-exists");
    expect(f.calls.map((c) => c[0])).toEqual(["domstate", "dominfo", "define"]);
  });
});

describe("DomainManager.ensureRunning progress (record timestamps and `starting`)", () => {
  /** progress runs ensureRunning with both callbacks, `start`/`resume` taking `ms`, and logs what happened. */
  async function progress(script: Record<string, Reply | Reply[]>, redefine?: boolean, ms = 15) {
    const f = fakeVirsh(script);
    const seen: string[] = [];
    const run: VirshRunner = async (uri, args, opts) => {
      if (args[0] === "start" || args[0] === "resume") await new Promise((r) => setTimeout(r, ms));
      seen.push(`virsh ${args[0]!}`);
      return f.run(uri, args, opts);
    };
    let definedCb: Date | undefined;
    const r = await mgr(run).ensureRunning({
      name: "vm1",
      uuid: UUID,
      xml: XML,
      ...(redefine === undefined ? {} : { redefine }),
      onStarting: () => seen.push("onStarting"),
      onDefined: (at) => {
        definedCb = at;
        seen.push("onDefined");
      },
    });
    return { r, seen, definedCb };
  }

  it("new domain: onStarting before define, onDefined after it; definedAt < startedAt, both real moments", async () => {
    const before = Date.now();
    const { r, seen, definedCb } = await progress({
      domstate: { err: MISSING },
      define: "ok\n",
      start: "ok\n",
    });
    const after = Date.now();
    expect(seen).toEqual(["virsh domstate", "onStarting", "virsh define", "onDefined", "virsh start"]);
    expect(r.action).toBe("defined+started");
    expect(r.definedAt).toBeInstanceOf(Date);
    expect(r.startedAt).toBeInstanceOf(Date);
    expect(definedCb).toBe(r.definedAt);
    // The start took >= 15 ms after the define completed: the two moments are distinct and ordered.
    expect(r.startedAt!.getTime() - r.definedAt!.getTime()).toBeGreaterThanOrEqual(10);
    expect(r.definedAt!.getTime()).toBeGreaterThanOrEqual(before);
    expect(r.startedAt!.getTime()).toBeLessThanOrEqual(after);
  });
  it("running domain (adopted) never calls onStarting and has no startedAt", async () => {
    const { r, seen } = await progress({ domstate: "running (booted)\n", define: "ok\n" });
    expect(r.action).toBe("adopted");
    // Redefined (config change) without starting: definedAt, but no `starting` and no startedAt.
    expect(seen).toEqual(["virsh domstate", "virsh define", "onDefined"]);
    expect(r.definedAt).toBeInstanceOf(Date);
    expect(r.startedAt).toBeUndefined();
  });
  it("running domain with redefine: false: no callback, no timestamps", async () => {
    const { r, seen } = await progress({ domstate: "running (booted)\n" }, false);
    expect(r.action).toBe("adopted");
    expect(seen).toEqual(["virsh domstate"]);
    expect(r.definedAt).toBeUndefined();
    expect(r.startedAt).toBeUndefined();
  });
  it("shut-off domain with redefine: false is started without define: startedAt only", async () => {
    const { r, seen } = await progress(
      { domstate: "shut off (destroyed)\n", dominfo: "Managed save:   no\n", start: "ok\n" },
      false,
    );
    expect(r.action).toBe("started");
    expect(seen).toEqual(["virsh domstate", "onStarting", "virsh dominfo", "virsh start"]);
    expect(r.definedAt).toBeUndefined();
    expect(r.startedAt).toBeInstanceOf(Date);
  });
  it("paused domain: onStarting before resume; startedAt is when the resume completed", async () => {
    const { r, seen } = await progress({ domstate: "paused (user)\n", resume: "ok\n" }, false);
    expect(r.action).toBe("resumed");
    expect(seen).toEqual(["virsh domstate", "onStarting", "virsh resume"]);
    expect(r.startedAt).toBeInstanceOf(Date);
  });
  it("a throwing callback does not fail the attempt", async () => {
    const f = fakeVirsh({ domstate: { err: MISSING }, define: "ok\n", start: "ok\n" });
    const r = await mgr(f.run).ensureRunning({
      name: "vm1",
      uuid: UUID,
      xml: XML,
      onStarting: () => {
        throw new Error("record write failed");
      },
      onDefined: () => {
        throw new Error("record write failed");
      },
    });
    expect(r.action).toBe("defined+started");
    expect(f.calls.map((c) => c[0])).toEqual(["domstate", "define", "start"]);
  });
});

describe("DomainManager disk rollback", () => {
  const base = "/srv/disks/base.qcow2";
  it("rollback deletes the overlay volume this attempt created, not one that existed", async () => {
    const path = "/srv/disks/vm4.qcow2";
    const disk = { kind: "overlay", base, format: "qcow2", path } as const;
    const f = fakeVirsh({ domstate: { err: MISSING }, define: { err: "error: XML error: bad\n" } });
    const st = fakeStorage();
    await expect(
      mgr(f.run, st.storage).ensureRunning({ name: "vm1", uuid: UUID, xml: XML, disk }),
    ).rejects.toThrow(/XML error/);
    expect(st.calls).toEqual([`prepare ${path}`, `remove ${path}`]);
    expect(st.volumes.has(path)).toBe(false);
    const kept = fakeStorage([path]);
    await expect(
      mgr(f.run, kept.storage).ensureRunning({ name: "vm1", uuid: UUID, xml: XML, disk }),
    ).rejects.toThrow(/XML error/);
    expect(kept.calls).toEqual([`prepare ${path}`]);
    expect(kept.volumes.has(path)).toBe(true);
  });
  it("a disk to prepare on a host without storage is a clear error", async () => {
    const f = fakeVirsh({ domstate: { err: MISSING } });
    await expect(
      mgr(f.run).ensureRunning({
        name: "vm1",
        uuid: UUID,
        xml: XML,
        disk: { kind: "overlay", base, format: "qcow2", path: "/srv/disks/vm1.qcow2" },
      }),
    ).rejects.toThrow(/host h1 has no storage pool configured for VM disks/);
  });
});

describe("DomainManager.leave / remove", () => {
  it("keep does nothing", async () => {
    const f = fakeVirsh({});
    expect(await mgr(f.run).leave("vm1", "keep")).toBe("kept");
    expect(f.calls).toEqual([]);
  });
  it("suspend = managedsave", async () => {
    const f = fakeVirsh({ domstate: "running (booted)\n", managedsave: "ok\n" });
    expect(await mgr(f.run).leave("vm1", "suspend")).toBe("saved");
    expect(f.calls.at(-1)).toEqual(["managedsave", "vm1"]);
  });
  it("shutdown waits for shut off", async () => {
    const f = fakeVirsh({
      domstate: ["running (booted)\n", "running (booted)\n", "shut off (shutdown)\n"],
      shutdown: "ok\n",
    });
    expect(await mgr(f.run).leave("vm1", "shutdown")).toBe("shutdown");
    expect(f.calls.some((c) => c[0] === "destroy")).toBe(false);
  });
  it("shutdown falls back to destroy after the timeout", async () => {
    const f = fakeVirsh({ domstate: "running (booted)\n", shutdown: "ok\n", destroy: "ok\n" });
    expect(await mgr(f.run).leave("vm1", "shutdown")).toBe("destroyed");
    expect(f.calls.at(-1)).toEqual(["destroy", "vm1"]);
  });
  it("destroy of a missing or stopped domain is not an error", async () => {
    expect(await mgr(fakeVirsh({ domstate: { err: MISSING } }).run).leave("vm1", "destroy")).toBe("missing");
    expect(await mgr(fakeVirsh({ domstate: "shut off (destroyed)\n" }).run).leave("vm1", "destroy")).toBe(
      "not-running",
    );
  });
  it("remove = destroy + undefine --managed-save + delete the VM's disk, tolerating a stopped domain", async () => {
    const path = "/srv/disks/vm1.qcow2";
    const st = fakeStorage([path]);
    const f = fakeVirsh({ destroy: { err: NOT_RUNNING }, undefine: "ok\n" });
    expect(
      await mgr(f.run, st.storage).remove("vm1", { kind: "overlay", base: "/b", format: "qcow2", path }),
    ).toBe(true);
    expect(f.calls).toEqual([
      ["destroy", "vm1"],
      ["undefine", "vm1", "--managed-save"],
    ]);
    expect(st.volumes.has(path)).toBe(false);
    expect(await mgr(fakeVirsh({ destroy: { err: MISSING } }).run).remove("vm1")).toBe(false);
  });
});

describe("DomainManager.list", () => {
  it("list() joins three calls", async () => {
    const f = fakeVirsh({
      list: (a) =>
        a.includes("--uuid")
          ? "6695eb01-f6a4-8304-79aa-97f2502e193f test\n11111111-2222-3333-4444-555555555555 vm1\n"
          : "vm1\n",
      domstats:
        "Domain: 'test'\n  state.state=1\n  state.reason=0\nDomain: 'vm1'\n  state.state=5\n  state.reason=5\n",
    });
    expect(await mgr(f.run).list()).toEqual([
      {
        name: "test",
        uuid: "6695eb01-f6a4-8304-79aa-97f2502e193f",
        state: "running",
        reason: 0,
        managedSave: false,
      },
      { name: "vm1", uuid: UUID, state: "shutoff", reason: 5, managedSave: true },
    ]);
  });
});
