/** Provisioner subcommands, one file each. */
import type { Command } from "commander";
import { registerDoctor } from "./doctor.js";
import { registerEvents } from "./events.js";
import { registerExportCsv } from "./export-csv.js";
import { registerHosts } from "./hosts.js";
import { registerImportCsv } from "./import-csv.js";
import { registerInit } from "./init.js";
import { registerPlan } from "./plan.js";
import { registerRun } from "./run.js";
import { registerStatus } from "./status.js";
import { registerVm } from "./vm.js";

/** registerProvisionerCommands adds run, status, events, plan, init, import-csv, export-csv, vm, hosts and doctor. */
export function registerProvisionerCommands(program: Command): void {
  registerRun(program);
  registerStatus(program);
  registerEvents(program);
  registerPlan(program);
  registerInit(program);
  registerImportCsv(program);
  registerExportCsv(program);
  registerVm(program);
  registerHosts(program);
  registerDoctor(program);
}
