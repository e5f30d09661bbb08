/** `rfboot run`: the daemon. Boots each switch's VM when the switch connects; SIGHUP reloads the config. */
import type { Command } from "commander";
import { errorMessage } from "../../common/errors.js";
import { createLogger } from "../../common/log.js";
import { parseHostPort } from "../args.js";
import {
  Daemon,
  Metrics,
  VirshShellRunner,
  controllerFromConfig,
  loadConfig,
} from "../../provisioner/index.js";

/** registerRun adds `rfboot run --config FILE [--metrics HOST:PORT]`. */
export function registerRun(program: Command): void {
  program
    .command("run")
    .description(
      "run the daemon: accept switches, boot each one's VM through libvirt, record it in MongoDB\n" +
        "(SIGHUP reloads the config; SIGINT/SIGTERM stop cleanly; VMs keep running)",
    )
    .requiredOption("-c, --config <file>", "config file (YAML or JSON)")
    .option("--metrics <host:port>", "serve Prometheus metrics at http://HOST:PORT/metrics")
    .option("--instance <id>", "name of this rfboot instance in leases and records (default hostname:pid)")
    .action(async (opts: { config: string; metrics?: string; instance?: string }) => {
      const metricsAt = opts.metrics ? parseHostPort(opts.metrics, "--metrics") : undefined;
      const config = await loadConfig(opts.config);
      const log = createLogger();
      const metrics = new Metrics();
      // virsh commands go through long-lived interactive virsh shells (~1 ms a command instead of a ~7-27 ms
      // process spawn); a command a shell cannot carry, or a dead shell, falls back to spawning virsh.
      const shells = new VirshShellRunner({ shellsPerUri: 4 });
      const daemon = new Daemon({
        runner: shells.run,
        config,
        logger: log,
        metrics,
        createController: controllerFromConfig,
        ...(opts.instance ? { instanceId: opts.instance } : {}),
      });
      const server = metricsAt ? await metrics.serve(metricsAt.host, metricsAt.port) : undefined;
      if (server) log.info({ host: server.host, port: server.port }, "metrics at /metrics");
      const addr = await daemon.start();
      log.info({ config: opts.config, ...addr }, "rfboot running");
      process.on("SIGHUP", () => {
        loadConfig(opts.config).then(
          (next) => daemon.reload(next),
          (err: unknown) =>
            log.error({ err: errorMessage(err) }, "config reload refused: keeping the old config"),
        );
      });
      await new Promise<void>((resolve) => {
        const stop = (sig: string) => {
          log.info({ signal: sig }, "stopping");
          resolve();
        };
        process.once("SIGINT", () => stop("SIGINT"));
        process.once("SIGTERM", () => stop("SIGTERM"));
      });
      await daemon.stop();
      await shells.close();
      server?.server.close();
      log.flush?.();
    });
}
