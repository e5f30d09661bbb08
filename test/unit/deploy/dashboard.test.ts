/**
 * The Grafana dashboard and the Prometheus alert rules under deploy/ query only what the daemon exports:
 * every `rfboot_*` name in their PromQL is a sample of a real Metrics registry after it has been exercised
 * (counters counted, histograms observed, the state gauges fed a sample). A renamed metric fails here.
 */
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { parse } from "yaml";
import { Metrics } from "../../../src/provisioner/metrics.js";
import { REPO } from "../../helpers/env.js";

interface Panel {
  title: string;
  targets?: { expr: string }[];
}

async function exportedNames(): Promise<Set<string>> {
  const m = new Metrics();
  m.joins.inc();
  m.leaves.inc();
  m.boots.inc({ action: "started", host: "h1" });
  m.failures.inc({ step: "define", kind: "libvirt" });
  m.prewarmedVms.set({ host: "h1" }, 1);
  m.prewarms.inc({ outcome: "saved" });
  m.reactionSeconds.observe(0.004);
  m.bootSeconds.observe(0.3);
  m.readySeconds.observe(2.5);
  m.datapathsUp.set(1);
  m.observe(() => ({
    hosts: [{ name: "h1", reachable: true, vms: 1, capacityLeft: 3 }],
    counts: { leases: 1, byState: { ready: 1 } },
    store: { online: true, pending: 0 },
  }));
  const text = await m.registry.metrics();
  const names = new Set<string>();
  for (const line of text.split("\n")) {
    if (line === "" || line.startsWith("#")) continue;
    names.add(/^[a-zA-Z_:][a-zA-Z0-9_:]*/.exec(line)![0]);
  }
  return names;
}

/** metricNames lists the rfboot_* names a PromQL expression reads. */
function metricNames(expr: string): string[] {
  return [...new Set(expr.match(/\brfboot_[a-z0-9_]+/g) ?? [])];
}

const dashboard = JSON.parse(readFileSync(join(REPO, "deploy/grafana/rfboot-dashboard.json"), "utf8")) as {
  panels: Panel[];
  templating: { list: { name: string; definition?: string }[] };
};
const rules = parse(readFileSync(join(REPO, "deploy/prometheus/rfboot-alerts.yml"), "utf8")) as {
  groups: { rules: { alert: string; expr: string }[] }[];
};

describe("deploy/: dashboard and alert rules", () => {
  it("the dashboard's queries read only metrics the daemon exports", async () => {
    const names = await exportedNames();
    const exprs = dashboard.panels.flatMap((p) =>
      (p.targets ?? []).map((t) => ({ panel: p.title, expr: t.expr })),
    );
    for (const v of dashboard.templating.list)
      if (v.definition) exprs.push({ panel: `$${v.name}`, expr: v.definition });
    expect(exprs.length).toBeGreaterThan(10);
    const unknown = exprs.flatMap((e) =>
      metricNames(e.expr)
        .filter((n) => !names.has(n))
        .map((n) => `${e.panel}: ${n}`),
    );
    expect(unknown).toEqual([]);
    for (const p of dashboard.panels) expect(p.targets?.length ?? 0, p.title).toBeGreaterThan(0);
  });

  it("the alert rules read only metrics the daemon exports (and Prometheus' own `up`)", async () => {
    const names = await exportedNames();
    const all = rules.groups.flatMap((g) => g.rules);
    expect(all.length).toBeGreaterThan(5);
    const unknown = all.flatMap((r) =>
      metricNames(r.expr)
        .filter((n) => !names.has(n))
        .map((n) => `${r.alert}: ${n}`),
    );
    expect(unknown).toEqual([]);
    for (const r of all)
      expect(metricNames(r.expr).length + (/\bup\b/.test(r.expr) ? 1 : 0), r.alert).toBeGreaterThan(0);
  });

  it("an alert watches open files against their limit", () => {
    const all = rules.groups.flatMap((g) => g.rules);
    const nofile = all.filter((r) => metricNames(r.expr).includes("rfboot_open_files_limit"));
    expect(nofile.map((r) => [r.alert, r.expr])).toEqual([
      ["RfbootOpenFilesNearLimit", "rfboot_open_files / rfboot_open_files_limit > 0.8"],
    ]);
  });

  it("the host, state, lease, outbox and open-files gauges are on the dashboard", () => {
    const used = new Set(
      dashboard.panels.flatMap((p) => (p.targets ?? []).flatMap((t) => metricNames(t.expr))),
    );
    for (const n of [
      "rfboot_host_reachable",
      "rfboot_host_vms",
      "rfboot_host_capacity_left",
      "rfboot_vms",
      "rfboot_leases_held",
      "rfboot_store_pending_writes",
      "rfboot_store_oldest_pending_seconds",
      "rfboot_ready_latency_seconds_bucket",
      "rfboot_open_files",
      "rfboot_open_files_limit",
    ])
      expect(used, n).toContain(n);
  });
});
