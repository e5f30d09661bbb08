/**
 * `rfboot import-csv FILE [--out config.yaml] [--merge existing.yaml] [--force]`: RouteFlow's mapping CSV
 * (`rftestNconfig.csv`, as is) -> an rfboot config. Prints YAML to stdout unless --out is given. Bad rows
 * exit 2 naming the line and field; blank lines are skipped with a warning on stderr (rfserver itself
 * would crash on them).
 */
import { readFile, writeFile } from "node:fs/promises";
import type { Command } from "commander";
import { UsageError, errorMessage } from "../../common/errors.js";
import { importRouteflowCsv, mergeCsvIntoConfig } from "../../provisioner/index.js";

/** ImportCsvOptions are the parsed flags of `rfboot import-csv`. */
export interface ImportCsvOptions {
  readonly out?: string;
  readonly merge?: string;
  readonly force?: boolean;
}

/** MAX_CSV_BYTES: RouteFlow's CSVs are a few hundred bytes; refuse anything absurd before reading it whole. */
const MAX_CSV_BYTES = 16 * 1024 * 1024;

async function readInput(path: string, what: string, max: number): Promise<string> {
  let buf: Buffer;
  try {
    buf = await readFile(path);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    throw new UsageError(
      `cannot read ${what} ${path}: ${code === "ENOENT" ? "no such file" : errorMessage(err)}`,
    );
  }
  if (buf.length > max) throw new UsageError(`${what} ${path} is ${buf.length} bytes; the limit is ${max}`);
  return buf.toString("utf8");
}

/**
 * runImportCsv does the work: returns the YAML and the warnings, and writes --out when given
 * (refusing to overwrite an existing file unless --force, or unless it is the --merge file itself).
 */
export async function runImportCsv(
  file: string,
  o: ImportCsvOptions,
): Promise<{ yaml: string; warnings: string[] }> {
  const text = await readInput(file, "CSV", MAX_CSV_BYTES);
  const imp = importRouteflowCsv(text, file);
  let yaml = imp.yaml;
  if (o.merge !== undefined) {
    const existing = await readInput(o.merge, "config", 4 * 1024 * 1024);
    yaml = mergeCsvIntoConfig(existing, o.merge, imp).yaml;
  }
  if (o.out !== undefined) {
    const overwriteOk = o.force === true || (o.merge !== undefined && o.out === o.merge);
    try {
      // 0600: a config may carry MongoDB credentials in mongo.uri.
      await writeFile(o.out, yaml, { flag: overwriteOk ? "w" : "wx", mode: 0o600 });
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === "EEXIST") {
        throw new UsageError(`--out ${o.out} exists; pass --force to overwrite it`);
      }
      throw err;
    }
  }
  return { yaml, warnings: [...imp.warnings] };
}

/** registerImportCsv adds `rfboot import-csv`. */
export function registerImportCsv(program: Command): void {
  program
    .command("import-csv")
    .description("convert RouteFlow's mapping CSV (rftestNconfig.csv) to an rfboot config")
    .argument("<file>", "the CSV (header vm_id,vm_port,ct_id,dp_id,dp_port; vm_id and dp_id in hex)")
    .option("-o, --out <file>", "write the config here instead of stdout")
    .option("--merge <config>", "add the CSV's datapaths to this existing config (comments kept)")
    .option("-f, --force", "overwrite --out if it exists")
    .action(async (file: string, opts: ImportCsvOptions) => {
      const { yaml, warnings } = await runImportCsv(file, opts);
      for (const w of warnings) process.stderr.write(`rfboot: warning: ${file} ${w}\n`);
      if (opts.out === undefined) process.stdout.write(yaml);
      else process.stderr.write(`rfboot: wrote ${opts.out}\n`);
    });
}
