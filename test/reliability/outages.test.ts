/**
 * Reliability: libvirtd stopped for 20 s and MongoDB (a private FerretDB) stopped for 20 s during
 * bursts of joins. The two outages use disjoint components (each its own private libvirtd), so they run at
 * the same time to keep the suite short.
 */
import { expect, it } from "vitest";
import { describeWith } from "../helpers/env.js";
import { libvirtdOutage } from "./lib/scenario-libvirtd.js";
import { mongoOutage } from "./lib/scenario-mongo.js";
import { failedChecks } from "./lib/util.js";

describeWith(["libvirt", "mongo", "root"], "reliability: 20 s outages of libvirtd and of MongoDB", () => {
  it("every VM ends up running and every record written exactly once", async () => {
    const [lv, mg] = await Promise.all([libvirtdOutage(16, 4, 20_000), mongoOutage(8, 8, 20_000)]);
    expect({ libvirtd: failedChecks(lv), mongodb: failedChecks(mg) }).toEqual({ libvirtd: [], mongodb: [] });
    expect(lv.checks.length).toBeGreaterThan(8);
    expect(mg.checks.length).toBeGreaterThan(8);
  }, 150_000);
});
