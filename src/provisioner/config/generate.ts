/**
 * Building a new config from a few answers per VM (what `rfboot init` asks): the first VM's hardware
 * becomes `defaults`, later VMs list only what differs, and the host list follows the hypervisors used.
 */
import type { Arch, HypervisorName } from "../../xmlgen/index.js";
import { configYaml } from "./emit.js";
import { dpidKey, vmIdToMac } from "./ids.js";
import { parseConfig } from "./load.js";
import { DEFAULT_CMDLINE } from "./schema.js";
import type { RfbootConfig } from "./types.js";

/** InitBoot is how a generated VM boots. */
export type InitBoot =
  | { readonly type: "kernel"; readonly kernel: string; readonly initrd?: string; readonly cmdline?: string }
  | { readonly type: "image"; readonly image: string; readonly format: "qcow2" | "raw" }
  | { readonly type: "rootfs"; readonly rootfs: string; readonly init: string };

/** InitVm is one VM as the wizard collects it. */
export interface InitVm {
  readonly hypervisor: HypervisorName;
  readonly name: string;
  readonly vmId: bigint;
  readonly dpid: bigint;
  readonly dataPorts: number;
  readonly arch: Arch;
  readonly vcpus: number;
  readonly memoryMiB: number;
  readonly boot: InitBoot;
}

/** INIT_HOST_URIS: the libvirt URI generated for each hypervisor's host. */
export const INIT_HOST_URIS: Readonly<Record<HypervisorName, string>> = {
  qemu: "qemu:///system",
  kvm: "qemu:///system",
  lxc: "lxc:///system",
  "xen-pv": "xen:///system",
  "xen-hvm": "xen:///system",
  test: "test:///default",
};

function settingsOf(vm: InitVm): Record<string, unknown> {
  const boot =
    vm.boot.type === "kernel"
      ? {
          boot: {
            type: "kernel",
            kernel: vm.boot.kernel,
            ...(vm.boot.initrd ? { initrd: vm.boot.initrd } : {}),
            cmdline: vm.boot.cmdline ?? DEFAULT_CMDLINE,
          },
        }
      : vm.boot.type === "image"
        ? {
            boot: { type: "disk" },
            disk: { image: vm.boot.image, format: vm.boot.format, prepare: "overlay" },
          }
        : { boot: { type: "init", init: vm.boot.init, rootfs: vm.boot.rootfs } };
  return { hypervisor: vm.hypervisor, arch: vm.arch, vcpus: vm.vcpus, memoryMiB: vm.memoryMiB, ...boot };
}

/** initConfigObject turns wizard answers into a plain config object (see module comment). */
export function initConfigObject(vms: readonly InitVm[]): Record<string, unknown> {
  const first = settingsOf(vms[0]!);
  const hosts: { name: string; uri: string }[] = [];
  for (const vm of vms) {
    const uri = INIT_HOST_URIS[vm.hypervisor];
    if (!hosts.some((h) => h.uri === uri)) hosts.push({ name: uri.split(":")[0]!, uri });
  }
  const datapaths: Record<string, unknown> = {};
  for (const vm of vms) {
    const own = settingsOf(vm);
    const diff: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(own)) {
      if (JSON.stringify(v) !== JSON.stringify(first[k])) diff[k] = v;
    }
    // A VM that leaves disk boot must not inherit the first VM's disk.
    if (first.disk !== undefined && own.disk === undefined) diff.disk = null;
    datapaths[dpidKey(vm.dpid)] = {
      name: vm.name,
      vmId: vmIdToMac(vm.vmId),
      dataPorts: vm.dataPorts,
      ...diff,
    };
  }
  return {
    openflow: { mode: "listen", listen: { host: "127.0.0.1", port: 6653 } },
    mongo: { uri: "mongodb://127.0.0.1:27017", database: "db" },
    hosts,
    defaults: {
      ...first,
      network: {
        management: { type: "bridge", bridge: "rfbr0" },
        data: { bridge: "dp0", openvswitch: true },
      },
    },
    datapaths,
    policies: { unknownDatapath: { action: "ignore" }, leave: { action: "keep", graceSeconds: 30 } },
  };
}

/** initConfigYaml renders wizard answers as a commented YAML config and validates it. */
export function initConfigYaml(vms: readonly InitVm[]): { yaml: string; config: RfbootConfig } {
  const yaml = configYaml(
    initConfigObject(vms),
    " Written by rfboot init. Every key: config/README.md and config/example.yaml.\n" +
      " Check it with: rfboot plan --config FILE, or rfboot xml --config FILE --vm NAME",
  );
  return { yaml, config: parseConfig(yaml, { format: "yaml", source: "rfboot init" }) };
}
