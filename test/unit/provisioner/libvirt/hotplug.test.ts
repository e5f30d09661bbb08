/**
 * NicHotplug against a scripted VirshRunner: exact argument arrays, the `<interface>` file as virsh sees it
 * (content, mode 0600, gone afterwards), idempotence judged by MAC from `dumpxml` / `dumpxml --inactive`,
 * and the `hotplug-unsupported` / `device-missing` classification with libvirt 9.0's own texts.
 */
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { VirshError } from "../../../../src/common/errors.js";
import { NicHotplug, parseDomainNics, type DataNic } from "../../../../src/provisioner/libvirt/hotplug.js";
import {
  classifyVirshStderr,
  isDeviceMissing,
  isHotplugUnsupported,
  makeVirshError,
  type VirshRunner,
} from "../../../../src/provisioner/libvirt/virsh.js";

const URI = "qemu:///system";
const TMP = mkdtempSync(join(tmpdir(), "rfbt-hotplug-unit-"));
afterAll(() => rmSync(TMP, { recursive: true, force: true }));

const NIC: DataNic = {
  vmPort: 2,
  mac: "02:a2:a2:a2:a2:a2",
  hostDev: "rfvmA.2",
  xml: `<interface type="bridge">\n  <mac address="02:a2:a2:a2:a2:a2"/>\n  <source bridge="dp0"/>\n  <virtualport type="openvswitch"/>\n  <target dev="rfvmA.2"/>\n  <model type="virtio"/>\n</interface>\n`,
};

/** domainXml is a `virsh dumpxml`-like document (libvirt's single quotes; `id` only when active). */
function domainXml(opts: { type?: string; active: boolean; macs: string[] }): string {
  const nics = opts.macs
    .map(
      (m, i) =>
        `    <interface type='bridge'>\n      <mac address='${m}'/>\n      <source bridge='dp0'/>\n      <virtualport type='openvswitch'>\n        <parameters interfaceid='7e0c1f6a-0000-4000-8000-00000000000${i}'/>\n      </virtualport>\n      <target dev='rfvmA.${i + 1}'/>\n      <model type='virtio'/>\n    </interface>\n`,
    )
    .join("");
  return `<domain type='${opts.type ?? "qemu"}'${opts.active ? " id='7'" : ""}>\n  <name>rfvmA</name>\n  <devices>\n${nics}  </devices>\n</domain>\n`;
}

type Reply = string | { err: string };

/**
 * scripted answers each call with the next reply for its command (dumpxml and dumpxml --inactive have their
 * own lists), records the args, and for attach/detach-device captures the file as virsh would read it.
 */
function scripted(replies: Record<string, Reply[]>) {
  const calls: string[][] = [];
  const files: { path: string; text: string; mode: number }[] = [];
  const run: VirshRunner = async (uri, args) => {
    expect(uri).toBe(URI);
    calls.push(args);
    const key = args[0] === "dumpxml" && args[1] === "--inactive" ? "dumpxml --inactive" : args[0]!;
    if (args[0] === "attach-device" || args[0] === "detach-device") {
      const path = args[2]!;
      files.push({ path, text: readFileSync(path, "utf8"), mode: statSync(path).mode & 0o777 });
    }
    const r = replies[key]?.shift();
    if (r === undefined) throw new Error(`unscripted call: ${args.join(" ")}`);
    if (typeof r === "object") throw makeVirshError(uri, args, r.err, 1);
    return { stdout: r, stderr: "" };
  };
  return { run, calls, files };
}

const hp = (run: VirshRunner) => new NicHotplug({ run, tmpDir: TMP });
const FILE = expect.stringMatching(/\/rfvmA-eth2-[0-9a-f]{8}\.xml$/);

const RUNNING_WITHOUT = domainXml({ active: true, macs: ["02:a1:a1:a1:a1:a1"] });
const INACTIVE_WITHOUT = domainXml({ active: false, macs: ["02:a1:a1:a1:a1:a1"] });
const RUNNING_WITH = domainXml({ active: true, macs: ["02:a1:a1:a1:a1:a1", "02:A2:A2:A2:A2:A2"] });
const INACTIVE_WITH = domainXml({ active: false, macs: ["02:a1:a1:a1:a1:a1", "02:a2:a2:a2:a2:a2"] });

// libvirt 9.0.0 texts, provoked on this machine (LC_ALL=C) or, where marked, its drivers' format strings.
const TEST_DRIVER_ATTACH =
  "error: Failed to attach device from /tmp/x/nic.xml\nerror: this function is not supported by the connection driver: virDomainAttachDeviceFlags\n";
const TEST_DRIVER_DETACH =
  "error: Failed to detach device from /tmp/x/nic.xml\nerror: this function is not supported by the connection driver: virDomainDetachDeviceFlags\n";
const QEMU_DEVICE_NOT_FOUND =
  "error: Failed to detach device from qnic2.xml\nerror: device not found: no device found at address '(<null>)' matching MAC address '02:c2:c2:c2:c2:c2' and alias '(<null>)'\n";
const NOT_RUNNING =
  "error: Failed to attach device from nic2.xml\nerror: Requested operation is not valid: domain is not running\n";

describe("hot-plug error classification", () => {
  it.each([
    ["hotplug-unsupported", "test driver attach-device", TEST_DRIVER_ATTACH],
    ["hotplug-unsupported", "test driver detach-device", TEST_DRIVER_DETACH],
    [
      "hotplug-unsupported",
      "qemu: live attach refused (format string)",
      "error: Operation not supported: live attach of device 'shmem' is not supported\n",
    ],
    [
      "hotplug-unsupported",
      "qemu: persistent detach refused (format string)",
      "error: Operation not supported: persistent detach of device 'lease' is not supported\n",
    ],
    [
      "hotplug-unsupported",
      "lxc: persistent attach refused (format string)",
      "error: Operation not supported: persistent attach of device is not supported\n",
    ],
    [
      "hotplug-unsupported",
      "lxc: device type refused (format string)",
      "error: unsupported configuration: device type 'graphics' cannot be attached\n",
    ],
    ["device-missing", "qemu detach of a NIC that is not there", QEMU_DEVICE_NOT_FOUND],
    ["domain-missing", "attach-device to an undefined domain", "error: failed to get domain 'nosuchdom'\n"],
    ["not-running", "attach --live to a shut-off domain", NOT_RUNNING],
    [
      "other",
      "lxc: a duplicate MAC in the definition",
      "error: Failed to detach device from nic2.xml\nerror: operation failed: multiple devices matching MAC address 02:b2:b2:b2:b2:b2 found\n",
    ],
    [
      "other",
      "lxc: live attach of a host device that exists",
      "error: Failed to attach device from nic2.xml\nerror: unable to create hpx-l1.2 <-> vnet15 veth pair: File exists\n",
    ],
  ])("%s <- %s", (kind, _what, stderr) => {
    expect(classifyVirshStderr(stderr)).toBe(kind);
  });

  it("predicates tell the new kinds apart", () => {
    const u = makeVirshError(URI, ["attach-device"], TEST_DRIVER_ATTACH, 1);
    const m = makeVirshError(URI, ["detach-device"], QEMU_DEVICE_NOT_FOUND, 1);
    expect([isHotplugUnsupported(u), isDeviceMissing(u)]).toEqual([true, false]);
    expect([isHotplugUnsupported(m), isDeviceMissing(m)]).toEqual([false, true]);
    expect(u.message).toMatch(/\[hotplug-unsupported\]; this libvirt driver cannot change/);
  });
});

describe("parseDomainNics", () => {
  it("reads the driver, activity (id attribute) and MACs (lower-cased) of a dumpxml", () => {
    const n = parseDomainNics(RUNNING_WITH);
    expect(n).toEqual({
      type: "qemu",
      active: true,
      macs: new Set(["02:a1:a1:a1:a1:a1", "02:a2:a2:a2:a2:a2"]),
    });
    expect(parseDomainNics(domainXml({ type: "lxc", active: false, macs: [] }))).toEqual({
      type: "lxc",
      active: false,
      macs: new Set(),
    });
  });
  it("refuses output without a <domain>", () => {
    expect(() => parseDomainNics("error: nothing\n")).toThrow(/no <domain> element/);
  });
});

describe("NicHotplug.attachDataNic", () => {
  it("running domain without the NIC: attach-device FILE --live --config, from a 0600 file removed after", async () => {
    const s = scripted({
      dumpxml: [RUNNING_WITHOUT],
      "dumpxml --inactive": [INACTIVE_WITHOUT],
      "attach-device": ["Device attached successfully\n"],
    });
    const r = await hp(s.run).attachDataNic(URI, "rfvmA", NIC);
    expect(s.calls).toEqual([
      ["dumpxml", "rfvmA"],
      ["dumpxml", "--inactive", "rfvmA"],
      ["attach-device", "rfvmA", FILE, "--live", "--config"],
    ]);
    expect(s.files).toEqual([{ path: FILE, text: NIC.xml, mode: 0o600 }]);
    expect(existsSync(s.files[0]!.path)).toBe(false);
    expect(r).toEqual({
      action: "attached",
      flags: ["--live", "--config"],
      running: true,
      domainType: "qemu",
      message: "NIC eth2 (02:a2:a2:a2:a2:a2, rfvmA.2) of rfvmA attached live and to the definition",
    });
  });

  it("already in both (MAC compared case-insensitively): nothing runs but the two dumpxml", async () => {
    const s = scripted({ dumpxml: [RUNNING_WITH], "dumpxml --inactive": [INACTIVE_WITH] });
    const r = await hp(s.run).attachDataNic(URI, "rfvmA", { ...NIC, mac: "02:A2:A2:A2:A2:A2" });
    expect(s.calls).toEqual([
      ["dumpxml", "rfvmA"],
      ["dumpxml", "--inactive", "rfvmA"],
    ]);
    expect(r).toMatchObject({ action: "unchanged", flags: [], running: true });
    expect(r.message).toMatch(/already attached; nothing to do/);
  });

  it("shut-off domain: one dumpxml (no id: it is the definition), then --config only", async () => {
    const s = scripted({ dumpxml: [INACTIVE_WITHOUT], "attach-device": ["ok\n"] });
    const r = await hp(s.run).attachDataNic(URI, "rfvmA", NIC);
    expect(s.calls).toEqual([
      ["dumpxml", "rfvmA"],
      ["attach-device", "rfvmA", FILE, "--config"],
    ]);
    expect(r).toMatchObject({ action: "attached", flags: ["--config"], running: false });
    expect(r.message).toMatch(/added to the definition; the guest gets it at the domain's next start/);
    // A second run finds it in the definition and does nothing.
    const again = scripted({ dumpxml: [INACTIVE_WITH] });
    expect((await hp(again.run).attachDataNic(URI, "rfvmA", NIC)).action).toBe("unchanged");
  });

  it("live but not in the definition: --config only; in the definition but not live: --live only", async () => {
    const a = scripted({
      dumpxml: [RUNNING_WITH],
      "dumpxml --inactive": [INACTIVE_WITHOUT],
      "attach-device": ["ok\n"],
    });
    const ra = await hp(a.run).attachDataNic(URI, "rfvmA", NIC);
    expect(a.calls[2]).toEqual(["attach-device", "rfvmA", FILE, "--config"]);
    expect(ra.message).toMatch(/was attached live already; added to the definition too/);
    const b = scripted({
      dumpxml: [RUNNING_WITHOUT],
      "dumpxml --inactive": [INACTIVE_WITH],
      "attach-device": ["ok\n"],
    });
    const rb = await hp(b.run).attachDataNic(URI, "rfvmA", NIC);
    expect(b.calls[2]).toEqual(["attach-device", "rfvmA", FILE, "--live"]);
    expect(rb.message).toMatch(/attached live \(the definition had it\)$/);
  });

  it("lxc: says the running container sees the NIC under libvirt's own name until its next start", async () => {
    const s = scripted({
      dumpxml: [domainXml({ type: "lxc", active: true, macs: [] })],
      "dumpxml --inactive": [domainXml({ type: "lxc", active: false, macs: [] })],
      "attach-device": ["ok\n"],
    });
    const r = await hp(s.run).attachDataNic(URI, "rfvmA", NIC);
    expect(r).toMatchObject({ action: "attached", domainType: "lxc", flags: ["--live", "--config"] });
    expect(r.message).toMatch(/names it vnetN \(link down\): it is eth2 after the container's next start/);
  });

  it("domain stopped between dumpxml and attach: retried with --config alone", async () => {
    const s = scripted({
      dumpxml: [RUNNING_WITHOUT],
      "dumpxml --inactive": [INACTIVE_WITHOUT],
      "attach-device": [{ err: NOT_RUNNING }, "ok\n"],
    });
    const r = await hp(s.run).attachDataNic(URI, "rfvmA", NIC);
    expect(s.calls.slice(2)).toEqual([
      ["attach-device", "rfvmA", FILE, "--live", "--config"],
      ["attach-device", "rfvmA", FILE, "--config"],
    ]);
    expect(r).toMatchObject({ action: "attached", flags: ["--config"], running: false });
  });

  it("a driver without attach-device (test): hotplug-unsupported, the next define applies it", async () => {
    const s = scripted({
      dumpxml: [domainXml({ type: "test", active: true, macs: [] })],
      "dumpxml --inactive": [domainXml({ type: "test", active: false, macs: [] })],
      "attach-device": [{ err: TEST_DRIVER_ATTACH }, { err: TEST_DRIVER_ATTACH }],
    });
    const e = await hp(s.run)
      .attachDataNic(URI, "rfvmA", NIC)
      .catch((x: unknown) => x);
    expect(e).toBeInstanceOf(VirshError);
    expect(isHotplugUnsupported(e)).toBe(true);
    expect((e as VirshError).message).toBe(
      "cannot attach NIC eth2 (02:a2:a2:a2:a2:a2, rfvmA.2) of rfvmA live: libvirt's test driver refuses it (this function is not supported by the connection driver: virDomainAttachDeviceFlags); the NIC is added when rfboot next defines and starts the domain (the switch's next join)",
    );
    // The error keeps the refused call; the definition-only retry was refused too.
    expect((e as VirshError).args).toEqual(["attach-device", "rfvmA", FILE, "--live", "--config"]);
    expect(s.calls.slice(2).map((c) => c.slice(3))).toEqual([["--live", "--config"], ["--config"]]);
  });

  it("live refused but the definition accepts it: hotplug-unsupported saying the next start applies it", async () => {
    const s = scripted({
      dumpxml: [RUNNING_WITHOUT],
      "dumpxml --inactive": [INACTIVE_WITHOUT],
      "attach-device": [
        { err: "error: Operation not supported: live attach of device 'net' is not supported\n" },
        "ok\n",
      ],
    });
    const e = await hp(s.run)
      .attachDataNic(URI, "rfvmA", NIC)
      .catch((x: unknown) => x);
    expect(isHotplugUnsupported(e)).toBe(true);
    expect((e as Error).message).toMatch(
      /live: libvirt's qemu driver refuses it \(Operation not supported: live attach of device 'net' is not supported\); the definition has the change: the guest sees it at the domain's next start$/,
    );
  });

  it("other failures pass through classified (domain-missing, unreachable), nothing retried", async () => {
    const s = scripted({ dumpxml: [{ err: "error: failed to get domain 'rfvmA'\n" }] });
    const e = await hp(s.run)
      .attachDataNic(URI, "rfvmA", NIC)
      .catch((x: unknown) => x);
    expect((e as VirshError).kind).toBe("domain-missing");
    const u = scripted({
      dumpxml: [RUNNING_WITHOUT],
      "dumpxml --inactive": [INACTIVE_WITHOUT],
      "attach-device": [
        {
          err: "error: failed to connect to the hypervisor\nerror: Failed to connect socket to '/run/libvirt/libvirt-sock': No such file or directory\n",
        },
      ],
    });
    const eu = await hp(u.run)
      .attachDataNic(URI, "rfvmA", NIC)
      .catch((x: unknown) => x);
    expect((eu as VirshError).kind).toBe("unreachable");
    expect(u.calls).toHaveLength(3);
    expect(existsSync(u.files[0]!.path)).toBe(false);
  });

  it("a private temp dir when none is given, removed by dispose", async () => {
    const s = scripted({ dumpxml: [INACTIVE_WITHOUT], "attach-device": ["ok\n"] });
    const h = new NicHotplug({ run: s.run });
    await h.attachDataNic(URI, "rfvmA", NIC);
    const dir = s.files[0]!.path.replace(/\/[^/]+$/, "");
    expect(dir).toMatch(/rfboot-nic-/);
    expect(statSync(dir).mode & 0o777).toBe(0o700);
    await h.dispose();
    expect(existsSync(dir)).toBe(false);
  });
});

describe("NicHotplug.detachDataNic", () => {
  it("running domain with the NIC: detach-device FILE --live --config, then checks the guest let go", async () => {
    const s = scripted({
      dumpxml: [RUNNING_WITH, RUNNING_WITHOUT],
      "dumpxml --inactive": [INACTIVE_WITH, INACTIVE_WITHOUT],
      "detach-device": ["Device detached successfully\n"],
    });
    const r = await hp(s.run).detachDataNic(URI, "rfvmA", NIC);
    expect(s.calls).toEqual([
      ["dumpxml", "rfvmA"],
      ["dumpxml", "--inactive", "rfvmA"],
      ["detach-device", "rfvmA", FILE, "--live", "--config"],
      ["dumpxml", "rfvmA"],
      ["dumpxml", "--inactive", "rfvmA"],
    ]);
    expect(s.files[0]).toMatchObject({ text: NIC.xml, mode: 0o600 });
    expect(r).toEqual({
      action: "detached",
      flags: ["--live", "--config"],
      running: true,
      domainType: "qemu",
      pending: false,
      message: "NIC eth2 (02:a2:a2:a2:a2:a2, rfvmA.2) of rfvmA detached live and from the definition",
    });
  });

  it("a guest that has not released the NIC yet is reported pending", async () => {
    const s = scripted({
      dumpxml: [RUNNING_WITH, RUNNING_WITH],
      "dumpxml --inactive": [INACTIVE_WITH, INACTIVE_WITHOUT],
      "detach-device": ["Device detached successfully\n"],
    });
    const r = await hp(s.run).detachDataNic(URI, "rfvmA", NIC);
    expect(r).toMatchObject({ action: "detached", pending: true });
    expect(r.message).toMatch(/detach requested; the guest has not released it yet/);
  });

  it("not there: unchanged; shut off: --config only and no re-check", async () => {
    const a = scripted({ dumpxml: [RUNNING_WITHOUT], "dumpxml --inactive": [INACTIVE_WITHOUT] });
    const ra = await hp(a.run).detachDataNic(URI, "rfvmA", NIC);
    expect(ra).toMatchObject({ action: "unchanged", flags: [] });
    expect(ra.message).toMatch(/is not attached; nothing to detach/);
    const b = scripted({ dumpxml: [INACTIVE_WITH], "detach-device": ["ok\n"] });
    const rb = await hp(b.run).detachDataNic(URI, "rfvmA", NIC);
    expect(b.calls).toEqual([
      ["dumpxml", "rfvmA"],
      ["detach-device", "rfvmA", FILE, "--config"],
    ]);
    expect(rb).toEqual({
      action: "detached",
      flags: ["--config"],
      running: false,
      domainType: "qemu",
      message: "NIC eth2 (02:a2:a2:a2:a2:a2, rfvmA.2) of rfvmA detached from the definition",
    });
  });

  it("gone in between (device-missing) and gone everywhere now: unchanged", async () => {
    const s = scripted({
      dumpxml: [RUNNING_WITH, RUNNING_WITHOUT],
      "dumpxml --inactive": [INACTIVE_WITH, INACTIVE_WITHOUT],
      "detach-device": [{ err: QEMU_DEVICE_NOT_FOUND }],
    });
    const r = await hp(s.run).detachDataNic(URI, "rfvmA", NIC);
    expect(r.action).toBe("unchanged");
  });

  it("test driver: hotplug-unsupported naming when the NIC goes", async () => {
    const s = scripted({
      dumpxml: [domainXml({ type: "test", active: false, macs: [NIC.mac] })],
      "detach-device": [{ err: TEST_DRIVER_DETACH }],
    });
    const e = await hp(s.run)
      .detachDataNic(URI, "rfvmA", NIC)
      .catch((x: unknown) => x);
    expect(isHotplugUnsupported(e)).toBe(true);
    expect((e as Error).message).toBe(
      "cannot detach NIC eth2 (02:a2:a2:a2:a2:a2, rfvmA.2) of rfvmA: libvirt's test driver refuses it (this function is not supported by the connection driver: virDomainDetachDeviceFlags); the NIC goes when rfboot next defines the domain without it (the switch's next join)",
    );
  });
});
