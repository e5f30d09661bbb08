/**
 * Capacity on fakes: a host whose own memory report leaves no room is skipped although its configured limit
 * allows the VM (the placement event names it and why); when no host has room the reason is the record's
 * lastError and the error event; hosts added or removed by a reload reach placement.
 */
import { afterEach, describe, expect, it } from "vitest";
import { unitConfig, hex16, joinAndSettle, rig, uri, type Rig } from "./rig.js";

let r: Rig | undefined;
afterEach(async () => {
  await r?.stop();
  r = undefined;
});

/** low: a host reporting 180 MiB available (free 100 + buffers 20 + cached 60), below the 256 MiB reserve. */
const low = { totalKiB: 8388608, freeKiB: 102400, buffersKiB: 20480, cachedKiB: 61440 };
const LOW_REASON = "host reports 180 MiB available of 8192 MiB (reserve 256 MiB): 0 + 64 > 0 MiB";

describe("capacity reported by the hosts", () => {
  it("a host reporting too little memory is skipped for the other, and the placement event says why", async () => {
    r = await rig({ hosts: 2, before: (x) => (x.libvirt.host(uri(1)).memory = low) });
    await joinAndSettle(r, 1n);
    expect(r.seen.ensured.map((e) => [e.vm, e.host])).toEqual([["rfvm1", "h2"]]);
    expect(r.libvirt.argsOf(uri(1), "start")).toEqual([]);
    expect(r.store.eventsOf(hex16(1n))).toEqual(["join", "placement", "boot"]);
    expect(r.store.events.find((e) => e.kind === "placement")?.detail).toBe(
      `on h2 (least-loaded); skipped h1: ${LOW_REASON}`,
    );
  });

  it("a host with room by its report takes the VM; a burst since the probe counts against what it had", async () => {
    // 256 reserve + 100 MiB: room for one 64 MiB VM, not two, until the next probe.
    const some = { totalKiB: 8388608, freeKiB: (256 + 100) * 1024, buffersKiB: 0, cachedKiB: 0 };
    r = await rig({ hosts: 2, vms: 6, before: (x) => (x.libvirt.host(uri(1)).memory = some) });
    for (let i = 1n; i < 6n; i++) r.switches.join(i);
    await joinAndSettle(r, 6n);
    const on = (h: string) => r!.seen.ensured.filter((e) => e.host === h).length;
    // h2 (maxVms 4) takes four; h1 one, its report leaving no room for a second 64 MiB VM.
    expect([on("h1"), on("h2")]).toEqual([1, 4]);
    expect(r.seen.failed).toHaveLength(1);
    expect(r.seen.failed[0]!.error.message).toMatch(
      /h1: host reports 356 MiB available of 8192 MiB \(reserve 256 MiB\): 64 \+ 64 > 100 MiB; h2: full \(4\/4 VMs\)/,
    );
  });

  it("no host with room: the reported reason is the record's lastError and the error event", async () => {
    r = await rig({
      hosts: 2,
      before: (x) => {
        x.libvirt.host(uri(1)).memory = low;
        x.libvirt.host(uri(2)).memory = low;
      },
    });
    await joinAndSettle(r, 1n);
    expect(r.seen.ensured).toEqual([]);
    const rec = r.store.records.get(hex16(1n))!;
    expect(rec.lastError?.kind).toBe("placement");
    expect(rec.lastError?.message).toContain(`h1: ${LOW_REASON}; h2: ${LOW_REASON}`);
    const err = r.store.events.find((e) => e.kind === "error");
    expect(err?.detail).toContain(
      `placement: placement: no host has room for VM rfvm1 (64 MiB): h1: ${LOW_REASON}`,
    );
  });

  it("a host added by reload takes the next join; once removed, nothing is placed there", async () => {
    r = await rig({ hosts: 1, vms: 3, before: (x) => (x.libvirt.host(uri(1)).memory = low) });
    await joinAndSettle(r, 1n);
    expect(r.store.records.get(hex16(1n))!.lastError?.kind).toBe("placement");
    const two = unitConfig(r.stateDir, { hosts: 2, vms: 3 }, "reload");
    await r.daemon.reload(two);
    await joinAndSettle(r, 2n);
    expect(r.seen.ensured.map((e) => [e.vm, e.host])).toEqual([["rfvm2", "h2"]]);
    // rfvm1's retry after its backoff lands on h2 too.
    await r.clock.advance(8_000);
    await r.daemon.idle();
    expect(r.seen.ensured.map((e) => e.host)).toEqual(["h2", "h2"]);
    const one = unitConfig(r.stateDir, { hosts: 1, vms: 3 }, "reload");
    await r.daemon.reload(one);
    await joinAndSettle(r, 3n);
    expect(r.libvirt.argsOf(uri(2), "start")).toEqual([
      ["start", "rfvm2"],
      ["start", "rfvm1"],
    ]);
    expect(r.store.records.get(hex16(3n))!.lastError?.message).toMatch(
      /no host has room for VM rfvm3 \(64 MiB\): h1: host reports 180 MiB/,
    );
  });
});
