/**
 * A VM that stops behind rfboot's back while its switch is connected (policies.vmStopped), on fakes: it is
 * started again after a backoff that doubles while it keeps stopping and starts over once it ran for
 * resetSeconds; `record` only records; a stop after the switch left is the leave policy's, never undone.
 */
import { afterEach, describe, expect, it } from "vitest";
import type { DomainEvent } from "../../../../src/provisioner/libvirt/index.js";
import { settle } from "./fakes.js";
import { hex16, joinAndSettle, rig, uri, type Rig } from "./rig.js";
import { Datapath } from "../../../../src/provisioner/datapath.js";

let r: Rig | undefined;
afterEach(async () => {
  await r?.stop();
  r = undefined;
});

const POLICY = (action: string) =>
  `policies: { leave: { action: destroy, graceSeconds: 10 }, vmStopped: { action: ${action}, backoffSeconds: 1, maxBackoffSeconds: 4, resetSeconds: 60 } }\nreadiness: { consoleMarker: null }`;

/** stop makes the fake host's domain shut off and delivers libvirt's event for it. */
async function stop(x: Rig, vm: string, detail = "Destroyed"): Promise<void> {
  x.libvirt.host(uri(1)).domains.get(vm)!.state = "shut off";
  const e: DomainEvent = {
    type: "lifecycle",
    host: "h1",
    domain: vm,
    event: "Stopped",
    detail,
    at: x.clock.date(),
    source: "event",
  };
  x.daemon.domainEvent(e);
  await settle();
}

const starts = (x: Rig) => x.libvirt.argsOf(uri(1), "start").length;
const state = (x: Rig, vm: string) => x.libvirt.host(uri(1)).domains.get(vm)?.state;

describe("policies.vmStopped", () => {
  it("restart: a stopped VM of a connected switch is started again after 1 s, then 2 s, 4 s, 4 s; the record and events say so", async () => {
    r = await rig({ extra: POLICY("restart") });
    await joinAndSettle(r, 1n, [1, 2]);
    expect(starts(r)).toBe(1);
    const delays: number[] = [];
    for (let i = 0; i < 4; i++) {
      await stop(r, "rfvm1");
      expect(r.store.records.get(hex16(1n))!.state).toBe("stopped");
      const before = starts(r);
      // Not before its backoff: one ms short of it, nothing has started.
      const expected = [1000, 2000, 4000, 4000][i]!;
      await r.clock.advance(expected - 1);
      await settle();
      expect(starts(r)).toBe(before);
      await r.clock.advance(1);
      await settle();
      await r.daemon.idle();
      await settle();
      expect(starts(r)).toBe(before + 1);
      delays.push(expected);
      expect(state(r, "rfvm1")).toBe("running");
      expect(r.store.records.get(hex16(1n))!.state).toBe("running");
    }
    expect(delays).toEqual([1000, 2000, 4000, 4000]);
    expect(r.store.eventsOf(hex16(1n)).filter((k) => k === "restart")).toHaveLength(4);
  });

  it("restart: a VM that ran for resetSeconds starts over from backoffSeconds", async () => {
    r = await rig({ extra: POLICY("restart") });
    await joinAndSettle(r, 1n);
    await stop(r, "rfvm1");
    await r.clock.advance(1000);
    await settle();
    await r.daemon.idle();
    await stop(r, "rfvm1");
    await r.clock.advance(2000); // the second stop soon after: 2 s
    await settle();
    await r.daemon.idle();
    expect(state(r, "rfvm1")).toBe("running");
    await r.clock.advance(60_000); // ran for resetSeconds
    await stop(r, "rfvm1");
    const before = starts(r);
    await r.clock.advance(1000);
    await settle();
    await r.daemon.idle();
    expect(starts(r)).toBe(before + 1);
  });

  it("record: the state is recorded and the VM stays off", async () => {
    r = await rig({ extra: POLICY("record") });
    await joinAndSettle(r, 1n);
    await stop(r, "rfvm1", "Shutdown");
    await r.clock.advance(60_000);
    await settle();
    expect(starts(r)).toBe(1);
    expect(state(r, "rfvm1")).toBe("shut off");
    expect(r.store.records.get(hex16(1n))!.state).toBe("stopped");
    expect(r.store.eventsOf(hex16(1n))).toContain("stopped");
  });

  it("a stop after the switch left (the leave policy, or by hand) is never undone", async () => {
    r = await rig({ extra: POLICY("restart") });
    await joinAndSettle(r, 1n);
    r.switches.leave(1n);
    await settle();
    await stop(r, "rfvm1");
    await r.clock.advance(5_000); // inside the leave grace period: no leave yet, and no restart either
    await settle();
    expect(starts(r)).toBe(1);
    expect(r.store.eventsOf(hex16(1n))).not.toContain("restart");
  });
});

describe("Datapath.nextRestartDelay", () => {
  it("doubles from the first delay up to the cap while stops follow restarts within resetMs, then starts over", () => {
    const dp = new Datapath("0000000000000001");
    const at = [0, 10, 20, 30, 40];
    expect(at.map((t) => dp.nextRestartDelay(t, 500, 3000, 1000))).toEqual([500, 1000, 2000, 3000, 3000]);
    expect(dp.nextRestartDelay(1040, 500, 3000, 1000)).toBe(500);
    // A first delay of 0 stays 0 (restart at once), as configured.
    const z = new Datapath("0000000000000002");
    expect([0, 1, 2].map((t) => z.nextRestartDelay(t, 0, 3000, 1000))).toEqual([0, 0, 0]);
  });
});
