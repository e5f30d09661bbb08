/** `rfboot run`: the daemon. Boots each switch's VM when the switch connects; SIGHUP reloads the config. */
import { readFileSync } from "node:fs";
import type { Command } from "commander";
import { UsageError, errorMessage } from "../../common/errors.js";
import { createLogger } from "../../common/log.js";
import { logNofile, outOfFiles, raiseNofile } from "../../common/nofile.js";
import { parseHostPort, type HostPort } from "../args.js";
import {
  Daemon,
  LiveServer,
  LiveState,
  Metrics,
  VirshShellRunner,
  checkBind,
  controllerFromConfig,
  daemonInputs,
  loadConfig,
  onDaemonChange,
} from "../../provisioner/index.js";

interface RunFlags {
  config: string;
  http?: string;
  metrics?: string;
  httpTokenFile?: string;
  httpInsecure?: boolean;
  instance?: string;
}

/** parseListen reads `--http`: HOST:PORT, or a bare PORT on the loopback address. */
export function parseListen(text: string, what: string): HostPort {
  return /^\d+$/.test(text) ? parseHostPort(`127.0.0.1:${text}`, what) : parseHostPort(text, what);
}

/** httpToken reads the token from `--http-token-file` (first line) or RFBOOT_HTTP_TOKEN; undefined: none. */
export function httpToken(file: string | undefined, env: NodeJS.ProcessEnv): string | undefined {
  let token: string | undefined;
  if (file !== undefined) {
    try {
      token = readFileSync(file, "utf8").split("\n")[0]!.trim();
    } catch (e) {
      throw new UsageError(`--http-token-file ${file}: ${errorMessage(e)}`);
    }
    if (!token) throw new UsageError(`--http-token-file ${file}: the file's first line is empty`);
  } else if (env.RFBOOT_HTTP_TOKEN) {
    token = env.RFBOOT_HTTP_TOKEN.trim();
  }
  return token || undefined;
}

/** registerRun adds `rfboot run --config FILE [--http HOST:PORT]`. */
export function registerRun(program: Command): void {
  program
    .command("run")
    .description(
      "run the daemon: accept switches, boot each one's VM through libvirt, record it in MongoDB\n" +
        "(SIGHUP reloads the config; SIGINT/SIGTERM stop cleanly; VMs keep running)",
    )
    .requiredOption("-c, --config <file>", "config file (YAML or JSON)")
    .option(
      "--http <host:port>",
      "serve the live page (/), its updates (/events), /api/state, /metrics, /healthz and /readyz, read-only;\n" +
        "a bare PORT listens on 127.0.0.1",
    )
    .option("--metrics <host:port>", "the same listener as --http (older name)")
    .option(
      "--http-token-file <file>",
      "require this bearer token (the file's first line; or env RFBOOT_HTTP_TOKEN) on every path but /healthz",
    )
    .option("--http-insecure", "allow --http on a non-loopback address without a token")
    .option("--instance <id>", "name of this rfboot instance in leases and records (default hostname:pid)")
    .action(async (opts: RunFlags) => {
      if (opts.http && opts.metrics && opts.http !== opts.metrics)
        throw new UsageError("--http and --metrics name the same listener: give one of them");
      const listenText = opts.http ?? opts.metrics;
      const listenAt = listenText ? parseListen(listenText, opts.http ? "--http" : "--metrics") : undefined;
      const token = httpToken(opts.httpTokenFile, process.env);
      if (listenAt) checkBind(listenAt.host, token, opts.httpInsecure === true);
      const config = await loadConfig(opts.config);
      const log = createLogger();
      // Every switch is a descriptor (two when relayed): the soft limit goes as high as the process may have.
      logNofile(log, await raiseNofile(), {
        mode: config.openflow.mode,
        maxConnections: config.openflow.maxConnections,
      });
      outOfFiles.useLogger(log);
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
      const live = listenAt
        ? new LiveServer({
            host: listenAt.host,
            port: listenAt.port,
            state: new LiveState({ gather: daemonInputs(daemon), log }),
            metrics,
            ...(token ? { token } : {}),
            log,
          })
        : undefined;
      const bound = await live?.start();
      if (bound) log.info({ ...bound, token: token !== undefined }, "live page at /, metrics at /metrics");
      const unsubscribe = live ? onDaemonChange(daemon, () => live.poke()) : undefined;
      const addr = await daemon.start();
      live?.poke();
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
      unsubscribe?.();
      await live?.close();
      await daemon.stop();
      await shells.close();
      log.flush?.();
    });
}
