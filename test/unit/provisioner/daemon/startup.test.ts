/**
 * Start-up reconciliation on fakes: a restarted daemon finds the domains and records its predecessor left,
 * adopts instead of duplicating, and does not redefine a domain defined from the same VM config.
 */
import { afterEach, describe, expect, it } from "vitest";
import { hex16, joinAndSettle, rig, uri, type Rig } from "./rig.js";

let r: Rig | undefined;
afterEach(async () => {
  await r?.stop();
  r = undefined;
});

describe("start-up reconciliation", () => {
  it("a restarted daemon adopts the running VM where it is, without redefining it", async () => {
    const first = await rig({ hosts: 2 });
    // Both hosts are empty: rfvm1 goes to h1, rfvm2 to h2 (least loaded).
    await joinAndSettle(first, 1n);
    await joinAndSettle(first, 2n);
    expect(first.seen.ensured.map((e) => [e.vm, e.host])).toEqual([
      ["rfvm1", "h1"],
      ["rfvm2", "h2"],
    ]);
    await first.daemon.stop();
    const defines = first.libvirt.calls.filter((c) => c.args[0] === "define").length;
    r = await rig({
      hosts: 2,
      clock: first.clock,
      store: first.store,
      libvirt: first.libvirt,
      stateDir: first.stateDir,
    });
    expect(r.seen.reconciled).toHaveLength(1);
    // rfvm2's switch comes back first: it is still placed on h2, not on the then emptier h1.
    await joinAndSettle(r, 2n);
    await joinAndSettle(r, 1n);
    expect(r.seen.ensured.map((e) => [e.vm, e.host, e.action])).toEqual([
      ["rfvm2", "h2", "adopted"],
      ["rfvm1", "h1", "adopted"],
    ]);
    expect(r.libvirt.calls.filter((c) => c.args[0] === "define").length).toBe(defines);
    expect(r.libvirt.argsOf(uri(1), "start")).toEqual([["start", "rfvm1"]]);
    expect(r.store.records.get(hex16(1n))!.state).toBe("running");
  });

  it("a domain found on a host at start-up keeps its VM there", async () => {
    r = await rig({
      hosts: 2,
      before: (x) => {
        x.libvirt.host(uri(2)).domains.set("rfvm1", {
          uuid: "0f0f0f0f-0000-4000-8000-000000000001",
          state: "running",
          saved: false,
        });
      },
    });
    await joinAndSettle(r, 1n);
    expect(r.seen.ensured.map((e) => [e.host, e.action])).toEqual([["h2", "adopted"]]);
    expect(r.libvirt.argsOf(uri(1), "define")).toEqual([]);
  });
});
