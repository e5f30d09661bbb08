/** One RouteFlow-style VM description per driver: the inputs of the golden fixtures in test/fixtures/xmlgen. */
import { resolve } from "node:path";
import { routeflowInterfaces, type HypervisorName, type VmDescription } from "../../../src/xmlgen/index.js";

/** FIXTURES is the directory of the golden `<driver>.xml` files. */
export const FIXTURES = resolve(import.meta.dirname, "../../fixtures/xmlgen");

const GUEST = "/var/lib/rfboot/guest";

/** SAMPLES maps each driver to a description that exercises that driver's features. */
export const SAMPLES: Record<HypervisorName, VmDescription> = {
  // rftest2's rfvmA on KVM: disk boot from a qcow2 overlay on a shared base image, mgmt on lxcbr0.
  kvm: {
    name: "rfvmA",
    title: "RouteFlow VM for switch 5",
    hypervisor: { type: "kvm" },
    arch: "x86_64",
    machine: "q35",
    memoryMiB: 512,
    currentMemoryMiB: 256,
    vcpus: 2,
    cpuset: "0-1",
    lifecycle: { onPoweroff: "destroy", onReboot: "restart", onCrash: "restart" },
    autostart: false,
    boot: { type: "disk" },
    disks: [
      {
        source: {
          type: "overlay",
          path: "/var/lib/rfboot/images/rfvmA.qcow2",
          backing: { path: "/var/lib/rfboot/images/routeflow-base.qcow2", format: "qcow2" },
        },
      },
    ],
    interfaces: routeflowInterfaces({
      vmName: "rfvmA",
      vmId: "02:a0:a0:a0:a0:a0",
      dataPorts: 4,
      management: { type: "bridge", bridge: "lxcbr0" },
    }),
    console: { logFile: "/var/log/rfboot/rfvmA.console.log" },
  },
  // rfvmB under TCG with direct kernel boot of the tiny guest (what the integration test boots).
  qemu: {
    name: "rfvmB",
    description: "rfboot: RouteFlow VM for dpid 6\nvm_id 02:b0:b0:b0:b0:b0",
    hypervisor: { type: "qemu" },
    arch: "x86_64",
    memoryMiB: 128,
    vcpus: 1,
    lifecycle: { onPoweroff: "destroy", onReboot: "restart", onCrash: "destroy" },
    boot: {
      type: "kernel",
      kernel: `${GUEST}/vmlinuz`,
      initrd: `${GUEST}/initrd.gz`,
      cmdline: "console=ttyS0 quiet rfboot.name=rfvmB rfboot.ip=192.169.1.102/24",
    },
    interfaces: routeflowInterfaces({
      vmName: "rfvmB",
      vmId: "02:b0:b0:b0:b0:b0",
      dataPorts: 3,
      management: { type: "network", network: "default" },
    }),
    console: { logFile: "/var/log/rfboot/rfvmB.console.log" },
  },
  // rfvmC as RouteFlow ran it: an LXC container with a busybox root and veth NICs on dp0.
  lxc: {
    name: "rfvmC",
    hypervisor: { type: "lxc" },
    arch: "x86_64",
    memoryMiB: 64,
    vcpus: 1,
    boot: { type: "init", init: "/init", args: ["rfboot.name=rfvmC", "rfboot.ip=192.169.1.103/24"] },
    filesystems: [{ type: "mount", source: `${GUEST}/rootfs-lxc`, target: "/" }],
    interfaces: routeflowInterfaces({
      vmName: "rfvmC",
      vmId: "02:c0:c0:c0:c0:c0",
      dataPorts: 3,
      management: { type: "bridge", bridge: "lxcbr0" },
    }),
  },
  // rfvmD as a Xen PV guest booted by pygrub from a raw image, plus a block device; PV console.
  "xen-pv": {
    name: "rfvmD",
    hypervisor: { type: "xen", mode: "pv" },
    arch: "x86_64",
    memoryMiB: 256,
    vcpus: 1,
    boot: { type: "bootloader", bootloader: "/usr/lib/xen/bin/pygrub", args: "--kernel=/boot/vmlinuz" },
    disks: [
      { source: { type: "file", path: "/var/lib/rfboot/images/rfvmD.img", format: "raw" } },
      { source: { type: "block", dev: "/dev/vg0/rfvmD-data" }, readonly: true },
    ],
    interfaces: routeflowInterfaces({
      vmName: "rfvmD",
      vmId: "02:d0:d0:d0:d0:d0",
      dataPorts: 4,
      management: { type: "bridge", bridge: "xenbr0" },
    }),
    console: { logFile: "/var/log/rfboot/rfvmD.console.log" },
  },
  // rftest1's rfvm1 as a Xen HVM guest with direct kernel boot; console pty only.
  "xen-hvm": {
    name: "rfvm1",
    hypervisor: { type: "xen", mode: "hvm" },
    arch: "x86_64",
    machine: "xenfv",
    memoryMiB: 256,
    vcpus: 2,
    boot: {
      type: "kernel",
      kernel: `${GUEST}/vmlinuz`,
      initrd: `${GUEST}/initrd.gz`,
      cmdline: "console=ttyS0",
    },
    interfaces: routeflowInterfaces({
      vmName: "rfvm1",
      vmId: "12:a0:a0:a0:a0:a0",
      dataPorts: 2,
      management: { type: "bridge", bridge: "xenbr0" },
    }),
  },
  // The test driver: a fixed uuid, plain (non-OVS) bridge data NICs, serial to a file without a pty.
  test: {
    name: "rfvmT",
    uuid: "5e3c8a5b-6a52-4d39-9c0c-2b1d3b6f7a10",
    hypervisor: { type: "test" },
    arch: "x86_64",
    memoryMiB: 64,
    vcpus: 1,
    boot: { type: "kernel", kernel: `${GUEST}/vmlinuz`, initrd: `${GUEST}/initrd.gz` },
    interfaces: routeflowInterfaces({
      vmName: "rfvmT",
      vmId: "02:e0:e0:e0:e0:e0",
      dataPorts: 2,
      management: { type: "bridge", bridge: "lxcbr0" },
      switchBridge: "br-data",
      openvswitch: false,
    }),
    console: { logFile: "/var/log/rfboot/rfvmT.console.log", pty: false },
  },
};

/**
 * EXTRA_SAMPLES are further golden fixtures: `hostile` shows how every character that could break out of
 * an element or attribute is written (quotes, markup, `]]>`, CR, entity look-alikes in text and paths).
 */
export const EXTRA_SAMPLES: Record<string, VmDescription> = {
  hostile: {
    name: "rfvm-hostile_1.x",
    title: `'"<title>&amp;]]>`,
    description: "line1\r\nline2 </description><devices/> ]]> & &#13; \t tab",
    hypervisor: { type: "qemu" },
    arch: "x86_64",
    memoryMiB: 64,
    vcpus: 1,
    boot: {
      type: "kernel",
      kernel: `/var/lib/rfboot/it's "quoted" <&>/vmlinuz`,
      cmdline: `console=ttyS0 x='a"b' y=</cmdline><initrd>/etc/shadow</initrd> z=]]>`,
    },
    interfaces: [{ type: "bridge", bridge: "lxcbr0", mac: "02:00:00:00:00:01" }],
    console: { logFile: "/var/log/rfboot/a&b<c>.log" },
  },
};
