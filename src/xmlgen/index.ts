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
export { hypervisorFromName, hypervisorName } from "./drivers.js";
