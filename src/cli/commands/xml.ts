/** `rfboot xml`: placeholder until its issue lands. */
import type { Command } from "commander";
import { RfbootError } from "../../common/errors.js";

export function registerXml(program: Command): void {
  program
    .command("xml")
    .description("(not implemented yet)")
    .action(() => {
      throw new RfbootError("xml is not implemented yet");
    });
}
