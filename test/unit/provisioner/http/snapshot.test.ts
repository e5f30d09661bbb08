/**
 * The live page's snapshot, readiness and rendering, from fake inputs: datapath lines (configured, seen,
 * recorded), host capacity, readiness reasons, and escaping of everything that comes from outside.
 */
import { describe, expect, it } from "vitest";
import { buildSnapshot, readiness, type SnapshotInput } from "../../../../src/provisioner/http/snapshot.js";
import { page, sections, topology } from "../../../../src/provisioner/http/render.js";
import type { DatapathStatus } from "../../../../src/provisioner/datapath.js";
import type { VmRecord } from "../../../../src/provisioner/store/index.js";

const NOW = new Date("2026-01-01T12:00:00Z");
const ago = (s: number) => new Date(NOW.getTime() - s * 1000);
const A = "00000000000000a1";
const B = "00000000000000b2";
const C = "00000000000000c3";

const dp = (dpidHex: string, o: Partial<DatapathStatus> = {}): DatapathStatus => ({
  dpidHex,
  connected: true,
  dataPorts: [{ dpPort: 1, vmPort: 1 }],
  joinPorts: [1],
  attempts: 0,
  leased: true,
  leavePending: false,
  retryWaiting: false,
  ...o,
});

const rec = (dpidHex: string, o: Partial<VmRecord> = {}): VmRecord => ({
  _id: dpidHex,
  dpidHex,
  dpid: BigInt(`0x${dpidHex}`).toString(10),
  state: "ready",
  updatedAt: ago(30),
  ...o,
});

function input(o: Partial<SnapshotInput> = {}): SnapshotInput {
  return {
    instance: "lab:1",
    controller: { host: "127.0.0.1", port: 6653, mode: "listen" },
    configured: [
      { dpidHex: A, name: "rfvmA" },
      { dpidHex: B, name: "rfvmB" },
    ],
    datapaths: [dp(A, { vm: "rfvmA", host: "h1" }), dp(C, { leased: false, vm: undefined, dataPorts: [] })],
    records: [
      rec(A, {
        vmName: "rfvmA",
        host: "h1",
        switch: { peer: "10.0.0.1:40000", version: 4, connected: true },
        readyAt: ago(20),
      }),
      rec(B, {
        vmName: "rfvmB",
        host: "h2",
        state: "failed",
        switch: { peer: "10.0.0.2:40000", version: 4, connected: false },
        lastError: { kind: "define", message: "<bad> & worse", at: ago(5) },
      }),
    ],
    rfconfig: [
      { id: "rfboot:12/2", vm_id: "12", vm_port: "2", ct_id: "0", dp_id: "161", dp_port: "2" },
      { id: "rfboot:12/1", vm_id: "12", vm_port: "1", ct_id: "0", dp_id: "161", dp_port: "1" },
    ],
    hosts: [
      {
        name: "h1",
        uri: "test:///h1",
        maxVms: 2,
        probe: { reachable: true, latencyMs: 3.4, running: 1, memoryInUseMiB: 64, probedAt: ago(2) },
      },
      { name: "h2", uri: "test:///h2", maxVms: 4 },
    ],
    events: [{ id: "e1", at: ago(1), dpid: A, vm: "rfvmA", kind: "ready", detail: "console <marker>" }],
    store: { online: true, pending: 0, droppedEvents: 0 },
    ...o,
  };
}

describe("buildSnapshot", () => {
  it("lists the configured datapaths first, then the others; the daemon's view wins over the record", () => {
    const s = buildSnapshot(input(), NOW);
    expect(s.datapaths.map((d) => [d.dpid, d.switch, d.vm, d.host, d.state, d.ready])).toEqual([
      [A, "connected", "rfvmA", "h1", "ready", "ready"],
      [B, "disconnected", "rfvmB", "h2", "failed", "no"],
      [C, "connected", undefined, undefined, "joined", "no"],
    ]);
    expect(s.datapaths[1]!.lastError).toBe("define: <bad> & worse");
    expect(s.datapaths[0]!.since).toBe(ago(30).toISOString());
    expect(s.counts).toEqual({ connected: 2, leases: 1, byState: { ready: 1, failed: 1 } });
  });

  it("counts rfboot's VMs per host and the capacity left; a host never probed has no reachability", () => {
    const s = buildSnapshot(input(), NOW);
    expect(s.hosts.map((h) => [h.name, h.reachable, h.vms, h.capacityLeft, h.latencyMs])).toEqual([
      ["h1", true, 1, 1, 3],
      ["h2", undefined, 1, 3, undefined],
    ]);
  });

  it("sorts rfboot's rfconfig rows by _id and reports the outbox's oldest write as an age", () => {
    const s = buildSnapshot(
      input({ store: { online: false, pending: 7, droppedEvents: 0, oldestPendingAt: ago(42) } }),
      NOW,
    );
    expect(s.rfconfig.map((r) => r.id)).toEqual(["rfboot:12/1", "rfboot:12/2"]);
    expect(s.store).toEqual({ online: false, pending: 7, droppedEvents: 0, oldestPendingAgeSeconds: 42 });
  });
});

describe("readiness", () => {
  it("is ready with a listening controller, a reachable store and every host probed", () => {
    const hosts = input().hosts.map((h) => ({ ...h, probe: input().hosts[0]!.probe }));
    expect(readiness(buildSnapshot(input({ hosts }), NOW))).toEqual({ ready: true, reasons: [], notes: [] });
  });

  it("gives each reason: controller not listening, hosts not probed, MongoDB away beyond its bounds", () => {
    const r = readiness(
      buildSnapshot(
        input({ controller: undefined, store: { online: false, pending: 3, droppedEvents: 2 } }),
        NOW,
      ),
    );
    expect(r.ready).toBe(false);
    expect(r.reasons).toEqual([
      "the OpenFlow controller is not listening yet",
      "MongoDB unreachable and 2 buffered events dropped",
      "libvirt hosts not probed yet: h2",
    ]);
    const old = readiness(
      buildSnapshot(
        input({ store: { online: false, pending: 3, droppedEvents: 0, oldestPendingAt: ago(700) } }),
        NOW,
      ),
    );
    expect(old.reasons[0]).toBe("MongoDB unreachable; oldest buffered write 700s old (bound 600s)");
  });

  it("buffering within bounds and an unreachable host are notes, not reasons", () => {
    const hosts = [
      { ...input().hosts[0]!, probe: { ...input().hosts[0]!.probe!, reachable: false, error: "gone" } },
    ];
    const r = readiness(
      buildSnapshot(
        input({ hosts, store: { online: false, pending: 3, droppedEvents: 0, oldestPendingAt: ago(5) } }),
        NOW,
      ),
    );
    expect(r).toEqual({
      ready: true,
      reasons: [],
      notes: ["MongoDB unreachable: 3 writes buffered", "libvirt host h1 unreachable"],
    });
  });
});

describe("rendering", () => {
  it("escapes what comes from outside and shows every section", () => {
    const s = buildSnapshot(input(), NOW);
    const html = page(s, readiness(s));
    expect(html).toContain("define: &lt;bad&gt; &amp; worse");
    expect(html).toContain("console &lt;marker&gt;");
    expect(html).not.toContain("<bad>");
    for (const id of ["topology", "datapaths", "rfconfig", "hosts", "events"])
      expect(html).toContain(`id="${id}"`);
    expect(html).toContain("rfboot:12/1");
    // Self-contained: nothing is loaded from elsewhere.
    expect(html).not.toMatch(/(src|href)="?https?:/);
  });

  it("draws switches -> VMs -> hosts and dp0; a disconnected switch is drawn dashed", () => {
    const svg = topology(buildSnapshot(input(), NOW));
    expect(svg.startsWith("<svg")).toBe(true);
    expect(svg).toContain(`<g class="node switch up" data-dpid="${A}">`);
    expect(svg).toContain(`<g class="node switch down" data-dpid="${B}">`);
    expect(svg).toContain("dp0");
    expect((svg.match(/class="edge placed"/g) ?? []).length).toBe(2);
    expect(sections(buildSnapshot(input(), NOW), { ready: false, reasons: ["x < y"], notes: [] })).toContain(
      "x &lt; y",
    );
  });
});

describe("prewarm on the page", () => {
  const prewarmed = (host: string, mib: number, dpidHex: string, name: string) =>
    rec(dpidHex, {
      vmName: name,
      host,
      state: "prewarmed",
      prewarm: { at: ago(600), host, fingerprint: "f1", imageMiB: mib },
    });
  const withImages = () =>
    input({
      configured: [
        { dpidHex: A, name: "rfvmA" },
        { dpidHex: B, name: "rfvmB" },
        { dpidHex: C, name: "rfvmC" },
      ],
      // The daemon knows B (it prewarmed it) although its switch never connected.
      datapaths: [
        dp(A, { vm: "rfvmA", host: "h1" }),
        dp(B, { connected: false, leased: true, joinPorts: [] }),
      ],
      records: [
        rec(A, { vmName: "rfvmA", host: "h1", prewarm: null }),
        prewarmed("h2", 128, B, "rfvmB"),
        prewarmed("h2", 256, C, "rfvm<C>"),
      ],
    });

  it("a prewarmed VM's line carries its image; each host counts its images and their size", () => {
    const s = buildSnapshot(withImages(), NOW);
    expect(s.datapaths.map((d) => [d.dpid, d.switch, d.state, d.ready, d.prewarm])).toEqual([
      [A, "connected", "ready", "ready", undefined],
      [B, "never", "prewarmed", "no", { at: ago(600).toISOString(), host: "h2", imageMiB: 128 }],
      [C, "never", "prewarmed", "no", { at: ago(600).toISOString(), host: "h2", imageMiB: 256 }],
    ]);
    // Once its switch has been seen (and left), it is disconnected, image or not.
    const seen = withImages();
    const left = buildSnapshot(
      {
        ...seen,
        records: seen.records.map((r) =>
          r.dpidHex === B ? { ...r, switch: { peer: "10.0.0.2:1", version: 4, connected: false } } : r,
        ),
      },
      NOW,
    );
    expect(left.datapaths[1]!.switch).toBe("disconnected");
    expect(s.hosts.map((h) => [h.name, h.prewarmed, h.prewarmImagesMiB])).toEqual([
      ["h1", 0, 0],
      ["h2", 2, 384],
    ]);
    expect(s.counts.byState).toEqual({ ready: 1, prewarmed: 2 });
  });

  it("the page shows the state as prewarmed with the image's age, and the images per host", () => {
    const s = buildSnapshot(withImages(), NOW);
    const html = sections(s, readiness(s));
    const row = (dpid: string) => html.split("<tr>").find((r) => r.includes(`<code>${dpid}</code>`))!;
    expect(row(B)).toContain(
      `<span class="st prewarmed">prewarmed</span> <small class="prewarm">image ` +
        `<time data-since="${ago(600).toISOString()}" datetime="${ago(600).toISOString()}">` +
        `${ago(600).toISOString()}</time> old on h2, 128 MiB</small>`,
    );
    expect(row(A)).not.toContain("prewarm");
    expect(html).toContain(`2 / 4 <small class="prewarm">2 prewarmed, 384 MiB</small>`);
    expect(html).toContain("rfvm&lt;C&gt; (prewarmed)");
    expect(topology(s)).toContain(`<g class="node vm prewarmed">`);
  });

  it("a VM booting for prewarm: its switch never seen, its line says it boots for prewarm", () => {
    const at = ago(8).toISOString();
    const base = withImages();
    const booting = {
      ...base,
      records: [
        ...base.records.filter((r) => r.dpidHex !== C),
        rec(C, {
          vmName: "rfvmC",
          host: "h1",
          state: "running",
          prewarming: { since: ago(8), host: "h1" },
        }),
      ],
      datapaths: [...base.datapaths, dp(C, { connected: false, leased: true, joinPorts: [] })],
    };
    const s = buildSnapshot(booting, NOW);
    const c = s.datapaths.find((d) => d.dpid === C)!;
    expect([c.switch, c.state, c.ready, c.prewarming, c.prewarm]).toEqual([
      "never",
      "running",
      "no",
      { since: at, host: "h1" },
      undefined,
    ]);
    expect(s.datapaths.find((d) => d.dpid === A)!.prewarming).toBeUndefined();
    const html = sections(s, readiness(s));
    const row = html.split("<tr>").find((r) => r.includes(`<code>${C}</code>`))!;
    expect(row).toContain(
      `<span class="st running">running</span> <small class="prewarm">booting for prewarm on h1 for ` +
        `<time data-since="${at}" datetime="${at}">${at}</time></small>`,
    );
  });
});
