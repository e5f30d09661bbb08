/**
 * The provisioner's public face, pinned: adding or removing a name from src/provisioner/index.ts fails here,
 * so that a change to what the CLI, the benchmarks and the real-peer tests may use is made on purpose (and
 * this list updated). Internals that unit tests need are imported from their own module files, never added
 * to the face.
 */
import { describe, expect, it } from "vitest";
import { publicFace } from "../controller/public-face.js";

const VALUES = [
  "CSV_HEADER",
  "DPID_FORMS",
  "DataPlane",
  "Daemon",
  "LiveServer",
  "LiveState",
  "DomainManager",
  "HostRegistry",
  "Metrics",
  "MongoStore",
  "VM_ID_FORMS",
  "VM_NAME_RE",
  "VirshShellRunner",
  "checkBind",
  "configHash",
  "daemonInputs",
  "controllerFromConfig",
  "createSpawnRunner",
  "dataPlaneFingerprint",
  "defaultTargets",
  "diskPlanFrom",
  "doctorExitCode",
  "dpidKey",
  "findConfiguredVm",
  "findHost",
  "formatReport",
  "hostsFor",
  "importRouteflowCsv",
  "inspectHostStorage",
  "initConfigYaml",
  "isHypervisorName",
  "listConfiguredVms",
  "loadConfig",
  "mergeCsvIntoConfig",
  "onDaemonChange",
  "ovsVsctl",
  "parseConfig",
  "parseDpidArg",
  "parseDpidText",
  "parseVmId",
  "pathProblem",
  "DEV_RE",
  "hostProblem",
  "libvirtUriProblem",
  "mongoUriProblem",
  "regexProblem",
  "INIT_HOST_URIS",
  "place",
  "planOnHost",
  "prewarmPlan",
  "reresolveVm",
  "resolveDatapath",
  "rfconfigRows",
  "runDoctor",
  "systemSeams",
  "targetsFromConfig",
  "templateVmId",
  "vmIdProblemText",
  "vmIdToMac",
  "viewUnderDriver",
];

const TYPES = [
  "DaemonEvents",
  "DaemonStore",
  "DomainInfo",
  "HostConfig",
  "HostProbe",
  "HostSpec",
  "InitBoot",
  "InitSettings",
  "InitVm",
  "KnownPlacement",
  "Lease",
  "LeaveAction",
  "OutboxStats",
  "PortRegisterWatch",
  "PrewarmPlan",
  "RecordPatch",
  "ResolvedVm",
  "RfbootConfig",
  "StoredEvent",
  "VirshRunner",
  "VmRecord",
  "WriteOutcome",
];

describe("src/provisioner/index.ts", () => {
  it("exports exactly the pinned names, values and types, through explicit lists", async () => {
    const face = await publicFace(new URL("../../../src/provisioner/index.ts", import.meta.url));
    expect(face.values).toEqual([...VALUES].sort());
    expect(face.types).toEqual([...TYPES].sort());
  });
});
