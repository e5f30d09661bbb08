/**
 * A VM planned on a host with the host's own paths: describe/plan take the paths the host's storage found
 * (the config stays frozen and pure), and planOnHost asks the storage for every file the domain reads.
 */
import { describe, expect, it } from "vitest";
import { parseConfig, resolveDatapath } from "../../../src/provisioner/config/index.js";
import { planOnHost, vmArtifacts } from "../../../src/provisioner/host-plan.js";
import type { Artifact, HostStorage } from "../../../src/provisioner/libvirt/storage.js";

const config = parseConfig(
  `
hosts:
  - { name: far, uri: "qemu+tcp://10.0.0.2/system", storageDir: /srv/disks }
defaults:
  boot: { type: kernel, kernel: /img/vmlinuz, initrd: /img/initrd.gz }
  disk: { image: /img/base.qcow2, format: raw, prepare: overlay }
datapaths:
  "0x1": { name: rfvmA, vmId: "02:a0:a0:a0:a0:a0", dataPorts: 1 }
`,
  { format: "yaml", source: "host-plan.test" },
);
const host = config.hosts[0]!;
const vm = resolveDatapath(config, 1n, [1])!;

describe("planning on a host with its own paths", () => {
  it("a remote host defaults to images: pool", () => {
    expect(host).toMatchObject({ images: "pool", pool: "rfboot", upload: false });
  });
  it("lists the kernel, initrd and base image the domain reads", () => {
    expect(vmArtifacts(vm)).toEqual([
      { path: "/img/vmlinuz", role: "kernel" },
      { path: "/img/initrd.gz", role: "initrd" },
      { path: "/img/base.qcow2", role: "disk image", format: "raw" },
    ]);
  });
  it("describe/plan put the host's paths into the domain and the disk plan; without them, the configured ones", () => {
    const p = vm.plan(host, {
      kernel: "/srv/disks/vmlinuz",
      initrd: "/srv/disks/initrd.gz",
      image: "/srv/disks/base.qcow2",
    });
    expect(p.description.boot).toMatchObject({
      kernel: "/srv/disks/vmlinuz",
      initrd: "/srv/disks/initrd.gz",
    });
    expect(p.description.disks?.[0]?.source).toEqual({
      type: "overlay",
      path: "/srv/disks/rfvmA.qcow2",
      backing: { path: "/srv/disks/base.qcow2", format: "raw" },
    });
    expect(p.disk).toMatchObject({ base: "/srv/disks/base.qcow2", path: "/srv/disks/rfvmA.qcow2" });
    expect(vm.plan(host).description.boot).toMatchObject({ kernel: "/img/vmlinuz" });
    expect(Object.isFrozen(vm)).toBe(true);
  });
  it("planOnHost ensures the pools, locates each file and hands the lifecycle the host's disk", async () => {
    const asked: Artifact[] = [];
    let ready = 0;
    const storage = {
      ready: async () => void ready++,
      locate: async (a: Artifact) => (asked.push(a), `/srv/disks/${a.path.split("/").pop()}`),
    } as unknown as HostStorage;
    const { plan, disk } = await planOnHost(vm, host, storage);
    expect(ready).toBe(1);
    expect(asked.map((a) => a.role)).toEqual(["kernel", "initrd", "disk image"]);
    expect(plan.description.boot).toMatchObject({ kernel: "/srv/disks/vmlinuz" });
    expect(disk).toEqual({
      kind: "overlay",
      base: "/srv/disks/base.qcow2",
      format: "raw",
      path: "/srv/disks/rfvmA.qcow2",
    });
  });
});
