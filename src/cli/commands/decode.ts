/** `rfboot decode`: placeholder until its issue lands. */
import type { Command } from "commander";
import { RfbootError } from "../../common/errors.js";

export function registerDecode(program: Command): void {
  program
    .command("decode")
    .description("(not implemented yet)")
    .action(() => {
      throw new RfbootError("decode is not implemented yet");
    });
}
