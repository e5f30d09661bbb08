/** Reliability: rfboot killed with SIGKILL mid-burst and restarted loses and duplicates nothing. */
import { expect, it } from "vitest";
import { describeWith } from "../helpers/env.js";
import { crashDuringBurst } from "./lib/scenario-crash.js";
import { failedChecks } from "./lib/util.js";

describeWith(
  ["libvirt", "mongo", "qemu-img", "root"],
  "reliability: SIGKILL during a burst of 32 joins",
  () => {
    it("restarts into exactly 32 domains, 32 records, rows once, no orphan overlays", async () => {
      const r = await crashDuringBurst(32, 10);
      expect(failedChecks(r)).toEqual([]);
      expect(r.checks.length).toBeGreaterThan(8);
    }, 180_000);
  },
);
