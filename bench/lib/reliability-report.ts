/** Rendering of the reliability report: one row per scenario (text table for the terminal, Markdown file). */
import type { ScenarioResult } from "../../test/reliability/lib/util.js";

/** ReliabilityReport is what bench/out/reliability.json holds. */
export interface ReliabilityReport {
  generatedAt: string;
  node: string;
  quick: boolean;
  passed: number;
  failed: number;
  scenarios: (ScenarioResult & { result: "pass" | "fail"; error?: string })[];
}

function figuresText(f: Record<string, number | string>): string {
  return Object.entries(f)
    .map(([k, v]) => `${k}=${v}`)
    .join(" ");
}

/** textTable renders the report as fixed-width columns (scenario, result, checks, duration, key figures). */
export function textTable(r: ReliabilityReport): string {
  const rows = [["SCENARIO", "RESULT", "CHECKS", "TIME", "KEY FIGURES"]];
  for (const s of r.scenarios) {
    const ok = s.checks.filter((c) => c.ok).length;
    rows.push([
      s.id,
      s.result.toUpperCase(),
      `${ok}/${s.checks.length}`,
      `${(s.durationMs / 1000).toFixed(1)} s`,
      figuresText(s.figures),
    ]);
  }
  const w = rows[0]!.map((_, i) => Math.max(...rows.map((x) => x[i]!.length)));
  return rows.map((x) => x.map((c, i) => (i === x.length - 1 ? c : c.padEnd(w[i]!))).join("  ")).join("\n");
}

const esc = (s: string) => s.replace(/\|/g, "\\|").replace(/\n/g, " ");

/** markdown renders the report: a summary table, then each scenario's injection and checks. */
export function markdown(r: ReliabilityReport): string {
  const out = [
    `# rfboot reliability report`,
    "",
    `${r.generatedAt}, Node ${r.node}${r.quick ? ", quick mode (short outages)" : ""}: ${r.passed} passed, ${r.failed} failed.`,
    "",
    "| Scenario | Injected | Checked | Result | Key figures |",
    "| --- | --- | --- | --- | --- |",
  ];
  for (const s of r.scenarios) {
    const ok = s.checks.filter((c) => c.ok).length;
    out.push(
      `| ${esc(s.title)} | ${esc(s.injected)} | ${ok}/${s.checks.length} checks | ${s.result} | ${esc(figuresText(s.figures))} |`,
    );
  }
  for (const s of r.scenarios) {
    out.push("", `## ${s.id}: ${s.title}`, "", `Injected: ${s.injected}.`, "");
    if (s.error) out.push(`Error: ${esc(s.error)}`, "");
    for (const c of s.checks) out.push(`- ${c.ok ? "[x]" : "[ ] FAILED:"} ${esc(c.what)} (${esc(c.detail)})`);
  }
  return out.join("\n") + "\n";
}
