/**
 * The package as an operator installs it: `npm pack` (its prepack builds dist/), then `npm install -g` of the
 * tarball into a private prefix with dev dependencies omitted, run from outside the repository with a PATH
 * that does not reach it. Also the systemd unit the package ships: its key directives, and
 * `systemd-analyze verify` against the installed rfboot.
 */
import {
  cpSync,
  existsSync,
  lstatSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  readdirSync,
  rmSync,
  statSync,
  symlinkSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { delimiter, dirname, join, relative, resolve, sep } from "node:path";
import { execa } from "execa";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { REPO, describeWith } from "../helpers/env.js";

const UNIT = "config/systemd/rfboot.service";
/** An OpenFlow 1.3 HELLO (version 0x04, type 0, length 8, xid 1). */
const HELLO_13 = "0400000800000001";

/** Left out of the copy that is packed: installed or generated, never part of the package's sources. */
const NOT_COPIED = new Set(["node_modules", ".git", "dist", "coverage", "bench/out", ".rfboot"]);

/** insideRepo tells whether a path lies in the repository (or is it). */
function insideRepo(p: string): boolean {
  const r = relative(REPO, resolve(p));
  return r === "" || (!r.startsWith("..") && !r.startsWith(sep));
}

/**
 * childEnv is the environment of the packing, installing and installed processes: no PATH entry inside the
 * repository (npx and npm run put its node_modules/.bin there), no NODE_PATH or NODE_OPTIONS that could reach
 * it, and none of the npm_package_* and npm_lifecycle_* variables an `npm test` around this run exports.
 */
function childEnv(extraPath: string[] = []): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) {
    if (
      k === "NODE_PATH" ||
      k === "NODE_OPTIONS" ||
      k.startsWith("npm_package_") ||
      k.startsWith("npm_lifecycle_")
    )
      continue;
    env[k] = v;
  }
  const path = (process.env.PATH ?? "").split(delimiter).filter((p) => p !== "" && !insideRepo(p));
  // node itself must stay reachable even if it was only found through the repository.
  const nodeDir = dirname(process.execPath);
  if (!path.includes(nodeDir) && !insideRepo(nodeDir)) path.push(nodeDir);
  env.PATH = [...extraPath, ...path].join(delimiter);
  return env;
}

/** unitDirectives reads `Key=value` lines of a unit file (comments and sections left out), in order. */
function unitDirectives(text: string): [string, string][] {
  return text
    .split("\n")
    .map((l) => l.trim())
    .filter((l) => l !== "" && !l.startsWith("#") && !l.startsWith(";") && !l.startsWith("["))
    .map((l) => {
      const eq = l.indexOf("=");
      return [l.slice(0, eq), l.slice(eq + 1)] as [string, string];
    });
}

describe("npm pack, then npm install -g --omit=dev of the tarball", () => {
  let tmp: string;
  let prefix: string;
  let pkgDir: string;
  let work: string;
  let tarball: string;
  let entries: string[];
  let env: NodeJS.ProcessEnv;
  let installMs: number;

  beforeAll(async () => {
    tmp = mkdtempSync(join(tmpdir(), "rfboot-pkg-"));
    // Packed from a copy: prepack rebuilds dist/ from scratch, which must not pull the dist/ of the working
    // tree from under a bin/rfboot running elsewhere. The copy borrows the tree's node_modules (esbuild).
    const src = join(tmp, "src");
    cpSync(REPO, src, {
      recursive: true,
      filter: (from) => !NOT_COPIED.has(relative(REPO, from).split(sep).join("/")),
    });
    symlinkSync(join(REPO, "node_modules"), join(src, "node_modules"));
    const packDir = join(tmp, "pack");
    mkdirSync(packDir);
    const packed = await execa("npm", ["pack", "--pack-destination", packDir], {
      cwd: src,
      env: childEnv(),
      reject: false,
    });
    expect(packed.exitCode, packed.stderr).toBe(0);
    // The tarball itself is read, not npm's report of it (whose format, and whether the prepack output is
    // mixed into it, varies between npm versions).
    const tgz = readdirSync(packDir).filter((f) => f.endsWith(".tgz"));
    expect(tgz).toHaveLength(1);
    tarball = join(packDir, tgz[0]!);
    const listed = await execa("tar", ["-tzf", tarball]);
    entries = listed.stdout
      .split("\n")
      .filter((l) => l !== "" && !l.endsWith("/"))
      .map((l) => l.replace(/^package\//, ""));
    process.stdout.write(
      `package-install: ${tgz[0]}, ${statSync(tarball).size} bytes, ${entries.length} files\n`,
    );

    prefix = join(tmp, "prefix");
    work = join(tmp, "work");
    mkdirSync(work);
    const t0 = Date.now();
    const installed = await execa(
      "npm",
      ["install", "-g", "--prefix", prefix, "--omit=dev", "--no-audit", "--no-fund", tarball],
      { cwd: work, env: childEnv(), reject: false },
    );
    installMs = Date.now() - t0;
    expect(installed.exitCode, installed.stderr).toBe(0);
    process.stdout.write(`package-install: npm install -g took ${installMs} ms\n`);
    pkgDir = join(prefix, "lib", "node_modules", "rfboot");
    env = childEnv([join(prefix, "bin")]);
  }, 300_000);

  afterAll(() => {
    if (tmp) rmSync(tmp, { recursive: true, force: true });
  });

  it("the tarball holds the built CLI, the launcher, the configs and the unit, and no sources", () => {
    for (const f of [
      "package.json",
      "README.md",
      "bin/rfboot",
      "dist/cli/main.js",
      "dist/cli/main.js.map",
      "dist/provisioner/index.js",
      "config/rftest2.yaml",
      "config/example.yaml",
      "config/README.md",
      UNIT,
    ]) {
      expect(entries, f).toContain(f);
    }
    expect(entries.filter((f) => f.startsWith("src/") || f.startsWith("test/") || f.endsWith(".ts"))).toEqual(
      [],
    );
    // The launcher's build bookkeeping stays in the checkout.
    expect(entries.filter((f) => f.startsWith("dist/."))).toEqual([]);
    // Every module has its source map (stack traces name src/ lines).
    const js = entries.filter((f) => f.endsWith(".js"));
    expect(js.length).toBeGreaterThan(50);
    for (const f of js) expect(entries, f).toContain(`${f}.map`);
  });

  it("installs without dev dependencies and without src/, with rfboot linked into the prefix's bin/", () => {
    expect(existsSync(join(pkgDir, "dist", "cli", "main.js"))).toBe(true);
    expect(existsSync(join(pkgDir, "src"))).toBe(false);
    expect(existsSync(join(pkgDir, "node_modules", "esbuild"))).toBe(false);
    expect(existsSync(join(pkgDir, "node_modules", "typescript"))).toBe(false);
    expect(existsSync(join(pkgDir, "node_modules", "commander"))).toBe(true);
    expect(lstatSync(join(prefix, "bin", "rfboot")).isSymbolicLink()).toBe(true);
  });

  it("rfboot --help exits 0 and lists the commands", async () => {
    const r = await execa("rfboot", ["--help"], { cwd: work, env, reject: false });
    expect(r.exitCode, r.stderr).toBe(0);
    for (const cmd of ["run", "plan", "decode", "xml", "watch", "status", "init", "import-csv"]) {
      expect(r.stdout).toMatch(new RegExp(`^\\s+${cmd}\\b`, "m"));
    }
    const v = await execa("rfboot", ["--version"], { cwd: work, env, reject: false });
    expect(v.stdout.trim()).toBe(
      (JSON.parse(readFileSync(join(REPO, "package.json"), "utf8")) as { version: string }).version,
    );
  });

  it("rfboot decode decodes an OpenFlow 1.3 HELLO", async () => {
    const r = await execa("rfboot", ["decode", HELLO_13], { cwd: work, env, reject: false });
    expect(r.exitCode, r.stderr).toBe(0);
    expect(JSON.parse(r.stdout)).toMatchObject({ type: "hello", version: 4, versionName: "1.3", xid: 1 });
  });

  it("rfboot plan --offline plans the shipped rftest2 config without libvirt or MongoDB", async () => {
    const r = await execa(
      "rfboot",
      ["plan", "--offline", "--json", "--config", join(pkgDir, "config", "rftest2.yaml")],
      { cwd: work, env, reject: false },
    );
    expect(r.exitCode, r.stderr).toBe(0);
    const plan = JSON.parse(r.stdout) as { rows: { dpid: string; vm: string; action: string }[] };
    expect(plan.rows.map((row) => [row.dpid, row.vm])).toEqual([
      ["0000000000000005", "rfvmA"],
      ["0000000000000006", "rfvmB"],
      ["0000000000000007", "rfvmC"],
      ["0000000000000008", "rfvmD"],
    ]);
  });

  it("a bad config is refused with exit 2 from the installed CLI too", async () => {
    const bad = join(work, "bad.yaml");
    writeFileSync(bad, 'datapaths:\n  "0x5": { name: rfvmA, vmId: "02:a0:a0:a0:a0:a0", memoryMiB: 8 }\n');
    const r = await execa("rfboot", ["plan", "--offline", "--config", bad], {
      cwd: work,
      env,
      reject: false,
    });
    expect(r.exitCode).toBe(2);
    expect(r.stderr).toMatch(/datapaths\."0x5"\.memoryMiB: must be at least 16, got 8/);
  });

  it("the shipped unit runs `rfboot run --config /etc/rfboot/rfboot.yaml`, reloads with SIGHUP, restarts on failure", () => {
    const d = unitDirectives(readFileSync(join(pkgDir, UNIT), "utf8"));
    const get = (k: string) => d.filter(([key]) => key === k).map(([, v]) => v);
    expect(get("ExecStart")).toEqual(["rfboot run --config /etc/rfboot/rfboot.yaml"]);
    expect(get("ExecReload")).toEqual(["/bin/kill -HUP $MAINPID"]);
    expect(get("Restart")).toEqual(["on-failure"]);
    expect(get("StateDirectory")).toEqual(["rfboot"]);
    expect(get("ConfigurationDirectory")).toEqual(["rfboot"]);
    expect(get("Type")).toEqual(["exec"]);
    expect(get("Wants").join(" ")).toMatch(/libvirtd\.service/);
    expect(get("Requires")).toEqual([]);
    expect(Number(get("LimitNOFILE")[0])).toBeGreaterThanOrEqual(8192);
  });

  describeWith(["systemd-analyze"], "systemd-analyze verify", () => {
    /** verify runs `systemd-analyze verify` on a copy of the unit; the problems it reports about the unit. */
    async function verify(text: string): Promise<{ exitCode: number | undefined; problems: string[] }> {
      const dir = mkdtempSync(join(tmp, "unit-"));
      const file = join(dir, "rfboot.service");
      writeFileSync(file, text);
      const r = await execa("systemd-analyze", ["verify", file], {
        cwd: work,
        env: { ...env, LC_ALL: "C", SYSTEMD_LOG_COLOR: "0" },
        reject: false,
      });
      // Unknown keys and unparsable values are only warnings (exit 0): any line naming the unit is a problem.
      const problems = `${r.stdout}\n${r.stderr}`.split("\n").filter((l) => l.includes("rfboot.service"));
      return { exitCode: r.exitCode, problems };
    }

    /** installedUnit is the shipped unit with ExecStart's bare `rfboot` at the installed path. */
    const installedUnit = () =>
      readFileSync(join(pkgDir, UNIT), "utf8").replace(
        /^ExecStart=rfboot /m,
        `ExecStart=${join(prefix, "bin", "rfboot")} `,
      );

    it("the unit verifies cleanly with ExecStart at the installed rfboot", async () => {
      const text = installedUnit();
      expect(text).toContain(
        `ExecStart=${join(prefix, "bin", "rfboot")} run --config /etc/rfboot/rfboot.yaml`,
      );
      const r = await verify(text);
      expect(r.problems).toEqual([]);
      expect(r.exitCode).toBe(0);
    });

    it("the check catches a missing executable, an unknown key and a bad value", async () => {
      const missing = await verify(
        installedUnit().replace(/^ExecStart=\S+/m, `ExecStart=${join(tmp, "nope")}`),
      );
      expect(missing.exitCode).not.toBe(0);
      const unknown = await verify(installedUnit().replace(/^Restart=/m, "Restrat="));
      expect(unknown.problems.join("\n")).toMatch(/Restrat/);
      const badValue = await verify(installedUnit().replace(/^ProtectSystem=full$/m, "ProtectSystem=fully"));
      expect(badValue.problems.join("\n")).toMatch(/fully/);
    });
  });
});
