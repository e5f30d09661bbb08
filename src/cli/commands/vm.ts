/** `rfboot vm`: placeholder until its issue lands. */
import type { Command } from "commander";
import { RfbootError } from "../../common/errors.js";

export function registerVm(program: Command): void {
  program
    .command("vm")
    .description("(not implemented yet)")
    .allowUnknownOption()
    .action(() => {
      throw new RfbootError("vm is not implemented yet");
    });
}
