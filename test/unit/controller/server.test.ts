/** Listen mode over real sockets on port 0, against scripted fake switches. */
import { afterEach, describe, expect, it } from "vitest";
import {
  createController,
  eventToJson,
  type Controller,
  type ControllerEvent,
} from "../../../src/controller/index.js";
import { Peer, collect, until } from "./fake-peers.js";

const opened: Controller[] = [];
const peers: Peer[] = [];

async function start(over: Partial<Parameters<typeof createController>[0]> = {}) {
  const c = createController({ listen: { host: "127.0.0.1", port: 0 }, mode: "listen", ...over });
  opened.push(c);
  const events = collect<ControllerEvent>(c);
  const addr = await c.start();
  return { c, events, port: addr.port };
}

async function sw(port: number): Promise<Peer> {
  const p = await Peer.connect(port);
  peers.push(p);
  return p;
}

afterEach(async () => {
  for (const p of peers.splice(0)) p.destroy();
  for (const c of opened.splice(0)) await c.close();
});

const PORTS = [
  { no: 1, name: "p1", mac: "aa:bb:cc:dd:ee:01" },
  { no: 2, name: "p2", mac: "aa:bb:cc:dd:ee:02" },
];

describe("listen mode over sockets", () => {
  it("reports up with dpid, version, ports and the switch's address; down on close", async () => {
    const { c, events, port } = await start({ versions: [1, 4] });
    const s = await sw(port);
    s.actAsSwitch({ dpid: 0xfedcba9876543210n, versions: [1, 4], ports: PORTS, splitPortDesc: true });
    await until(() => events.length === 1, 3000, "up");
    const up = events[0]!;
    expect(eventToJson(up)).toEqual({
      event: "up",
      dpid: "fedcba9876543210",
      version: "1.3",
      peer: `127.0.0.1:${s.socket.localPort}`,
      ports: PORTS,
    });
    expect(c.datapaths().map((d) => d.dpid)).toEqual([0xfedcba9876543210n]);
    s.close();
    await until(() => events.length === 2, 3000, "down");
    expect(eventToJson(events[1]!)).toMatchObject({ event: "down", dpid: "fedcba9876543210" });
    expect(c.datapaths()).toEqual([]);
  });

  it("OpenFlow 1.0 switch with the slave role requested via Nicira", async () => {
    const { events, port } = await start({ role: "slave" });
    const s = await sw(port);
    s.actAsSwitch({ dpid: 5n, versions: [1], ports: PORTS });
    await until(() => events.length === 1);
    expect(events[0]).toMatchObject({ type: "up", version: "1.0", dpid: 5n });
    const role = await s.next("nx_role_request");
    expect(role.role).toBe(2);
  });

  it("duplicate dpid: the newest connection wins, the old one is closed, no down is reported", async () => {
    const { c, events, port } = await start();
    const a = await sw(port);
    a.actAsSwitch({ dpid: 42n, versions: [4], ports: PORTS });
    await until(() => events.length === 1);
    const b = await sw(port);
    b.actAsSwitch({ dpid: 42n, versions: [4], ports: PORTS.slice(0, 1) });
    await a.closed;
    await until(() => events.length === 2);
    expect(events.map((e) => e.type)).toEqual(["up", "up"]);
    expect(events[1]).toMatchObject({ peer: `127.0.0.1:${b.socket.localPort}` });
    expect(c.datapaths()).toHaveLength(1);
    expect(c.datapaths()[0]!.peer).toBe(`127.0.0.1:${b.socket.localPort}`);
    await new Promise((r) => setTimeout(r, 100));
    expect(events.map((e) => e.type)).toEqual(["up", "up"]);
    expect(b.isClosed).toBe(false);
  });

  it("a malformed frame closes only that connection", async () => {
    const { events, port } = await start();
    const good = await sw(port);
    good.actAsSwitch({ dpid: 1n, versions: [4], ports: PORTS });
    await until(() => events.length === 1);
    const bad = await sw(port);
    bad.send(Buffer.from([4, 0, 0, 2, 0, 0, 0, 0])); // length 2 < 8
    await bad.closed;
    const bad2 = await sw(port);
    // a HELLO, then a FEATURES_REPLY cut short inside its fixed part (length 12)
    bad2.send(Buffer.from([4, 0, 0, 8, 0, 0, 0, 1, 4, 6, 0, 12, 0, 0, 0, 2, 0, 0, 0, 0]));
    const t0 = Date.now();
    await bad2.closed;
    expect(Date.now() - t0).toBeLessThan(2000); // closed for the bad frame, not by a timeout
    // the good switch still answers and nothing else was reported
    good.send({ type: "echo_request", version: 4, xid: 1234, data: Uint8Array.of(9) });
    const reply = await good.next("echo_reply");
    expect(reply.xid).toBe(1234);
    expect(events.map((e) => e.type)).toEqual(["up"]);
  });

  it("an auxiliary connection is not a new switch", async () => {
    const { c, events, port } = await start();
    const main = await sw(port);
    main.actAsSwitch({ dpid: 8n, versions: [4], ports: PORTS });
    await until(() => events.length === 1);
    const aux = await sw(port);
    aux.actAsSwitch({ dpid: 8n, versions: [4], ports: PORTS, auxiliaryId: 1 });
    await aux.next("features_request");
    await new Promise((r) => setTimeout(r, 100));
    aux.close();
    await aux.closed;
    await new Promise((r) => setTimeout(r, 50));
    expect(events.map((e) => e.type)).toEqual(["up"]);
    expect(c.datapaths()).toHaveLength(1);
  });

  it("answers a version mismatch with HELLO_FAILED and closes", async () => {
    const { events, port } = await start({ versions: [4] });
    const s = await sw(port);
    s.actAsSwitch({ dpid: 1n, versions: [1], ports: [] });
    const err = await s.next("error");
    expect(err).toMatchObject({ errType: 0, code: 0 });
    await s.closed;
    expect(events).toEqual([]);
  });

  it("probes an idle switch and reports down after the echo timeout", async () => {
    const { events, port } = await start({ echoIntervalMs: 100, echoTimeoutMs: 150 });
    const s = await sw(port);
    s.actAsSwitch({ dpid: 3n, versions: [4], ports: [] });
    await until(() => events.length === 1);
    // still alive after several intervals while it answers
    await new Promise((r) => setTimeout(r, 400));
    expect(events).toHaveLength(1);
    s.stopAnswering();
    await until(() => events.length === 2, 2000, "down");
    expect(events[1]).toMatchObject({
      type: "down",
      dpid: 3n,
      reason: expect.stringMatching(/echo timeout/),
    });
    await s.closed;
  });

  it("reports PORT_STATUS as port events", async () => {
    const { events, port } = await start();
    const s = await sw(port);
    s.actAsSwitch({ dpid: 3n, versions: [1], ports: [] });
    await until(() => events.length === 1);
    s.send({
      type: "port_status",
      version: 1,
      xid: 0,
      reason: 0,
      port: {
        portNo: 3,
        hwAddr: "00:11:22:33:44:55",
        name: "eth3",
        config: 0,
        state: 0,
        curr: 0,
        advertised: 0,
        supported: 0,
        peer: 0,
      },
    });
    await until(() => events.length === 2);
    expect(eventToJson(events[1]!)).toEqual({
      event: "port",
      dpid: "0000000000000003",
      reason: "add",
      port: { no: 3, name: "eth3", mac: "00:11:22:33:44:55" },
    });
  });

  it("handles 200 switches connecting at once", async () => {
    const { c, events, port } = await start();
    const ps = await Promise.all(Array.from({ length: 200 }, () => sw(port)));
    ps.forEach((p, i) => p.actAsSwitch({ dpid: BigInt(i + 1), versions: [1, 4], ports: PORTS }));
    await until(() => events.length === 200, 10_000, "200 up");
    expect(new Set(c.datapaths().map((d) => d.dpid)).size).toBe(200);
  });
});
