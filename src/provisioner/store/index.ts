/** Public API of the MongoDB store; src/provisioner/index.ts re-exports the part its clients use. */
export { DUPLICATE_KEY, isDuplicateKey, isOutage, isTransient, isUnavailable } from "./errors.js";
export type { DaemonStore, PortRegisterWatch } from "./daemon-store.js";
export { DEFAULT_LEASE_TTL_MS, leaseMarginMs, LeaseTable } from "./leases.js";
export {
  DEFAULT_DATABASE,
  DEFAULT_PREFIX,
  MongoStore,
  type MongoStoreOptions,
  type StoreCollections,
} from "./mongo-store.js";
export {
  mergePatches,
  Outbox,
  rowKey,
  type OutboxOp,
  type OutboxOptions,
  type OutboxStats,
} from "./outbox.js";
export {
  IPC_CHANNEL,
  PORT_REGISTER,
  PortRegisterWatcher,
  type PortRegisterResult,
  type PortRegisterWatchOptions,
} from "./readiness.js";
export {
  observedState,
  reconcile,
  type ConfiguredVm,
  type DomainListing,
  type ObservedState,
  type ReconcileAction,
} from "./reconcile.js";
export {
  RFCONFIG_FIELDS,
  VM_STATES,
  type LastError,
  type Lease,
  type PortRegisterSeen,
  type PrewarmImage,
  type RecordPatch,
  type RecordPort,
  type RfconfigRow,
  type StoredEvent,
  type StoreEvent,
  type SwitchInfo,
  type VmRecord,
  type VmState,
  type WriteOutcome,
} from "./types.js";
export { checkDpidHex, validateEvent, validatePatch, validateRfconfigRows } from "./validate.js";
