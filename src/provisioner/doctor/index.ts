/** `rfboot doctor`: checks what a host needs for rfboot and says how to fix each problem. */
export { runDoctor, formatReport, DEFAULT_BUDGET_MS, type DoctorOptions } from "./run.js";
export { doctorExitCode } from "./verdicts.js";
export {
  defaultTargets,
  targetsFromConfig,
  type DoctorTargets,
  type HostTarget,
  type BridgeTarget,
  type PathTarget,
  type PathRole,
} from "./targets.js";
export { systemSeams } from "./system.js";
export type {
  Check,
  CheckStatus,
  Clock,
  CommandResult,
  CommandRunner,
  DoctorSeams,
  FileStat,
  HostFs,
  MongoHello,
  MongoProbe,
} from "./types.js";
