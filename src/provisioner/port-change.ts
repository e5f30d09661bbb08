/**
 * What a port added to or deleted from a connected switch means for its VM, as a pure function: which
 * data NIC (guest ethN, RouteFlow's MAC and host device, its `<interface>` document) and which `rfconfig`
 * row to add or remove, following exactly the layout the VM got when its switch joined:
 * - a configured VM maps switch ports through its `dataPorts` (k <-> k) or `portMap`: a port outside it
 *   has no NIC; one inside it already has its NIC (defined with the VM) and row (written at join);
 * - a template VM with `dataPorts: switch` numbers the switch's physical ports by rank (the k-th lowest is
 *   ethk, at most `maxDataPorts`): a port above every mapped one becomes the next ethN and can be
 *   hot-plugged; one below would renumber the NICs after it, which no running guest can follow, so it
 *   waits for the switch's next join (when the VM is laid out and defined again).
 */
import type { PortReason } from "../controller/index.js";
import { buildInterfaceXml } from "../xmlgen/index.js";
import { resolveDatapath, type HostConfig, type ResolvedVm, type RfbootConfig } from "./config/index.js";
import type { DataNic } from "./libvirt/index.js";
import { rfconfigRows, type RfconfigRow } from "./mapping.js";

/** PortChangeEvent is the part of a controller `port` event (PORT_STATUS) that matters here. */
export interface PortChangeEvent {
  readonly reason: PortReason;
  readonly port: { readonly no: number };
}

/** PortChangeInput: the config, the VM as resolved when its switch joined, its host, and the event. */
export interface PortChangeInput {
  readonly config: RfbootConfig;
  readonly vm: ResolvedVm;
  readonly host: HostConfig;
  readonly event: PortChangeEvent;
}

/**
 * PortChange is what to do:
 * - `attach`: write `row`, then attach `nic` (both idempotent); `vm` is the VM with the port (for a
 *   template VM, the one resolved with the new port; for a configured VM, the same VM). `existing` is true
 *   when the port was already mapped (its NIC and row normally exist; attaching only makes sure);
 * - `detach`: detach `nic`, then remove exactly `row` (policy `detach`);
 * - `keep`: a deleted port under policy `keep`: its NIC and row stay, as RouteFlow leaves them;
 * - `next-join`: a template port that would renumber existing NICs; nothing now, `vm` is the layout the
 *   next join will define;
 * - `none`: the port maps to no NIC (`unmapped`), or the event changes no mapping (`modify`).
 * `message` says it in one line for the log and the user.
 */
export type PortChange =
  | {
      readonly action: "attach";
      readonly existing: boolean;
      readonly vm: ResolvedVm;
      readonly nic: DataNic;
      readonly row: RfconfigRow;
      readonly message: string;
    }
  | { readonly action: "detach"; readonly nic: DataNic; readonly row: RfconfigRow; readonly message: string }
  | { readonly action: "keep"; readonly nic: DataNic; readonly row: RfconfigRow; readonly message: string }
  | { readonly action: "next-join"; readonly vm: ResolvedVm; readonly message: string }
  | { readonly action: "none"; readonly reason: "unmapped" | "modify"; readonly message: string };

/**
 * dataNicOf gives data NIC eth`vmPort` of `vm` on `host`: MAC, host device and `<interface>` document,
 * all taken from the description the VM's domain XML is built from.
 */
export function dataNicOf(vm: ResolvedVm, host: HostConfig, vmPort: number): DataNic {
  const description = vm.describe(host);
  // interfaces[0] is eth0 (management); data NIC ethN is interfaces[N] (resolve lays out eth1..dataNics).
  const nic = description.interfaces[vmPort];
  if (vmPort < 1 || nic === undefined) {
    throw new RangeError(`VM ${vm.name} has no data NIC eth${vmPort} (it has eth1..eth${vm.dataNics})`);
  }
  return {
    vmPort,
    mac: nic.mac,
    ...(nic.target !== undefined ? { hostDev: nic.target } : {}),
    xml: buildInterfaceXml(description, vmPort),
  };
}

function rowOf(vm: ResolvedVm, dpPort: number): RfconfigRow {
  return rfconfigRows({
    vmId: vm.vmId,
    dpid: vm.dpid,
    ports: vm.ports.filter((p) => p.dpPort === dpPort),
  })[0]!;
}

/**
 * planPortChange decides what a port event means for `vm` (see PortChange); the deleted-port policy is
 * `config.policies.portDeleted.action`. Pure: nothing is read or written. Throws ConfigError when a template
 * VM cannot be resolved with the new port (the same errors as at join).
 */
export function planPortChange(input: PortChangeInput): PortChange {
  const { config, vm, host, event } = input;
  const dpPort = event.port.no;
  const where = `port ${dpPort} of datapath ${vm.dpidHex}`;
  if (event.reason === "modify") {
    return { action: "none", reason: "modify", message: `${where} changed state: no NIC or row changes` };
  }
  if (event.reason === "delete") {
    const p = vm.ports.find((x) => x.dpPort === dpPort);
    if (!p) {
      return { action: "none", reason: "unmapped", message: `${where} deleted: it had no NIC in ${vm.name}` };
    }
    const nic = dataNicOf(vm, host, p.vmPort);
    const row = rowOf(vm, dpPort);
    if (config.policies.portDeleted.action === "keep") {
      return {
        action: "keep",
        nic,
        row,
        message: `${where} deleted: NIC eth${p.vmPort} of ${vm.name} and its rfconfig row kept (policies.portDeleted.action: keep, as RouteFlow does)`,
      };
    }
    return {
      action: "detach",
      nic,
      row,
      message: `${where} deleted: detaching NIC eth${p.vmPort} (${nic.mac}) of ${vm.name} and removing its rfconfig row (policies.portDeleted.action: detach)`,
    };
  }
  const known = vm.ports.find((x) => x.dpPort === dpPort);
  if (known) {
    return {
      action: "attach",
      existing: true,
      vm,
      nic: dataNicOf(vm, host, known.vmPort),
      row: rowOf(vm, dpPort),
      message: `${where} added: already eth${known.vmPort} of ${vm.name}; making sure its NIC and rfconfig row exist`,
    };
  }
  const next =
    vm.source === "template"
      ? resolveDatapath(config, vm.dpid, [...vm.ports.map((x) => x.dpPort), dpPort])
      : undefined;
  const added = next?.ports.find((x) => x.dpPort === dpPort);
  if (!next || !added) {
    const why =
      vm.source === "template"
        ? "outside the template's data ports (reserved, beyond maxDataPorts, or a fixed dataPorts count)"
        : "not in the VM's dataPorts or portMap";
    return {
      action: "none",
      reason: "unmapped",
      message: `${where} added: no NIC for it in ${vm.name} (${why})`,
    };
  }
  const kept = vm.ports.every((old) =>
    next.ports.some((x) => x.vmPort === old.vmPort && x.dpPort === old.dpPort),
  );
  if (!kept) {
    return {
      action: "next-join",
      vm: next,
      message: `${where} added: it ranks below mapped ports, so it would become eth${added.vmPort} of ${vm.name} and renumber the NICs after it; not hot-plugged, the layout applies when the switch next joins`,
    };
  }
  return {
    action: "attach",
    existing: false,
    vm: next,
    nic: dataNicOf(next, host, added.vmPort),
    row: rowOf(next, dpPort),
    message: `${where} added: new NIC eth${added.vmPort} of ${vm.name}`,
  };
}
