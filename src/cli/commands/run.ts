/** `rfboot run`: placeholder until its issue lands. */
import type { Command } from "commander";
import { RfbootError } from "../../common/errors.js";

export function registerRun(program: Command): void {
  program
    .command("run")
    .description("(not implemented yet)")
    .allowUnknownOption()
    .action(() => {
      throw new RfbootError("run is not implemented yet");
    });
}
