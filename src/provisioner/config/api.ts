/** Looking VMs up in a loaded config: by dpid (with the unknown-datapath policy), by name, all of them. */
import { createHash } from "node:crypto";
import { ConfigError } from "../../common/errors.js";
import { HYPERVISOR_NAMES, type HypervisorName } from "../../xmlgen/index.js";
import { dpidProblemText, parseDpidText } from "./ids.js";
import { candidateHosts, configIndex, resolveAndCheck, resolveTemplate } from "./load.js";
import { pickSettings, type VmIdentity } from "./resolve.js";
import type { PartialVmSettings } from "./schema.js";
import type { HostConfig, ResolvedVm, RfbootConfig } from "./types.js";

/**
 * resolveDatapath returns the VM for datapath `dpid`: the configured one, or under the `template`
 * unknown-datapath policy one derived from the template (data ports from `switchPorts`, the switch's
 * reported physical port numbers). Returns undefined for an unlisted dpid under `ignore` or `refuse`
 * (read `config.policies.unknownDatapath.action` to tell which). Configured VMs are resolved once at
 * load, so this is a map lookup. A template VM that would clash with a configured VM's name or MACs is
 * a ConfigError.
 */
export function resolveDatapath(
  config: RfbootConfig,
  dpid: bigint,
  switchPorts?: readonly number[],
): ResolvedVm | undefined {
  const ix = configIndex(config);
  const vm = ix.byDpid.get(dpid);
  if (vm) return vm;
  const policy = config.policies.unknownDatapath;
  if (policy.action !== "template") return undefined;
  const t = resolveTemplate(config, policy.template, dpid, switchPorts, config.hosts);
  const clash = ix.byName.get(t.name);
  if (clash) {
    throw new ConfigError(
      `template VM ${t.name} for datapath ${t.dpidHex} has the name of the configured VM of datapath ${clash.dpidHex}`,
      "policies.unknownDatapath.template.name",
      t.name,
    );
  }
  for (const mac of [t.vmMac, ...t.ports.map((p) => p.mac)]) {
    if (ix.macs.has(mac)) {
      throw new ConfigError(
        `template VM for datapath ${t.dpidHex} would use MAC ${mac}, already a configured VM's`,
        "policies.unknownDatapath.template",
        mac,
      );
    }
  }
  return t;
}

/** listConfiguredVms returns every VM listed in `datapaths`, sorted by dpid. */
export function listConfiguredVms(config: RfbootConfig): ResolvedVm[] {
  return config.datapaths.map((d) => configIndex(config).byDpid.get(d.dpid)!);
}

/**
 * configuredVmsInFileOrder returns every VM listed in `datapaths` in the order the config lists them (a
 * CSV's row order when imported), which is the operator's own order of importance.
 */
export function configuredVmsInFileOrder(config: RfbootConfig): ResolvedVm[] {
  return [...configIndex(config).byDpid.values()];
}

/** findConfiguredVm returns the configured VM called `name`, or undefined. */
export function findConfiguredVm(config: RfbootConfig, name: string): ResolvedVm | undefined {
  return configIndex(config).byName.get(name);
}

/** VmOverrides are settings applied over a VM's own (e.g. `rfboot xml --hypervisor lxc`). */
export type VmOverrides = PartialVmSettings;

/**
 * reresolveVm resolves a configured VM again with `overrides` on top of its settings (highest priority),
 * validating the result like load does. Throws ConfigError when the combination is invalid (for example
 * `hypervisor: lxc` on a VM that boots a kernel).
 */
export function reresolveVm(config: RfbootConfig, vm: ResolvedVm, overrides: VmOverrides): ResolvedVm {
  if (vm.source === "template") {
    return resolveTemplate(
      config,
      config.policies.unknownDatapath.template,
      vm.dpid,
      vm.ports.map((p) => p.dpPort),
      config.hosts,
      {},
      overrides,
    );
  }
  const entry = config.datapaths.find((d) => d.dpid === vm.dpid);
  if (!entry) throw new ConfigError(`datapath ${vm.dpidHex} is not configured`, "datapaths", vm.dpidHex);
  const id: VmIdentity = {
    source: "configured",
    dpid: vm.dpid,
    name: vm.name,
    vmId: vm.vmId,
    portPairs: vm.ports.map((p) => ({ vmPort: p.vmPort, dpPort: p.dpPort })),
    ...(vm.profile !== undefined ? { profile: vm.profile } : {}),
    ...(vm.hostPin !== undefined ? { hostPin: vm.hostPin } : {}),
    own: pickSettings(entry),
    path: ["datapaths", entry.key],
  };
  return resolveAndCheck(config, id, config.hosts, {}, overrides);
}

/** hostsFor lists the hosts `vm` may run on: its pinned host, or every host that runs its hypervisor. */
export function hostsFor(config: RfbootConfig, vm: ResolvedVm): HostConfig[] {
  return candidateHosts(config.hosts, vm);
}

/** findHost returns the host called `name`, or undefined. */
export function findHost(config: RfbootConfig, name: string): HostConfig | undefined {
  return config.hosts.find((h) => h.name === name);
}

/** parseDpidArg reads a dpid given on the command line or by an operator; ConfigError when invalid. */
export function parseDpidArg(text: string, what = "dpid"): bigint {
  const d = parseDpidText(text);
  if (d === undefined) throw new ConfigError(dpidProblemText(text), what, text);
  return d;
}

/** isHypervisorName tells whether `s` names a hypervisor (for CLI flags). */
export function isHypervisorName(s: string): s is HypervisorName {
  return (HYPERVISOR_NAMES as readonly string[]).includes(s);
}

function canonical(v: unknown): unknown {
  if (typeof v === "bigint") return `${v}n`;
  if (Array.isArray(v)) return v.map(canonical);
  if (v !== null && typeof v === "object") {
    const out: Record<string, unknown> = {};
    for (const k of Object.keys(v).sort()) {
      const x = (v as Record<string, unknown>)[k];
      if (typeof x !== "function" && x !== undefined) out[k] = canonical(x);
    }
    return out;
  }
  return v;
}

/**
 * configHash is a stable fingerprint (SHA-256 hex) of what defines a VM: name, dpid, vm_id, ports, pin
 * and merged settings. Equal hashes across a SIGHUP reload mean the VM is unchanged; different hashes
 * mean it must be redefined (it takes the change at its next start). Host paths are not included: a
 * host's storageDir change is a host change, not a VM change.
 */
export function configHash(vm: ResolvedVm): string {
  const body = canonical({
    name: vm.name,
    dpid: vm.dpid,
    vmId: vm.vmId,
    ports: vm.ports,
    hostPin: vm.hostPin,
    settings: vm.settings,
  });
  return createHash("sha256").update(JSON.stringify(body)).digest("hex");
}
