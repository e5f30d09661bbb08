/** Property tests: every dpid/vm_id spelling reads the same; hostile strings never get through. */
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { ConfigError } from "../../../../src/common/errors.js";
import {
  parseConfig,
  parseDpidText,
  parseVmId,
  resolveDatapath,
  templateVmId,
} from "../../../../src/provisioner/config/index.js";

const dpidArb = fc.bigInt(0n, (1n << 64n) - 1n);

describe("dpid spellings", () => {
  it("0x, bare hex, 16 digits, OVS colons and dec: all read the same 64-bit id", () => {
    fc.assert(
      fc.property(dpidArb, (d) => {
        const hex = d.toString(16);
        const h16 = hex.padStart(16, "0");
        const forms = [
          `0x${hex}`,
          `0X${hex.toUpperCase()}`,
          hex,
          h16,
          h16.match(/../g)!.join(":"),
          `dec:${d}`,
        ];
        for (const f of forms) expect(parseDpidText(f)).toBe(d);
        const c = parseConfig(
          `datapaths:\n  "${forms[d % 6n === 0n ? 0 : Number(d % 6n)]}": { name: a, vmId: "02:00:00:00:00:01", dataPorts: 1 }\n`,
        );
        expect(resolveDatapath(c, d)?.dpidHex).toBe(h16);
      }),
      { numRuns: 200 },
    );
  });
});

describe("vm_id spellings", () => {
  it("MAC, 0x hex, dec: and integers read the same unicast 48-bit id", () => {
    const unicast = fc.bigInt(1n, (1n << 48n) - 1n).filter((v) => ((v >> 40n) & 1n) === 0n);
    fc.assert(
      fc.property(unicast, (v) => {
        const mac = v.toString(16).padStart(12, "0").match(/../g)!.join(":");
        for (const f of [
          mac,
          mac.toUpperCase(),
          mac.replaceAll(":", "-"),
          `0x${v.toString(16)}`,
          `dec:${v}`,
          Number(v),
        ]) {
          const r = parseVmId(f);
          expect(r).toEqual({ ok: true, value: v });
        }
      }),
      { numRuns: 200 },
    );
  });

  it("template vm_ids are deterministic, locally administered unicast, and distinct for distinct dpids", () => {
    fc.assert(
      fc.property(dpidArb, dpidArb, (a, b) => {
        const va = templateVmId(a);
        expect(templateVmId(a)).toBe(va);
        const first = Number(va >> 40n);
        expect(first & 1).toBe(0); // unicast
        expect(first & 2).toBe(2); // locally administered
        expect(va < 1n << 48n).toBe(true);
        if (a < 1n << 40n && b < 1n << 40n && a !== b) expect(templateVmId(b)).not.toBe(va);
      }),
      { numRuns: 300 },
    );
  });
});

describe("hostile strings", () => {
  const hostile = fc.oneof(
    fc.constantFrom(
      "a'/><evil/>",
      'x"><x',
      "]]>",
      "$(reboot)",
      "`id`",
      "a;rm -rf /",
      "a|b",
      "../../etc/passwd",
      "/var/../../etc/shadow",
      "a\nb",
      "a\u0000b",
      "&amp;",
      "{$gt: ''}",
    ),
    fc.string({ unit: "binary", minLength: 1, maxLength: 20 }).filter((s) => /[^A-Za-z0-9_.]/.test(s)),
  );
  /** Fields and how to place a value in an otherwise valid config. */
  const fields: [string, (v: string) => string][] = [
    [
      'datapaths."0x5".name',
      (v) => `datapaths: { "0x5": { name: ${JSON.stringify(v)}, vmId: "02:00:00:00:00:01", dataPorts: 1 } }`,
    ],
    [
      'datapaths."0x5".boot.kernel',
      (v) =>
        `datapaths: { "0x5": { name: a, vmId: "02:00:00:00:00:01", dataPorts: 1, boot: { kernel: ${JSON.stringify("/k/" + v)} } } }`,
    ],
    [
      "defaults.boot.cmdline",
      (v) => `defaults: { boot: { cmdline: ${JSON.stringify("console=ttyS0 " + v)} } }`,
    ],
    [
      "defaults.network.data.bridge",
      (v) => `defaults: { network: { data: { bridge: ${JSON.stringify(v)} } } }`,
    ],
    ["mongo.database", (v) => `mongo: { database: ${JSON.stringify(v)} }`],
    ["hosts[0].uri", (v) => `hosts: [{ name: h, uri: ${JSON.stringify("qemu:///system" + v)} }]`],
    [
      "hosts[0].storageDir",
      (v) => `hosts: [{ name: h, uri: "qemu:///system", storageDir: ${JSON.stringify("/d/" + v)} }]`,
    ],
  ];

  it("are refused with a ConfigError naming the field (or, if harmless, accepted unchanged)", () => {
    fc.assert(
      fc.property(hostile, fc.integer({ min: 0, max: fields.length - 1 }), (v, i) => {
        const [path, yaml] = fields[i]!;
        let err: unknown;
        try {
          parseConfig(yaml(v));
        } catch (e) {
          err = e;
        }
        // Characters that can break XML, a shell or a path are never accepted in these fields.
        const dangerous =
          i === 2
            ? // eslint-disable-next-line no-control-regex
              /[<>&'`$;|\\\u0000-\u001f]/.test(v) // kernel cmdline: `"` is the kernel's own quoting, `..` is not a path
            : // eslint-disable-next-line no-control-regex
              /[<>&'"`$;|\\\u0000-\u001f]|(^|\/)\.\.(\/|$)/.test(v) || (i === 0 && /[^A-Za-z0-9_.-]/.test(v));
        if (dangerous) {
          expect(err).toBeInstanceOf(ConfigError);
          expect((err as ConfigError).path.startsWith(path.split("[")[0]!.split(".")[0]!)).toBe(true);
        } else if (err !== undefined) {
          expect(err).toBeInstanceOf(ConfigError);
        }
      }),
      { numRuns: 400 },
    );
  });
});
