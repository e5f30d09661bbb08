/**
 * Completion scripts and the man page are generated from the commander tree: every command and every option
 * of the program appears in each, the scripts parse (`bash -n`, `zsh -n` where zsh is installed) and complete
 * the right words, and the page renders (`groff`, `man -l` where installed) without warnings.
 */
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { execa } from "execa";
import type { Command } from "commander";
import { afterAll, afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { buildProgram, main } from "../../../src/cli/main.js";
import { bashCompletion, manPage, zshCompletion } from "../../../src/cli/commands/completion.js";

const tmp = mkdtempSync(join(tmpdir(), "rfbt-compl-"));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

/** everything lists each command path and its option spellings, straight from commander. */
function everything(program: Command): { path: string[]; options: string[] }[] {
  const out: { path: string[]; options: string[] }[] = [];
  const walk = (c: Command, path: string[]) => {
    out.push({ path, options: c.options.flatMap((o) => [o.short, o.long].filter((x): x is string => !!x)) });
    for (const s of c.commands) walk(s, [...path, s.name()]);
  };
  walk(program, []);
  return out;
}

async function has(tool: string): Promise<boolean> {
  const r = await execa("sh", ["-c", `command -v ${tool}`], { reject: false });
  return r.exitCode === 0;
}

// eslint-disable-next-line no-control-regex -- groff renders bold for a terminal as "x BACKSPACE x"
const OVERSTRIKE = /.\x08/g;

const program = buildProgram();
const all = everything(program);
const bash = bashCompletion(program);
const zsh = zshCompletion(program);
const man = manPage(program, new Date("2026-01-01T00:00:00Z"));

describe("completion and man page cover every command and option", () => {
  it("the tree is the whole program (vm's subcommands included)", () => {
    const paths = all.map((x) => x.path.join(" "));
    expect(paths).toEqual(expect.arrayContaining(["", "xml", "init", "vm", "vm start", "completion", "man"]));
    expect(all.length).toBeGreaterThan(15);
  });

  it.each(all.map((x) => [x.path.join(" ") || "(rfboot)", x] as const))("%s", (_name, { path, options }) => {
    const key = `'${path.join(" ")}')`;
    // bash and zsh: the command's own case arm lists each of its options and --help.
    for (const script of [bash, zsh]) {
      const arm = script.split("\n").find((l) => l.trimStart().startsWith(key) && l.includes("--help"));
      expect(arm, `${path.join(" ")} in completion`).toBeDefined();
      for (const o of [...options, "--help"]) expect(arm).toMatch(new RegExp(`['( ]${o}[ ':]`));
      if (path.length > 0) expect(script).toContain(path.at(-1)!);
    }
    // the man page: a section per command, each option (roff escapes -).
    if (path.length > 0) expect(man).toContain(`.SS "rfboot ${path.join(" ")}`.replace(/-/g, "\\-"));
    for (const o of options) expect(man).toContain(`\\fB${o.replace(/-/g, "\\-")}\\fR`);
  });

  it("bash -n accepts the bash script, and it completes commands, options and file values", async () => {
    const f = join(tmp, "rfboot.bash");
    writeFileSync(f, bash);
    expect((await execa("bash", ["-n", f], { reject: false })).exitCode).toBe(0);
    const probe = [
      `source ${f}`,
      `t() { COMP_WORDS=("$@"); COMP_CWORD=$(( $# - 1 )); COMPREPLY=(); _rfboot; echo "\${COMPREPLY[*]}"; }`,
      `t rfboot vm ""`,
      `t rfboot xml --`,
      `t rfboot completion ""`,
      `t rfboot xml --config ${tmp}/rfb`,
    ].join("\n");
    const r = await execa("bash", ["-c", probe]);
    const [vm, xml, shells, file] = r.stdout.split("\n");
    expect(vm).toBe("list start stop remove");
    expect(xml!.split(" ")).toEqual(expect.arrayContaining(["--config", "--vm", "--hypervisor", "--help"]));
    expect(shells).toBe("bash zsh");
    expect(file).toBe(f);
  });

  it("zsh -n accepts the zsh script (when zsh is installed)", async (ctx) => {
    if (!(await has("zsh"))) {
      // The lab installs zsh; under CI a missing one is a failure, never a skip.
      if (process.env.CI === "true") throw new Error("zsh is not installed (the lab's package list has it)");
      return ctx.skip();
    }
    const f = join(tmp, "_rfboot");
    writeFileSync(f, zsh);
    expect((await execa("zsh", ["-n", f], { reject: false })).exitCode).toBe(0);
  });

  it("groff renders the man page without warnings, and man -l reads it (when installed)", async (ctx) => {
    const f = join(tmp, "rfboot.1");
    writeFileSync(f, man);
    if (!(await has("groff"))) {
      if (process.env.CI === "true")
        throw new Error("groff is not installed (the lab's package list has it)");
      return ctx.skip();
    }
    const g = await execa("groff", ["-man", "-ww", "-Tutf8", f], {
      reject: false,
      env: { LC_ALL: "C.UTF-8" },
    });
    expect(g.stderr).toBe("");
    expect(g.exitCode).toBe(0);
    expect(g.stdout.replace(OVERSTRIKE, "")).toMatch(/rfboot xml \[options\]/);
    if (await has("man")) {
      const m = await execa("man", ["-l", f], {
        reject: false,
        env: { MANPAGER: "cat", PAGER: "cat", MANWIDTH: "100" },
      });
      expect(m.exitCode).toBe(0);
      expect(m.stdout.replace(OVERSTRIKE, "")).toMatch(/COMMANDS/);
    }
  });
});

describe("rfboot completion / man from the command line", () => {
  let out: string;
  beforeEach(() => {
    out = "";
    vi.spyOn(process.stdout, "write").mockImplementation(
      (s: string | Uint8Array) => ((out += String(s)), true),
    );
    vi.spyOn(process.stderr, "write").mockImplementation(() => true);
  });
  afterEach(() => vi.restoreAllMocks());

  it("prints each script and the page; an unknown shell is a usage error", async () => {
    expect(await main(["completion", "bash"])).toBe(0);
    expect(out).toMatch(/^# bash completion for rfboot/);
    out = "";
    expect(await main(["completion", "zsh"])).toBe(0);
    expect(out).toMatch(/^#compdef rfboot/);
    out = "";
    expect(await main(["man"])).toBe(0);
    expect(out).toMatch(/^\.\\" Generated by/);
    expect(await main(["completion", "fish"])).toBe(2);
  });
});
