/**
 * Golden XML per driver, compared exactly so that any change to the output shows in a diff: each
 * sample renders exactly to its fixture, and reads back to itself.
 */
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { buildDomainXml, HYPERVISOR_NAMES, validateVmDescription } from "../../../src/xmlgen/index.js";
import { parseDomainXml } from "../../../src/xmlgen/parse.js";
import { EXTRA_SAMPLES, FIXTURES, SAMPLES } from "./samples.js";

// RFBOOT_UPDATE_GOLDEN=1 rewrites the fixtures (then review the diff by eye before committing).
const UPDATE = process.env.RFBOOT_UPDATE_GOLDEN === "1";

describe("golden domain XML", () => {
  for (const h of HYPERVISOR_NAMES) {
    it(`${h}: matches test/fixtures/xmlgen/${h}.xml byte for byte`, () => {
      const xml = buildDomainXml(SAMPLES[h]);
      const file = join(FIXTURES, `${h}.xml`);
      if (UPDATE) writeFileSync(file, xml);
      expect(xml).toBe(readFileSync(file, "utf8"));
    });

    it(`${h}: parses back to the normalised description`, () => {
      const { autostart: _a, ...want } = validateVmDescription(SAMPLES[h]);
      expect(parseDomainXml(buildDomainXml(SAMPLES[h]))).toEqual(want);
    });
  }

  for (const [name, vm] of Object.entries(EXTRA_SAMPLES)) {
    it(`${name}: matches test/fixtures/xmlgen/${name}.xml and parses back`, () => {
      const xml = buildDomainXml(vm);
      const file = join(FIXTURES, `${name}.xml`);
      if (UPDATE) writeFileSync(file, xml);
      expect(xml).toBe(readFileSync(file, "utf8"));
      const { autostart: _a, ...want } = validateVmDescription(vm);
      expect(parseDomainXml(xml)).toEqual(want);
    });
  }

  it("the fixtures carry RouteFlow's NIC layout (rfvmA: eth0 = vm_id, ethN on dp0 as rfvmA.N)", () => {
    const xml = readFileSync(join(FIXTURES, "kvm.xml"), "utf8");
    expect(xml).toContain('<mac address="02:a0:a0:a0:a0:a0"/>');
    for (let n = 1; n <= 4; n++) {
      expect(xml).toContain(
        `<mac address="02:a${n}:a${n}:a${n}:a${n}:a${n}"/>\n      <source bridge="dp0"/>\n      <virtualport type="openvswitch"/>\n      <target dev="rfvmA.${n}"/>`,
      );
    }
    // Management NIC first: guest eth0.
    expect(xml.indexOf("02:a0:a0:a0:a0:a0")).toBeLessThan(xml.indexOf("02:a1:a1:a1:a1:a1"));
  });
});
