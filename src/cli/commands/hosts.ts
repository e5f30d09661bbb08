/**
 * `rfboot hosts --config FILE [--json]`: every configured libvirt host with reachability, probe latency,
 * capacity and load (running VMs / maxVms, memory in use / memoryMiB), what the host reports of itself (CPUs,
 * memory size and available memory, where its driver tells) and rfboot's VMs on it.
 * Exits 1 when a host is unreachable, so scripts and monitoring can use it as a check.
 */
import type { Command } from "commander";
import { RfbootError } from "../../common/errors.js";
import { redactUri } from "../../common/log.js";
import {
  findConfiguredVm,
  HostRegistry,
  loadConfig,
  VirshShellRunner,
  type HostProbe,
  type HostSpec,
} from "../../provisioner/index.js";
import { formatTable } from "./vm.js";

/** HostRow is one host as `rfboot hosts --json` prints it. */
export interface HostRow {
  name: string;
  uri: string;
  reachable: boolean;
  latencyMs: number;
  error: string | null;
  running: number;
  maxVms: number;
  memoryInUseMiB: number;
  memoryMiB: number | null;
  maxConcurrentStarts: number;
  /** cpus and hostMemoryMiB: the host's CPUs and memory size (`virsh nodeinfo`), null when unknown. */
  cpus: number | null;
  hostMemoryMiB: number | null;
  /** availableMiB: free + buffers + cached as the host reports them; null where its driver has no report. */
  availableMiB: number | null;
  memoryReserveMiB: number;
  /** vms: rfboot's VMs defined on this host, with their state. */
  vms: { name: string; state: string }[];
  /** otherDomains: domains on the host that rfboot does not manage. */
  otherDomains: number;
}

/** hostRows builds the report rows from probes. */
export function hostRows(
  specs: readonly HostSpec[],
  probes: readonly HostProbe[],
  isOurs: (n: string) => boolean,
): HostRow[] {
  return specs.map((s) => {
    const p = probes.find((x) => x.name === s.name);
    const doms = p?.domains ?? [];
    return {
      name: s.name,
      uri: redactUri(s.uri),
      reachable: p?.reachable ?? false,
      latencyMs: Math.round((p?.latencyMs ?? 0) * 10) / 10,
      error: p?.error ?? null,
      running: p?.running ?? 0,
      maxVms: s.maxVms,
      memoryInUseMiB: p?.memoryInUseMiB ?? 0,
      memoryMiB: s.memoryMiB ?? null,
      maxConcurrentStarts: s.maxConcurrentStarts,
      cpus: p?.node?.cpus ?? null,
      hostMemoryMiB: p?.node?.memoryMiB ?? null,
      availableMiB: p?.memory?.availableMiB ?? null,
      memoryReserveMiB: s.memoryReserveMiB ?? 0,
      vms: doms.filter((d) => isOurs(d.name)).map((d) => ({ name: d.name, state: d.state })),
      otherDomains: doms.filter((d) => !isOurs(d.name)).length,
    };
  });
}

/**
 * reportedText says in a few words what a host reports of its capacity: `2 CPUs, 180/7129 MiB available
 * (reserve 256)`, or the CPUs and size alone where the driver has no memory report; `-` when nothing is known.
 */
export function reportedText(
  r: Pick<HostRow, "cpus" | "hostMemoryMiB" | "availableMiB" | "memoryReserveMiB">,
): string {
  const parts: string[] = [];
  if (r.cpus !== null) parts.push(`${r.cpus} CPUs`);
  if (r.availableMiB !== null) {
    parts.push(`${r.availableMiB}/${r.hostMemoryMiB ?? "?"} MiB available (reserve ${r.memoryReserveMiB})`);
  } else if (r.hostMemoryMiB !== null) parts.push(`${r.hostMemoryMiB} MiB, no memory report`);
  return parts.length > 0 ? parts.join(", ") : "-";
}

/** registerHosts adds `rfboot hosts`. */
export function registerHosts(program: Command): void {
  program
    .command("hosts")
    .description(
      "libvirt hosts: reachability, capacity, load and rfboot's VMs per host (exit 1 if one is down)",
    )
    .requiredOption("--config <file>", "rfboot config (YAML or JSON)")
    .option("--json", "print JSON instead of a table")
    .exitOverride()
    .action(async (o: { config: string; json?: boolean }) => {
      const config = await loadConfig(o.config);
      const shell = new VirshShellRunner();
      const reg = new HostRegistry({ hosts: config.hosts, run: shell.run });
      let rows: HostRow[];
      try {
        const probes = await reg.probeAll();
        rows = hostRows(config.hosts, probes, (n) => findConfiguredVm(config, n) !== undefined);
      } finally {
        await reg.dispose();
        await shell.close();
      }
      if (o.json) {
        process.stdout.write(JSON.stringify({ hosts: rows }, null, 2) + "\n");
      } else {
        const table = [
          ["HOST", "REACHABLE", "LATENCY", "VMS", "MEMORY(MiB)", "REPORTED", "STARTS", "RFBOOT VMS", "URI"],
        ];
        for (const r of rows) {
          table.push([
            r.name,
            r.reachable ? "yes" : "NO",
            r.reachable ? `${r.latencyMs} ms` : "-",
            `${r.running}/${r.maxVms}`,
            `${r.memoryInUseMiB}/${r.memoryMiB ?? "-"}`,
            reportedText(r),
            String(r.maxConcurrentStarts),
            r.vms.length ? r.vms.map((v) => `${v.name}(${v.state})`).join(",") : "-",
            r.uri,
          ]);
        }
        process.stdout.write(formatTable(table));
        for (const r of rows) if (!r.reachable) process.stdout.write(`${r.name}: ${r.error}\n`);
      }
      const down = rows.filter((r) => !r.reachable).map((r) => r.name);
      if (down.length > 0) {
        throw new RfbootError(
          `unreachable libvirt host(s): ${down.join(", ")}; check libvirtd there and the URIs`,
        );
      }
    });
}
