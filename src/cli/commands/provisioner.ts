/** Provisioner subcommands (run, status, plan, init, vm, hosts, import-csv): placeholder until its issue lands. */
import type { Command } from "commander";

export function registerProvisionerCommands(_program: Command): void {}
