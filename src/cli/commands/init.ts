/** `rfboot init`: placeholder until its issue lands. */
import type { Command } from "commander";
import { RfbootError } from "../../common/errors.js";

export function registerInit(program: Command): void {
  program
    .command("init")
    .description("(not implemented yet)")
    .allowUnknownOption()
    .action(() => {
      throw new RfbootError("init is not implemented yet");
    });
}
