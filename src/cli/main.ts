/** rfboot's command line: one subcommand per file under commands/, exit codes 0 ok, 1 runtime, 2 usage/input. */
import { Command, CommanderError } from "commander";
import {
  ConfigError,
  OpenFlowError,
  UsageError,
  describeConfigError,
  errorMessage,
} from "../common/errors.js";
import { registerWatch } from "./commands/watch.js";
import { registerDecode } from "./commands/decode.js";
import { registerXml } from "./commands/xml.js";
import { registerProvisionerCommands } from "./commands/provisioner.js";
import { registerCompletion } from "./commands/completion.js";

/** exitCodeFor maps an error to the documented exit code: 2 for bad usage or bad input, 1 otherwise. */
export function exitCodeFor(err: unknown): number {
  if (err instanceof UsageError || err instanceof ConfigError || err instanceof OpenFlowError) return 2;
  return 1;
}

/** buildProgram assembles the CLI; exported so tests can drive it in-process. */
export function buildProgram(): Command {
  const program = new Command("rfboot")
    .description("Boots RouteFlow's per-switch routing VMs on demand (OpenFlow -> libvirt -> MongoDB)")
    .version("0.1.0")
    .showHelpAfterError("(run with --help for usage)")
    .exitOverride();
  registerWatch(program);
  registerDecode(program);
  registerXml(program);
  registerProvisionerCommands(program);
  registerCompletion(program);
  for (const cmd of program.commands) cmd.exitOverride();
  return program;
}

/** main runs the CLI and returns the process exit code. */
export async function main(argv: string[]): Promise<number> {
  const program = buildProgram();
  try {
    await program.parseAsync(argv, { from: "user" });
    return 0;
  } catch (err) {
    if (err instanceof CommanderError) {
      if (err.code === "commander.helpDisplayed" || err.code === "commander.version" || err.exitCode === 0) {
        return 0;
      }
      if (err.code === "commander.help") return 0;
      return 2;
    }
    // A config with several problems lists each on its own line, so one run shows everything to fix.
    process.stderr.write(
      `rfboot: ${err instanceof ConfigError ? describeConfigError(err) : errorMessage(err)}\n`,
    );
    return exitCodeFor(err);
  }
}

const isEntry =
  process.argv[1] !== undefined && import.meta.url === new URL(`file://${process.argv[1]}`).href;
if (isEntry) {
  main(process.argv.slice(2)).then(
    (code) => {
      process.exitCode = code;
    },
    (err: unknown) => {
      process.stderr.write(`rfboot: ${errorMessage(err)}\n`);
      process.exitCode = 1;
    },
  );
}
