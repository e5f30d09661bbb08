/**
 * The config folder's face, pinned: adding or removing a name from src/provisioner/config/index.ts fails
 * here, so that a change to what the rest of the provisioner may use from provisioner/config is made on
 * purpose (and this list updated). Internals that unit tests need are imported from their own module files.
 */
import { describe, expect, it } from "vitest";
import { publicFace } from "../../controller/public-face.js";

const VALUES = [
  "CSV_HEADER",
  "DEFAULT_CMDLINE",
  "DPID_FORMS",
  "INIT_HOST_URIS",
  "MAX_CONFIG_BYTES",
  "MAX_OF_PORT",
  "OPENFLOW_VERSIONS",
  "PLACEHOLDER_NAMES",
  "TEMPLATE_DEFAULT_NAME",
  "VM_ID_FORMS",
  "VM_NAME_RE",
  "VM_SETTINGS_DEFAULTS",
  "WELL_KNOWN_NAMES",
  "configHash",
  "configYaml",
  "configuredVmsInFileOrder",
  "csvVmName",
  "dataDeviceName",
  "datapathEntryObject",
  "dpidKey",
  "findConfiguredVm",
  "findHost",
  "formatForPath",
  "hostsFor",
  "hypervisorsForUri",
  "isRemoteUri",
  "importRouteflowCsv",
  "initConfigObject",
  "initConfigYaml",
  "isHypervisorName",
  "listConfiguredVms",
  "loadConfig",
  "mergeCsvIntoConfig",
  "mergeSettings",
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
  "reresolveVm",
  "resolveDatapath",
  "sniffFormat",
  "templateVmId",
  "textProblem",
  "vmIdProblemText",
  "vmIdToMac",
  "viewUnderDriver",
];

const TYPES = [
  "ConfigFormat",
  "CsvImport",
  "CsvRow",
  "DatapathConfig",
  "DriverView",
  "DatapathEntry",
  "DiskKind",
  "DiskPlan",
  "HostConfig",
  "HostPaths",
  "ImportedDatapath",
  "InitBoot",
  "InitSettings",
  "InitVm",
  "ParseOptions",
  "ParsedConfig",
  "PartialVmSettings",
  "Profile",
  "ResolvedDisk",
  "ResolvedPort",
  "ResolvedVm",
  "RfbootConfig",
  "VmOverrides",
  "VmPlan",
  "VmSettings",
  "VmSource",
];

describe("src/provisioner/config/index.ts", () => {
  it("exports exactly the pinned names, values and types, through explicit lists", async () => {
    const face = await publicFace(new URL("../../../../src/provisioner/config/index.ts", import.meta.url));
    expect(face.values).toEqual([...VALUES].sort());
    expect(face.types).toEqual([...TYPES].sort());
  });
});
