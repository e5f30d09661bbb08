/**
 * Property tests over every combination the model allows (arbitraries.ts): deterministic output,
 * round trip through the parser, hostile strings preserved exactly, unrepresentable characters refused.
 */
import fc from "fast-check";
import { XMLBuilder, XMLParser } from "fast-xml-parser";
import { domainTree, serialize } from "../../../src/xmlgen/build.js";
import { describe, expect, it } from "vitest";
import { ConfigError } from "../../../src/common/errors.js";
import {
  buildDomainXml,
  HYPERVISOR_NAMES,
  validateVmDescription,
  type VmDescription,
} from "../../../src/xmlgen/index.js";
import { parseDomainXml } from "../../../src/xmlgen/parse.js";
import { DRIVERS, hypervisorName } from "../../../src/xmlgen/drivers.js";
import { anyVm, vmFor, xmlText } from "./arbitraries.js";
import { SAMPLES } from "./samples.js";

const RUNS = Number(process.env.RFBOOT_PROPERTY_RUNS ?? 300);

// An independent reading of the document: plain fast-xml-parser, no rfboot code involved.
const raw = new XMLParser({
  ignoreAttributes: false,
  attributeNamePrefix: "@_",
  trimValues: false,
  parseTagValue: false,
  parseAttributeValue: false,
  htmlEntities: true,
  isArray: (name) => ["disk", "interface", "initarg", "filesystem"].includes(name),
});

// The raw parse is untyped by nature: this test walks it by element name.
// eslint-disable-next-line @typescript-eslint/no-explicit-any
type Any = Record<string, any>;

describe("xmlgen properties", () => {
  it("the generator covers every combination the model allows (driver x boot, disk source, NIC, console)", () => {
    const seen = new Set<string>();
    for (const vm of fc.sample(anyVm, { numRuns: 600, seed: 42 })) {
      const h = hypervisorName(vm.hypervisor);
      seen.add(`${h}/boot=${vm.boot.type}`);
      for (const d of vm.disks ?? []) seen.add(`${h}/disk=${d.source.type}`);
      for (const n of vm.interfaces)
        seen.add(`${h}/nic=${n.type}${"virtualport" in n && n.virtualport ? "+ovs" : ""}`);
      seen.add(
        `${h}/console=${vm.console?.logFile ? "log" : "nolog"}+${vm.console?.pty === false ? "nopty" : "pty"}`,
      );
      if ((vm.filesystems ?? []).length > 0) seen.add(`${h}/fs`);
    }
    const want: string[] = [];
    for (const h of HYPERVISOR_NAMES) {
      const drv = DRIVERS[h];
      for (const b of drv.boots) want.push(`${h}/boot=${b}`);
      if (drv.disk) for (const t of ["file", "overlay", "block"]) want.push(`${h}/disk=${t}`);
      for (const n of ["network", "bridge", "bridge+ovs"]) want.push(`${h}/nic=${n}`);
      for (const c of ["log+pty", "log+nopty", "nolog+pty", "nolog+nopty"]) want.push(`${h}/console=${c}`);
      if (drv.filesystems) want.push(`${h}/fs`);
    }
    expect(want.filter((w) => !seen.has(w))).toEqual([]);
  });

  it("is deterministic: the same description (or a deep copy) gives byte-identical XML", () => {
    fc.assert(
      fc.property(anyVm, (vm) => {
        const a = buildDomainXml(vm);
        expect(buildDomainXml(structuredClone(vm))).toBe(a);
        expect(buildDomainXml(validateVmDescription(vm))).toBe(a); // normalising is idempotent
      }),
      { numRuns: RUNS },
    );
  });

  it("serialize is byte-identical to fast-xml-parser's XMLBuilder (the oracle) on every document", () => {
    // The builder's default entity list plus CR, as build.ts escapes; `entities` is missing from its types.
    const builder = new XMLBuilder({
      ignoreAttributes: false,
      attributeNamePrefix: "@_",
      format: true,
      indentBy: "  ",
      suppressEmptyNode: true,
      entities: [
        { regex: /&/g, val: "&amp;" },
        { regex: />/g, val: "&gt;" },
        { regex: /</g, val: "&lt;" },
        { regex: /'/g, val: "&apos;" },
        { regex: /"/g, val: "&quot;" },
        { regex: /\r/g, val: "&#13;" },
      ],
    } as ConstructorParameters<typeof XMLBuilder>[0]);
    fc.assert(
      fc.property(anyVm, (vm) => {
        const tree = domainTree(validateVmDescription(vm));
        expect(serialize(tree)).toBe(builder.build(tree));
      }),
      { numRuns: RUNS },
    );
  });

  it("serialize escapes TAB and LF in attribute values (attribute-value normalisation would eat them)", () => {
    expect(serialize({ a: { "@_v": "x\ty\nz\r<&>'\"" } })).toBe(
      '<a v="x&#9;y&#10;z&#13;&lt;&amp;&gt;&apos;&quot;"/>\n',
    );
  });

  it("round trip: parseDomainXml(buildDomainXml(vm)) equals the normalised description", () => {
    fc.assert(
      fc.property(anyVm, (vm) => {
        const { autostart: _a, ...want } = validateVmDescription(vm);
        expect(parseDomainXml(buildDomainXml(vm))).toEqual(want);
      }),
      { numRuns: RUNS },
    );
  });

  it("hostile free text and paths reach the output escaped: an independent parse reads the exact input", () => {
    const hostile = fc
      .constantFrom("qemu", "lxc", "xen-pv")
      .chain((h) => vmFor(h as "qemu" | "lxc" | "xen-pv"));
    fc.assert(
      fc.property(hostile, (vm) => {
        const xml = buildDomainXml(vm);
        const d = (raw.parse(xml) as Any).domain as Any;
        const txt = (v: unknown) => (typeof v === "string" ? v : ((v as Any)?.["#text"] ?? ""));
        // Exactly one domain, and its devices are exactly the ones described: nothing was injected.
        expect(Object.keys(raw.parse(xml) as Any).filter((k) => !k.startsWith("?"))).toEqual(["domain"]);
        expect(d.devices.interface ?? []).toHaveLength(vm.interfaces.length);
        expect(d.devices.disk ?? []).toHaveLength(vm.disks?.length ?? 0);
        if (vm.title !== undefined) expect(txt(d.title)).toBe(vm.title);
        if (vm.description !== undefined) expect(txt(d.description)).toBe(vm.description);
        if (vm.emulator !== undefined) expect(txt(d.devices.emulator)).toBe(vm.emulator);
        const b = vm.boot;
        if (b.type === "kernel") {
          expect(txt(d.os.kernel)).toBe(b.kernel);
          if (b.cmdline !== undefined) expect(txt(d.os.cmdline)).toBe(b.cmdline);
          if (b.initrd !== undefined) expect(txt(d.os.initrd)).toBe(b.initrd);
        }
        if (b.type === "init") {
          expect(txt(d.os.init)).toBe(b.init);
          expect((d.os.initarg ?? []).map(txt)).toEqual(b.args ?? []);
        }
        if (b.type === "bootloader") {
          expect(txt(d.bootloader)).toBe(b.bootloader);
          if (b.args !== undefined) expect(txt(d.bootloader_args)).toBe(b.args);
        }
        (vm.disks ?? []).forEach((disk, i) => {
          const s = d.devices.disk[i].source;
          const want = disk.source.type === "block" ? disk.source.dev : disk.source.path;
          expect(s[disk.source.type === "block" ? "@_dev" : "@_file"]).toBe(want);
        });
        (vm.filesystems ?? []).forEach((f, i) => {
          expect(d.devices.filesystem[i].source["@_dir"]).toBe(f.source);
          expect(d.devices.filesystem[i].target["@_dir"]).toBe(f.target);
        });
      }),
      { numRuns: RUNS },
    );
  });

  it("a CR survives (as &#13;) instead of being folded into LF by XML end-of-line handling", () => {
    const xml = buildDomainXml({ ...SAMPLES.qemu, description: "a\r\nb\rc" });
    expect(xml).toContain("<description>a&#13;\nb&#13;c</description>");
    expect(parseDomainXml(xml).description).toBe("a\r\nb\rc");
  });

  it("']]>', quotes and markup in a cmdline are escaped, never raw", () => {
    const cmdline = `console=ttyS0 x="]]></cmdline></os><devices><disk type='file'><source file='/etc/shadow'/></disk>" & y`;
    const xml = buildDomainXml({
      ...SAMPLES.qemu,
      boot: { ...SAMPLES.qemu.boot, cmdline } as VmDescription["boot"],
    });
    expect(xml).not.toContain("]]>");
    expect(xml).not.toContain("/etc/shadow'/>");
    expect(xml).toContain("x=&quot;]]&gt;&lt;/cmdline&gt;");
    expect(parseDomainXml(xml).boot).toMatchObject({ cmdline });
  });

  it("characters XML 1.0 cannot carry are refused in every free-text field, naming it", () => {
    const bad = fc
      .tuple(
        xmlText,
        fc.constantFrom(
          "\u0000",
          "\u0001",
          "\u0008",
          "\u000b",
          "\u000c",
          "\u001f",
          "\uD800",
          "\uDFFF",
          "\uFFFE",
          "\uFFFF",
        ),
        xmlText,
      )
      .map(([a, c, b]) => a + c + b);
    const fields: [string, (s: string) => VmDescription][] = [
      ["vm.description", (s) => ({ ...SAMPLES.qemu, description: s })],
      ["vm.title", (s) => ({ ...SAMPLES.qemu, title: "t" + s.replace(/[\r\n]/g, "") })],
      ["vm.boot.cmdline", (s) => ({ ...SAMPLES.qemu, boot: { type: "kernel", kernel: "/k", cmdline: s } })],
      ["vm.boot.args[0]", (s) => ({ ...SAMPLES.lxc, boot: { type: "init", init: "/init", args: [s] } })],
      [
        "vm.boot.args",
        (s) => ({ ...SAMPLES["xen-pv"], boot: { type: "bootloader", bootloader: "/b", args: s } }),
      ],
      ["vm.boot.kernel", (s) => ({ ...SAMPLES.qemu, boot: { type: "kernel", kernel: "/k" + s } })],
    ];
    fc.assert(
      fc.property(bad, fc.constantFrom(...fields), (s, [path, make]) => {
        const vm = make(s);
        expect(() => buildDomainXml(vm)).toThrow(ConfigError);
        try {
          buildDomainXml(vm);
        } catch (e) {
          expect((e as ConfigError).path).toBe(path);
        }
      }),
      { numRuns: RUNS },
    );
  });
});
