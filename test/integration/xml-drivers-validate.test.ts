/**
 * `rfboot xml --hypervisor X` for every driver and every VM of the shipped configs: each document validates
 * against libvirt's RelaxNG schemas (`virt-xml-validate`, exit 0), including drivers no configured host runs.
 */
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { execa } from "execa";
import { afterAll, expect, it, vi } from "vitest";
import { main } from "../../src/cli/main.js";
import { HYPERVISOR_NAMES } from "../../src/xmlgen/index.js";
import { REPO, describeWith } from "../helpers/env.js";

const CONFIGS = {
  "rftest2.yaml": ["rfvmA", "rfvmB", "rfvmC", "rfvmD"],
  "example.yaml": ["rfvmA", "rfvmB", "rfvmC", "rfvmD"],
  "rftest1.yaml": ["rfvm1"],
};

/** xmlOf runs `rfboot xml` in-process and returns what it printed on stdout. */
async function xmlOf(args: string[]): Promise<string> {
  let out = "";
  const o = vi
    .spyOn(process.stdout, "write")
    .mockImplementation((s: string | Uint8Array) => ((out += String(s)), true));
  const e = vi.spyOn(process.stderr, "write").mockImplementation(() => true);
  try {
    expect(await main(["xml", ...args])).toBe(0);
  } finally {
    o.mockRestore();
    e.mockRestore();
  }
  return out;
}

describeWith(["virt-xml-validate"], "rfboot xml --hypervisor X validates for every driver", () => {
  const dir = mkdtempSync(join(tmpdir(), "rfbtx-xmldrv-"));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it("every VM of rftest1, rftest2 and example under every driver", async () => {
    const failures: string[] = [];
    for (const [cfg, vms] of Object.entries(CONFIGS)) {
      for (const vm of vms) {
        for (const hv of HYPERVISOR_NAMES) {
          const f = join(dir, `${cfg}-${vm}-${hv}.xml`);
          writeFileSync(f, await xmlOf(["-c", join(REPO, "config", cfg), "--vm", vm, "--hypervisor", hv]));
          const r = await execa("virt-xml-validate", [f, "domain"], {
            reject: false,
            all: true,
            env: { LC_ALL: "C" },
          });
          if (r.exitCode !== 0) failures.push(`${cfg} ${vm} ${hv}: ${r.all ?? ""}`);
        }
      }
    }
    expect(failures).toEqual([]);
  }, 120_000);
});
