/**
 * ensureRunning with a beforeRun hook: the domain starts paused (a boot or a managed-save restore), the hook
 * runs while its CPUs are stopped, then it is resumed; a paused domain is resumed after the hook too. A hook
 * that fails or is slow never leaves the domain paused.
 */
import { describe, expect, it } from "vitest";
import { DomainManager } from "../../../../src/provisioner/libvirt/lifecycle.js";
import { makeVirshError, type VirshRunner } from "../../../../src/provisioner/libvirt/virsh.js";

const URI = "test+unix:///default";
const XML = `<domain type='test'><name>vm1</name><uuid>11111111-2222-3333-4444-555555555555</uuid></domain>`;

/** host answers like virsh for one domain in `state`; `log` gets every call and every hook run, in order. */
function host(state: "missing" | "shut off" | "shut off (saved)" | "paused" | "running") {
  const log: string[] = [];
  const run: VirshRunner = (uri, args) => {
    log.push(args.join(" "));
    const ok = (stdout = "") => Promise.resolve({ stdout, stderr: "" });
    switch (args[0]) {
      case "domstate":
        if (state === "missing")
          return Promise.reject(makeVirshError(uri, args, "error: failed to get domain 'vm1'\n", 1));
        return ok(`${state}\n`);
      case "dominfo":
        return ok("Managed save:   no\n");
      default:
        return ok();
    }
  };
  const mgr = new DomainManager({ host: { name: "h1", uri: URI }, run });
  const hook =
    (fail = false) =>
    (boot: boolean) => {
      log.push(`hook boot=${boot}`);
      return fail ? Promise.reject(new Error("console did not attach")) : Promise.resolve();
    };
  return { log, mgr, hook };
}

describe("DomainManager.ensureRunning with beforeRun", () => {
  it("a new domain is defined, started paused, the hook runs (boot), then it is resumed", async () => {
    const h = host("missing");
    const r = await h.mgr.ensureRunning({ name: "vm1", xml: XML, beforeRun: h.hook() });
    expect(r.action).toBe("defined+started");
    expect(h.log.filter((l) => !l.startsWith("define"))).toEqual([
      "domstate vm1 --reason",
      "start vm1 --paused",
      "hook boot=true",
      "resume vm1",
    ]);
    expect(r.startedAt).toBeInstanceOf(Date);
  });

  it("a managed-saved domain is restored paused: the hook is told it is no boot", async () => {
    const h = host("shut off (saved)");
    const r = await h.mgr.ensureRunning({ name: "vm1", xml: XML, redefine: false, beforeRun: h.hook() });
    expect(r).toMatchObject({ action: "started", restored: true });
    expect(h.log).toEqual(["domstate vm1 --reason", "start vm1 --paused", "hook boot=false", "resume vm1"]);
  });

  it("a paused domain: the hook (no boot), then resume", async () => {
    const h = host("paused");
    const r = await h.mgr.ensureRunning({ name: "vm1", xml: XML, redefine: false, beforeRun: h.hook() });
    expect(r.action).toBe("resumed");
    expect(h.log).toEqual(["domstate vm1 --reason", "hook boot=false", "resume vm1"]);
  });

  it("a running domain is adopted without the hook", async () => {
    const h = host("running");
    const r = await h.mgr.ensureRunning({ name: "vm1", xml: XML, redefine: false, beforeRun: h.hook() });
    expect(r.action).toBe("adopted");
    expect(h.log).toEqual(["domstate vm1 --reason"]);
  });

  it("a failing hook does not fail the attempt, and the domain is resumed", async () => {
    const h = host("shut off");
    const r = await h.mgr.ensureRunning({ name: "vm1", xml: XML, redefine: false, beforeRun: h.hook(true) });
    expect(r.action).toBe("started");
    expect(h.log.slice(-3)).toEqual(["start vm1 --paused", "hook boot=true", "resume vm1"]);
  });

  it("without a hook the start is a plain start", async () => {
    const h = host("shut off");
    await h.mgr.ensureRunning({ name: "vm1", xml: XML, redefine: false });
    expect(h.log.at(-1)).toBe("start vm1");
    expect(h.log).not.toContain("resume vm1");
  });
});
