/** `rfboot hosts`: placeholder until its issue lands. */
import type { Command } from "commander";
import { RfbootError } from "../../common/errors.js";

export function registerHosts(program: Command): void {
  program
    .command("hosts")
    .description("(not implemented yet)")
    .allowUnknownOption()
    .action(() => {
      throw new RfbootError("hosts is not implemented yet");
    });
}
