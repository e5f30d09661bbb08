/**
 * The store's face, pinned: adding or removing a name from src/provisioner/store/index.ts fails here, so
 * that a change to what the rest of the provisioner may use from provisioner/store is made on purpose (and
 * this list updated). Internals that unit tests need are imported from their own module files.
 */
import { describe, expect, it } from "vitest";
import { publicFace } from "../../controller/public-face.js";

const VALUES = [
  "DEFAULT_DATABASE",
  "DEFAULT_LEASE_TTL_MS",
  "DEFAULT_PREFIX",
  "DUPLICATE_KEY",
  "IPC_CHANNEL",
  "LeaseTable",
  "MongoStore",
  "Outbox",
  "PORT_REGISTER",
  "PortRegisterWatcher",
  "RFCONFIG_FIELDS",
  "VM_STATES",
  "checkDpidHex",
  "isDuplicateKey",
  "isOutage",
  "isTransient",
  "isUnavailable",
  "leaseMarginMs",
  "mergePatches",
  "observedState",
  "reconcile",
  "rowKey",
  "validateEvent",
  "validatePatch",
  "validateRfconfigRows",
];

const TYPES = [
  "ConfiguredVm",
  "DaemonStore",
  "DomainListing",
  "LastError",
  "Lease",
  "MongoStoreOptions",
  "ObservedState",
  "OutboxOp",
  "OutboxOptions",
  "OutboxStats",
  "PortRegisterResult",
  "PortRegisterSeen",
  "PortRegisterWatch",
  "PortRegisterWatchOptions",
  "PrewarmImage",
  "ReconcileAction",
  "RecordPatch",
  "RecordPort",
  "RfconfigRow",
  "StoreCollections",
  "StoreEvent",
  "StoredEvent",
  "SwitchInfo",
  "VmRecord",
  "VmState",
  "WriteOutcome",
];

describe("src/provisioner/store/index.ts", () => {
  it("exports exactly the pinned names, values and types, through explicit lists", async () => {
    const face = await publicFace(new URL("../../../../src/provisioner/store/index.ts", import.meta.url));
    expect(face.values).toEqual([...VALUES].sort());
    expect(face.types).toEqual([...TYPES].sort());
  });
});
