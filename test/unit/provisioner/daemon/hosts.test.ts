/**
 * Host health and reload on fakes: a libvirt host that stops answering (report, replace after afterSeconds,
 * its return and the stale copy it still runs), a VM gone from its host, and hosts added or removed by a
 * reload reaching placement. Probes run on the daemon's own schedule (probeSeconds) on a FakeClock.
 */
import { afterEach, describe, expect, it } from "vitest";
import type { RfbootConfig } from "../../../../src/provisioner/index.js";
import { unitConfig, hex16, joinAndSettle, rig, uri, type Rig } from "./rig.js";

let r: Rig | undefined;
afterEach(async () => {
  await r?.stop();
  r = undefined;
});

const READY = "readiness: { consoleMarker: null }";
const replace = (after: number) =>
  `policies: { leave: { action: destroy, graceSeconds: 10 }, hostLoss: { action: replace, afterSeconds: ${after}, probeSeconds: 5 } }\n${READY}`;

/** config builds the config a reload applies (hosts h1..hN, datapaths 0x1..0xK). */
function config(x: Rig, o: { hosts: number; vms: number; extra?: string }): RfbootConfig {
  return unitConfig(x.stateDir, o, "reload");
}

/** tick advances the clock by `ms` and lets the provisioning it caused finish. */
async function tick(x: Rig, ms: number): Promise<void> {
  await x.clock.advance(ms);
  await x.daemon.idle();
  await x.clock.advance(0);
}

describe("host loss", () => {
  it("report policy: the lost host's VMs are reported (event, lastError), never moved", async () => {
    r = await rig({
      hosts: 2,
      extra: `policies: { hostLoss: { action: report, probeSeconds: 5 } }\n${READY}`,
    });
    await joinAndSettle(r, 1n);
    const on = r.seen.ensured[0]!.host;
    expect(on).toBe("h1");
    r.libvirt.host(uri(1)).down = true;
    await tick(r, 5_000);
    expect(r.seen.hostLost).toEqual([
      { host: "h1", error: expect.stringContaining("[unreachable]") as string, vms: ["rfvm1"] },
    ]);
    const rec = r.store.records.get(hex16(1n))!;
    expect(rec.lastError?.kind).toBe("host-unreachable");
    expect(r.store.events.map((e) => e.kind)).toContain("host-lost");
    await tick(r, 600_000);
    expect(r.seen.replaced).toEqual([]);
    expect(r.libvirt.argsOf(uri(2), "start")).toEqual([]);
    // Reported once, not at every probe.
    expect(r.seen.hostLost).toHaveLength(1);
  });

  it("replace policy: after afterSeconds the VM of a connected switch is started on another host; the stale copy is stopped when the lost host returns", async () => {
    r = await rig({ hosts: 2, extra: replace(30) });
    await joinAndSettle(r, 1n);
    r.libvirt.host(uri(1)).down = true;
    await tick(r, 5_000);
    expect(r.seen.hostLost.map((e) => e.host)).toEqual(["h1"]);
    // Lost at t=5 s: at t=30 s (25 s lost) it is still waited for.
    await tick(r, 25_000);
    expect(r.seen.replaced).toEqual([]);
    await tick(r, 5_000);
    expect(r.seen.replaced).toEqual([{ dpidHex: hex16(1n), vm: "rfvm1", from: "h1" }]);
    expect(r.libvirt.argsOf(uri(2), "start")).toEqual([["start", "rfvm1"]]);
    expect(r.seen.ensured.map((e) => e.host)).toEqual(["h1", "h2"]);
    expect(r.daemon.datapath(hex16(1n))?.host).toBe("h2");
    // h1 comes back with its (network-cut, still running) copy: it is destroyed, its definition kept.
    r.libvirt.host(uri(1)).down = false;
    await tick(r, 5_000);
    expect(r.seen.hostBack.map((e) => e.host)).toEqual(["h1"]);
    expect(r.libvirt.argsOf(uri(1), "destroy")).toEqual([["destroy", "rfvm1"]]);
    expect(r.libvirt.argsOf(uri(1), "undefine")).toEqual([]);
    expect(r.libvirt.host(uri(2)).domains.get("rfvm1")?.state).toBe("running");
  });

  it("replace policy leaves the VM of a disconnected switch where it is", async () => {
    r = await rig({ hosts: 2, extra: replace(10) });
    await joinAndSettle(r, 1n);
    r.switches.leave(1n);
    r.libvirt.host(uri(1)).down = true;
    await tick(r, 60_000);
    expect(r.seen.hostLost).toHaveLength(1);
    expect(r.seen.replaced).toEqual([]);
    expect(r.libvirt.argsOf(uri(2), "start")).toEqual([]);
  });

  it("a retry waiting for a lost host goes at once when the host answers again", async () => {
    r = await rig({ hosts: 1, extra: replace(600), retryInitialMs: 60_000, retryMaxMs: 60_000 });
    // libvirtd stops before any probe noticed: the VM is placed there and its ensure fails.
    r.libvirt.host(uri(1)).down = true;
    await joinAndSettle(r, 1n);
    expect(r.seen.failed.map((f) => f.retryInMs)).toEqual([60_000]);
    expect(r.store.records.get(hex16(1n))!.lastError?.kind).toBe("unreachable");
    await tick(r, 5_000);
    expect(r.seen.hostLost).toHaveLength(1);
    r.libvirt.host(uri(1)).down = false;
    await tick(r, 5_000);
    expect(r.seen.hostBack).toHaveLength(1);
    expect(r.libvirt.argsOf(uri(1), "start")).toEqual([["start", "rfvm1"]]);
    expect(r.store.records.get(hex16(1n))!.state).toBe("running");
  });

  it("a VM gone from its reachable host while its switch is connected is ensured again", async () => {
    r = await rig({ hosts: 1, extra: replace(60) });
    await joinAndSettle(r, 1n);
    r.libvirt.host(uri(1)).domains.delete("rfvm1");
    await tick(r, 5_000);
    expect(r.seen.ensured.map((e) => e.action)).toEqual(["defined+started", "defined+started"]);
    expect(r.libvirt.host(uri(1)).domains.get("rfvm1")?.state).toBe("running");
  });
});

describe("reload", () => {
  it("a host added by reload is probed and offered to placement; a removed one leaves it", async () => {
    r = await rig({ hosts: 1, vms: 4, extra: replace(60) });
    await joinAndSettle(r, 1n);
    expect(r.seen.ensured.map((e) => e.host)).toEqual(["h1"]);
    await r.daemon.reload(config(r, { hosts: 2, vms: 4, extra: replace(60) }));
    await r.clock.advance(0);
    // Probed at once, before anything is placed on it.
    expect(r.libvirt.argsOf(uri(2), "list").length).toBeGreaterThan(0);
    await joinAndSettle(r, 2n);
    // Least loaded: h1 has rfvm1, h2 nothing.
    expect(r.seen.ensured.map((e) => [e.vm, e.host])).toEqual([
      ["rfvm1", "h1"],
      ["rfvm2", "h2"],
    ]);
    expect(r.libvirt.argsOf(uri(2), "start")).toEqual([["start", "rfvm2"]]);
    // h2 is removed again: placement no longer offers it, and its probes stop.
    await r.daemon.reload(config(r, { hosts: 1, vms: 4, extra: replace(60) }));
    const probesOfH2 = r.libvirt.argsOf(uri(2), "list").length;
    await joinAndSettle(r, 3n);
    expect(r.seen.ensured.at(-1)).toMatchObject({ vm: "rfvm3", host: "h1" });
    await tick(r, 30_000);
    expect(r.libvirt.argsOf(uri(2), "list").length).toBe(probesOfH2);
    // rfvm2's switch rejoins: its old host is gone, so it is placed on h1.
    r.switches.leave(2n);
    await joinAndSettle(r, 2n);
    expect(r.seen.ensured.at(-1)).toMatchObject({ vm: "rfvm2", host: "h1" });
  });

  it("a datapath added by reload boots at once when its switch is already connected", async () => {
    r = await rig({ hosts: 1, vms: 1 });
    await joinAndSettle(r, 2n);
    expect(r.seen.ignored.map((e) => e.dpidHex)).toEqual([hex16(2n)]);
    const res = await r.daemon.reload(config(r, { hosts: 1, vms: 2 }));
    expect(res.added).toEqual([hex16(2n)]);
    await r.daemon.idle();
    expect(r.seen.ensured.map((e) => e.vm)).toEqual(["rfvm2"]);
    expect(r.seen.joined.map((e) => e.vm)).toEqual(["rfvm2"]);
  });
});
