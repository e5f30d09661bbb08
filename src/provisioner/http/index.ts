/** The daemon's HTTP listener: the live page, its pushed updates, the JSON snapshot, metrics and health. */
export { checkBind, LiveServer, LiveState, type LiveServerOptions, type LiveStateOptions } from "./server.js";
export type { LiveSnapshot, ReadyLimits, ReadyReport, SnapshotInput } from "./snapshot.js";
export { daemonInputs, onDaemonChange } from "./source.js";
