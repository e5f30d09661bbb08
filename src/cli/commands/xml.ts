/**
 * `rfboot xml --config FILE --vm NAME [--hypervisor X] [--host NAME]`: prints the libvirt domain XML rfboot
 * would define for a VM (a dry run: nothing touches libvirt). `--dpid D [--ports 1,2,..]` instead of --vm
 * shows a datapath's VM, including one the template policy would derive. `--hypervisor X` shows it under any
 * driver, configured on a host or not, with notes on stderr. Unknown VMs and invalid values exit 2 with one line.
 */
import type { Command } from "commander";
import { UsageError } from "../../common/errors.js";
import {
  findConfiguredVm,
  findHost,
  hostsFor,
  isHypervisorName,
  listConfiguredVms,
  loadConfig,
  parseDpidArg,
  resolveDatapath,
  viewUnderDriver,
  type RfbootConfig,
} from "../../provisioner/index.js";
import { HYPERVISOR_NAMES, buildDomainXml, type HypervisorName } from "../../xmlgen/index.js";

/** XmlOptions are the parsed flags of `rfboot xml`. */
export interface XmlOptions {
  readonly config: string;
  readonly vm?: string;
  readonly dpid?: string;
  readonly ports?: string;
  readonly hypervisor?: string;
  readonly host?: string;
}

/** parsePortList reads `1,2,3` (switch port numbers) for --ports. */
export function parsePortList(text: string): number[] {
  const parts = text.split(",").map((s) => s.trim());
  return parts.map((p) => {
    if (!/^[0-9]{1,10}$/.test(p) || Number(p) < 1) {
      throw new UsageError(`--ports: ${JSON.stringify(p)} is not a port number; give a list like 1,2,3`);
    }
    return Number(p);
  });
}

/**
 * vmXml resolves the VM the options name and returns its domain XML. With `hypervisor`, the VM as that driver
 * would run it: what the driver cannot take is derived from the config or left out, and `notes` say what was
 * changed and which host would run it (or that none is configured).
 */
export function vmXml(
  config: RfbootConfig,
  o: Omit<XmlOptions, "config">,
): { xml: string; notes: readonly string[] } {
  if ((o.vm === undefined) === (o.dpid === undefined)) {
    throw new UsageError("give exactly one of --vm NAME or --dpid DPID");
  }
  if (o.hypervisor !== undefined && !isHypervisorName(o.hypervisor)) {
    throw new UsageError(
      `--hypervisor ${JSON.stringify(o.hypervisor)} is not one of ${HYPERVISOR_NAMES.join(", ")}`,
    );
  }
  let vm;
  if (o.vm !== undefined) {
    vm = findConfiguredVm(config, o.vm);
    if (!vm) {
      const names = listConfiguredVms(config).map((v) => v.name);
      throw new UsageError(
        `no VM named ${JSON.stringify(o.vm)} in ${config.source} (${names.length ? `configured: ${names.join(", ")}` : "no datapaths are configured"})`,
      );
    }
  } else {
    const dpid = parseDpidArg(o.dpid!, "--dpid");
    const ports = o.ports !== undefined ? parsePortList(o.ports) : undefined;
    vm = resolveDatapath(config, dpid, ports);
    if (!vm) {
      throw new UsageError(
        `datapath 0x${dpid.toString(16)} is not in ${config.source} and the unknown-datapath policy is ${config.policies.unknownDatapath.action} (no VM)`,
      );
    }
  }
  if (o.host !== undefined && !findHost(config, o.host)) {
    throw new UsageError(
      `--host ${JSON.stringify(o.host)}: no such host (hosts: ${config.hosts.map((h) => h.name).join(", ")})`,
    );
  }
  if (o.hypervisor !== undefined) {
    const view = viewUnderDriver(config, vm, o.hypervisor as HypervisorName, o.host);
    return { xml: buildDomainXml(view.vm.describe(view.host)), notes: view.notes };
  }
  const host = o.host !== undefined ? findHost(config, o.host) : hostsFor(config, vm)[0];
  if (!host) throw new UsageError(`no configured host runs ${vm.hypervisor} VMs; pass --host NAME`);
  return { xml: buildDomainXml(vm.describe(host)), notes: [] };
}

/** registerXml adds `rfboot xml`. */
export function registerXml(program: Command): void {
  program
    .command("xml")
    .description("print the libvirt domain XML of a configured VM (dry run, touches nothing)")
    .requiredOption("-c, --config <file>", "rfboot config (YAML or JSON)")
    .option("--vm <name>", "the VM's name")
    .option("--dpid <dpid>", "a datapath id instead of --vm (hex like 0x5, or dec:N)")
    .option("--ports <list>", "with --dpid: the switch's port numbers for a template VM, e.g. 1,2,3")
    .option(
      "--hypervisor <name>",
      `show the VM under this driver (${HYPERVISOR_NAMES.join(", ")}); notes on stderr say what it changed and which host would run it`,
    )
    .option("--host <name>", "the host whose directories to use (default: the first that runs the VM)")
    .action(async (opts: XmlOptions) => {
      const config = await loadConfig(opts.config);
      const { xml, notes } = vmXml(config, opts);
      for (const n of notes) process.stderr.write(`rfboot: note: ${n}\n`);
      process.stdout.write(xml.endsWith("\n") ? xml : `${xml}\n`);
    });
}
