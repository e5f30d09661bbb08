/**
 * `rfboot status`' rows and renderers from fake records: a prewarmed VM shows its image's age, host and size,
 * a VM booting for prewarm says so; the prewarm summary adds up the images per host against the disk budget; a change of image is a change.
 */
import { describe, expect, it } from "vitest";
import {
  changeKey,
  collectRows,
  renderPrewarm,
  renderRows,
  stateText,
  type StatusRow,
} from "../../../src/cli/commands/status.js";
import type { VmRecord } from "../../../src/provisioner/index.js";
import { DPIDS, fakeRecord, prewarmConfig } from "./prewarm-fixtures.js";

const { A, B, C } = DPIDS;

const NOW = Date.parse("2026-01-01T12:00:00Z");
const ago = (s: number) => new Date(NOW - s * 1000);

const rec = (dpidHex: string, o: Partial<VmRecord>) => fakeRecord(dpidHex, o, ago(30));

const records: VmRecord[] = [
  rec(A, {
    vmName: "rfvmA",
    host: "h1",
    state: "prewarmed",
    prewarm: { at: ago(12 * 60), host: "h1", fingerprint: "f1", imageMiB: 128 },
  }),
  rec(B, {
    vmName: "rfvmB",
    host: "h2",
    state: "prewarmed",
    prewarm: { at: ago(3 * 3600), host: "h2", fingerprint: "f1", imageMiB: 256 },
  }),
  rec(C, {
    vmName: "rfvmC",
    host: "h1",
    state: "ready",
    prewarm: null,
    switch: { peer: "10.0.0.3:4000", version: 4, connected: true },
  }),
];

async function rows(prewarm = "{ enabled: true }", recs = records): Promise<StatusRow[]> {
  return collectRows(prewarmConfig(prewarm), { listRecords: () => Promise.resolve(recs) }, undefined);
}

describe("rfboot status with prewarm", () => {
  it("a row carries the record's prewarm image; a null image is no image", async () => {
    const r = await rows();
    expect(r.map((x) => [x.dpid, x.state, x.prewarm])).toEqual([
      [A, "prewarmed", { at: ago(720), host: "h1", imageMiB: 128 }],
      [B, "prewarmed", { at: ago(10_800), host: "h2", imageMiB: 256 }],
      [C, "ready", undefined],
      [DPIDS.D, "not joined", undefined],
    ]);
    // The JSON output is these rows: the image is there with its time, the fingerprint is rfboot's own.
    expect(JSON.parse(JSON.stringify(r[0]))).toMatchObject({
      state: "prewarmed",
      prewarm: { at: ago(720).toISOString(), host: "h1", imageMiB: 128 },
    });
  });

  it("STATE says prewarmed, the image's age, host and size; another state with an image says both", () => {
    const base: StatusRow = { dpid: A, switch: "never", state: "prewarmed" };
    const image = { at: ago(720), host: "h1", imageMiB: 128 };
    expect(stateText({ ...base, prewarm: image }, NOW)).toBe("prewarmed 12m ago on h1, 128 MiB");
    expect(stateText({ ...base, state: "failed", prewarm: image }, NOW)).toBe(
      "failed (prewarm image 12m ago on h1, 128 MiB)",
    );
    expect(stateText({ ...base, state: "ready" }, NOW)).toBe("ready");
  });

  it("a VM booting for prewarm says so, not only `running` with a switch never seen", async () => {
    const booting = rec(DPIDS.D, {
      vmName: "rfvmD",
      host: "h2",
      state: "running",
      prewarming: { since: ago(8), host: "h2" },
    });
    const r = await rows(undefined, [...records, booting]);
    expect(r[3]).toMatchObject({
      dpid: DPIDS.D,
      switch: "never",
      state: "running",
      prewarming: { since: ago(8), host: "h2" },
    });
    expect(r.slice(0, 3).map((x) => x.prewarming)).toEqual([undefined, undefined, undefined]);
    expect(
      renderRows(r, NOW)
        .split("\n")[5]!
        .split(/\s{2,}/)[4],
    ).toBe("prewarming on h2 for 8s (running)");
    expect(stateText({ dpid: A, switch: "never", state: "ready", prewarming: r[3]!.prewarming! }, NOW)).toBe(
      "prewarming on h2 for 8s (ready)",
    );
    // A null mark is no mark; the JSON row carries the mark with its time.
    expect((await rows(undefined, [{ ...booting, prewarming: null }]))[3]?.prewarming).toBeUndefined();
    expect(JSON.parse(JSON.stringify(r[3]))).toMatchObject({
      prewarming: { since: ago(8).toISOString(), host: "h2" },
    });
  });

  it("the table shows it in the STATE column", async () => {
    const lines = renderRows(await rows(), NOW).split("\n");
    expect(lines[2]!.split(/\s{2,}/).slice(0, 6)).toEqual([
      A,
      "never",
      "rfvmA",
      "h1",
      "prewarmed 12m ago on h1, 128 MiB",
      "-",
    ]);
    expect(lines[3]!.split(/\s{2,}/)[4]).toBe("prewarmed 3h ago on h2, 256 MiB");
    expect(lines[4]!.split(/\s{2,}/)[4]).toBe("ready");
  });

  it("the summary counts prewarmed VMs and their images per host against the disk budget", async () => {
    const config = prewarmConfig("{ enabled: true, diskMiB: 1024 }");
    expect(renderPrewarm(config, await rows())).toBe(
      "\nprewarm on: h1 1 VM prewarmed, 128 MiB of 1024 MiB disk budget; " +
        "h2 1 VM prewarmed, 256 MiB of 1024 MiB disk budget\n",
    );
    // Every configured host has its part, one without images too; diskMiB 0 is no limit.
    const none = await rows("{ enabled: true, diskMiB: 0 }", records.slice(1));
    expect(renderPrewarm(prewarmConfig("{ enabled: true, diskMiB: 0 }"), none)).toBe(
      "\nprewarm on: h1 0 VMs prewarmed, 0 MiB, no disk limit; h2 1 VM prewarmed, 256 MiB, no disk limit\n",
    );
  });

  it("prewarm off: no summary, unless images are still on disk", async () => {
    const off = prewarmConfig("{ enabled: false }");
    expect(renderPrewarm(off, await rows("{ enabled: false }", records.slice(2)))).toBe("");
    expect(renderPrewarm(off, await rows("{ enabled: false }"))).toBe(
      "\nprewarm off (images left on disk): h1 1 VM prewarmed, 128 MiB of 8192 MiB disk budget; " +
        "h2 1 VM prewarmed, 256 MiB of 8192 MiB disk budget\n",
    );
  });

  it("--watch prints again when an image is saved or dropped", async () => {
    const before = changeKey(await rows());
    const dropped = records.map((r) =>
      r.dpidHex === A ? { ...r, state: "stopped" as const, prewarm: null } : r,
    );
    expect(changeKey(await rows(undefined, dropped))).not.toBe(before);
    expect(changeKey(await rows())).toBe(before);
  });
});
