/**
 * The daemon's provisioning logic on fakes: what a join makes libvirt and the store do, retry backoff,
 * leave grace and flapping, the lease claim on an outage and on a refusal, and the leave of a template VM.
 * Time is a FakeClock: nothing sleeps.
 */
import { Writable } from "node:stream";
import { afterEach, describe, expect, it } from "vitest";
import { createLogger } from "../../../../src/common/log.js";
import { outage, refusal, settle } from "./fakes.js";
import { hex16, joinAndSettle, rig, isStorage, uri, virshCmds, type Rig } from "./rig.js";

const BOOM = "error: internal error: process exited while connecting to monitor\n";

let r: Rig | undefined;
afterEach(async () => {
  await r?.stop();
  r = undefined;
});

describe("join", () => {
  it("writes the configured VMs' rows at start-up; a join claims, then defines and starts the VM (no row write); records it running with the wire version", async () => {
    r = await rig();
    // Before any switch joined: every configured VM's rows, in one call.
    expect(r.store.calls.filter((c) => c === "upsertRfconfigRows")).toHaveLength(1);
    expect(r.store.rows[0]!.map((x) => [x.vm_port, x.dp_id, x.dp_port])).toEqual([
      ["1", "1", "1"],
      ["2", "1", "2"],
      ["1", "2", "1"],
      ["2", "2", "2"],
    ]);
    await joinAndSettle(r, 1n, [1, 2]);
    expect(virshCmds(r)).toEqual(["domstate rfvm1 --reason", "define", "start rfvm1"]);
    // The host's pools were looked at once (the fake has them), and swept, before any VM.
    expect(
      r.libvirt.calls.filter((c) => c.uri === uri(1) && isStorage(c.args)).map((c) => c.args.join(" ")),
    ).toEqual([
      "pool-info rfboot",
      "pool-dumpxml rfboot",
      "pool-info rfboot-console",
      "pool-dumpxml rfboot-console",
      "vol-list rfboot",
    ]);
    const def = r.libvirt.argsOf(uri(1), "define")[0]!;
    expect(def).toHaveLength(2);
    expect(def[1]).toMatch(/rfvm1-[0-9a-f]{8}\.xml$/);
    // The rows were in place before the join: the join's path writes none, and claims the lease once.
    const order = r.store.calls.filter((c) => c === "claim" || c === "upsertRfconfigRows");
    expect(order).toEqual(["upsertRfconfigRows", "claim"]);
    const rec = r.store.records.get(hex16(1n))!;
    expect(rec.state).toBe("running");
    expect(rec.host).toBe("h1");
    expect(rec.switch).toMatchObject({ version: 4, connected: true });
    expect(r.seen.ensured.map((e) => [e.vm, e.action, e.host])).toEqual([["rfvm1", "defined+started", "h1"]]);
    expect(r.store.eventsOf(hex16(1n))).toEqual(["join", "boot"]);
  });

  it("records the wire version the switch negotiated (OpenFlow 1.0 = 1)", async () => {
    r = await rig();
    r.switches.join(2n, [1, 2], 1);
    await r.clock.advance(0);
    await r.daemon.idle();
    expect(r.store.records.get(hex16(2n))!.switch?.version).toBe(1);
  });

  it("ignores a dpid without a VM (policy ignore): no virsh call about a domain, an `ignored` event", async () => {
    r = await rig();
    await joinAndSettle(r, 0x99n);
    expect(virshCmds(r)).toEqual([]);
    expect(r.seen.ignored).toEqual([{ dpidHex: hex16(0x99n), reason: "unknown datapath" }]);
    expect(r.store.eventsOf(hex16(0x99n))).toEqual(["ignored"]);
    expect(r.daemon.connectedDatapaths()).toEqual([hex16(0x99n)]);
    // Once it leaves, nothing of it is kept (a stream of unknown dpids must not pile up).
    r.switches.leave(0x99n);
    await r.clock.advance(0);
    expect(r.daemon.connectedDatapaths()).toEqual([]);
    expect(r.daemon.datapath(hex16(0x99n))).toBeUndefined();
  });
});

describe("retry backoff", () => {
  it("retries a failed start after 1, 2, 4 s (capped at retryMaxMs), then records success", async () => {
    r = await rig({ retryInitialMs: 1000, retryMaxMs: 4000 });
    r.libvirt.host(uri(1)).fail.set("start", [BOOM, BOOM, BOOM, BOOM]);
    await joinAndSettle(r, 1n);
    const starts = () => r!.libvirt.argsOf(uri(1), "start").length;
    expect(starts()).toBe(1);
    expect(r.seen.failed.map((f) => f.retryInMs)).toEqual([1000]);
    let rec = r.store.records.get(hex16(1n))!;
    expect(rec.state).toBe("failed");
    expect(rec.attempts).toBe(1);
    expect(rec.lastError?.kind).toBe("other");
    // Not one millisecond early.
    await r.clock.advance(999);
    expect(starts()).toBe(1);
    await r.clock.advance(1);
    await r.daemon.idle();
    expect(starts()).toBe(2);
    await r.clock.advance(2000);
    await r.daemon.idle();
    expect(starts()).toBe(3);
    await r.clock.advance(4000);
    await r.daemon.idle();
    expect(starts()).toBe(4);
    expect(r.seen.failed.map((f) => f.retryInMs)).toEqual([1000, 2000, 4000, 4000]);
    await r.clock.advance(3999);
    expect(starts()).toBe(4);
    await r.clock.advance(1);
    await r.daemon.idle();
    expect(starts()).toBe(5);
    rec = r.store.records.get(hex16(1n))!;
    expect(rec.state).toBe("running");
    expect(rec.attempts).toBe(0);
    expect(rec.lastError).toBeNull();
    expect(r.daemon.datapath(hex16(1n))).toMatchObject({ attempts: 0, retryWaiting: false });
    // The backoff starts again from the first delay after a success.
    r.libvirt.host(uri(1)).domains.get("rfvm1")!.state = "shut off";
    r.libvirt.host(uri(1)).fail.set("start", [BOOM]);
    r.switches.leave(1n);
    await joinAndSettle(r, 1n);
    expect(r.seen.failed.at(-1)?.retryInMs).toBe(1000);
  });

  it("stops retrying once the switch leaves", async () => {
    r = await rig();
    r.libvirt.host(uri(1)).fail.set("start", [BOOM, BOOM]);
    await joinAndSettle(r, 1n);
    expect(r.daemon.datapath(hex16(1n))?.retryWaiting).toBe(true);
    r.switches.leave(1n);
    await r.clock.advance(0);
    expect(r.daemon.datapath(hex16(1n))?.retryWaiting).toBe(false);
    await r.clock.advance(60_000);
    await r.daemon.idle();
    expect(r.libvirt.argsOf(uri(1), "start")).toHaveLength(1);
  });
});

describe("leave", () => {
  it("applies the leave policy only after the grace period", async () => {
    r = await rig();
    await joinAndSettle(r, 1n);
    r.switches.leave(1n);
    await r.clock.advance(9_999);
    expect(r.libvirt.argsOf(uri(1), "destroy")).toEqual([]);
    expect(r.daemon.datapath(hex16(1n))?.leavePending).toBe(true);
    await r.clock.advance(1);
    await r.daemon.idle();
    await r.clock.advance(0);
    expect(r.libvirt.argsOf(uri(1), "destroy")).toEqual([["destroy", "rfvm1"]]);
    expect(r.seen.left).toEqual([{ dpidHex: hex16(1n), vm: "rfvm1", outcome: "destroyed" }]);
    const rec = r.store.records.get(hex16(1n))!;
    expect(rec.state).toBe("stopped");
    expect(rec.switch?.connected).toBe(false);
    expect(r.store.eventsOf(hex16(1n))).toEqual(["join", "boot", "leave", "leave-policy"]);
  });

  it("a switch that flaps (down and up within the grace period) keeps its VM: no leave, the VM is adopted", async () => {
    r = await rig();
    await joinAndSettle(r, 1n);
    r.switches.leave(1n);
    await r.clock.advance(5_000);
    await joinAndSettle(r, 1n);
    r.switches.leave(1n);
    await r.clock.advance(9_000);
    await joinAndSettle(r, 1n);
    await r.clock.advance(60_000);
    await r.daemon.idle();
    expect(r.libvirt.argsOf(uri(1), "destroy")).toEqual([]);
    expect(r.seen.left).toEqual([]);
    expect(r.seen.ensured.map((e) => e.action)).toEqual(["defined+started", "adopted", "adopted"]);
    expect(r.daemon.datapath(hex16(1n))?.leavePending).toBe(false);
  });

  it("keep policy: a leave is recorded, the VM is never touched", async () => {
    r = await rig({ extra: "policies: { leave: { action: keep } }\nreadiness: { consoleMarker: null }" });
    await joinAndSettle(r, 1n);
    r.switches.leave(1n);
    await r.clock.advance(3_600_000);
    expect(r.libvirt.argsOf(uri(1), "destroy")).toEqual([]);
    expect(r.store.records.get(hex16(1n))!.switch?.connected).toBe(false);
  });

  it("a template VM's leave applies to the VM and ports ensured at join, not to a port-less one", async () => {
    r = await rig({
      extra: `policies:
  unknownDatapath: { action: template, template: { dataPorts: switch } }
  leave: { action: suspend, graceSeconds: 1 }
readiness: { consoleMarker: null }`,
    });
    await joinAndSettle(r, 0x77n, [1, 2, 3]);
    const at = r.daemon.datapath(hex16(0x77n))!;
    expect(at.vm).toBe("rfvm-77");
    expect(at.dataPorts.map((p) => p.dpPort)).toEqual([1, 2, 3]);
    // A template VM's rows are written at its join (after the configured VMs' rows of the start-up).
    expect(r.store.rows).toHaveLength(2);
    expect(r.store.rows[1]).toHaveLength(3);
    r.switches.leave(0x77n);
    await r.clock.advance(0);
    const after = r.daemon.datapath(hex16(0x77n))!;
    expect(after.connected).toBe(false);
    expect(after.dataPorts).toEqual(at.dataPorts);
    expect(after.joinPorts).toEqual([1, 2, 3]);
    await r.clock.advance(1000);
    await r.daemon.idle();
    expect(r.libvirt.argsOf(uri(1), "managedsave")).toEqual([["managedsave", "rfvm-77"]]);
    expect(r.store.records.get(hex16(0x77n))!.state).toBe("suspended");
  });
});

describe("lease claim", () => {
  it("boots anyway when the claim fails for an outage", async () => {
    r = await rig();
    r.store.failNext("claim", outage("claim"));
    await joinAndSettle(r, 1n);
    expect(r.libvirt.argsOf(uri(1), "start")).toEqual([["start", "rfvm1"]]);
    expect(r.seen.failed).toEqual([]);
    expect(r.store.records.get(hex16(1n))!.state).toBe("running");
  });

  it("boots without asking while the store knows MongoDB is away, and says so once per join", async () => {
    const lines: Record<string, unknown>[] = [];
    const destination = new Writable({
      write(chunk: Buffer, _enc, done) {
        for (const l of chunk.toString().split("\n").filter(Boolean))
          lines.push(JSON.parse(l) as Record<string, unknown>);
        done();
      },
    });
    r = await rig({ logger: createLogger({ destination, pretty: false, level: "debug" }) });
    r.store.online = false;
    await joinAndSettle(r, 1n);
    expect(r.store.calls).not.toContain("claim");
    expect(r.libvirt.argsOf(uri(1), "start")).toHaveLength(1);
    // The join's claim and the ensure's re-check both find MongoDB away: one warning.
    expect(lines.filter((l) => l.msg === "lease not checked: MongoDB unreachable")).toMatchObject([
      { dpid: hex16(1n) },
    ]);
  });

  it("refuses to boot when MongoDB refuses the claim: lastError, event and failure name the dpid and the cause; a later claim boots", async () => {
    r = await rig();
    r.store.failNext("claim", refusal("claim"));
    const upserts = () => r!.store.calls.filter((c) => c === "upsertRfconfigRows").length;
    const before = upserts();
    await joinAndSettle(r, 1n);
    expect(r.libvirt.argsOf(uri(1), "define")).toEqual([]);
    expect(r.libvirt.argsOf(uri(1), "start")).toEqual([]);
    expect(upserts()).toBe(before);
    const rec = r.store.records.get(hex16(1n))!;
    expect(rec.state).toBe("failed");
    expect(rec.lastError?.kind).toBe("lease");
    expect(rec.lastError?.message).toContain(hex16(1n));
    expect(rec.lastError?.message).toContain("not authorized");
    const ev = r.store.events.find((e) => e.kind === "error" && e.dpid === hex16(1n));
    expect(ev?.detail).toMatch(/^ensure: lease: lease of datapath 0000000000000001 could not be checked/);
    expect(r.seen.failed.map((f) => f.retryInMs)).toEqual([1000]);
    await r.clock.advance(1000);
    await r.daemon.idle();
    expect(r.libvirt.argsOf(uri(1), "start")).toEqual([["start", "rfvm1"]]);
    expect(r.store.records.get(hex16(1n))!.state).toBe("running");
  });

  it("a rejoin while the lease is held and renewed costs no claim; one near its expiry, or released, is claimed again", async () => {
    r = await rig({ extra: "policies: { leave: { action: keep } }\nreadiness: { consoleMarker: null }" });
    await joinAndSettle(r, 1n);
    const claims = () => r!.store.calls.filter((c) => c === "claim").length;
    expect(claims()).toBe(1);
    // Flaps while the lease is fresh: the join's path does not touch MongoDB for the lease.
    for (let i = 0; i < 3; i++) {
      r.switches.leave(1n);
      await settle();
      await joinAndSettle(r, 1n);
    }
    expect(claims()).toBe(1);
    // The renewal round keeps it fresh (one renewAll for all), so a later rejoin still costs nothing.
    await r.clock.advance(25_000);
    await r.daemon.idle();
    expect(r.store.calls).toContain("renewAll");
    r.switches.leave(1n);
    await settle();
    await joinAndSettle(r, 1n);
    expect(claims()).toBe(1);
    // Renewals fail for a while (nothing renews): near its expiry the lease is claimed again before acting.
    r.store.failNext("renewAll", refusal("renewAll"));
    r.store.failNext("renewAll", refusal("renewAll"));
    r.store.failNext("renewAll", refusal("renewAll"));
    await r.clock.advance(29_000);
    await r.daemon.idle();
    r.switches.leave(1n);
    await settle();
    await joinAndSettle(r, 1n);
    expect(claims()).toBe(2);
  });

  it("stop releases every lease it holds at once, not one after the other", async () => {
    r = await rig({
      vms: 4,
      extra: "policies: { leave: { action: keep } }\nreadiness: { consoleMarker: null }",
    });
    for (const d of [1n, 2n, 3n, 4n]) await joinAndSettle(r, d);
    expect(r.store.leases.size).toBe(4);
    // Each release waits until all four have been asked: one after the other, stop would never end.
    let asked = 0;
    let allAsked: () => void = () => undefined;
    const gate = new Promise<void>((res) => (allAsked = res));
    const release = r.store.release.bind(r.store);
    r.store.release = async (dpidHex: string, owner: string) => {
      if (++asked === 4) allAsked();
      await gate;
      return release(dpidHex, owner);
    };
    await r.daemon.stop();
    expect(asked).toBe(4);
    expect(r.store.leases.size).toBe(0);
  });

  it("stop waits for a join under way: its start ends and is recorded before its lease goes", async () => {
    r = await rig({ extra: "policies: { leave: { action: keep } }\nreadiness: { consoleMarker: null }" });
    const answer = r.store.holdClaims();
    r.switches.join(1n, [1, 2]);
    await settle();
    let stopped = false;
    const stopping = r.daemon.stop().then(() => (stopped = true));
    await settle();
    // The ensure waits for its claim: stop waits for the ensure.
    expect(stopped).toBe(false);
    expect(r.store.calls).not.toContain("release");
    answer();
    await stopping;
    expect(r.libvirt.argsOf(uri(1), "start")).toEqual([["start", "rfvm1"]]);
    expect(r.store.records.get(hex16(1n))?.state).toBe("running");
    const calls = r.store.calls;
    expect(calls.lastIndexOf("release")).toBeGreaterThan(calls.lastIndexOf("claim"));
    expect(r.store.leases.size).toBe(0);
  });

  it("the claim begins at the join, before its record, and runs beside the domain's state and the plan; define and start wait for it; bookkeeping is held until then", async () => {
    r = await rig();
    const answer = r.store.holdClaims();
    r.switches.join(1n, [1, 2]);
    await settle();
    // The claim is under way: the domain's state was read, nothing of the VM changed.
    expect(virshCmds(r)).toEqual(["domstate rfvm1 --reason"]);
    const calls = r.store.calls;
    expect(calls.indexOf("claim")).toBeGreaterThan(-1);
    expect(calls.indexOf("claim")).toBeLessThan(calls.indexOf("patchRecord"));
    expect(r.store.held).toBe(1);
    answer();
    await settle();
    await r.daemon.idle();
    await settle();
    expect(virshCmds(r)).toEqual(["domstate rfvm1 --reason", "define", "start rfvm1"]);
    // Two holds: the join's (its record and event), let go once the ensure took its own, and the ensure's.
    expect(r.store.holds).toBe(2);
    expect(r.store.held).toBe(0);
    expect(r.store.records.get(hex16(1n))!.state).toBe("running");
  });

  it("a claim refused after the state and the plan were computed beside it leaves the VM untouched (no define, start or rows)", async () => {
    r = await rig({
      extra: `policies:
  unknownDatapath: { action: template, template: { dataPorts: switch } }
  leave: { action: keep }`,
    });
    const upserts = () => r!.store.calls.filter((c) => c === "upsertRfconfigRows").length;
    const before = upserts();
    const answer = r.store.holdClaims();
    // A template VM: its rows are written at its join, once its lease is confirmed.
    r.switches.join(0x77n, [1, 2]);
    await settle();
    expect(virshCmds(r)).toEqual(["domstate rfvm-77 --reason"]);
    // Another instance takes the lease before this one's claim is answered.
    r.store.leases.set(hex16(0x77n), {
      dpidHex: hex16(0x77n),
      owner: "other-host:1",
      expiresAt: new Date(r.clock.date().getTime() + 20_000),
      generation: 1,
    });
    answer();
    await settle();
    await r.daemon.idle();
    await settle();
    expect(virshCmds(r)).toEqual(["domstate rfvm-77 --reason"]);
    expect(r.libvirt.calls.filter((c) => /^vol-(create|upload)/.test(c.args[0] ?? ""))).toEqual([]);
    expect(upserts()).toBe(before);
    expect(r.seen.ensured).toEqual([]);
    expect(r.seen.failed).toEqual([]);
    expect(r.store.held).toBe(0);
  });

  it("waits (no boot) while another instance holds the lease: asks for it once, retries after a renewal, then after each ttl", async () => {
    r = await rig();
    r.store.leases.set(hex16(1n), {
      dpidHex: hex16(1n),
      owner: "other-host:1",
      expiresAt: new Date(r.clock.date().getTime() + 35_000),
      generation: 1,
    });
    await joinAndSettle(r, 1n);
    expect(r.seen.ensured).toEqual([]);
    expect(r.seen.failed).toEqual([]);
    expect(r.libvirt.argsOf(uri(1), "start")).toEqual([]);
    // The holder is asked for it (it gives up a lease held ahead at its next renewal, a third of the ttl).
    expect(r.store.wants.get(hex16(1n))).toBe("unit-1");
    const store = r.store;
    const claims = () => store.calls.filter((c) => c === "claim").length;
    const asked = store.calls.filter((c) => c === "want").length;
    expect(asked).toBe(1);
    const first = claims();
    // The retry comes a little over that renewal later (10 s + 1 s): still refused (the holder serves it).
    await r.clock.advance(10_999);
    expect(claims()).toBe(first);
    await r.clock.advance(1);
    await r.daemon.idle();
    expect(claims()).toBe(first + 1);
    expect(r.libvirt.argsOf(uri(1), "start")).toEqual([]);
    // Not asked again during this join; the next retry is one lease ttl (30 s) later, once it has expired.
    expect(r.store.calls.filter((c) => c === "want").length).toBe(1);
    await r.clock.advance(29_999);
    expect(r.libvirt.argsOf(uri(1), "start")).toEqual([]);
    await r.clock.advance(1);
    await r.daemon.idle();
    expect(r.libvirt.argsOf(uri(1), "start")).toEqual([["start", "rfvm1"]]);
    // Won: the want is withdrawn.
    await settle();
    expect(r.store.wants.has(hex16(1n))).toBe(false);
  });
});
