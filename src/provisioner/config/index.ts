/**
 * rfboot's configuration: loading and validating config files (YAML or JSON), the dpid -> VM map with
 * defaults, profiles and policies, RouteFlow CSV import, and writing configs back as YAML.
 *
 * Typical daemon use:
 * ```ts
 * const config = await loadConfig(path);            // ConfigError on any invalid value: do not start
 * const vm = resolveDatapath(config, dpid, ports);   // on a switch's FEATURES_REPLY
 * if (vm) { const host = pick(hostsFor(config, vm)); const { description, disk } = vm.plan(host); ... }
 * ```
 * On SIGHUP: load again; for each VM compare `configHash(old)` with `configHash(new)`.
 */
export {
  loadConfig,
  parseConfig,
  MAX_CONFIG_BYTES,
  sniffFormat,
  formatForPath,
  hypervisorsForUri,
  isRemoteUri,
} from "./load.js";
export type { ConfigFormat, ParseOptions } from "./load.js";
export {
  resolveDatapath,
  listConfiguredVms,
  configuredVmsInFileOrder,
  findConfiguredVm,
  reresolveVm,
  hostsFor,
  findHost,
  configHash,
  parseDpidArg,
  isHypervisorName,
} from "./api.js";
export type { VmOverrides } from "./api.js";
export { viewUnderDriver } from "./dryrun.js";
export type { DriverView } from "./dryrun.js";
export { VM_SETTINGS_DEFAULTS, PLACEHOLDER_NAMES, dataDeviceName, mergeSettings } from "./resolve.js";
export { parseVmId, templateVmId, dpidKey, vmIdToMac, DPID_FORMS, VM_ID_FORMS } from "./ids.js";
export { OPENFLOW_VERSIONS, DEFAULT_CMDLINE, TEMPLATE_DEFAULT_NAME, MAX_OF_PORT } from "./schema.js";
export type { VmSettings, PartialVmSettings, DatapathEntry, Profile, ParsedConfig } from "./schema.js";
export type {
  RfbootConfig,
  HostConfig,
  HostPaths,
  DatapathConfig,
  ResolvedVm,
  ResolvedPort,
  ResolvedDisk,
  DiskPlan,
  DiskKind,
  VmPlan,
  VmSource,
} from "./types.js";
export {
  importRouteflowCsv,
  mergeCsvIntoConfig,
  csvVmName,
  datapathEntryObject,
  CSV_HEADER,
  WELL_KNOWN_NAMES,
} from "./csv.js";
export type { CsvImport, CsvRow, ImportedDatapath } from "./csv.js";
export { configYaml } from "./emit.js";
export { initConfigObject, initConfigYaml, INIT_HOST_URIS } from "./generate.js";
export type { InitBoot, InitSettings, InitVm } from "./generate.js";
export { parseDpidText, vmIdProblemText } from "./ids.js";
export {
  DEV_RE,
  VM_NAME_RE,
  hostProblem,
  libvirtUriProblem,
  mongoUriProblem,
  pathProblem,
  regexProblem,
  textProblem,
} from "./checks.js";
