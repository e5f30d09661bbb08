import { readFileSync } from "node:fs";
import { join } from "node:path";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { ConfigError } from "../../../../src/common/errors.js";
import {
  importRouteflowCsv,
  listConfiguredVms,
  mergeCsvIntoConfig,
  parseConfig,
} from "../../../../src/provisioner/config/index.js";
import { rfconfigRows } from "../../../../src/provisioner/mapping.js";
import { SHARED } from "../../../helpers/env.js";

const RFTEST = join(SHARED, "routeflow/rftest-config");
const H = "vm_id,vm_port,ct_id,dp_id,dp_port";

function fails(text: string): ConfigError {
  try {
    importRouteflowCsv(text, "m.csv");
  } catch (e) {
    expect(e).toBeInstanceOf(ConfigError);
    return e as ConfigError;
  }
  throw new Error("expected a ConfigError");
}

describe("importRouteflowCsv", () => {
  it("imports rftest2config.csv as is: rfvmA..D on dpids 5..8, the same 14 rows", () => {
    const text = readFileSync(join(RFTEST, "rftest2config.csv"), "utf8");
    const imp = importRouteflowCsv(text, "rftest2config.csv");
    expect(imp.warnings).toEqual([]);
    expect(imp.datapaths.map((d) => [d.dpid, d.name, d.ports.length])).toEqual([
      [5n, "rfvmA", 4],
      [6n, "rfvmB", 3],
      [7n, "rfvmC", 3],
      [8n, "rfvmD", 4],
    ]);
    const rows = listConfiguredVms(imp.config).flatMap(rfconfigRows);
    const fromCsv = imp.rows.map((r) => ({
      vm_id: r.vmId.toString(),
      vm_port: String(r.vmPort),
      ct_id: "0",
      dp_id: r.dpId.toString(),
      dp_port: String(r.dpPort),
    }));
    expect(rows).toHaveLength(14);
    expect(new Set(rows.map((r) => JSON.stringify(r)))).toEqual(
      new Set(fromCsv.map((r) => JSON.stringify(r))),
    );
    expect(imp.yaml).toContain(`"0x5":`);
    expect(imp.yaml).toContain(`vmId: "02:a0:a0:a0:a0:a0"`);
    // The YAML printed is the config returned.
    expect(listConfiguredVms(parseConfig(imp.yaml)).map((v) => v.name)).toEqual([
      "rfvmA",
      "rfvmB",
      "rfvmC",
      "rfvmD",
    ]);
  });

  it("imports rftest1config.csv: rfvm1 on dpid 0x99", () => {
    const imp = importRouteflowCsv(readFileSync(join(RFTEST, "rftest1config.csv"), "utf8"));
    expect(imp.datapaths).toEqual([
      {
        dpid: 0x99n,
        name: "rfvm1",
        vmId: 0x12a0a0a0a0a0n,
        ports: [
          { vmPort: 1, dpPort: 1 },
          { vmPort: 2, dpPort: 2 },
        ],
      },
    ]);
  });

  it("accepts 0x prefixes, CRLF, spaces, and writes a portMap when ports are not k <-> k", () => {
    const imp = importRouteflowCsv(
      `${H}\r\n0x0200000000AB, 1, 0, 0xFEDCBA9876543210, 17\r\n0200000000ab,2,0,fedcba9876543210,3\r\n`,
    );
    expect(imp.datapaths[0]).toMatchObject({ dpid: 0xfedcba9876543210n, name: "rfvm-200000000ab" });
    expect(imp.yaml).toContain("portMap");
    expect(rfconfigRows(listConfiguredVms(imp.config)[0]!)[0]).toEqual({
      vm_id: String(0x0200000000abn),
      vm_port: "1",
      ct_id: "0",
      dp_id: "18364758544493064720",
      dp_port: "17",
    });
  });

  it("skips blank lines with a warning naming the line", () => {
    const imp = importRouteflowCsv(`${H}\n2A0A0A0A0A0,1,0,5,1\n\n2A0A0A0A0A0,2,0,5,2\n  \n`);
    expect(imp.rows).toHaveLength(2);
    expect(imp.warnings).toEqual([
      expect.stringMatching(/^line 3: blank line skipped/),
      expect.stringMatching(/^line 5: /),
    ]);
  });

  it.each([
    ["missing header", `2A0A0A0A0A0,1,0,5,1\n`, "m.csv line 1 header", /header line is missing/],
    ["wrong header", `a,b,c,d,e\n2A0A0A0A0A0,1,0,5,1\n`, "m.csv line 1 header", /must be "vm_id/],
    ["four fields", `${H}\n2A0A0A0A0A0,1,0,5\n`, "m.csv line 2 row", /4 fields/],
    ["vm_id not hex", `${H}\nXYZ,1,0,5,1\n`, "m.csv line 2 vm_id", /hex/],
    ["vm_id multicast", `${H}\n10000000001,1,0,5,1\n`, "m.csv line 2 vm_id", /multicast/],
    ["vm_id too long", `${H}\n1234567890ABC,1,0,5,1\n`, "m.csv line 2 vm_id", /12 digits/],
    ["vm_port 0", `${H}\n2A0A0A0A0A0,0,0,5,1\n`, "m.csv line 2 vm_port", /from 1/],
    ["vm_port hex", `${H}\n2A0A0A0A0A0,a,0,5,1\n`, "m.csv line 2 vm_port", /decimal/],
    ["ct_id 1", `${H}\n2A0A0A0A0A0,1,1,5,1\n`, "m.csv line 2 ct_id", /must be 0/],
    ["dp_id not hex", `${H}\n2A0A0A0A0A0,1,0,g5,1\n`, "m.csv line 2 dp_id", /hex/],
    ["dp_id 17 digits", `${H}\n2A0A0A0A0A0,1,0,10000000000000000,1\n`, "m.csv line 2 dp_id", /64 bits/],
    ["dp_port empty", `${H}\n2A0A0A0A0A0,1,0,5,\n`, "m.csv line 2 dp_port", /decimal/],
    [
      "VM on two datapaths",
      `${H}\n2A0A0A0A0A0,1,0,5,1\n2A0A0A0A0A0,2,0,6,1\n`,
      "m.csv line 3 vm_id",
      /already mapped to dp_id 5/,
    ],
    [
      "two VMs on a datapath",
      `${H}\n2A0A0A0A0A0,1,0,5,1\n2B0B0B0B0B0,1,0,5,2\n`,
      "m.csv line 3 dp_id",
      /already served/,
    ],
    ["vm port twice", `${H}\n2A0A0A0A0A0,1,0,5,1\n2A0A0A0A0A0,1,0,5,2\n`, "m.csv line 3 vm_port", /line 2/],
    [
      "switch port twice",
      `${H}\n2A0A0A0A0A0,1,0,5,1\n2A0A0A0A0A0,2,0,5,1\n`,
      "m.csv line 3 dp_port",
      /line 2/,
    ],
    ["only a header", `${H}\n`, "m.csv", /no mapping rows/],
  ])("%s -> exit-2 error naming line and field", (_w, text, path, msg) => {
    const e = fails(text);
    expect(e.path).toBe(path);
    expect(e.message).toMatch(msg);
  });

  it("reports every bad row, not just the first", () => {
    const e = fails(`${H}\n2A0A0A0A0A0,1,0,5,1\nbad\n2A0A0A0A0A0,x,0,5,2\n2A0A0A0A0A0,3,0,5,0\n`);
    expect(e.path).toBe("m.csv line 3 row");
    expect(e.message).toMatch(/\[and 2 more: line 4 vm_port, line 5 dp_port\]/);
  });

  it("round-trips any valid mapping: CSV -> config -> rfconfig rows (property)", () => {
    const vmArb = fc.record({
      low: fc.bigInt(1n, (1n << 40n) - 1n),
      dpid: fc.bigInt(0n, (1n << 64n) - 1n),
      ports: fc.uniqueArray(fc.integer({ min: 1, max: 0xfeff }), { minLength: 1, maxLength: 6 }),
    });
    fc.assert(
      fc.property(fc.uniqueArray(vmArb, { minLength: 1, maxLength: 5, selector: (v) => v.dpid }), (vms) => {
        const uniq = vms.filter((v, i) => vms.findIndex((w) => w.low === v.low) === i);
        const lines = [H];
        const expected = new Set<string>();
        for (const v of uniq) {
          const vmId = (0x02n << 40n) | v.low;
          v.ports.forEach((dpPort, i) => {
            lines.push(`${vmId.toString(16).toUpperCase()},${i + 1},0,${v.dpid.toString(16)},${dpPort}`);
            expected.add(
              JSON.stringify([vmId.toString(), String(i + 1), "0", v.dpid.toString(), String(dpPort)]),
            );
          });
        }
        const imp = importRouteflowCsv(lines.join("\n") + "\n");
        const rows = listConfiguredVms(imp.config).flatMap(rfconfigRows);
        expect(
          new Set(rows.map((r) => JSON.stringify([r.vm_id, r.vm_port, r.ct_id, r.dp_id, r.dp_port]))),
        ).toEqual(expected);
      }),
      { numRuns: 60 },
    );
  });
});

describe("mergeCsvIntoConfig", () => {
  const existing = `# my lab
mongo: { database: db }
datapaths:
  # the first switch
  "5": { name: routerA, vmId: "02:a0:a0:a0:a0:a0", dataPorts: 2, memoryMiB: 256 }
  "0x20": { name: other, vmId: "02:00:00:00:00:20", dataPorts: 1 }
`;
  it("updates listed dpids (keeping name, settings, comments) and adds new ones", () => {
    const imp = importRouteflowCsv(readFileSync(join(RFTEST, "rftest2config.csv"), "utf8"));
    const { yaml, config } = mergeCsvIntoConfig(existing, "lab.yaml", imp);
    expect(yaml).toContain("# my lab");
    expect(yaml).toContain("# the first switch");
    const vms = listConfiguredVms(config);
    expect(vms.map((v) => [v.dpid, v.name, v.ports.length])).toEqual([
      [5n, "routerA", 4],
      [6n, "rfvmB", 3],
      [7n, "rfvmC", 3],
      [8n, "rfvmD", 4],
      [0x20n, "other", 1],
    ]);
    expect(vms[0]!.memoryMiB).toBe(256);
  });

  it("refuses a vm_id that another listed dpid already uses", () => {
    const imp = importRouteflowCsv(`${H}\n20000000020,1,0,9,1\n`);
    expect(() => mergeCsvIntoConfig(existing, "lab.yaml", imp)).toThrow(/already the VM of datapath 0x20/);
  });

  it("renames an imported VM whose well-known name is taken", () => {
    const imp = importRouteflowCsv(`${H}\n2B0B0B0B0B0,1,0,6,1\n`);
    const withB = existing.replace("name: other", "name: rfvmB");
    const { config } = mergeCsvIntoConfig(withB, "lab.yaml", imp);
    expect(listConfiguredVms(config).find((v) => v.dpid === 6n)!.name).toBe("rfvm-2b0b0b0b0b0");
  });
});
