/** `rfboot status`: placeholder until its issue lands. */
import type { Command } from "commander";
import { RfbootError } from "../../common/errors.js";

export function registerStatus(program: Command): void {
  program
    .command("status")
    .description("(not implemented yet)")
    .allowUnknownOption()
    .action(() => {
      throw new RfbootError("status is not implemented yet");
    });
}
