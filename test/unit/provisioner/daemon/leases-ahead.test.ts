/**
 * Leases ahead (policies.leaseAhead), on fakes: at start-up and on reload the lease of each configured VM
 * whose switch is not connected is claimed and kept, so its join issues `virsh start` with no claim on the
 * way; another instance's want makes it go at the next renewal, unless its switch is connected here.
 */
import { afterEach, describe, expect, it } from "vitest";
import { settle } from "./fakes.js";
import { hex16, joinAndSettle, rig, unitConfig, uri, type Rig } from "./rig.js";

let r: Rig | undefined;
afterEach(async () => {
  await r?.stop();
  r = undefined;
});

/** count: how many calls of `method` the store has seen from `from` on. */
const count = (x: Rig, method: string, from = 0) =>
  x.store.calls.slice(from).filter((c) => c === method).length;

/** renewal: one renewal round of the daemon (a third of its 30 s lease ttl). */
async function renewal(x: Rig): Promise<void> {
  await x.clock.advance(10_000);
  await settle();
  await x.daemon.idle();
  await settle();
}

describe("leases ahead", () => {
  it("claims every configured VM's lease before any switch joins; the join claims nothing and starts at once", async () => {
    r = await rig({ defineAhead: true, leaseAhead: true });
    await r.daemon.idle();
    expect([...r.store.leases.values()].map((l) => [l.dpidHex, l.owner]).sort()).toEqual([
      [hex16(1n), "unit-1"],
      [hex16(2n), "unit-1"],
    ]);
    expect(r.daemon.datapath(hex16(1n))?.leased).toBe(true);
    const from = r.store.calls.length;
    await joinAndSettle(r, 1n, [1, 2]);
    expect(count(r, "claim", from)).toBe(0);
    expect(r.libvirt.argsOf(uri(1), "start")).toEqual([["start", "rfvm1"]]);
    expect(r.seen.ensured.map((e) => [e.vm, e.action])).toEqual([["rfvm1", "started"]]);
  });

  it("keeps the leases held ahead at each renewal while their switches are away, and after a leave", async () => {
    r = await rig({ leaseAhead: true });
    await r.daemon.idle();
    await joinAndSettle(r, 1n, [1, 2]);
    r.switches.leave(1n);
    await settle();
    // The leave policy (destroy after 10 s) runs under the lease; the lease stays for the next join.
    await renewal(r);
    await renewal(r);
    expect(count(r, "release")).toBe(0);
    expect(r.daemon.datapath(hex16(1n))?.leased).toBe(true);
    expect(r.daemon.datapath(hex16(2n))?.leased).toBe(true);
    expect(r.store.leases.get(hex16(2n))?.expiresAt.getTime()).toBeGreaterThan(
      r.clock.date().getTime() + 20_000,
    );
    const from = r.store.calls.length;
    await joinAndSettle(r, 1n, [1, 2]);
    expect(count(r, "claim", from)).toBe(0);
    expect(r.libvirt.argsOf(uri(1), "start").length).toBe(2);
  });

  it("gives a lease held ahead up when another instance asks for it; its join then claims anew", async () => {
    r = await rig({ leaseAhead: true });
    await r.daemon.idle();
    r.store.wants.set(hex16(2n), "other-host:7");
    await renewal(r);
    expect(r.daemon.datapath(hex16(2n))?.leased).toBe(false);
    expect(r.store.leases.has(hex16(2n))).toBe(false);
    // Not asked for: kept.
    expect(r.daemon.datapath(hex16(1n))?.leased).toBe(true);
    // The other instance took it meanwhile: this one's join is refused and boots nothing.
    r.store.leases.set(hex16(2n), {
      dpidHex: hex16(2n),
      owner: "other-host:7",
      expiresAt: new Date(r.clock.date().getTime() + 30_000),
      generation: 2,
    });
    const from = r.store.calls.length;
    await joinAndSettle(r, 2n, [1, 2]);
    expect(count(r, "claim", from)).toBe(1);
    expect(r.libvirt.argsOf(uri(1), "start")).toEqual([]);
    expect(r.seen.failed).toEqual([]);
    // ... and asks for it in turn.
    expect(r.store.wants.get(hex16(2n))).toBe("unit-1");
  });

  it("a join during the release of a lease given up claims it only once the release is done", async () => {
    r = await rig({ leaseAhead: true });
    await r.daemon.idle();
    let done: () => void = () => undefined;
    const gate = new Promise<void>((res) => (done = res));
    const release = r.store.release.bind(r.store);
    r.store.release = async (dpidHex: string, owner: string) => {
      await gate;
      return release(dpidHex, owner);
    };
    r.store.wants.set(hex16(2n), "other-host:7");
    await r.clock.advance(10_000);
    await settle();
    // The release is under way; the switch joins here meanwhile.
    r.switches.join(2n, [1, 2]);
    await settle();
    expect(r.libvirt.argsOf(uri(1), "start")).toEqual([]);
    done();
    await settle();
    await r.daemon.idle();
    await settle();
    // Claimed after the release: the lease this instance acts on is really its own.
    expect(r.store.leases.get(hex16(2n))?.owner).toBe("unit-1");
    expect(r.daemon.datapath(hex16(2n))?.leased).toBe(true);
    expect(r.libvirt.argsOf(uri(1), "start")).toEqual([["start", "rfvm2"]]);
  });

  it("keeps a lease asked for while its switch is connected here", async () => {
    r = await rig({ leaseAhead: true });
    await r.daemon.idle();
    await joinAndSettle(r, 1n, [1, 2]);
    r.store.wants.set(hex16(1n), "other-host:7");
    await renewal(r);
    expect(count(r, "release")).toBe(0);
    expect(r.daemon.datapath(hex16(1n))?.leased).toBe(true);
    expect(r.store.leases.get(hex16(1n))?.owner).toBe("unit-1");
  });

  it("does not take back ahead, at a reload, a lease it gave up within a ttl", async () => {
    r = await rig({ leaseAhead: true });
    await r.daemon.idle();
    r.store.wants.set(hex16(2n), "other-host:7");
    await renewal(r);
    expect(r.store.leases.has(hex16(2n))).toBe(false);
    const from = r.store.calls.length;
    // VM 2 changed: readied again ahead (its domain), but its lease is left to the instance that asked.
    await r.daemon.reload(unitConfig(r.stateDir, { leaseAhead: true, vmExtra: { 2: "memoryMiB: 96" } }));
    await settle();
    await r.daemon.idle();
    expect(count(r, "claim", from)).toBe(0);
    expect(r.store.leases.has(hex16(2n))).toBe(false);
  });

  it("releases at the next renewal the lease of a VM a reload removed", async () => {
    r = await rig({ leaseAhead: true });
    await r.daemon.idle();
    await r.daemon.reload(unitConfig(r.stateDir, { leaseAhead: true, vms: 1 }));
    await settle();
    await renewal(r);
    expect(r.store.leases.has(hex16(2n))).toBe(false);
    expect(r.store.leases.get(hex16(1n))?.owner).toBe("unit-1");
  });

  it("leaves a lease another instance holds: refused ahead quietly, claimed at the join", async () => {
    r = await rig({
      leaseAhead: true,
      before: (x) => {
        x.store.leases.set(hex16(1n), {
          dpidHex: hex16(1n),
          owner: "other-host:7",
          expiresAt: new Date(x.clock.date().getTime() + 15_000),
          generation: 1,
        });
      },
    });
    await r.daemon.idle();
    expect(r.daemon.datapath(hex16(1n))?.leased).toBe(false);
    expect(r.store.wants.size).toBe(0);
    expect(r.seen.failed).toEqual([]);
    expect(r.store.leases.get(hex16(2n))?.owner).toBe("unit-1");
  });

  it("is off with policies.leaseAhead false: no claim before a join, and an unserved lease is released", async () => {
    r = await rig({ leaseAhead: false });
    await r.daemon.idle();
    expect(count(r, "claim")).toBe(0);
    await joinAndSettle(r, 1n, [1, 2]);
    expect(count(r, "claim")).toBe(1);
    r.switches.leave(1n);
    await settle();
    await r.clock.advance(10_000);
    await settle();
    await r.daemon.idle();
    await renewal(r);
    expect(r.store.leases.has(hex16(1n))).toBe(false);
  });
});
