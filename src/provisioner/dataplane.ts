/**
 * The data plane across hosts. RouteFlow drives one virtual switch (`dp0`) and matches each VM data NIC to
 * one of its ports, so a VM on another host must still show up as one `dp0` port per data NIC. A host with
 * `dataPlane` plugs its VMs' data NICs into its own Open vSwitch bridge, each NIC an access port with a VLAN
 * tag of its own; a tunnel trunks that bridge to `dataPlane.trunkBridge` here; and for each tag rfboot links
 * the trunk to `dp0` by a patch-port pair: the trunk end an access port of the tag, the `dp0` end named like
 * the NIC's host device (`rfvmA.1`), so RouteFlow sees exactly what it sees of a local VM.
 *
 * The tags live in Open vSwitch itself: the trunk end carries them in its `tag` column and says whose it is
 * in external_ids (rfboot-host, rfboot-vm, rfboot-vm-port), so a restarted rfboot reads the same tags back.
 * A new NIC takes the lowest tag free on its trunk. Allocation is serialized per trunk within the process.
 */
import { createHash } from "node:crypto";
import { OvsError, errorMessage } from "../common/errors.js";
import { silentLogger, type Logger } from "../common/log.js";
import {
  buildInterfaceXml,
  IFNAMSIZ_MAX,
  VLAN_TAG_MAX,
  VLAN_TAG_MIN,
  type VmDescription,
} from "../xmlgen/index.js";
import type { HostConfig, ResolvedVm, RfbootConfig } from "./config/index.js";
import type { DataNic } from "./libvirt/index.js";
import type { OvsPort, OvsSeam } from "./ovs.js";

/** DATAPLANE_IDS are the external_ids keys on the patch ports rfboot makes. */
export const DATAPLANE_IDS = Object.freeze({
  role: "rfboot-role",
  host: "rfboot-host",
  vm: "rfboot-vm",
  vmPort: "rfboot-vm-port",
  bridge: "rfboot-bridge",
  peer: "rfboot-peer",
} as const);

/** DataPlaneTarget is where the data NICs of a VM on one host are linked on this machine's Open vSwitch. */
export interface DataPlaneTarget {
  /** The libvirt host the VM runs on. */
  readonly host: string;
  /** The bridge here that ends the tunnel from that host. */
  readonly trunkBridge: string;
  /** RouteFlow's virtual switch here (`dp0`), where each NIC gets its port. */
  readonly dataBridge: string;
}

/** DataPlaneNic is one data NIC to link: guest eth`vmPort` and its host device (the `dp0` port's name). */
export interface DataPlaneNic {
  readonly vmPort: number;
  readonly hostDev: string;
}

/** DataPlaneLink is one linked NIC: its tag, and the two patch ports that carry it. */
export interface DataPlaneLink extends DataPlaneNic {
  readonly tag: number;
  readonly host: string;
  readonly trunkBridge: string;
  /** The trunk end (access port of `tag`). */
  readonly trunkPort: string;
  readonly dataBridge: string;
}

/** DataPlaneOptions configure a DataPlane. */
export interface DataPlaneOptions {
  readonly ovs: OvsSeam;
  readonly log?: Logger;
}

/**
 * trunkPortName names the trunk end of a NIC's pair: the host device plus `t` (`rfvmA.1t`), or, when that
 * would pass Linux's 15 characters, `rf<8 hex of SHA-256(device)>.<n>t`. A host device always ends in
 * `.<digits>`, so a trunk end can never take the name of a VM's device.
 */
export function trunkPortName(hostDev: string): string {
  if (hostDev.length + 1 <= IFNAMSIZ_MAX) return `${hostDev}t`;
  const n = /\.(\d+)$/.exec(hostDev)?.[1] ?? "0";
  const h = createHash("sha256").update(`rfboot-trunk/${hostDev}`).digest("hex").slice(0, 8);
  return `rf${h}.${n}t`;
}

/** dataPlaneTarget says where `vm`'s data NICs are linked when it runs on `host`; undefined: no data plane. */
export function dataPlaneTarget(host: HostConfig, vm: ResolvedVm): DataPlaneTarget | undefined {
  if (!host.dataPlane) return undefined;
  return {
    host: host.name,
    trunkBridge: host.dataPlane.trunkBridge,
    dataBridge: vm.settings.network.data.bridge,
  };
}

/** dataNicsOf lists the data NICs (eth1..N with a host device) of a VM description. */
export function dataNicsOf(description: VmDescription): DataPlaneNic[] {
  const out: DataPlaneNic[] = [];
  description.interfaces.forEach((n, i) => {
    if (i >= 1 && n.type === "bridge" && n.target !== undefined) out.push({ vmPort: i, hostDev: n.target });
  });
  return out;
}

/** withVlanTags returns `description` with each linked NIC tagged (`<vlan><tag id/>`) on its OVS port. */
export function withVlanTags(description: VmDescription, links: readonly DataPlaneLink[]): VmDescription {
  if (links.length === 0) return description;
  const tags = new Map(links.map((l) => [l.vmPort, l.tag]));
  return {
    ...description,
    interfaces: description.interfaces.map((n, i) => {
      const tag = tags.get(i);
      return tag !== undefined && n.type === "bridge"
        ? { ...n, virtualport: { type: "openvswitch" as const }, vlan: { tag } }
        : n;
    }),
  };
}

/**
 * dataPlaneFingerprint extends a VM's config fingerprint with its tags, so that a domain defined with other
 * tags is defined again; without links it is the fingerprint unchanged.
 */
export function dataPlaneFingerprint(fingerprint: string, links: readonly DataPlaneLink[]): string {
  if (links.length === 0) return fingerprint;
  const tags = [...links]
    .sort((a, b) => a.vmPort - b.vmPort)
    .map((l) => `${l.trunkBridge}/${l.vmPort}=${l.tag}`)
    .join(",");
  return createHash("sha256").update(`${fingerprint} vlan ${tags}`).digest("hex");
}

function ownedBy(p: OvsPort, vm: string): boolean {
  return p.externalIds[DATAPLANE_IDS.vm] === vm;
}

/** DataPlane links the data NICs of VMs on data-plane hosts to RouteFlow's virtual switch (see above). */
export class DataPlane {
  private readonly ovs: OvsSeam;
  private readonly log: Logger;
  private readonly locks = new Map<string, Promise<unknown>>();

  constructor(options: DataPlaneOptions) {
    this.ovs = options.ovs;
    this.log = options.log ?? silentLogger;
  }

  /** serialized runs `task` after every earlier task of the same trunk (allocation reads, then writes). */
  private serialized<T>(trunk: string, task: () => Promise<T>): Promise<T> {
    const prev = this.locks.get(trunk) ?? Promise.resolve();
    const next = prev.then(task, task);
    const settled = next.catch(() => undefined);
    this.locks.set(trunk, settled);
    void settled.then(() => {
      if (this.locks.get(trunk) === settled) this.locks.delete(trunk);
    });
    return next;
  }

  /**
   * link makes sure each of `nics` of `vm` has its patch pair on `target` and returns the links with their
   * tags: a NIC that has a trunk end there for (host, vm, vmPort) keeps its tag, a new one takes the lowest
   * free tag of the trunk. Ends of `vm` elsewhere that would clash (another trunk or host, or a `dp0` port
   * of the same name) are removed first; with `prune` every other end of `vm` goes too (NICs it no longer
   * has). Throws OvsError: `unreachable`, `bridge-missing` naming the bridge and the host it serves, ...
   */
  async link(
    target: DataPlaneTarget,
    vm: string,
    nics: readonly DataPlaneNic[],
    options: { prune?: boolean } = {},
  ): Promise<DataPlaneLink[]> {
    const want = new Map(nics.map((n) => [n.vmPort, n]));
    const wanted = (p: OvsPort): boolean => {
      const ids = p.externalIds;
      const nic = want.get(Number(ids[DATAPLANE_IDS.vmPort]));
      if (!nic || ids[DATAPLANE_IDS.host] !== target.host) return false;
      if (ids[DATAPLANE_IDS.role] === "trunk")
        return ids[DATAPLANE_IDS.bridge] === target.trunkBridge && p.name === trunkPortName(nic.hostDev);
      return ids[DATAPLANE_IDS.bridge] === target.dataBridge && p.name === nic.hostDev;
    };
    const names = new Set(nics.flatMap((n) => [n.hostDev, trunkPortName(n.hostDev)]));
    // Ends of another placement or NIC: removed only once the target's bridges are known to exist, so a
    // failing link leaves the VM's earlier pairs whole. Returns the names removed.
    const clean = async (): Promise<Set<string>> => {
      const mine = await this.ovs.findPorts(DATAPLANE_IDS.vm, vm);
      const stale = mine.filter((p) => !wanted(p) && (options.prune === true || names.has(p.name)));
      if (stale.length === 0) return new Set();
      await this.ovs.deletePorts(stale.map((p) => p.name));
      this.log.info(
        { vm, ports: stale.map((p) => p.name), host: target.host },
        "removed data-plane patch ports of another placement or NIC",
      );
      return new Set(stale.map((p) => p.name));
    };
    if (nics.length === 0) {
      await clean();
      return [];
    }
    return this.serialized(target.trunkBridge, async () => {
      const ports = await this.bridge(target, "trunk");
      const dataPorts = await this.bridge(target, "data");
      // A port of a pair's name that rfboot did not make (a libvirt device of a copy of the VM still running
      // here, an operator's port) is never turned into a patch port.
      for (const p of [...ports, ...dataPorts]) {
        if (names.has(p.name) && !ownedBy(p, vm)) {
          const on = ports.includes(p) ? target.trunkBridge : target.dataBridge;
          throw new OvsError(
            `port ${p.name} on bridge ${on} is not a data-plane patch port of ${vm} (a local copy of the VM still running, or a port made by hand?): stop that VM or remove the port (ovs-vsctl del-port ${p.name}), then rfboot retries`,
            "port-exists",
            [],
            "",
            undefined,
          );
        }
      }
      const gone = await clean();
      const used = new Set<number>();
      const kept = new Map<number, number>();
      for (const p of ports) {
        if (p.tag === undefined || gone.has(p.name)) continue;
        used.add(p.tag);
        const ids = p.externalIds;
        if (
          ownedBy(p, vm) &&
          ids[DATAPLANE_IDS.role] === "trunk" &&
          ids[DATAPLANE_IDS.host] === target.host &&
          want.has(Number(ids[DATAPLANE_IDS.vmPort]))
        ) {
          kept.set(Number(ids[DATAPLANE_IDS.vmPort]), p.tag);
        }
      }
      const links: DataPlaneLink[] = [];
      let next = VLAN_TAG_MIN;
      for (const nic of [...nics].sort((a, b) => a.vmPort - b.vmPort)) {
        let tag = kept.get(nic.vmPort);
        if (tag === undefined) {
          while (used.has(next)) next++;
          if (next > VLAN_TAG_MAX) {
            throw new OvsError(
              `no free VLAN tag on trunk bridge ${target.trunkBridge} (host ${target.host}): all of ${VLAN_TAG_MIN}..${VLAN_TAG_MAX} are in use; give the host a trunk bridge of its own`,
              "other",
              [],
              "",
              undefined,
            );
          }
          tag = next;
          used.add(tag);
        }
        links.push({
          ...nic,
          tag,
          host: target.host,
          trunkBridge: target.trunkBridge,
          trunkPort: trunkPortName(nic.hostDev),
          dataBridge: target.dataBridge,
        });
      }
      for (const l of links) await this.ensurePair(vm, l);
      this.log.debug(
        { vm, host: target.host, trunk: target.trunkBridge, tags: links.map((l) => `${l.vmPort}=${l.tag}`) },
        "data-plane patch ports in place",
      );
      return links;
    });
  }

  /** ensurePair adds (or completes) the patch pair of one link; running it again changes nothing. */
  private async ensurePair(vm: string, l: DataPlaneLink): Promise<void> {
    const ids = (role: string, bridge: string, peer: string) => ({
      [DATAPLANE_IDS.role]: role,
      [DATAPLANE_IDS.host]: l.host,
      [DATAPLANE_IDS.vm]: vm,
      [DATAPLANE_IDS.vmPort]: String(l.vmPort),
      [DATAPLANE_IDS.bridge]: bridge,
      [DATAPLANE_IDS.peer]: peer,
    });
    await this.ovs.addPatchPair(
      {
        bridge: l.trunkBridge,
        name: l.trunkPort,
        tag: l.tag,
        externalIds: ids("trunk", l.trunkBridge, l.hostDev),
      },
      { bridge: l.dataBridge, name: l.hostDev, externalIds: ids("data", l.dataBridge, l.trunkPort) },
    );
  }

  /** bridge lists the ports of the target's trunk bridge, turning a missing bridge into a clear error. */
  private async bridge(target: DataPlaneTarget, role: "trunk" | "data"): Promise<OvsPort[]> {
    const bridge = role === "trunk" ? target.trunkBridge : target.dataBridge;
    try {
      return await this.ovs.bridgePorts(bridge);
    } catch (e) {
      if (e instanceof OvsError && e.kind === "bridge-missing") throw this.missing(target, role, bridge, e);
      throw e;
    }
  }

  private missing(
    target: DataPlaneTarget,
    role: "trunk" | "data",
    bridge: string,
    cause?: OvsError,
  ): OvsError {
    const what =
      role === "trunk"
        ? `trunk bridge ${bridge} (hosts[${target.host}].dataPlane.trunkBridge), where the tunnel from host ${target.host} ends,`
        : `data bridge ${bridge} (RouteFlow's virtual switch, network.data.bridge), where the VMs of host ${target.host} get their ports,`;
    return new OvsError(
      `${what} does not exist on this machine's Open vSwitch: create it (ovs-vsctl add-br ${bridge} -- set bridge ${bridge} datapath_type=netdev)${role === "trunk" ? " and its tunnel port (docs/multi-host.md)" : ""}`,
      "bridge-missing",
      cause?.args ?? ["br-exists", bridge],
      cause?.stderr ?? "",
      cause?.exitCode ?? 2,
      cause ? { cause } : undefined,
    );
  }

  /**
   * unlink removes the patch pairs of `vm` (only those of `vmPorts` when given) wherever they are, and
   * returns how many ports went. Nothing to remove is fine.
   */
  async unlink(vm: string, vmPorts?: readonly number[]): Promise<number> {
    const mine = await this.ovs.findPorts(DATAPLANE_IDS.vm, vm);
    const gone = mine.filter(
      (p) => vmPorts === undefined || vmPorts.includes(Number(p.externalIds[DATAPLANE_IDS.vmPort])),
    );
    if (gone.length === 0) return 0;
    await this.ovs.deletePorts(gone.map((p) => p.name));
    this.log.info({ vm, ports: gone.map((p) => p.name) }, "removed data-plane patch ports");
    return gone.length;
  }

  /**
   * forPlacement prepares `vm`'s data plane for its placement on `host` and returns the description to
   * define: on a data-plane host its data NICs linked and tagged; elsewhere unchanged, after removing any
   * pairs the VM had from an earlier placement (only looked for when some host of `config` has a data
   * plane, so a config without one never touches Open vSwitch).
   */
  async forPlacement(
    config: RfbootConfig,
    vm: ResolvedVm,
    host: HostConfig,
    description: VmDescription,
  ): Promise<{ description: VmDescription; links: DataPlaneLink[] }> {
    const target = dataPlaneTarget(host, vm);
    if (!target) {
      // Best effort: a VM on a host without a data plane does not need this machine's Open vSwitch to start,
      // and a stale pair left behind only holds two idle ports until the next attempt removes them.
      if (config.hosts.some((h) => h.dataPlane)) {
        await this.unlink(vm.name).catch((e: unknown) =>
          this.log.warn(
            { vm: vm.name, host: host.name, err: errorMessage(e) },
            "could not look for data-plane patch ports of an earlier placement",
          ),
        );
      }
      return { description, links: [] };
    }
    const links = await this.link(target, vm.name, dataNicsOf(description), { prune: true });
    return { description: withVlanTags(description, links), links };
  }

  /**
   * taggedNic prepares one data NIC for hot-plug: on a data-plane host its patch pair is made (the VM's other
   * pairs stay) and the returned NIC's `<interface>` carries its tag; elsewhere `nic` is returned as is.
   */
  async taggedNic(vm: ResolvedVm, host: HostConfig, nic: DataNic): Promise<DataNic> {
    const target = dataPlaneTarget(host, vm);
    if (!target || nic.hostDev === undefined) return nic;
    const links = await this.link(target, vm.name, [{ vmPort: nic.vmPort, hostDev: nic.hostDev }]);
    return { ...nic, xml: buildInterfaceXml(withVlanTags(vm.describe(host), links), nic.vmPort) };
  }
}
