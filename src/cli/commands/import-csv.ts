/** `rfboot import-csv`: placeholder until its issue lands. */
import type { Command } from "commander";
import { RfbootError } from "../../common/errors.js";

export function registerImportCsv(program: Command): void {
  program
    .command("import-csv")
    .description("(not implemented yet)")
    .allowUnknownOption()
    .action(() => {
      throw new RfbootError("import-csv is not implemented yet");
    });
}
