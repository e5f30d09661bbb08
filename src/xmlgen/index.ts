/**
 * xmlgen's public face: a typed VM description -> libvirt domain XML for kvm, qemu, lxc, xen (pv/hvm)
 * and test, and one NIC of it as an `<interface>` document for hot-plug; its validation; RouteFlow's NIC
 * conventions; stable UUIDs. Everything else under xmlgen/
 * is internal; the list is pinned by a test so that a change to it is a decision, not a side effect.
 */
export {
  ARCHES,
  CRASH_ACTIONS,
  HYPERVISOR_NAMES,
  LIFECYCLE_ACTIONS,
  VLAN_TAG_MAX,
  VLAN_TAG_MIN,
  type Arch,
  type Boot,
  type Console,
  type CrashAction,
  type Disk,
  type DiskFormat,
  type DiskSource,
  type Filesystem,
  type Hypervisor,
  type HypervisorName,
  type Interface,
  type Lifecycle,
  type LifecycleAction,
  type VirtualPort,
  type Vlan,
  type VmDescription,
} from "./model.js";
export { stableUuid } from "./uuid.js";
export {
  IFNAMSIZ_MAX,
  MAX_DATA_PORTS,
  routeflowDataMac,
  routeflowDataMacs,
  routeflowDeviceName,
  routeflowInterfaces,
  type ManagementAttachment,
  type RouteflowNicOptions,
} from "./routeflow.js";
export { validateVmDescription } from "./validate.js";
export { buildDomainXml, buildInterfaceXml } from "./build.js";
export { DRIVERS, hypervisorFromName, type DriverTraits } from "./drivers.js";
