/** `rfboot watch`: placeholder until its issue lands. */
import type { Command } from "commander";
import { RfbootError } from "../../common/errors.js";

export function registerWatch(program: Command): void {
  program
    .command("watch")
    .description("(not implemented yet)")
    .action(() => {
      throw new RfbootError("watch is not implemented yet");
    });
}
