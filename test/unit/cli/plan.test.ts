/**
 * `rfboot plan`'s prewarm part: the rendering of a plan (order, left-out VMs with their reasons, budgets per
 * host), and that the planner is asked only with prewarm on, with the switches the records show connected;
 * what a join would do, a VM booting for prewarm included.
 */
import { describe, expect, it } from "vitest";
import { joinAction, planPrewarm, renderPrewarmPlan } from "../../../src/cli/commands/plan.js";
import type { PrewarmPlan } from "../../../src/provisioner/index.js";
import { DPIDS, fakeRecord, prewarmConfig } from "./prewarm-fixtures.js";

const { A, B, C, D } = DPIDS;

const rec = fakeRecord;

const PLAN: PrewarmPlan = {
  order: [
    { dpidHex: B, vm: "rfvmB", host: "h2", memoryMiB: 128, image: "fresh" },
    { dpidHex: A, vm: "rfvmA", host: "h1", memoryMiB: 128, image: "stale" },
    { dpidHex: D, vm: "rfvmD", host: "h2", memoryMiB: 128, image: "none" },
  ],
  leftOut: [{ dpidHex: C, vm: "rfvmC", reason: "switch connected" }],
  perHost: {
    h1: { bootMemoryMiB: 512, imagesMiB: 128, images: 1, diskBudgetMiB: 1024 },
    h2: { bootMemoryMiB: 512, imagesMiB: 256, images: 2, diskBudgetMiB: 1024 },
  },
};

describe("rfboot plan: prewarm", () => {
  it("renders the settings, the order, the left-out VMs and why, and the budgets per host", () => {
    const config = prewarmConfig("{ enabled: true, memoryMiB: 512, diskMiB: 1024, concurrency: 2 }");
    const lines = renderPrewarmPlan(config, PLAN).split("\n");
    expect(lines[0]).toBe("");
    expect(lines[1]).toBe(
      "prewarm: order config, 2 at once; per host 512 MiB for booting VMs, 1024 MiB of images",
    );
    expect(lines[2]).toMatch(/^ORDER\s+DPID\s+VM\s+HOST\s+MEMORY\s+IMAGE\s+WHAT$/);
    const cells = (i: number) => lines[i]!.split(/\s{2,}/);
    expect(cells(4)).toEqual([
      "1",
      B,
      "rfvmB",
      "h2",
      "128 MiB",
      "fresh",
      "kept: its image is of the current config",
    ]);
    expect(cells(5)).toEqual([
      "2",
      A,
      "rfvmA",
      "h1",
      "128 MiB",
      "stale",
      "booted again: its image is of an older config",
    ]);
    expect(cells(6)).toEqual(["3", D, "rfvmD", "h2", "128 MiB", "none", "booted, then saved"]);
    expect(cells(7)).toEqual(["-", C, "rfvmC", "-", "-", "-", "left out: switch connected"]);
    expect(lines[8]).toBe("");
    expect(lines[9]).toMatch(/^HOST\s+BOOTING AT ONCE\s+IMAGES\s+IMAGE DISK$/);
    // h1 boots A again; h2 keeps B's fresh image and boots D: one boot each, of 128 MiB.
    expect(cells(11)).toEqual(["h1", "128 MiB of 512 MiB", "1", "128 MiB of 1024 MiB"]);
    expect(cells(12)).toEqual(["h2", "128 MiB of 512 MiB", "2", "256 MiB of 1024 MiB"]);
  });

  it("says when a budget is no limit", () => {
    const config = prewarmConfig("{ enabled: true, memoryMiB: 0, diskMiB: 0, order: recent }");
    const unlimited: PrewarmPlan = {
      ...PLAN,
      perHost: { h1: { bootMemoryMiB: 0, imagesMiB: 128, images: 1, diskBudgetMiB: 0 } },
    };
    const out = renderPrewarmPlan(config, unlimited);
    expect(out.split("\n")[1]).toBe(
      "prewarm: order recent, 1 at once; per host booting VMs bounded by its capacity, no limit on images",
    );
    expect(
      out
        .trimEnd()
        .split("\n")
        .at(-1)!
        .split(/\s{2,}/),
    ).toEqual(["h1", "128 MiB (no limit)", "1", "128 MiB (no limit)"]);
  });

  it("booting at once: at most concurrency boots, the largest that fit the boot budget together", () => {
    const boots = (mibs: number[]): PrewarmPlan => ({
      order: mibs.map((m, i) => ({
        dpidHex: A,
        vm: `v${i}`,
        host: "h1",
        memoryMiB: m,
        image: "none" as const,
      })),
      leftOut: [],
      perHost: { h1: { bootMemoryMiB: 512, imagesMiB: 0, images: mibs.length, diskBudgetMiB: 0 } },
    });
    const booting = (c: number, plan: PrewarmPlan) =>
      renderPrewarmPlan(prewarmConfig(`{ enabled: true, concurrency: ${c} }`), plan)
        .trimEnd()
        .split("\n")
        .at(-1)!
        .split(/\s{2,}/)[1];
    expect(booting(2, boots([100, 400, 300]))).toBe("500 MiB of 512 MiB"); // 400 + 100: 300 does not fit
    expect(booting(1, boots([100, 400, 300]))).toBe("400 MiB of 512 MiB");
    expect(booting(3, boots([200, 200]))).toBe("400 MiB of 512 MiB");
    // A fresh image needs no boot.
    const kept = boots([300]);
    kept.order[0] = { ...kept.order[0]!, image: "fresh" };
    expect(booting(1, kept)).toBe("0 MiB of 512 MiB");
  });

  it("a VM booting for prewarm: its join adopts it, and the prewarm plan shows it booting on its host", () => {
    const booting = rec(D, {
      vmName: "rfvmD",
      host: "h2",
      state: "running",
      prewarming: { since: new Date(0), host: "h2" },
    });
    expect(joinAction(booting)).toBe("adopt (booting for prewarm on h2: not saved then)");
    expect(joinAction({ ...booting, prewarming: null })).toBe("adopt (already running)");
    expect(joinAction(undefined)).toBe("define+start on join");
    expect(joinAction(rec(D, { state: "prewarmed" }))).toBe("restore the prewarm image on join");
    const config = prewarmConfig("{ enabled: true }");
    const plan = planPrewarm(config, new Map([[D, booting]]))!;
    expect(plan.order.find((o) => o.vm === "rfvmD")).toMatchObject({ host: "h2", image: "booting" });
    const line = renderPrewarmPlan(config, plan)
      .split("\n")
      .find((l) => l.includes("rfvmD"))!;
    expect(line.split(/\s{2,}/).slice(3)).toEqual(["h2", "128 MiB", "booting", "booting now, then saved"]);
  });

  it("asks the planner only with prewarm on; a connected switch's VM is left out", () => {
    const records = new Map([
      [
        C,
        rec(C, { vmName: "rfvmC", host: "h1", switch: { peer: "10.0.0.3:1", version: 4, connected: true } }),
      ],
    ]);
    expect(planPrewarm(prewarmConfig("{ enabled: false }"), records)).toBeUndefined();
    const plan = planPrewarm(prewarmConfig("{ enabled: true }"), records)!;
    expect(plan.order.map((o) => o.vm)).not.toContain("rfvmC");
    expect(plan.leftOut.map((l) => l.vm)).toContain("rfvmC");
    expect(Object.keys(plan.perHost).sort()).toEqual(["h1", "h2"]);
  });
});
