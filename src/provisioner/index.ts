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
export {
  createSpawnRunner,
  diskPlanFrom,
  DomainManager,
  HostRegistry,
  VirshShellRunner,
  watchDomainConsole,
  type ConsoleMatch,
  type ConsoleSpawn,
  type ConsoleTimers,
  type DomainInfo,
  type HostProbe,
  type HostSpec,
  type LeaveAction,
  type LeaveOutcome,
  type VirshRunner,
  type WatchConsoleOptions,
} from "./libvirt/index.js";
export { place, placeAll, PlacementError, type KnownPlacement } from "./placement.js";
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
