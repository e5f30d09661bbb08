import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { main } from "../../../src/cli/main.js";
import { listConfiguredVms, loadConfig, parseConfig } from "../../../src/provisioner/config/index.js";
import { REPO, SHARED } from "../../helpers/env.js";

const tmp = mkdtempSync(join(tmpdir(), "rfbt-cfg-csv-"));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));
const CSV2 = join(SHARED, "routeflow/rftest-config/rftest2config.csv");

let out: string;
let err: string;
beforeEach(() => {
  out = "";
  err = "";
  vi.spyOn(process.stdout, "write").mockImplementation(
    (s: string | Uint8Array) => ((out += String(s)), true),
  );
  vi.spyOn(process.stderr, "write").mockImplementation(
    (s: string | Uint8Array) => ((err += String(s)), true),
  );
});
afterEach(() => vi.restoreAllMocks());

describe("rfboot import-csv", () => {
  it("prints a valid config for rftest2config.csv", async () => {
    expect(await main(["import-csv", CSV2])).toBe(0);
    const c = parseConfig(out);
    expect(listConfiguredVms(c).map((v) => v.name)).toEqual(["rfvmA", "rfvmB", "rfvmC", "rfvmD"]);
    expect(err).toBe("");
  });

  it("writes --out, refuses to overwrite it without --force", async () => {
    const o = join(tmp, "out.yaml");
    expect(await main(["import-csv", CSV2, "--out", o])).toBe(0);
    expect(out).toBe("");
    expect((await loadConfig(o)).datapaths).toHaveLength(4);
    expect(await main(["import-csv", CSV2, "--out", o])).toBe(2);
    expect(err).toMatch(/exists; pass --force/);
    expect(await main(["import-csv", CSV2, "--out", o, "--force"])).toBe(0);
  });

  it("merges into an existing config", async () => {
    const existing = join(tmp, "lab.yaml");
    writeFileSync(
      existing,
      `# keep me\ndatapaths:\n  "0x99": { name: rfvm1, vmId: "12:a0:a0:a0:a0:a0", dataPorts: 2 }\n`,
    );
    expect(await main(["import-csv", CSV2, "--merge", existing, "--out", existing])).toBe(0);
    const text = readFileSync(existing, "utf8");
    expect(text).toContain("# keep me");
    expect((await loadConfig(existing)).datapaths.map((d) => d.dpid)).toEqual([5n, 6n, 7n, 8n, 0x99n]);
  });

  it("warns about blank lines on stderr and still succeeds", async () => {
    const f = join(tmp, "blank.csv");
    writeFileSync(f, "vm_id,vm_port,ct_id,dp_id,dp_port\n2A0A0A0A0A0,1,0,5,1\n\n");
    expect(await main(["import-csv", f])).toBe(0);
    expect(err).toMatch(/warning: .*blank.csv line 3: blank line skipped/);
  });

  it("exits 2 naming the line and field of a bad row", async () => {
    const f = join(tmp, "bad.csv");
    writeFileSync(f, "vm_id,vm_port,ct_id,dp_id,dp_port\n2A0A0A0A0A0,1,0,5,1\n2A0A0A0A0A0,two,0,5,2\n");
    expect(await main(["import-csv", f])).toBe(2);
    expect(out).toBe("");
    expect(err).toMatch(
      /^rfboot: .*bad.csv line 3 vm_port: must be a decimal number from 1 to 256 \(guest ethN\), got "two"\n$/,
    );
  });

  it("exits 2 for a missing file", async () => {
    expect(await main(["import-csv", join(tmp, "none.csv")])).toBe(2);
    expect(err).toMatch(/cannot read CSV .*none.csv: no such file/);
  });
});

describe("rfboot export-csv", () => {
  const rowsOf = (csv: string) =>
    csv
      .trim()
      .split("\n")
      .slice(1)
      .map((l) => l.trim())
      .sort();

  it("writes rftest2's own CSV back from the rftest2 config, and import-csv reads it back to the same VMs", async () => {
    expect(await main(["export-csv", "--config", join(REPO, "config/rftest2.yaml")])).toBe(0);
    const csv = out;
    expect(csv.split("\n")[0]).toBe("vm_id,vm_port,ct_id,dp_id,dp_port");
    expect(csv.endsWith("\n") && !csv.includes("\n\n")).toBe(true);
    // Exactly RouteFlow's rows (its file orders them differently).
    expect(rowsOf(csv)).toEqual(rowsOf(readFileSync(CSV2, "utf8")));
    const f = join(tmp, "exported.csv");
    writeFileSync(f, csv);
    out = "";
    expect(await main(["import-csv", f])).toBe(0);
    const back = listConfiguredVms(parseConfig(out));
    const orig = listConfiguredVms(await loadConfig(join(REPO, "config/rftest2.yaml")));
    const shape = (vms: typeof back) =>
      vms.map((v) => ({ dpid: v.dpid, vmId: v.vmId, ports: v.ports.map((p) => [p.vmPort, p.dpPort]) }));
    expect(shape(back)).toEqual(shape(orig));
  });

  it("writes --out and refuses to overwrite it without --force", async () => {
    const o = join(tmp, "rftest1config.csv");
    const args = ["export-csv", "--config", join(REPO, "config/rftest1.yaml"), "--out", o];
    expect(await main(args)).toBe(0);
    expect(readFileSync(o, "utf8")).toBe(
      "vm_id,vm_port,ct_id,dp_id,dp_port\n12A0A0A0A0A0,1,0,99,1\n12A0A0A0A0A0,2,0,99,2\n",
    );
    expect(await main(args)).toBe(2);
    expect(err).toMatch(/exists; pass --force/);
    expect(await main([...args, "--force"])).toBe(0);
  });
});
