import { readFileSync } from "node:fs";
import { join } from "node:path";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { listConfiguredVms, loadConfig, parseConfig } from "../../../src/provisioner/config/index.js";
import { rfconfigRows, type RfconfigRow } from "../../../src/provisioner/mapping.js";
import { REPO, SHARED } from "../../helpers/env.js";

/**
 * csvAsRows converts RouteFlow's CSV to rfconfig documents the way rfserver's loader does
 * (int(x, 16) for the ids, str() of the result), independently of rfboot's importer.
 */
function csvAsRows(text: string): RfconfigRow[] {
  return text
    .trim()
    .split("\n")
    .slice(1)
    .map((line) => {
      const [vm, vmPort, ct, dp, dpPort] = line.trim().split(",");
      return {
        vm_id: BigInt(`0x${vm!.replace(/^0x/i, "")}`).toString(),
        vm_port: String(Number(vmPort)),
        ct_id: String(Number(ct)) as "0",
        dp_id: BigInt(`0x${dp!.replace(/^0x/i, "")}`).toString(),
        dp_port: String(Number(dpPort)),
      };
    });
}

const key = (r: RfconfigRow) => JSON.stringify([r.vm_id, r.vm_port, r.ct_id, r.dp_id, r.dp_port]);

describe("rfconfigRows", () => {
  it("reproduces rftest2config.csv from config/rftest2.yaml (14 rows, decimal strings)", async () => {
    const config = await loadConfig(join(REPO, "config/rftest2.yaml"));
    const rows = listConfiguredVms(config).flatMap(rfconfigRows);
    const expected = csvAsRows(
      readFileSync(join(SHARED, "routeflow/rftest-config/rftest2config.csv"), "utf8"),
    );
    expect(expected).toHaveLength(14);
    expect(rows).toHaveLength(14);
    expect(new Set(rows.map(key))).toEqual(new Set(expected.map(key)));
    // The README's worked example, literally.
    expect(rows).toContainEqual({
      vm_id: "2888912904352",
      vm_port: "1",
      ct_id: "0",
      dp_id: "5",
      dp_port: "1",
    });
    for (const r of rows) for (const v of Object.values(r)) expect(v).toMatch(/^[0-9]+$/);
  });

  it("reproduces rftest1config.csv from config/rftest1.yaml (2 rows, dpid 0x99 = 153)", async () => {
    const config = await loadConfig(join(REPO, "config/rftest1.yaml"));
    const rows = listConfiguredVms(config).flatMap(rfconfigRows);
    const expected = csvAsRows(
      readFileSync(join(SHARED, "routeflow/rftest-config/rftest1config.csv"), "utf8"),
    );
    expect(rows.map(key).sort()).toEqual(expected.map(key).sort());
    expect(rows[0]!.dp_id).toBe("153");
    expect(rows[0]!.vm_id).toBe(BigInt("0x12a0a0a0a0a0").toString());
  });

  it("keeps 64-bit dpids exact beyond 2^53 and follows a portMap", () => {
    const config = parseConfig(`
datapaths:
  "0xfedcba9876543210":
    name: big
    vmId: "02:00:00:00:00:01"
    portMap: [{ vmPort: 2, dpPort: 40 }, { vmPort: 1, dpPort: 7 }]
`);
    expect(rfconfigRows(listConfiguredVms(config)[0]!)).toEqual([
      { vm_id: "2199023255553", vm_port: "1", ct_id: "0", dp_id: "18364758544493064720", dp_port: "7" },
      { vm_id: "2199023255553", vm_port: "2", ct_id: "0", dp_id: "18364758544493064720", dp_port: "40" },
    ]);
  });

  it("renders any 64-bit dpid and 48-bit vm_id as exact decimal (property)", () => {
    fc.assert(
      fc.property(
        fc.bigInt(0n, (1n << 64n) - 1n),
        fc.bigInt(1n, (1n << 46n) - 1n),
        fc.integer({ min: 1, max: 0xffffff00 }),
        (dpid, low, dpPort) => {
          const vmId = (0x02n << 40n) | (low & ((1n << 40n) - 1n));
          const [row] = rfconfigRows({
            dpid,
            vmId,
            ports: [{ vmPort: 1, dpPort, mac: "02:00:00:00:00:02", hostDev: "x.1" }],
          });
          expect(BigInt(row!.dp_id)).toBe(dpid);
          expect(BigInt(row!.vm_id)).toBe(vmId);
          expect(Number(row!.dp_port)).toBe(dpPort);
        },
      ),
      { numRuns: 300 },
    );
  });
});
