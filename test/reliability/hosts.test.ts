/** Reliability: a libvirt host disappears; its VMs are reported, then re-placed (policies.hostLoss). */
import { expect, it } from "vitest";
import { describeWith } from "../helpers/env.js";
import { hostLoss } from "./lib/scenario-hostloss.js";
import { failedChecks } from "./lib/util.js";

describeWith(["libvirt", "mongo", "root"], "reliability: a libvirt host disappears", () => {
  it("reports its VMs, re-places them with policy replace, stops stale copies when it returns", async () => {
    const r = await hostLoss(4, 3);
    expect(failedChecks(r)).toEqual([]);
    expect(r.checks.length).toBeGreaterThan(8);
  }, 90_000);
});
