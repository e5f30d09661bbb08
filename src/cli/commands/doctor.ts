/**
 * `rfboot doctor [--config FILE] [--json]`: checks what this machine needs for rfboot (libvirt hosts, KVM,
 * reaping, storage, Open vSwitch, MongoDB, clocks) and prints, for each problem, how to fix it. Exits 1 when
 * a problem blocks rfboot, 2 for a bad config; without --config it checks the defaults.
 */
import type { Command } from "commander";
import { RfbootError } from "../../common/errors.js";
import {
  defaultTargets,
  doctorExitCode,
  formatReport,
  loadConfig,
  runDoctor,
  systemSeams,
  targetsFromConfig,
} from "../../provisioner/index.js";

/** registerDoctor adds `rfboot doctor`. */
export function registerDoctor(program: Command): void {
  program
    .command("doctor")
    .description(
      "check this machine for rfboot: libvirt hosts (connection, QEMU re-probing, KVM, LXC, reaping, storage),\n" +
        "Open vSwitch, MongoDB and clocks; says how to fix each problem (exit 1 if one blocks)",
    )
    .option(
      "-c, --config <file>",
      "rfboot config (YAML or JSON); default: qemu:///system, local MongoDB, dp0",
    )
    .option("--json", "print JSON instead of lines")
    .action(async (o: { config?: string; json?: boolean }) => {
      const targets = o.config ? targetsFromConfig(await loadConfig(o.config)) : defaultTargets();
      const t0 = performance.now();
      const checks = await runDoctor({ targets, seams: systemSeams });
      const code = doctorExitCode(checks);
      if (o.json) {
        const body = { ok: code === 0, ms: Math.round(performance.now() - t0), checks };
        process.stdout.write(JSON.stringify(body, null, 2) + "\n");
      } else {
        process.stdout.write(formatReport(checks));
      }
      if (code !== 0) {
        const ids = checks.filter((c) => c.blocking).map((c) => `${c.id} ${c.target}`);
        throw new RfbootError(`doctor found ${ids.length} blocking problem(s): ${ids.join(", ")}`);
      }
    });
}
