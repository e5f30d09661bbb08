/** The daemon's HTTP listener: the live page, its pushed updates, the JSON snapshot, metrics and health. */
export { esc, page, sections, topology } from "./render.js";
export {
  authorized,
  checkBind,
  isLoopback,
  LiveServer,
  LiveState,
  type LiveServerOptions,
} from "./server.js";
export {
  buildSnapshot,
  readiness,
  type DatapathView,
  type EventView,
  type HostInput,
  type HostView,
  type LiveSnapshot,
  type OwnRfconfigRow,
  type ReadyLimits,
  type ReadyReport,
  type SnapshotInput,
} from "./snapshot.js";
export { daemonInputs, onDaemonChange, type LiveReads } from "./source.js";
