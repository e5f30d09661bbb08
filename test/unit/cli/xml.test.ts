import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { XMLParser } from "fast-xml-parser";
import { afterAll, afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { main } from "../../../src/cli/main.js";
import { REPO } from "../../helpers/env.js";

const tmp = mkdtempSync(join(tmpdir(), "rfbt-cfg-xml-"));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

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

const RFTEST2 = join(REPO, "config/rftest2.yaml");
// eslint-disable-next-line @typescript-eslint/no-explicit-any -- parsed XML is an untyped tree; the assertions check its shape
type Tree = any;
const parse = (xml: string) => new XMLParser({ ignoreAttributes: false }).parse(xml) as { domain: Tree };

describe("rfboot xml", () => {
  it("prints rfvmA's domain: qemu, kernel boot, eth0 on rfbr0, 4 data NICs on dp0", async () => {
    expect(await main(["xml", "--config", RFTEST2, "--vm", "rfvmA"])).toBe(0);
    const d = parse(out).domain;
    expect(d["@_type"]).toBe("qemu");
    expect(d.name).toBe("rfvmA");
    expect(d.os.cmdline).toBe("console=ttyS0 no_timer_check rfboot.name=rfvmA");
    const nics = d.devices.interface as Tree[];
    expect(nics.map((n) => n.mac["@_address"])).toEqual([
      "02:a0:a0:a0:a0:a0",
      "02:a1:a1:a1:a1:a1",
      "02:a2:a2:a2:a2:a2",
      "02:a3:a3:a3:a3:a3",
      "02:a4:a4:a4:a4:a4",
    ]);
    expect(
      nics.slice(1).map((n) => [n.source["@_bridge"], n.target["@_dev"], n.virtualport["@_type"]]),
    ).toEqual([
      ["dp0", "rfvmA.1", "openvswitch"],
      ["dp0", "rfvmA.2", "openvswitch"],
      ["dp0", "rfvmA.3", "openvswitch"],
      ["dp0", "rfvmA.4", "openvswitch"],
    ]);
    expect(err).toBe("");
  });

  it("is deterministic: the same VM twice gives the same bytes", async () => {
    await main(["xml", "-c", RFTEST2, "--vm", "rfvmC"]);
    const first = out;
    out = "";
    await main(["xml", "-c", RFTEST2, "--vm", "rfvmC"]);
    expect(out).toBe(first);
  });

  it("overrides the hypervisor", async () => {
    expect(await main(["xml", "-c", RFTEST2, "--vm", "rfvmB", "--hypervisor", "kvm"])).toBe(0);
    expect(parse(out).domain["@_type"]).toBe("kvm");
  });

  it("shows a template VM for an unlisted dpid with --dpid and --ports", async () => {
    const f = join(tmp, "t.yaml");
    writeFileSync(
      f,
      `policies: { unknownDatapath: { action: template } }\nhosts: [{ name: t, uri: "test:///default" }]\n`,
    );
    expect(await main(["xml", "-c", f, "--dpid", "0x2a", "--ports", "1,2"])).toBe(0);
    const d = parse(out).domain;
    expect(d.name).toBe("rfvm-2a");
    expect((d.devices.interface as unknown[]).length).toBe(3);
  });

  it.each([
    [["--vm", "nope"], /no VM named "nope" in .*configured: rfvmA, rfvmB, rfvmC, rfvmD/],
    [["--vm", "rfvmA", "--hypervisor", "vmware"], /--hypervisor "vmware" is not one of kvm, qemu/],
    [["--vm", "rfvmA", "--host", "mars"], /--host "mars": no such host \(hosts: local\)/],
    [["--dpid", "0x9"], /datapath 0x9 is not in .* policy is ignore/],
    [["--dpid", "zz"], /--dpid: is not a datapath id/],
    [[], /exactly one of --vm NAME or --dpid DPID/],
  ])("exits 2 with one line for %j", async (args, message) => {
    expect(await main(["xml", "-c", RFTEST2, ...args])).toBe(2);
    expect(out).toBe("");
    expect(err).toMatch(message);
    expect(err.trimEnd().split("\n")).toHaveLength(1);
  });

  const EXAMPLE = join(REPO, "config/example.yaml");
  const DOMAIN_TYPE = {
    kvm: "kvm",
    qemu: "qemu",
    lxc: "lxc",
    "xen-pv": "xen",
    "xen-hvm": "xen",
    test: "test",
  };
  const DRIVER_CASES = [RFTEST2, EXAMPLE].flatMap((cfg) =>
    ["rfvmA", "rfvmB", "rfvmC", "rfvmD"].flatMap((vm) =>
      Object.keys(DOMAIN_TYPE).map((hv) => [cfg.replace(/.*\//, ""), vm, hv] as const),
    ),
  );

  it.each(DRIVER_CASES)("%s: %s renders under --hypervisor %s, with notes on stderr", async (cfg, vm, hv) => {
    expect(await main(["xml", "-c", join(REPO, "config", cfg), "--vm", vm, "--hypervisor", hv])).toBe(0);
    const d = parse(out).domain;
    expect(d["@_type"]).toBe(DOMAIN_TYPE[hv as keyof typeof DOMAIN_TYPE]);
    expect(d.name).toBe(vm);
    if (hv === "lxc") {
      expect(d.os.type["#text"] ?? d.os.type).toBe("exe");
      expect(d.os.init).toBeTruthy();
      expect(d.devices.filesystem.target["@_dir"]).toBe("/");
      expect(d.devices.disk).toBeUndefined();
    }
    const notes = err.trimEnd().split("\n");
    expect(notes.length).toBeGreaterThan(0);
    for (const n of notes) expect(n).toMatch(/^rfboot: note: /);
    expect(err).toMatch(/would run it|does not run|no configured host runs/);
  });

  it("says which host would run the driver, or that none is configured, with a per-driver hint", async () => {
    const run = async (cfg: string, ...args: string[]) => {
      out = "";
      err = "";
      expect(await main(["xml", "-c", cfg, ...args])).toBe(0);
      return err;
    };
    expect(await run(RFTEST2, "--vm", "rfvmA", "--hypervisor", "lxc")).toMatch(
      /lxc cannot boot kernel .*; using init \/sbin\/init in rootfs \/var\/lib\/rfboot\/rootfs\/rfvmA, assumed: .*\n.*no configured host runs lxc VMs \(to run it, add a host whose URI serves lxc \(like lxc:\/\/\/system\)/,
    );
    expect(await run(RFTEST2, "--vm", "rfvmA", "--hypervisor", "xen-pv")).toMatch(/like xen:\/\/\/system\)/);
    expect(await run(RFTEST2, "--vm", "rfvmA", "--hypervisor", "xen-hvm")).not.toMatch(/lxc/);
    expect(await run(RFTEST2, "--vm", "rfvmA", "--hypervisor", "test")).toMatch(/like test:\/\/\/default\)/);
    expect(await run(RFTEST2, "--vm", "rfvmA", "--hypervisor", "kvm")).toBe(
      "rfboot: note: host local would run it\n",
    );
    // example.yaml has an lxc host and an lxc profile: both are used.
    expect(await run(EXAMPLE, "--vm", "rfvmA", "--hypervisor", "lxc")).toMatch(
      /as profile container \(hypervisor lxc\) boots\n.*host containers would run it/,
    );
    expect(await run(EXAMPLE, "--vm", "rfvmC", "--hypervisor", "lxc")).toMatch(
      /lxc takes no disks: the disk .* is left out/,
    );
    expect(await run(EXAMPLE, "--vm", "rfvmB", "--hypervisor", "lxc")).toMatch(
      /its host local does not run lxc VMs \(containers would, unpinned\)/,
    );
    expect(await run(EXAMPLE, "--vm", "rfvmD", "--hypervisor", "qemu")).toMatch(
      /qemu cannot boot init .*; using kernel .*, as the config's defaults boot/,
    );
  });

  it("exits 2 on an invalid config, naming the key", async () => {
    const f = join(tmp, "bad.yaml");
    writeFileSync(f, `datapaths:\n  "0x5": { name: a, vmId: "02:a0:a0:a0:a0:a0", dataPorts: 1, vcpus: 0 }\n`);
    expect(await main(["xml", "-c", f, "--vm", "a"])).toBe(2);
    expect(err).toMatch(/^rfboot: datapaths."0x5".vcpus: must be at least 1, got 0 \(.*bad.yaml line 2\)\n$/);
  });
});
