/**
 * The libvirt wing's public face: the virsh seam, domain lifecycle and storage on one host, the host
 * registry, domain events, NIC hot-plug data, the console watcher, and the process seam (also used for
 * Open vSwitch). The rest of the provisioner imports only these names.
 */
export {
  createSpawnRunner,
  lastErrorLine,
  makeVirshError,
  VirshShellRunner,
  type VirshRunner,
} from "./virsh.js";
export {
  DomainManager,
  isActive,
  type DomainInfo,
  type KnownDomainState,
  type LeaveAction,
  type LeaveOutcome,
} from "./lifecycle.js";
export {
  diskPlanFrom,
  HostStorage,
  type Artifact,
  type DiskPlan,
  type StorageInspection,
  type StorageSpec,
} from "./storage.js";
export type { DomainState } from "./parse.js";
export { HostRegistry, type HostProbe, type HostSpec } from "./hosts.js";
export { LibvirtEvents, recordStateOf, type DomainEvent } from "./libvirt-events.js";
export { NicHotplug, type DataNic, type HotplugResult } from "./hotplug.js";
export {
  watchDomainConsole,
  type ConsoleMatch,
  type ConsoleSpawn,
  type ConsoleTimers,
  type WatchConsoleOptions,
} from "./console.js";
export { processes, type ProcessSeam, type RunOutcome } from "./process.js";
