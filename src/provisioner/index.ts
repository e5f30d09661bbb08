/**
 * The provisioner's public API: config, mapping, libvirt, MongoDB store, metrics, doctor and the daemon.
 * Exactly what the CLI, the benchmarks and the real-peer tests use; everything else stays behind the
 * folders' own index.ts files.
 */
export {
  configHash,
  DPID_FORMS,
  dpidKey,
  CSV_HEADER,
  findConfiguredVm,
  findHost,
  hostsFor,
  importRouteflowCsv,
  initConfigYaml,
  isHypervisorName,
  listConfiguredVms,
  loadConfig,
  mergeCsvIntoConfig,
  parseConfig,
  parseDpidArg,
  parseDpidText,
  parseVmId,
  pathProblem,
  DEV_RE,
  hostProblem,
  libvirtUriProblem,
  mongoUriProblem,
  regexProblem,
  INIT_HOST_URIS,
  reresolveVm,
  resolveDatapath,
  templateVmId,
  VM_ID_FORMS,
  VM_NAME_RE,
  vmIdProblemText,
  vmIdToMac,
  viewUnderDriver,
  type HostConfig,
  type InitBoot,
  type InitSettings,
  type InitVm,
  type ResolvedVm,
  type RfbootConfig,
} from "./config/index.js";
export { rfconfigRows } from "./mapping.js";
export {
  MongoStore,
  type DaemonStore,
  type Lease,
  type OutboxStats,
  type PortRegisterWatch,
  type RecordPatch,
  type StoredEvent,
  type VmRecord,
  type WriteOutcome,
} from "./store/index.js";
export { Daemon, type DaemonEvents } from "./daemon.js";
export { controllerFromConfig } from "./wiring.js";
export { Metrics } from "./metrics.js";
export { checkBind, daemonInputs, LiveServer, LiveState, onDaemonChange } from "./http/index.js";
export {
  createSpawnRunner,
  diskPlanFrom,
  DomainManager,
  HostRegistry,
  VirshShellRunner,
  type DomainInfo,
  type HostProbe,
  type HostSpec,
  type LeaveAction,
  type VirshRunner,
} from "./libvirt/index.js";
export { place, type KnownPlacement } from "./placement.js";
export { prewarmPlan, type PrewarmPlan } from "./prewarm-plan.js";
export { DataPlane, dataPlaneFingerprint } from "./dataplane.js";
export { ovsVsctl } from "./ovs.js";
export { inspectHostStorage, planOnHost } from "./host-plan.js";
export {
  defaultTargets,
  doctorExitCode,
  formatReport,
  runDoctor,
  systemSeams,
  targetsFromConfig,
} from "./doctor/index.js";
