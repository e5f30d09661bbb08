/**
 * Domains ahead (policies.defineAhead), on fakes: at start-up and on reload each configured VM whose switch
 * is not connected has its domain defined (or its state read) where its join would place it, so the join's
 * path is the lease claim and `virsh start`; a domain found otherwise at the start goes the long way.
 */
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { FakeOvs } from "../fake-ovs.js";
import { settle } from "./fakes.js";
import { hex16, joinAndSettle, rig, unitConfig, uri, virshCmds, type Rig } from "./rig.js";

let r: Rig | undefined;
afterEach(async () => {
  await r?.stop();
  r = undefined;
});

/** virshCmds: rig's, a define naming its VM. */
const cmds = (x: Rig, from = 0) => virshCmds(x, { from, defineName: true });

describe("domains ahead", () => {
  it("defines every configured VM's domain before any switch joins; the join claims and starts, nothing else", async () => {
    r = await rig({ defineAhead: true });
    await r.daemon.idle();
    // Both VMs at once (the host's start slots), each its state read, then defined.
    expect(cmds(r).sort()).toEqual([
      "define rfvm1",
      "define rfvm2",
      "domstate rfvm1 --reason",
      "domstate rfvm2 --reason",
    ]);
    expect(r.libvirt.host(uri(1)).domains.get("rfvm1")?.state).toBe("shut off");
    // Its record says where and from which config it was defined (a restart keeps the definition).
    expect(r.store.records.get(hex16(1n))).toMatchObject({ state: "stopped", host: "h1", vmName: "rfvm1" });
    expect(r.store.records.get(hex16(1n))?.configFingerprint).toMatch(/\S/);
    expect(r.store.calls.filter((c) => c === "claim")).toEqual([]);
    const before = r.libvirt.calls.length;
    await joinAndSettle(r, 1n, [1, 2]);
    expect(cmds(r, before)).toEqual(["start rfvm1"]);
    expect(r.store.calls.filter((c) => c === "claim")).toEqual(["claim"]);
    expect(r.seen.ensured.map((e) => [e.vm, e.action, e.host])).toEqual([["rfvm1", "started", "h1"]]);
    expect(r.store.records.get(hex16(1n))?.state).toBe("running");
  });

  it("is off with policies.defineAhead false: nothing is made before a switch joins", async () => {
    r = await rig({ defineAhead: false });
    await r.daemon.idle();
    expect(cmds(r)).toEqual([]);
    await joinAndSettle(r, 1n, [1, 2]);
    expect(cmds(r)).toEqual(["domstate rfvm1 --reason", "define rfvm1", "start rfvm1"]);
  });

  it("an existing domain is never redefined ahead: its state and managed-save image are read, and the join restores it", async () => {
    r = await rig({
      defineAhead: true,
      before: (x) => {
        x.libvirt.host(uri(1)).domains.set("rfvm1", { uuid: "u1", state: "shut off", saved: true });
      },
    });
    await r.daemon.idle();
    const ahead = cmds(r).filter((c) => c.includes("rfvm1"));
    expect(ahead.some((c) => c.startsWith("define"))).toBe(false);
    expect(ahead).toContain("domstate rfvm1 --reason");
    const before = r.libvirt.calls.length;
    await joinAndSettle(r, 1n, [1, 2]);
    // No domstate or dominfo at the join: the start restores the image, as libvirt does for a managed save.
    const atJoin = cmds(r, before);
    expect(atJoin.filter((c) => c.startsWith("domstate") || c.startsWith("dominfo"))).toEqual([]);
    expect(atJoin.at(-1)).toBe("start rfvm1");
  });

  it("a domain gone since it was defined ahead (no event seen yet) is defined and started the long way", async () => {
    r = await rig({ defineAhead: true });
    await r.daemon.idle();
    // An operator undefines it behind rfboot's back; libvirt's event has not reached the daemon.
    r.libvirt.host(uri(1)).domains.delete("rfvm1");
    const before = r.libvirt.calls.length;
    await joinAndSettle(r, 1n, [1, 2]);
    expect(cmds(r, before)).toEqual([
      "start rfvm1",
      "domstate rfvm1 --reason",
      "define rfvm1",
      "start rfvm1",
    ]);
    expect(r.seen.ensured.map((e) => [e.vm, e.action])).toEqual([["rfvm1", "defined+started"]]);
    expect(r.seen.failed).toEqual([]);
  });

  it("a libvirt event that the domain started drops what was known: the join reads the state and adopts it", async () => {
    r = await rig({ defineAhead: true });
    await r.daemon.idle();
    r.libvirt.host(uri(1)).domains.get("rfvm1")!.state = "running";
    r.daemon.domainEvent({
      type: "lifecycle",
      host: "h1",
      domain: "rfvm1",
      event: "Started",
      detail: "Booted",
      at: new Date(),
      source: "event",
    });
    // Its own definition's event agrees with what is known and keeps it (rfvm2).
    r.daemon.domainEvent({
      type: "lifecycle",
      host: "h1",
      domain: "rfvm2",
      event: "Defined",
      detail: "Added",
      at: new Date(),
      source: "event",
    });
    const before = r.libvirt.calls.length;
    await joinAndSettle(r, 1n, [1, 2]);
    expect(cmds(r, before)).toEqual(["domstate rfvm1 --reason"]);
    expect(r.seen.ensured.map((e) => [e.vm, e.action])).toEqual([["rfvm1", "adopted"]]);
    const mid = r.libvirt.calls.length;
    await joinAndSettle(r, 2n, [1, 2]);
    expect(cmds(r, mid)).toEqual(["start rfvm2"]);
  });

  it("a leave that saves the VM makes its rejoin a bare start (the restore), with nothing asked first", async () => {
    r = await rig({
      defineAhead: true,
      extra: "policies: { leave: { action: suspend, graceSeconds: 1 } }\nreadiness: { consoleMarker: null }",
    });
    await r.daemon.idle();
    await joinAndSettle(r, 1n, [1, 2]);
    r.switches.leave(1n);
    await r.clock.advance(1_500);
    await r.daemon.idle();
    expect(r.libvirt.host(uri(1)).domains.get("rfvm1")).toMatchObject({ state: "shut off", saved: true });
    const before = r.libvirt.calls.length;
    await joinAndSettle(r, 1n, [1, 2]);
    expect(cmds(r, before)).toEqual(["start rfvm1"]);
  });

  it("a reload that adds a VM defines it ahead; a VM whose switch is connected is left to its ensure", async () => {
    r = await rig({ defineAhead: true, vms: 1 });
    await r.daemon.idle();
    await r.daemon.reload(unitConfig(r.stateDir, { vms: 2, defineAhead: true }));
    await settle();
    await r.daemon.idle();
    expect(cmds(r).filter((c) => c.startsWith("define"))).toEqual(["define rfvm1", "define rfvm2"]);
  });

  it("a VM that two hosts could take is placed by its join, under its lease; one pinned to a host is defined there ahead", async () => {
    r = await rig({
      defineAhead: true,
      hosts: 2,
      vms: 2,
      vmExtra: { 2: "host: h2" },
    });
    await r.daemon.idle();
    const defines = (u: string) => r!.libvirt.argsOf(u, "define").map((a) => a[1]?.match(/(rfvm\d+)-/)?.[1]);
    expect(defines(uri(1))).toEqual([]);
    expect(defines(uri(2))).toEqual(["rfvm2"]);
  });

  it("a VM on a data-plane host is left to its join (its tags come with the lease)", async () => {
    const ovs = new FakeOvs(["dp0", "trunk0"]);
    r = await rig({
      defineAhead: true,
      vms: 1,
      hostExtra: { 1: "dataPlane: { trunkBridge: trunk0, bridge: br-vms }" },
      ovs,
    });
    await r.daemon.idle();
    expect(cmds(r).filter((c) => c.startsWith("define"))).toEqual([]);
  });

  it("with prewarm on, the VM defined ahead is prewarmed from that definition and its join restores it", async () => {
    r = await rig({
      defineAhead: true,
      vms: 1,
      extra: `policies: { leave: { action: suspend, graceSeconds: 1 }, prewarm: { enabled: true } }
readiness: { consoleMarker: "GUEST-UP", timeoutSeconds: 30 }`,
    });
    const saved = () => r!.seen.prewarmed.length > 0;
    for (let t = 0; t < 3000 && !saved(); t += 10) {
      if (r.libvirt.host(uri(1)).domains.get("rfvm1")?.state === "running")
        r.console.append(join(r.stateDir, "console", "rfvm1.log"), "GUEST-UP\n");
      await r.clock.advance(10);
      await new Promise((res) => setTimeout(res, 2));
    }
    expect(saved()).toBe(true);
    // One definition (ahead); the prewarm started it without defining it again.
    expect(cmds(r).filter((c) => c.startsWith("define"))).toEqual(["define rfvm1"]);
    expect(r.libvirt.host(uri(1)).domains.get("rfvm1")).toMatchObject({ state: "shut off", saved: true });
    await joinAndSettle(r, 1n, [1, 2]);
    expect(r.seen.ensured.map((e) => [e.vm, e.action])).toEqual([["rfvm1", "started"]]);
    expect(r.libvirt.host(uri(1)).domains.get("rfvm1")?.state).toBe("running");
  });
});
