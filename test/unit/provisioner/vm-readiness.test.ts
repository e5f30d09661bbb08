/**
 * consolePlan: where readiness reads a VM's console, per driver, pty setting and host (local or remote).
 */
import { describe, expect, it } from "vitest";
import { ConfigError } from "../../../src/common/errors.js";
import { parseConfig, resolveDatapath } from "../../../src/provisioner/config/index.js";
import { consolePlan } from "../../../src/provisioner/vm-readiness.js";

const LOCAL = "qemu:///system";
const REMOTE = "qemu+tcp://10.0.0.2/system";

function setup(hypervisor: string, pty: boolean, uri: string) {
  // LXC boots an init from a root file system; the others keep the default direct kernel boot.
  const boot = hypervisor === "lxc" ? ", boot: { type: init, init: /init, rootfs: /r }" : "";
  const c = parseConfig(
    `
hosts: [{ name: h, uri: "${uri}" }]
defaults: { hypervisor: ${hypervisor}, console: { pty: ${pty} }${boot} }
datapaths: { "0x1": { name: vm1, vmId: "02:00:00:00:00:01", dataPorts: 0 } }
`,
    { format: "yaml", source: "unit" },
  );
  const vm = resolveDatapath(c, 1n, [])!;
  const host = c.hosts[0]!;
  return { vm, host, log: vm.plan(host).consoleLog };
}

describe("consolePlan", () => {
  it("QEMU/KVM/Xen with a pty: the stream over the host URI, attached early; the log too on a local host", () => {
    for (const hv of ["qemu", "kvm", "xen-hvm"]) {
      const local = setup(hv, true, hv.startsWith("xen") ? "xen:///system" : LOCAL);
      expect(consolePlan(local.vm, local.host, local.log, "UP")).toEqual({
        stream: { uri: local.host.uri, domain: "vm1" },
        early: true,
        log: local.log,
      });
    }
    const remote = setup("qemu", true, REMOTE);
    expect(consolePlan(remote.vm, remote.host, remote.log, "UP")).toEqual({
      stream: { uri: REMOTE, domain: "vm1" },
      early: true,
    });
  });

  it("no marker: no paused start (nothing needs the boot's first bytes)", () => {
    const s = setup("qemu", true, REMOTE);
    expect(consolePlan(s.vm, s.host, s.log, null).early).toBe(false);
  });

  it("LXC: the stream, never paused (its pty keeps early output), no log", () => {
    const s = setup("lxc", true, "lxc:///system");
    expect(consolePlan(s.vm, s.host, undefined, "UP")).toEqual({
      stream: { uri: "lxc:///system", domain: "vm1" },
      early: false,
      prepare: true,
    });
  });

  it("LXC without a pty: still the stream, the only source there is (virsh console then says why it fails)", () => {
    const s = setup("lxc", false, "lxc:///system");
    expect(consolePlan(s.vm, s.host, undefined, "UP")).toEqual({
      stream: { uri: "lxc:///system", domain: "vm1" },
      early: false,
      prepare: true,
    });
  });

  it("the test driver has no console stream: the log file", () => {
    const s = setup("test", true, "test:///default");
    expect(consolePlan(s.vm, s.host, s.log, "UP")).toEqual({ early: false, log: s.log });
  });

  it("no pty: the log file on a local host; on a remote host a marker is a ConfigError, no marker is fine", () => {
    const local = setup("qemu", false, LOCAL);
    expect(consolePlan(local.vm, local.host, local.log, "UP")).toEqual({ early: false, log: local.log });
    const remote = setup("qemu", false, REMOTE);
    expect(() => consolePlan(remote.vm, remote.host, remote.log, "UP")).toThrow(ConfigError);
    expect(() => consolePlan(remote.vm, remote.host, remote.log, "UP")).toThrow(/console\.pty: true/);
    expect(consolePlan(remote.vm, remote.host, remote.log, null)).toEqual({ early: false });
  });
});
