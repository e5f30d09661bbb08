/** The Prometheus alert rules under deploy/ pass `promtool check rules` and their own `promtool test rules`. */
import { join } from "node:path";
import { execa } from "execa";
import { expect, it } from "vitest";
import { REPO, describeWith } from "../helpers/env.js";

const DIR = join(REPO, "deploy", "prometheus");

describeWith(["promtool"], "deploy/prometheus with promtool", () => {
  it("check rules: the rules parse and their templates are valid", async () => {
    const r = await execa("promtool", ["check", "rules", "rfboot-alerts.yml"], { cwd: DIR, reject: false });
    expect(r.exitCode, r.stdout + r.stderr).toBe(0);
    expect(r.stdout).toMatch(/SUCCESS: \d+ rules found/);
  });

  it("test rules: an unreachable host, and open files near their limit, alert after their `for`, not before", async () => {
    const r = await execa("promtool", ["test", "rules", "rfboot-alerts.test.yml"], {
      cwd: DIR,
      reject: false,
    });
    expect(r.exitCode, r.stdout + r.stderr).toBe(0);
  });
});
