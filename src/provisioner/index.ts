/** The provisioner's public API: config, mapping, libvirt, MongoDB store, metrics and the daemon. */
export * from "./config/index.js";
export { rfconfigRows } from "./mapping.js";
export * from "./store/index.js";
export {
  Daemon,
  watchConsoleMarker,
  type DaemonAction,
  type DaemonEvents,
  type DaemonOptions,
} from "./daemon.js";
export { controllerFromConfig } from "./wiring.js";
export { Metrics } from "./metrics.js";
export { HostRegistry, type HostProbe, type HostSpec } from "./hosts.js";
export { DomainManager, type DomainInfo, type LeaveAction, type LeaveOutcome } from "./lifecycle.js";
export { place, placeAll, PlacementError, type KnownPlacement } from "./placement.js";
export { createSpawnRunner, VirshShellRunner, type VirshRunner } from "./virsh.js";
export {
  watchDomainConsole,
  type ConsoleMatch,
  type ConsoleSpawn,
  type ConsoleTimers,
  type WatchConsoleOptions,
} from "./console.js";
export {
  runDoctor,
  formatReport,
  doctorExitCode,
  defaultTargets,
  targetsFromConfig,
  systemSeams,
  DEFAULT_BUDGET_MS,
  type Check,
  type CheckStatus,
  type DoctorOptions,
  type DoctorSeams,
  type DoctorTargets,
} from "./doctor/index.js";
