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
  /** Explicit port pairs (from a RouteFlow CSV); otherwise eth1..N <-> switch ports 1..N. */
  readonly ports?: readonly { readonly vmPort: number; readonly dpPort: number }[];
}

/** InitSettings are the config-wide answers of `rfboot init`; each omitted one keeps its default. */
export interface InitSettings {
  readonly mode?: "listen" | "relay";
  readonly listen?: { readonly host: string; readonly port: number };
  readonly upstream?: { readonly host: string; readonly port: number };
  readonly mongoUri?: string;
  /** The hosts; default one per URI of INIT_HOST_URIS the VMs' hypervisors need. */
  readonly hosts?: readonly { readonly name: string; readonly uri: string }[];
  readonly managementBridge?: string;
  readonly dataBridge?: string;
  readonly leave?: "keep" | "shutdown" | "destroy" | "suspend";
  /** A console regex, or null: no console readiness check. */
  readonly consoleMarker?: string | null;
  readonly readinessTimeoutSeconds?: number;
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
export function initConfigObject(vms: readonly InitVm[], s: InitSettings = {}): Record<string, unknown> {
  const first = settingsOf(vms[0]!);
  const hosts: { name: string; uri: string }[] = s.hosts ? [...s.hosts] : [];
  for (const vm of s.hosts ? [] : vms) {
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
      ...(vm.ports && vm.ports.some((pr, i) => pr.vmPort !== i + 1 || pr.dpPort !== i + 1)
        ? { portMap: vm.ports.map((pr) => ({ vmPort: pr.vmPort, dpPort: pr.dpPort })) }
        : { dataPorts: vm.ports ? vm.ports.length : vm.dataPorts }),
      ...diff,
    };
  }
  const mode = s.mode ?? "listen";
  return {
    openflow: {
      mode,
      listen: s.listen ?? { host: "127.0.0.1", port: 6653 },
      ...(mode === "relay" ? { upstream: s.upstream ?? { host: "127.0.0.1", port: 6633 } } : {}),
    },
    mongo: { uri: s.mongoUri ?? "mongodb://127.0.0.1:27017", database: "db" },
    hosts,
    defaults: {
      ...first,
      network: {
        management: { type: "bridge", bridge: s.managementBridge ?? "rfbr0" },
        data: { bridge: s.dataBridge ?? "dp0", openvswitch: true },
      },
    },
    datapaths,
    policies: {
      unknownDatapath: { action: "ignore" },
      leave: { action: s.leave ?? "keep", graceSeconds: 30 },
    },
    ...(s.consoleMarker !== undefined || s.readinessTimeoutSeconds !== undefined
      ? {
          readiness: {
            ...(s.consoleMarker !== undefined ? { consoleMarker: s.consoleMarker } : {}),
            ...(s.readinessTimeoutSeconds !== undefined ? { timeoutSeconds: s.readinessTimeoutSeconds } : {}),
          },
        }
      : {}),
  };
}

/** initConfigYaml renders wizard answers as a commented YAML config and validates it. */
export function initConfigYaml(
  vms: readonly InitVm[],
  settings: InitSettings = {},
): { yaml: string; config: RfbootConfig } {
  const yaml = configYaml(
    initConfigObject(vms, settings),
    " Written by rfboot init. Every key: config/README.md and config/example.yaml.\n" +
      " Check it with: rfboot plan --config FILE, or rfboot xml --config FILE --vm NAME",
  );
  return { yaml, config: parseConfig(yaml, { format: "yaml", source: "rfboot init" }) };
}
