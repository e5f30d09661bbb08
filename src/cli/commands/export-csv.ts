/**
 * `rfboot export-csv --config F [--out FILE] [--force]`: the mapping CSV rfserver is started with
 * (`rftestNconfig.csv`), in RouteFlow's own format, for the configured VMs: header
 * `vm_id,vm_port,ct_id,dp_id,dp_port`, vm_id and dp_id in upper-case hex without `0x` or leading zeros, the rest
 * decimal, one row per data port, no blank line (rfserver crashes on one). `import-csv` reads it back.
 */
import { writeFile } from "node:fs/promises";
import type { Command } from "commander";
import { UsageError } from "../../common/errors.js";
import { CSV_HEADER, listConfiguredVms, loadConfig, type RfbootConfig } from "../../provisioner/index.js";

/** routeflowCsv renders the configured VMs' rows as RouteFlow's loader reads them, sorted by VM then port. */
export function routeflowCsv(config: RfbootConfig): string {
  const lines = [CSV_HEADER];
  for (const vm of listConfiguredVms(config)) {
    for (const p of [...vm.ports].sort((a, b) => a.vmPort - b.vmPort)) {
      lines.push(
        [vm.vmId.toString(16).toUpperCase(), p.vmPort, 0, vm.dpid.toString(16).toUpperCase(), p.dpPort].join(
          ",",
        ),
      );
    }
  }
  return `${lines.join("\n")}\n`;
}

/** registerExportCsv adds `rfboot export-csv`. */
export function registerExportCsv(program: Command): void {
  program
    .command("export-csv")
    .description(
      "write the mapping CSV rfserver is started with (rftestNconfig.csv, RouteFlow's format) for the\n" +
        "configured VMs; template-derived VMs exist only once their switch joins, so they are not in it",
    )
    .requiredOption("-c, --config <file>", "config file (YAML or JSON)")
    .option("-o, --out <file>", "write the CSV here instead of stdout")
    .option("-f, --force", "overwrite --out if it exists")
    .action(async (opts: { config: string; out?: string; force?: boolean }) => {
      const csv = routeflowCsv(await loadConfig(opts.config));
      if (opts.out === undefined) {
        process.stdout.write(csv);
        return;
      }
      try {
        await writeFile(opts.out, csv, { flag: opts.force ? "w" : "wx", mode: 0o644 });
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code === "EEXIST") {
          throw new UsageError(`--out ${opts.out} exists; pass --force to overwrite it`);
        }
        throw err;
      }
      process.stderr.write(`rfboot: wrote ${opts.out}\n`);
    });
}
