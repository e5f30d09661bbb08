/**
 * `rfboot vm list|start|stop|remove NAME --config FILE`: operate rfboot's VMs directly through libvirt, as the
 * daemon would (same placement, XML, disk preparation and lifecycle), for operators and debugging. These do
 * not touch MongoDB: the daemon's records catch up through libvirt events / reconciliation.
 */
import type { Command } from "commander";
import { RfbootError, UsageError } from "../../common/errors.js";
import {
  findConfiguredVm,
  hostsFor,
  listConfiguredVms,
  loadConfig,
  type HostConfig,
  type ResolvedVm,
  type RfbootConfig,
} from "../../provisioner/config/index.js";
import { HostRegistry, type HostProbe } from "../../provisioner/hosts.js";
import { diskPlanFrom, type LeaveAction } from "../../provisioner/lifecycle.js";
import { place } from "../../provisioner/placement.js";
import { VirshShellRunner } from "../../provisioner/virsh.js";
import { buildDomainXml } from "../../xmlgen/index.js";

/** VmRow is one line of `rfboot vm list`. */
export interface VmRow {
  name: string;
  host: string | null;
  state: string;
  uuid: string | null;
  managedSave: boolean;
  configured: boolean;
  dpid: string | null;
  cpuSeconds: number | null;
  memoryMiB: number | null;
}

/** formatTable renders rows as aligned columns (first row = header). */
export function formatTable(rows: readonly (readonly string[])[]): string {
  const widths: number[] = [];
  for (const r of rows) r.forEach((c, i) => (widths[i] = Math.max(widths[i] ?? 0, c.length)));
  return (
    rows
      .map((r) => r.map((c, i) => (i === r.length - 1 ? c : c.padEnd(widths[i] ?? 0))).join("  "))
      .join("\n") + "\n"
  );
}

/** registryFor builds the host registry of a config, using persistent virsh shells. */
export function registryFor(config: RfbootConfig, shell: VirshShellRunner): HostRegistry {
  return new HostRegistry({ hosts: config.hosts, run: shell.run });
}

/** vmRows joins configured VMs with what the probes found (configured first, then, with `all`, the rest). */
export function vmRows(config: RfbootConfig, probes: readonly HostProbe[], all: boolean): VmRow[] {
  const configured = new Map(listConfiguredVms(config).map((v) => [v.name, v]));
  const rows: VmRow[] = [];
  const seen = new Set<string>();
  for (const p of probes) {
    for (const d of p.domains) {
      const vm = configured.get(d.name);
      if (!vm && !all) continue;
      seen.add(d.name);
      rows.push({
        name: d.name,
        host: p.name,
        state: d.state,
        uuid: d.uuid,
        managedSave: d.managedSave,
        configured: vm !== undefined,
        dpid: vm ? vm.dpidHex : null,
        cpuSeconds: d.cpuTimeNs !== undefined ? Number(d.cpuTimeNs) / 1e9 : null,
        memoryMiB: d.memoryKiB !== undefined ? Math.round(d.memoryKiB / 1024) : null,
      });
    }
  }
  for (const vm of configured.values()) {
    if (seen.has(vm.name)) continue;
    rows.push({
      name: vm.name,
      host: null,
      state: "undefined",
      uuid: null,
      managedSave: false,
      configured: true,
      dpid: vm.dpidHex,
      cpuSeconds: null,
      memoryMiB: null,
    });
  }
  return rows.sort((a, b) => Number(b.configured) - Number(a.configured) || a.name.localeCompare(b.name));
}

function configuredVm(config: RfbootConfig, name: string): ResolvedVm {
  const vm = findConfiguredVm(config, name);
  if (!vm) {
    const names = listConfiguredVms(config).map((v) => v.name);
    throw new UsageError(
      `no VM named ${JSON.stringify(name)} in ${config.source}` +
        (names.length ? ` (configured: ${names.join(", ")})` : " (no datapaths are configured)"),
    );
  }
  return vm;
}

function hostOf(config: RfbootConfig, name: string): HostConfig {
  const h = config.hosts.find((x) => x.name === name);
  if (!h) throw new RfbootError(`host ${name} is not configured`);
  return h;
}

async function withRegistry<T>(
  file: string,
  fn: (c: RfbootConfig, r: HostRegistry) => Promise<T>,
): Promise<T> {
  const config = await loadConfig(file);
  const shell = new VirshShellRunner();
  const reg = registryFor(config, shell);
  try {
    return await fn(config, reg);
  } finally {
    await reg.dispose();
    await shell.close();
  }
}

/** locateDefined probes every host and returns those where the domain is defined (unreachable ones skipped). */
async function locateDefined(
  reg: HostRegistry,
  name: string,
): Promise<{ probes: HostProbe[]; hosts: string[] }> {
  const probes = await reg.probeAll();
  return { probes, hosts: probes.filter((p) => p.domains.some((d) => d.name === name)).map((p) => p.name) };
}

/** startVm places (stable: where it is defined, else pin, else least loaded) and ensures the VM runs. */
async function startVm(config: RfbootConfig, reg: HostRegistry, name: string, pin?: string): Promise<string> {
  const vm = configuredVm(config, name);
  const probes = await reg.probeAll();
  const candidates = new Set(hostsFor(config, vm).map((h) => h.name));
  const isOurs = (n: string) => findConfiguredVm(config, n) !== undefined;
  const memOf = (n: string) => findConfiguredVm(config, n)?.memoryMiB ?? 0;
  const decision = place(
    { vm: vm.name, memoryMiB: vm.memoryMiB, pin: pin ?? vm.hostPin },
    reg.capacities().filter((c) => candidates.has(c.name)),
    reg.placements(isOurs, memOf),
  );
  const unreachable = probes
    .filter((p) => !p.reachable)
    .map((p) => `${p.name} (${p.error ?? "unreachable"})`);
  const host = hostOf(config, decision.host);
  const plan = vm.plan(host);
  const r = await reg.manager(host.name).ensureRunning({
    name: vm.name,
    uuid: plan.description.uuid,
    xml: buildDomainXml(plan.description),
    disk: plan.disk ? diskPlanFrom(plan.disk) : undefined,
  });
  const moved = decision.previous ? ` (moved from ${decision.previous})` : "";
  const warn = unreachable.length ? `\nwarning: unreachable hosts: ${unreachable.join("; ")}` : "";
  return (
    `${vm.name}: ${r.action}${r.restored ? " (restored from saved state)" : ""} on ${host.name}` +
    ` [placement: ${decision.reason}${moved}] in ${r.timings.totalMs.toFixed(0)} ms${warn}\n`
  );
}

const LEAVE_MODES = ["shutdown", "destroy", "suspend"] as const;

/** registerVm adds `rfboot vm list|start|stop|remove`. */
export function registerVm(program: Command): void {
  const vm = program
    .command("vm")
    .description("operate rfboot's VMs directly through libvirt: list, start, stop, remove")
    .exitOverride();

  vm.command("list")
    .description("list configured VMs and where/how they run (live figures from virsh domstats)")
    .requiredOption("--config <file>", "rfboot config (YAML or JSON)")
    .option("--json", "print JSON instead of a table")
    .option("--all", "include domains rfboot does not manage")
    .exitOverride()
    .action(async (o: { config: string; json?: boolean; all?: boolean }) => {
      await withRegistry(o.config, async (config, reg) => {
        const probes = await reg.probeAll();
        const rows = vmRows(config, probes, o.all === true);
        if (o.json) {
          const down = probes.filter((p) => !p.reachable).map((p) => ({ host: p.name, error: p.error }));
          process.stdout.write(JSON.stringify({ vms: rows, unreachable: down }, null, 2) + "\n");
          return;
        }
        const table = [["NAME", "DPID", "HOST", "STATE", "SAVED", "CPU(s)", "MEM(MiB)", "UUID"]];
        for (const r of rows) {
          table.push([
            r.name + (r.configured ? "" : " *"),
            r.dpid ?? "-",
            r.host ?? "-",
            r.state,
            r.managedSave ? "yes" : "no",
            r.cpuSeconds === null ? "-" : r.cpuSeconds.toFixed(1),
            r.memoryMiB === null ? "-" : String(r.memoryMiB),
            r.uuid ?? "-",
          ]);
        }
        process.stdout.write(formatTable(table));
        for (const p of probes.filter((x) => !x.reachable)) {
          process.stdout.write(`warning: host ${p.name} unreachable: ${p.error}\n`);
        }
      });
    });

  vm.command("start <name>")
    .description(
      "place, define and start a configured VM (adopts a running one; resumes a paused or saved one)",
    )
    .requiredOption("--config <file>", "rfboot config (YAML or JSON)")
    .option("--host <name>", "start it on this host (a pin)")
    .exitOverride()
    .action(async (name: string, o: { config: string; host?: string }) => {
      await withRegistry(o.config, async (config, reg) => {
        if (o.host !== undefined && !config.hosts.some((h) => h.name === o.host)) {
          throw new UsageError(
            `--host ${o.host}: no such host (configured: ${config.hosts.map((h) => h.name).join(", ")})`,
          );
        }
        process.stdout.write(await startVm(config, reg, name, o.host));
      });
    });

  vm.command("stop <name>")
    .description("stop a VM: shutdown (ACPI, destroy after a timeout), destroy, or suspend (managedsave)")
    .requiredOption("--config <file>", "rfboot config (YAML or JSON)")
    .option("--mode <mode>", `one of ${LEAVE_MODES.join(", ")}`, "shutdown")
    .exitOverride()
    .action(async (name: string, o: { config: string; mode: string }) => {
      if (!(LEAVE_MODES as readonly string[]).includes(o.mode)) {
        throw new UsageError(`--mode ${JSON.stringify(o.mode)} is not one of ${LEAVE_MODES.join(", ")}`);
      }
      await withRegistry(o.config, async (config, reg) => {
        configuredVm(config, name);
        const { hosts } = await locateDefined(reg, name);
        if (hosts.length === 0) throw new RfbootError(`${name} is not defined on any reachable host`);
        for (const h of hosts) {
          const out = await reg.manager(h).leave(name, o.mode as LeaveAction);
          process.stdout.write(`${name}: ${out} on ${h}\n`);
        }
      });
    });

  vm.command("remove <name>")
    .description("destroy and undefine a VM (with its saved state) and delete its rfboot-made disk")
    .requiredOption("--config <file>", "rfboot config (YAML or JSON)")
    .option("--keep-disk", "keep the VM's overlay/copy")
    .exitOverride()
    .action(async (name: string, o: { config: string; keepDisk?: boolean }) => {
      await withRegistry(o.config, async (config, reg) => {
        const vmc = configuredVm(config, name);
        const { hosts } = await locateDefined(reg, name);
        if (hosts.length === 0) throw new RfbootError(`${name} is not defined on any reachable host`);
        for (const h of hosts) {
          const plan = vmc.plan(hostOf(config, h));
          const disk = o.keepDisk || !plan.disk ? undefined : diskPlanFrom(plan.disk);
          await reg.manager(h).remove(name, disk);
          const what = disk && disk.kind !== "none" ? ` (disk ${disk.path} deleted)` : "";
          process.stdout.write(`${name}: removed from ${h}${what}\n`);
        }
      });
    });
}
