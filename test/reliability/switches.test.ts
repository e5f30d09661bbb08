/**
 * Reliability, switch-side faults: a flapping switch (simulated, 100 sessions in 10 s; and a real
 * Open vSwitch bridge), two switches with the same datapath id, and the upstream controller restarting in
 * relay mode.
 */
import { expect, it } from "vitest";
import { describeWith } from "../helpers/env.js";
import { duplicateDpid } from "./lib/scenario-dup.js";
import { flapping } from "./lib/scenario-flap.js";
import { upstreamRestart } from "./lib/scenario-relay.js";
import { failedChecks } from "./lib/util.js";

describeWith(
  ["ovs", "libvirt", "mongo", "root"],
  "reliability: flapping, duplicate dpids, upstream restart",
  () => {
    it("a switch flapping 100 times in 10 s: one VM, one start, leave policy after its grace period only", async () => {
      const r = await flapping("sim", 100, 10_000, 5);
      expect(failedChecks(r)).toEqual([]);
      expect(r.figures.joinsSeen).toBe(100);
    }, 90_000);

    it("a real OVS bridge flapping: one VM, one start, leave policy after its grace period only", async () => {
      const r = await flapping("ovs", 50, 10_000, 5);
      expect(failedChecks(r)).toEqual([]);
    }, 120_000);

    it("two switches with one dpid: newest wins, old closed, logged, one VM", async () => {
      const r = await duplicateDpid(8);
      expect(failedChecks(r)).toEqual([]);
    }, 90_000);

    it("relay mode: the upstream restarts; switches reconnect into clean sessions; datapaths stay known", async () => {
      const r = await upstreamRestart(3000);
      expect(failedChecks(r)).toEqual([]);
    }, 90_000);
  },
);
