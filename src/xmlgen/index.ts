/** xmlgen: a typed VM description -> libvirt domain XML for kvm, qemu, lxc, xen (pv/hvm) and test. */
export type * from "./model.js";
export { HYPERVISOR_NAMES, ARCHES, LIFECYCLE_ACTIONS, CRASH_ACTIONS } from "./model.js";
export { stableUuid, uuidV5, RFBOOT_UUID_NAMESPACE } from "./uuid.js";
export {
  routeflowDataMac,
  routeflowDataMacs,
  routeflowDeviceName,
  routeflowInterfaces,
  ROUTEFLOW_SWITCH_BRIDGE,
  IFNAMSIZ_MAX,
  MAX_DATA_PORTS,
} from "./routeflow.js";
export type { ManagementAttachment, RouteflowNicOptions } from "./routeflow.js";
export { validateVmDescription } from "./validate.js";
export { buildDomainXml } from "./build.js";
export { parseDomainXml } from "./parse.js";
export { DRIVERS, driverOf } from "./drivers.js";
export type { DriverTraits, ConsoleWiring } from "./drivers.js";
export { NAME_RE } from "./validate.js";
export { MAC_RE } from "./routeflow.js";
export { hypervisorFromName, hypervisorName } from "./drivers.js";
