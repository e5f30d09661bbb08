/** RouteFlow NIC conventions and stable uuids, checked against RouteFlow's own rftest configuration. */
import { readFileSync, readdirSync } from "node:fs";
import { join } from "node:path";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { ConfigError } from "../../../src/common/errors.js";
import {
  routeflowDataMac,
  routeflowDataMacs,
  routeflowDeviceName,
  routeflowInterfaces,
  stableUuid,
} from "../../../src/xmlgen/index.js";
import { uuidV5, RFBOOT_UUID_NAMESPACE } from "../../../src/xmlgen/uuid.js";
import { SHARED } from "../../helpers/env.js";
import { uniqueMacs } from "./arbitraries.js";

const RFTEST = join(SHARED, "routeflow/rftest-config");

/** Reads an rftest2 LXC config: [hwaddr, veth pair name or undefined] per NIC, in order. */
function lxcNics(vm: string): { mac: string; pair?: string }[] {
  const out: { mac: string; pair?: string }[] = [];
  let cur: { mac?: string; pair?: string } | undefined;
  for (const line of readFileSync(join(RFTEST, vm, "lxc-config"), "utf8").split("\n")) {
    const m = /^lxc\.network\.([a-z.]+)\s*=\s*(\S+)/.exec(line.trim());
    if (!m) continue;
    if (m[1] === "type") {
      if (cur?.mac) out.push({ mac: cur.mac, ...(cur.pair ? { pair: cur.pair } : {}) });
      cur = {};
    } else if (m[1] === "hwaddr" && cur) cur.mac = m[2]!;
    else if (m[1] === "veth.pair" && cur) cur.pair = m[2]!;
  }
  if (cur?.mac) out.push({ mac: cur.mac, ...(cur.pair ? { pair: cur.pair } : {}) });
  return out;
}

describe("RouteFlow data NIC MACs and device names", () => {
  const vms = readdirSync(RFTEST).filter((d) => d.startsWith("rfvm"));

  it("reproduces every NIC of rftest2's rfvmA..rfvmD exactly (MAC and host device)", () => {
    expect(vms).toEqual(["rfvmA", "rfvmB", "rfvmC", "rfvmD"]);
    let ports = 0;
    for (const vm of vms) {
      const nics = lxcNics(vm);
      const vmId = nics[0]!.mac;
      const built = routeflowInterfaces({
        vmName: vm,
        vmId,
        dataPorts: nics.length - 1,
        management: { type: "bridge", bridge: "lxcbr0" },
      });
      expect(built.map((n) => n.mac)).toEqual(nics.map((n) => n.mac));
      expect(built.slice(1).map((n) => n.target)).toEqual(nics.slice(1).map((n) => n.pair));
      expect(built[0]).toEqual({ type: "bridge", bridge: "lxcbr0", mac: vmId });
      for (const n of built.slice(1))
        expect(n).toMatchObject({ type: "bridge", bridge: "dp0", virtualport: { type: "openvswitch" } });
      ports += nics.length - 1;
    }
    expect(ports).toBe(14); // README: 14 dp0 ports in all
  });

  it("follows rftest1's vm_id 12:a0:a0:a0:a0:a0 too", () => {
    expect(routeflowDataMacs("12:A0:A0:A0:A0:A0", 2)).toEqual(["12:a1:a1:a1:a1:a1", "12:a2:a2:a2:a2:a2"]);
  });

  it("uses a hashed, locally administered unicast MAC outside the pattern (n > 15 or other vm_ids)", () => {
    const m16 = routeflowDataMac("02:a0:a0:a0:a0:a0", 16);
    expect(m16).not.toBe("02:b0:b0:b0:b0:b0"); // would collide with rfvmB's vm_id
    const m = routeflowDataMac("52:54:00:12:34:56", 1);
    expect(parseInt(m.slice(0, 2), 16) & 0x03).toBe(0x02);
    expect(routeflowDataMac("52:54:00:12:34:56", 1)).toBe(m); // deterministic
  });

  it("data MACs are unicast, distinct from each other and from the vm_id, for any vm_id (property)", () => {
    fc.assert(
      fc.property(uniqueMacs(1, 1), fc.integer({ min: 1, max: 40 }), ([vmId], n) => {
        const macs = routeflowDataMacs(vmId!, n);
        for (const mac of macs) expect(parseInt(mac.slice(0, 2), 16) & 1).toBe(0);
        expect(new Set([vmId, ...macs]).size).toBe(n + 1);
      }),
      { numRuns: 300 },
    );
  });

  it("pattern VMs with different letters never share a data MAC", () => {
    const all = ["a", "b", "c", "d", "e", "f"].flatMap((l) => {
      const vmId = `02:${l}0:${l}0:${l}0:${l}0:${l}0`;
      return [vmId, ...routeflowDataMacs(vmId, 32)];
    });
    expect(new Set(all).size).toBe(all.length);
  });

  it("rejects a multicast or malformed vm_id and a bad port number with ConfigError", () => {
    expect(() => routeflowDataMac("03:a0:a0:a0:a0:a0", 1)).toThrow(ConfigError);
    expect(() => routeflowDataMac("02:a0:a0:a0:a0", 1)).toThrow(/not a MAC/);
    expect(() => routeflowDataMac("02:a0:a0:a0:a0:a0", 0)).toThrow(/1\.\.256/);
    expect(() => routeflowDataMac("02:a0:a0:a0:a0:a0", 1.5)).toThrow(ConfigError);
  });

  it("names host devices <vm>.<N> and refuses names beyond IFNAMSIZ", () => {
    expect(routeflowDeviceName("rfvmA", 3)).toBe("rfvmA.3");
    expect(routeflowDeviceName("abcdefghijkl", 12)).toBe("abcdefghijkl.12");
    try {
      routeflowDeviceName("abcdefghijklm", 12);
      expect.unreachable();
    } catch (e) {
      expect(e).toBeInstanceOf(ConfigError);
      expect((e as ConfigError).message).toMatch(/abcdefghijklm\.12.*longer than 15/);
      expect((e as ConfigError).value).toBe("abcdefghijklm");
    }
  });
});

describe("stable uuids", () => {
  it("implements RFC 9562 UUIDv5 (known vector: DNS namespace, www.example.com)", () => {
    expect(uuidV5("6ba7b810-9dad-11d1-80b4-00c04fd430c8", "www.example.com")).toBe(
      "2ed6657d-e927-568b-95e1-2665a8aea6a2",
    );
  });

  it("derives rfboot's namespace from the URL namespace (documented derivation)", () => {
    expect(uuidV5("6ba7b811-9dad-11d1-80b4-00c04fd430c8", "https://github.com/CPqD/RouteFlow#rfboot")).toBe(
      RFBOOT_UUID_NAMESPACE,
    );
  });

  it("is stable per name, distinct across names and namespaces", () => {
    expect(stableUuid("rfvmA")).toBe(stableUuid("rfvmA"));
    expect(stableUuid("rfvmA")).not.toBe(stableUuid("rfvmB"));
    expect(stableUuid("rfvmA", "6ba7b810-9dad-11d1-80b4-00c04fd430c8")).not.toBe(stableUuid("rfvmA"));
    expect(stableUuid("rfvmA")).toMatch(
      /^[0-9a-f]{8}-[0-9a-f]{4}-5[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/,
    );
  });
});
