/**
 * Showing a VM under another libvirt driver (`rfboot xml --hypervisor X`): the settings that driver cannot
 * take are derived from the config (a profile written for X, `defaults`) or left out, each change said in a
 * note, and the VM is resolved even when no configured host runs X (the XML is a dry run, never defined).
 */
import { DRIVERS, type HypervisorName } from "../../xmlgen/index.js";
import { candidateHosts, hypervisorHostHint, resolveAndCheck } from "./load.js";
import { VM_SETTINGS_DEFAULTS, mergeSettings, pickSettings, type VmIdentity } from "./resolve.js";
import { vmSettingsSchema, type PartialVmSettings, type VmSettings } from "./schema.js";
import type { HostConfig, ResolvedVm, RfbootConfig } from "./types.js";

/** DriverView is a VM as driver X would run it, the host whose directories it uses, and what was changed. */
export interface DriverView {
  readonly vm: ResolvedVm;
  readonly host: HostConfig;
  /** One sentence per setting changed or assumed, and where the VM would run. */
  readonly notes: readonly string[];
}

type BootSettings = VmSettings["boot"];

/** describeBoot renders a boot setting for a note. */
function describeBoot(b: BootSettings): string {
  switch (b.type) {
    case "kernel":
      return `kernel ${b.kernel}`;
    case "disk":
      return "the first disk";
    case "init":
      return `init ${b.init} in rootfs ${b.rootfs}`;
    case "bootloader":
      return `bootloader ${b.bootloader}`;
  }
}

/** fullBoot reads a partial boot setting as a complete one, or undefined when something is missing. */
function fullBoot(partial: unknown): BootSettings | undefined {
  if (partial === undefined || partial === null) return undefined;
  const r = vmSettingsSchema.shape.boot.safeParse(partial);
  return r.success ? r.data : undefined;
}

/**
 * bootFor picks a boot method driver `hv` can do for `vm`: one written in the config for that driver (a
 * profile with `hypervisor: hv`, then `defaults`), else an assumption that fits the VM (its disk, or the
 * built-in kernel guest, `/sbin/init` in `<stateDir>/rootfs/{name}`, pygrub), said as such.
 */
function bootFor(
  config: RfbootConfig,
  vm: ResolvedVm,
  hv: HypervisorName,
): { boot: PartialVmSettings["boot"]; why: string } {
  const can = DRIVERS[hv].boots;
  for (const [name, p] of Object.entries(config.profiles)) {
    const b = fullBoot(p.boot);
    if (p.hypervisor === hv && b && can.includes(b.type)) {
      return { boot: b, why: `as profile ${name} (hypervisor ${hv}) boots` };
    }
  }
  const d = fullBoot(mergeSettings(VM_SETTINGS_DEFAULTS.boot, config.defaults.boot));
  if (d && can.includes(d.type)) return { boot: d, why: "as the config's defaults boot" };
  if (vm.disk && can.includes("disk")) return { boot: { type: "disk" }, why: "from the VM's disk" };
  if (vm.disk && can.includes("bootloader")) {
    return {
      boot: { type: "bootloader", bootloader: "/usr/bin/pygrub" },
      why: "assumed: pygrub reads the kernel from the VM's disk; set boot in a profile for this driver",
    };
  }
  if (can.includes("kernel")) return { boot: VM_SETTINGS_DEFAULTS.boot, why: "the built-in guest kernel" };
  return {
    boot: { type: "init", init: "/sbin/init", rootfs: `${config.stateDir}/rootfs/{name}` },
    why: `assumed: a container needs a root filesystem; set boot: {type: init, init, rootfs} in a profile with hypervisor: ${hv}`,
  };
}

/** driverOverrides lists the settings to change so that `vm` can run under `hv`, with a note for each. */
export function driverOverrides(
  config: RfbootConfig,
  vm: ResolvedVm,
  hv: HypervisorName,
): { overrides: PartialVmSettings; notes: string[] } {
  const drv = DRIVERS[hv];
  const s = vm.settings;
  const overrides: Record<string, unknown> = { hypervisor: hv };
  const notes: string[] = [];
  if (!drv.boots.includes(s.boot.type)) {
    const { boot, why } = bootFor(config, vm, hv);
    overrides.boot = boot;
    const shown = fullBoot(boot);
    const note = `${hv} cannot boot ${describeBoot(s.boot)} (it boots: ${drv.boots.join(", ")}); using ${shown ? describeBoot(shown) : "its boot"}, ${why}`;
    notes.push(note.replaceAll("{name}", vm.name));
  }
  if (s.disk && !drv.disk) {
    overrides.disk = null;
    notes.push(`${hv} takes no disks: the disk ${s.disk.image} is left out`);
  }
  if (
    s.machine !== undefined &&
    (drv.osType === "exe" || (drv.machines && !drv.machines.includes(s.machine)))
  ) {
    overrides.machine = null;
    notes.push(
      `machine ${s.machine} is left out (${hv} takes ${drv.machines?.join(", ") ?? "no machine type"})`,
    );
  }
  if (!drv.arches.includes(s.arch)) {
    overrides.arch = drv.arches[0];
    notes.push(`arch ${s.arch} is not one ${hv} runs: using ${drv.arches[0]}`);
  }
  if (s.network.nicModel !== undefined && drv.osType === "exe") {
    overrides.network = { nicModel: null };
    notes.push(`NIC model ${s.network.nicModel} is left out (${hv} NICs are veth pairs)`);
  }
  // kvm and qemu run the same QEMU binary; every other pair of drivers has its own emulator.
  const qemuFamily = (h: HypervisorName) => h === "kvm" || h === "qemu";
  const sameEmulator =
    DRIVERS[s.hypervisor].domainType === drv.domainType || (qemuFamily(s.hypervisor) && qemuFamily(hv));
  if (s.emulator !== undefined && !sameEmulator) {
    overrides.emulator = null;
    notes.push(`emulator ${s.emulator} is left out (it is ${s.hypervisor}'s; ${hv} uses its default)`);
  }
  return { overrides: overrides as PartialVmSettings, notes };
}

/**
 * viewUnderDriver resolves configured or template VM `vm` under driver `hv`, on `hostName` when given (else
 * the first host that runs `hv`, else the first candidate host, with a note that none is configured). Throws
 * ConfigError when the VM cannot be described for `hv` even so.
 */
export function viewUnderDriver(
  config: RfbootConfig,
  vm: ResolvedVm,
  hv: HypervisorName,
  hostName?: string,
): DriverView {
  const { overrides, notes } =
    hv === vm.hypervisor ? { overrides: {}, notes: [] } : driverOverrides(config, vm, hv);
  const probe = { ...vm, hypervisor: hv } as ResolvedVm;
  const runs = candidateHosts(config.hosts, probe);
  const pool = vm.hostPin !== undefined ? config.hosts.filter((h) => h.name === vm.hostPin) : config.hosts;
  const host =
    hostName !== undefined
      ? config.hosts.find((h) => h.name === hostName)
      : (runs[0] ?? pool[0] ?? config.hosts[0]);
  if (!host) throw new RangeError("a config always has a host");
  if (runs.length === 0) {
    const others = candidateHosts(config.hosts, { ...probe, hostPin: undefined } as ResolvedVm);
    const why =
      vm.hostPin === undefined
        ? `no configured host runs ${hv} VMs (${hypervisorHostHint(hv)})`
        : `its host ${vm.hostPin} does not run ${hv} VMs (${others.length ? `${others.map((h) => h.name).join(", ")} would, unpinned` : hypervisorHostHint(hv)})`;
    notes.push(`${why}; the XML uses host ${host.name}'s directories`);
  } else if (!runs.includes(host)) {
    notes.push(`host ${host.name} does not run ${hv} VMs; ${runs.map((h) => h.name).join(", ")} would`);
  } else {
    notes.push(`host ${host.name} would run it`);
  }
  // The dry run validates on the chosen host as if it ran the driver; nothing is defined there.
  const hosts = config.hosts.map((h) =>
    h === host && !h.hypervisors.includes(hv) ? { ...h, hypervisors: [...h.hypervisors, hv] } : h,
  );
  const entry = config.datapaths.find((d) => d.dpid === vm.dpid);
  const id: VmIdentity = {
    source: vm.source,
    dpid: vm.dpid,
    name: vm.name,
    vmId: vm.vmId,
    portPairs: vm.ports.map((p) => ({ vmPort: p.vmPort, dpPort: p.dpPort })),
    ...(vm.profile !== undefined ? { profile: vm.profile } : {}),
    ...(vm.hostPin !== undefined && vm.hostPin === host.name ? { hostPin: vm.hostPin } : {}),
    own:
      vm.source === "template" || !entry
        ? pickSettings(config.policies.unknownDatapath.template)
        : pickSettings(entry),
    path:
      vm.source === "template" || !entry
        ? ["policies", "unknownDatapath", "template"]
        : ["datapaths", entry.key],
  };
  const out = resolveAndCheck(config, id, hosts, {}, overrides);
  return { vm: out, host, notes };
}
