/**
 * Every document xmlgen produces validates against libvirt's RelaxNG schemas (`virt-xml-validate`, exit 0):
 * the golden fixtures of every driver, and a few hundred generated descriptions covering every
 * combination the model allows (test/unit/xmlgen/arbitraries.ts).
 */
import { mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { execa } from "execa";
import fc from "fast-check";
import pLimit from "p-limit";
import { afterAll, expect, it } from "vitest";
import { buildDomainXml } from "../../src/xmlgen/index.js";
import { hypervisorName } from "../../src/xmlgen/drivers.js";
import { describeWith } from "../helpers/env.js";
import { anyVm } from "../unit/xmlgen/arbitraries.js";
import { FIXTURES } from "../unit/xmlgen/samples.js";

const COUNT = Number(process.env.RFBOOT_XMLGEN_VALIDATE_COUNT ?? 300);

async function validate(file: string): Promise<{ exitCode: number; output: string }> {
  const r = await execa("virt-xml-validate", [file, "domain"], {
    reject: false,
    env: { LC_ALL: "C" },
    all: true,
  });
  return { exitCode: r.exitCode ?? -1, output: r.all ?? "" };
}

describeWith(["virt-xml-validate"], "xmlgen documents validate with virt-xml-validate", () => {
  const dir = mkdtempSync(join(tmpdir(), "rfbtx-xmlgen-"));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it("every golden fixture (one per driver, plus hostile.xml) is valid", async () => {
    const files = readdirSync(FIXTURES).filter((f) => f.endsWith(".xml"));
    expect(files.sort()).toEqual([
      "hostile.xml",
      "kvm.xml",
      "lxc.xml",
      "qemu.xml",
      "test.xml",
      "xen-hvm.xml",
      "xen-pv.xml",
    ]);
    for (const f of files) {
      const r = await validate(join(FIXTURES, f));
      expect(r, f).toMatchObject({ exitCode: 0 });
    }
  });

  it("the validator discriminates: a multicast MAC or a stray element is refused (exit 3)", async () => {
    const good = readFileSync(join(FIXTURES, "qemu.xml"), "utf8");
    const bad1 = join(dir, "bad-mac.xml");
    writeFileSync(bad1, good.replace("02:b1:b1:b1:b1:b1", "03:b1:b1:b1:b1:b1"));
    const bad2 = join(dir, "bad-element.xml");
    writeFileSync(bad2, good.replace("<devices>", "<devices>\n    <injected/>"));
    expect((await validate(bad1)).exitCode).toBe(3);
    expect((await validate(bad2)).exitCode).toBe(3);
  });

  it(`${COUNT} generated descriptions over every driver and option are all valid`, async () => {
    const seed = Number(process.env.RFBOOT_XMLGEN_SEED ?? Date.now() % 2 ** 31);
    const vms = fc.sample(anyVm, { numRuns: COUNT, seed });
    const files = vms.map((vm, i) => {
      const f = join(dir, `gen-${i}-${hypervisorName(vm.hypervisor)}.xml`);
      writeFileSync(f, buildDomainXml(vm));
      return f;
    });
    const limit = pLimit(2); // 2 cores
    const results = await Promise.all(files.map((f) => limit(async () => ({ f, ...(await validate(f)) }))));
    const failures = results
      .filter((r) => r.exitCode !== 0)
      .slice(0, 3)
      .map((r) => `${r.f} (seed ${seed}):\n${r.output}\n${readFileSync(r.f, "utf8")}`);
    expect(failures, `RFBOOT_XMLGEN_SEED=${seed}`).toEqual([]);
    expect(results).toHaveLength(COUNT);
  }, 180_000);
});
