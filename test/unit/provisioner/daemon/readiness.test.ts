/**
 * VM readiness on fakes: the console marker, rfclient's PortRegister, no readiness sign at all, the
 * timeout, and a VM restored from managedsave. Console logs are in memory; time is a FakeClock.
 */
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { hex16, joinAndSettle, rig, type Rig } from "./rig.js";

let r: Rig | undefined;
afterEach(async () => {
  await r?.stop();
  r = undefined;
});

const LEAVE = "policies: { leave: { action: suspend, graceSeconds: 1 } }";
const logOf = (x: Rig, vm: string) => join(x.stateDir, "console", `${vm}.log`);

describe("readiness", () => {
  it("console marker: ready when the marker appears after the start, not on earlier output", async () => {
    r = await rig({ extra: `${LEAVE}\nreadiness: { consoleMarker: "GUEST-UP", timeoutSeconds: 30 }` });
    // Output of an earlier boot, before this start: it must not count.
    r.console.append(logOf(r, "rfvm1"), "old boot GUEST-UP\n");
    await joinAndSettle(r, 1n);
    await r.clock.advance(500);
    expect(r.seen.ready).toEqual([]);
    r.console.append(logOf(r, "rfvm1"), "booting...\n");
    await r.clock.advance(100);
    expect(r.seen.ready).toEqual([]);
    r.console.append(logOf(r, "rfvm1"), "rfboot: GUEST-UP\n");
    await r.clock.advance(100);
    expect(r.seen.ready.map((e) => [e.vm, e.via])).toEqual([["rfvm1", "console"]]);
    expect(r.seen.ready[0]!.ms).toBeGreaterThanOrEqual(600);
    expect(r.seen.ready[0]!.ms).toBeLessThanOrEqual(800);
    const rec = r.store.records.get(hex16(1n))!;
    expect(rec.state).toBe("ready");
    // Stamped when the marker was seen (the poll after it appeared), on the daemon's clock.
    const age = r.clock.date().getTime() - rec.readyAt!.getTime();
    expect(age).toBeGreaterThanOrEqual(0);
    expect(age).toBeLessThanOrEqual(100);
    expect(r.store.eventsOf(hex16(1n))).toContain("ready");
  });

  it("console marker that never comes: readiness-timeout recorded at timeoutSeconds, the VM left running", async () => {
    r = await rig({ extra: `${LEAVE}\nreadiness: { consoleMarker: "GUEST-UP", timeoutSeconds: 30 }` });
    await joinAndSettle(r, 1n);
    r.console.append(logOf(r, "rfvm1"), "kernel panic\n");
    await r.clock.advance(29_900);
    expect(r.store.records.get(hex16(1n))!.lastError).toBeNull();
    await r.clock.advance(200);
    const rec = r.store.records.get(hex16(1n))!;
    expect(rec.lastError?.kind).toBe("readiness-timeout");
    expect(rec.lastError?.message).toContain("30 s");
    expect(rec.state).toBe("running");
    expect(r.seen.ready).toEqual([]);
    expect(r.libvirt.argsOf("test:///h1", "destroy")).toEqual([]);
  });

  it("PortRegister: watches the VM's vm_id for all its data ports; ready when they registered", async () => {
    r = await rig({
      extra: `${LEAVE}\nreadiness: { consoleMarker: null, portRegister: true, timeoutSeconds: 60 }`,
    });
    await joinAndSettle(r, 1n);
    expect(r.store.watches).toHaveLength(1);
    const w = r.store.watches[0]!;
    expect(w.vmId).toBe(String(0x02a100000001n));
    expect(w.expectPorts).toEqual(["1", "2"]);
    expect(w.timeoutMs).toBe(60_000);
    await r.clock.advance(5_000);
    expect(r.seen.ready).toEqual([]);
    w.register();
    await r.clock.advance(0);
    expect(r.seen.ready.map((e) => e.via)).toEqual(["portregister"]);
    expect(r.store.records.get(hex16(1n))!.state).toBe("ready");
  });

  it("PortRegister that times out records readiness-timeout", async () => {
    r = await rig({
      extra: `${LEAVE}\nreadiness: { consoleMarker: null, portRegister: true, timeoutSeconds: 60 }`,
    });
    await joinAndSettle(r, 1n);
    await r.clock.advance(60_000);
    r.store.watches[0]!.timeout();
    await r.clock.advance(0);
    expect(r.store.records.get(hex16(1n))!.lastError?.kind).toBe("readiness-timeout");
    expect(r.seen.ready).toEqual([]);
  });

  it("no readiness sign configured: nothing is watched, the record stays running", async () => {
    r = await rig({
      extra: `${LEAVE}\nreadiness: { consoleMarker: null, portRegister: false, timeoutSeconds: 10 }`,
    });
    await joinAndSettle(r, 1n);
    r.console.append(logOf(r, "rfvm1"), "RFBOOT-GUEST-BOOTED\n");
    await r.clock.advance(60_000);
    expect(r.store.watches).toEqual([]);
    expect(r.seen.ready).toEqual([]);
    const rec = r.store.records.get(hex16(1n))!;
    expect(rec.state).toBe("running");
    expect(rec.lastError).toBeNull();
  });

  it("a VM restored from managedsave is ready at its first new console output (its boot marker never returns)", async () => {
    r = await rig({ extra: `${LEAVE}\nreadiness: { consoleMarker: "GUEST-UP", timeoutSeconds: 30 }` });
    await joinAndSettle(r, 1n);
    r.console.append(logOf(r, "rfvm1"), "GUEST-UP\n");
    await r.clock.advance(100);
    expect(r.seen.ready.map((e) => e.via)).toEqual(["console"]);
    r.switches.leave(1n);
    await r.clock.advance(1000);
    await r.daemon.idle();
    expect(r.libvirt.argsOf("test:///h1", "managedsave")).toHaveLength(1);
    await joinAndSettle(r, 1n);
    expect(r.seen.ensured.at(-1)?.action).toBe("started");
    r.console.append(logOf(r, "rfvm1"), "eth1: link up\n");
    await r.clock.advance(100);
    expect(r.seen.ready.map((e) => e.via)).toEqual(["console", "console (restored)"]);
  });

  it("a restored VM that prints nothing is ready after the quiet period", async () => {
    r = await rig({ extra: `${LEAVE}\nreadiness: { consoleMarker: "GUEST-UP", timeoutSeconds: 30 }` });
    await joinAndSettle(r, 1n);
    r.switches.leave(1n);
    await r.clock.advance(1000);
    await r.daemon.idle();
    await joinAndSettle(r, 1n);
    await r.clock.advance(4_900);
    expect(r.seen.ready).toEqual([]);
    await r.clock.advance(200);
    expect(r.seen.ready.map((e) => e.via)).toEqual(["restored"]);
  });
});
