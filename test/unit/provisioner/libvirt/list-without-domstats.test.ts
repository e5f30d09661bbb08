/**
 * DomainManager.list on a driver without `domstats` (libvirt's LXC driver has no
 * virConnectGetAllDomainStats): states come from `list` filtered by state, so an LXC host is reachable and
 * its domains known, instead of every probe failing.
 */
import { describe, expect, it } from "vitest";
import { DomainManager } from "../../../../src/provisioner/libvirt/lifecycle.js";
import { makeVirshError, type VirshRunner } from "../../../../src/provisioner/libvirt/virsh.js";

const URI = "lxc:///system";
const NO_STATS =
  "error: this function is not supported by the connection driver: virConnectGetAllDomainStats\n";

function lxcHost(): { run: VirshRunner; calls: string[][] } {
  const calls: string[][] = [];
  const run: VirshRunner = async (uri, args) => {
    calls.push([...args]);
    const out = (stdout: string) => ({ stdout, stderr: "" });
    if (args[0] === "domstats") throw makeVirshError(uri, args, NO_STATS, 1);
    if (args[0] === "list" && args.includes("--uuid"))
      return out(
        "0b0e7d4a-0000-4000-8000-000000000001 ct-run\n0b0e7d4a-0000-4000-8000-000000000002 ct-off\n0b0e7d4a-0000-4000-8000-000000000003 ct-frozen\n",
      );
    if (args[0] === "list" && args.includes("--state-running")) return out("ct-run\n");
    if (args[0] === "list" && args.includes("--state-paused")) return out("ct-frozen\n");
    if (args[0] === "list" && args.includes("--state-shutoff")) return out("ct-off\n");
    if (args[0] === "list" && args.includes("--with-managed-save")) return out("");
    throw new Error(`unexpected virsh ${args.join(" ")}`);
  };
  return { run, calls };
}

describe("DomainManager.list without domstats", () => {
  it("takes each domain's state from list --state-*, for the probe with stats and without", async () => {
    for (const stats of [true, false]) {
      const h = lxcHost();
      const m = new DomainManager({ host: { name: "lxc", uri: URI }, run: h.run });
      const got = await m.list({ stats });
      expect(got.map((d) => [d.name, d.state])).toEqual([
        ["ct-run", "running"],
        ["ct-off", "shutoff"],
        ["ct-frozen", "paused"],
      ]);
      expect(h.calls.filter((c) => c[0] === "list" && c.some((a) => a.startsWith("--state-")))).toHaveLength(
        3,
      );
    }
  });

  it("still fails on any other domstats error (an unreachable host stays unreachable)", async () => {
    const run: VirshRunner = async (uri, args) => {
      if (args[0] === "domstats")
        throw makeVirshError(uri, args, "error: failed to connect to the hypervisor\n", 1);
      return { stdout: "", stderr: "" };
    };
    const m = new DomainManager({ host: { name: "lxc", uri: URI }, run });
    await expect(m.list({ stats: true })).rejects.toThrow(/failed to connect/);
  });
});
