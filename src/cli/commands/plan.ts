/** `rfboot plan`: placeholder until its issue lands. */
import type { Command } from "commander";
import { RfbootError } from "../../common/errors.js";

export function registerPlan(program: Command): void {
  program
    .command("plan")
    .description("(not implemented yet)")
    .allowUnknownOption()
    .action(() => {
      throw new RfbootError("plan is not implemented yet");
    });
}
