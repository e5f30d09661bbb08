/**
 * `rfboot watch`: run the OpenFlow controller alone and print one JSON line per datapath event on
 * stdout (`up`, `port`, `down`); logs go to stderr. Listen mode by default, relay mode with --relay.
 */
import type { Command } from "commander";
import { UsageError } from "../../common/errors.js";
import { createLogger } from "../../common/log.js";
import { parseHostPort } from "../args.js";
import { OFP_VERSIONS, createController, eventToJson, type ControllerEvent } from "../../controller/index.js";

export { parseHostPort, type HostPort } from "../args.js";

/** parseVersions reads "1.0,1.3" into wire version bytes. */
export function parseVersions(text: string): number[] {
  const names = text
    .split(",")
    .map((s) => s.trim())
    .filter((s) => s !== "");
  const known = Object.keys(OFP_VERSIONS).join(", ");
  if (names.length === 0) throw new UsageError(`--versions: give at least one of ${known}`);
  return names.map((n) => {
    const v = (OFP_VERSIONS as Record<string, number>)[n];
    if (v === undefined)
      throw new UsageError(`--versions: unknown OpenFlow version ${JSON.stringify(n)}; use ${known}`);
    return v;
  });
}

function parseSeconds(text: string, what: string): number {
  const s = Number(text);
  if (text.trim() === "" || !Number.isFinite(s) || s <= 0) {
    throw new UsageError(`${what}: expected a positive number of seconds, got ${JSON.stringify(text)}`);
  }
  return Math.round(s * 1000);
}

interface WatchFlags {
  listen?: string;
  relay?: string;
  versions?: string;
  role?: string;
  echoInterval?: string;
  echoTimeout?: string;
  handshakeTimeout?: string;
}

/** registerWatch adds `rfboot watch`. */
export function registerWatch(program: Command): void {
  program
    .command("watch")
    .description(
      "accept OpenFlow switches and print one JSON line per datapath event (up, port, down) on stdout; logs on stderr",
    )
    .option("--listen <host:port>", "where switches connect (port 0 = any free port)")
    .option("--relay <host:port>", "relay mode: forward each switch to this controller (e.g. 127.0.0.1:6633)")
    .option("--versions <list>", "OpenFlow versions offered, e.g. 1.0,1.3 (default 1.0..1.5)")
    .option("--role <role>", "listen mode: role to request: slave, equal or none (default none)")
    .option("--echo-interval <seconds>", "probe a switch silent for this long (default 5)")
    .option("--echo-timeout <seconds>", "declare it dead after this long without an answer (default 5)")
    .option("--handshake-timeout <seconds>", "close a switch not up after this long (default 10)")
    .addHelpText(
      "after",
      '\nOutput: {"event":"up","dpid":"<16 hex>","version":"1.3","peer":"IP:PORT","ports":[{"no":1,"name":"p1","mac":".."}]}' +
        '\n        {"event":"port","dpid":"..","reason":"add|delete|modify","port":{..}}  {"event":"down","dpid":"..","reason":".."}',
    )
    .action(async (flags: WatchFlags) => {
      if (flags.listen === undefined) throw new UsageError("watch: --listen HOST:PORT is required");
      const listen = parseHostPort(flags.listen, "--listen");
      const upstream = flags.relay === undefined ? undefined : parseHostPort(flags.relay, "--relay");
      const role = flags.role ?? "none";
      if (role !== "slave" && role !== "equal" && role !== "none") {
        throw new UsageError(`--role: expected slave, equal or none, got ${JSON.stringify(role)}`);
      }
      if (upstream && flags.role !== undefined && role !== "none") {
        throw new UsageError(
          "--role applies to listen mode only; in relay mode the upstream controller owns the role",
        );
      }
      const controller = createController({
        listen,
        mode: upstream ? "relay" : "listen",
        ...(upstream ? { upstream } : {}),
        ...(flags.versions !== undefined ? { versions: parseVersions(flags.versions) } : {}),
        role,
        ...(flags.echoInterval !== undefined
          ? { echoIntervalMs: parseSeconds(flags.echoInterval, "--echo-interval") }
          : {}),
        ...(flags.echoTimeout !== undefined
          ? { echoTimeoutMs: parseSeconds(flags.echoTimeout, "--echo-timeout") }
          : {}),
        ...(flags.handshakeTimeout !== undefined
          ? { handshakeTimeoutMs: parseSeconds(flags.handshakeTimeout, "--handshake-timeout") }
          : {}),
        logger: createLogger(),
      });
      const print = (e: ControllerEvent) => process.stdout.write(JSON.stringify(eventToJson(e)) + "\n");
      controller.on("up", print);
      controller.on("port", print);
      controller.on("down", print);
      await controller.start();
      await new Promise<void>((resolve) => {
        const stop = () => {
          process.off("SIGINT", stop);
          process.off("SIGTERM", stop);
          void controller.close().then(resolve);
        };
        process.on("SIGINT", stop);
        process.on("SIGTERM", stop);
      });
    });
}
