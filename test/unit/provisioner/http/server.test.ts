/**
 * The HTTP listener over a real socket (port 0) with a fake state source: routes, the token (header and
 * query; /healthz free), read-only methods, /readyz's 503 with reasons, pushed updates on /events when the
 * state changes, the state gauges on /metrics, and the bind check.
 */
import { request } from "node:http";
import { afterEach, describe, expect, it } from "vitest";
import { Metrics } from "../../../../src/provisioner/metrics.js";
import { checkBind, isLoopback, LiveServer, LiveState } from "../../../../src/provisioner/http/server.js";
import type { SnapshotInput } from "../../../../src/provisioner/http/snapshot.js";

const A = "00000000000000a1";
const T = new Date("2026-01-01T00:00:00Z");

function fakeInput(connected: boolean, probed = true): SnapshotInput {
  return {
    instance: "t:1",
    controller: { host: "127.0.0.1", port: 6653, mode: "listen" },
    configured: [{ dpidHex: A, name: "rfvmA" }],
    datapaths: [
      {
        dpidHex: A,
        connected,
        vm: "rfvmA",
        host: "h1",
        dataPorts: [],
        joinPorts: [],
        attempts: 0,
        leased: connected,
        leavePending: false,
        retryWaiting: false,
      },
    ],
    records: [
      {
        _id: A,
        dpidHex: A,
        dpid: "161",
        state: "ready",
        host: "h1",
        vmName: "rfvmA",
        switch: { connected, peer: "127.0.0.1:40001", version: 4 },
        updatedAt: T,
      },
    ],
    rfconfig: [],
    hosts: [
      {
        name: "h1",
        uri: "test:///h1",
        maxVms: 3,
        ...(probed
          ? { probe: { reachable: true, latencyMs: 1, running: 1, memoryInUseMiB: 0, probedAt: T } }
          : {}),
      },
    ],
    events: [],
    store: { online: true, pending: 2, droppedEvents: 0 },
  };
}

function get(port: number, path: string, headers: Record<string, string> = {}, method = "GET") {
  return new Promise<{ status: number; body: string; type: string }>((resolve, reject) => {
    const req = request({ host: "127.0.0.1", port, path, headers, method }, (res) => {
      let body = "";
      res.on("data", (d: Buffer) => (body += d.toString()));
      res.on("end", () =>
        resolve({ status: res.statusCode ?? 0, body, type: String(res.headers["content-type"]) }),
      );
    });
    req.on("error", reject);
    req.end();
  });
}

let server: LiveServer | undefined;
afterEach(async () => {
  await server?.close();
  server = undefined;
});

async function start(o: { token?: string; probed?: boolean } = {}) {
  let connected = true;
  const state = new LiveState({ gather: async () => fakeInput(connected, o.probed ?? true) });
  server = new LiveServer({
    host: "127.0.0.1",
    port: 0,
    state,
    metrics: new Metrics({ defaultMetrics: false }),
    ...(o.token ? { token: o.token } : {}),
    pollMs: 60_000,
  });
  const { port } = await server.start();
  return { port, state, leave: () => (connected = false) };
}

describe("LiveServer", () => {
  it("serves the page, the snapshot, health and metrics with the state gauges", async () => {
    const { port } = await start();
    const root = await get(port, "/");
    expect(root.status).toBe(200);
    expect(root.type).toContain("text/html");
    expect(root.body).toContain(A);
    const api = JSON.parse((await get(port, "/api/state")).body) as {
      datapaths: { dpid: string; switch: string }[];
      readiness: { ready: boolean };
    };
    expect(api.datapaths[0]).toMatchObject({ dpid: A, switch: "connected" });
    expect(api.readiness.ready).toBe(true);
    expect(await get(port, "/healthz")).toMatchObject({ status: 200, body: "ok\n" });
    expect((await get(port, "/readyz")).status).toBe(200);
    const m = (await get(port, "/metrics")).body;
    expect(m).toContain('rfboot_host_reachable{host="h1"} 1');
    expect(m).toContain('rfboot_host_capacity_left{host="h1"} 2');
    expect(m).toContain('rfboot_vms{state="ready"} 1');
    expect(m).toContain("rfboot_leases_held 1");
    expect(m).toContain("rfboot_store_pending_writes 2");
    expect((await get(port, "/nope")).status).toBe(404);
    expect((await get(port, "/", {}, "POST")).status).toBe(405);
  });

  it("answers /readyz 503 with the reasons as JSON", async () => {
    const { port } = await start({ probed: false });
    const r = await get(port, "/readyz");
    expect(r.status).toBe(503);
    expect(JSON.parse(r.body)).toEqual({
      ready: false,
      reasons: ["libvirt hosts not probed yet: h1"],
      notes: [],
    });
  });

  it("needs the token on every path but /healthz, as a bearer header or ?token=", async () => {
    const { port } = await start({ token: "s3cret" });
    expect((await get(port, "/healthz")).status).toBe(200);
    for (const p of ["/", "/api/state", "/metrics", "/readyz", "/events"])
      expect((await get(port, p)).status).toBe(401);
    expect((await get(port, "/", { authorization: "Bearer wrong" })).status).toBe(401);
    expect((await get(port, "/api/state", { authorization: "Bearer s3cret" })).status).toBe(200);
    expect((await get(port, "/metrics?token=s3cret")).status).toBe(200);
    // The page's EventSource passes the token it was opened with.
    expect((await get(port, "/events?token=s3cret", {}, "HEAD")).status).toBe(200);
  });

  it("pushes the sections on /events when the state changes, not when it does not", async () => {
    const { port, state, leave } = await start();
    const messages: string[] = [];
    const req = request({ host: "127.0.0.1", port, path: "/events" });
    const first = new Promise<void>((resolve) => {
      req.on("response", (res) => {
        expect(res.headers["content-type"]).toBe("text/event-stream");
        let buf = "";
        res.on("data", (d: Buffer) => {
          buf += d.toString();
          const blocks = buf.split("\n\n");
          buf = blocks.pop()!;
          for (const b of blocks) if (b.startsWith("data: ")) messages.push(b.slice(6));
          if (messages.length >= 1) resolve();
        });
      });
    });
    req.end();
    await first;
    await state.refresh();
    await state.refresh();
    expect(messages).toHaveLength(1);
    leave();
    await state.refresh();
    await new Promise((r) => setTimeout(r, 50));
    expect(messages).toHaveLength(2);
    const html = (JSON.parse(messages[1]!) as { html: string }).html;
    expect(html).toContain(`<span class="sw disconnected">disconnected</span>`);
    req.destroy();
  });
});

describe("checkBind", () => {
  it("allows loopback, or a token, or an explicit --http-insecure; refuses the rest", () => {
    for (const h of ["127.0.0.1", "127.1.2.3", "::1", "[::1]", "localhost"]) expect(isLoopback(h)).toBe(true);
    for (const h of ["0.0.0.0", "::", "10.0.0.1"]) expect(isLoopback(h)).toBe(false);
    expect(() => checkBind("127.0.0.1", undefined, false)).not.toThrow();
    expect(() => checkBind("0.0.0.0", "t", false)).not.toThrow();
    expect(() => checkBind("0.0.0.0", undefined, true)).not.toThrow();
    expect(() => checkBind("0.0.0.0", undefined, false)).toThrow(
      /refusing to serve a non-loopback address without a token/,
    );
  });
});
