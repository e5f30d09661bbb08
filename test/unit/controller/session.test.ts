import { describe, expect, it } from "vitest";
import fc from "fast-check";
import {
  READ_ONLY_TYPES,
  RELAY_XID_BASE,
  Session,
  assertReadOnly,
  type SessionOptions,
  type Step,
} from "../../../src/controller/session.js";
import { negotiate } from "../../../src/controller/session-negotiate.js";
import {
  buildHello,
  decodeMessage,
  encodeMessage,
  type Hello,
  type OfMessage,
  type Port,
} from "../../../src/controller/codec/index.js";

const T = { echoIntervalMs: 5000, echoTimeoutMs: 3000, handshakeTimeoutMs: 10000 };

function opts(over: Partial<SessionOptions> = {}): SessionOptions {
  return {
    mode: "controller",
    versions: [1, 2, 3, 4, 5, 6],
    role: "none",
    ...T,
    upstreamConnectTimeoutMs: 300,
    upstreamHelloTimeoutMs: 1000,
    injectAfterMs: 1000,
    peer: "10.0.0.1:40000",
    ...over,
  };
}

/** hello builds a switch HELLO: `bitmap` undefined = bare header. */
function hello(version: number, bitmap?: number[], xid = 99): Hello {
  if (bitmap === undefined) return { type: "hello", version, xid, elements: [] };
  const h = buildHello(bitmap, xid);
  return { ...h, version };
}

function port(no: number, name: string, version: number): Port {
  const base: Port = {
    portNo: no,
    hwAddr: `aa:bb:cc:00:00:${(no & 0xff).toString(16).padStart(2, "0")}`,
    name,
    config: 0,
    state: 0,
    curr: 0,
    advertised: 0,
    supported: 0,
    peer: 0,
  };
  if (version >= 2) Object.assign(base, { currSpeed: 0, maxSpeed: 0 });
  if (version >= 5) {
    Object.assign(base, {
      properties: [
        { type: "ethernet", curr: 0, advertised: 0, supported: 0, peer: 0, currSpeed: 0, maxSpeed: 0 },
      ],
    });
  }
  return base;
}

function features(version: number, xid: number, dpid: bigint, ports: Port[], aux = 0): OfMessage {
  const m: OfMessage = {
    type: "features_reply",
    version,
    xid,
    datapathId: dpid,
    nBuffers: 256,
    nTables: 254,
    capabilities: 0xc7,
    ...(version === 1 ? { actions: 0xfff } : { reserved: 0 }),
    ...(version <= 3 ? { ports } : {}),
    ...(version >= 4 ? { auxiliaryId: aux } : {}),
  };
  return m;
}

function portDesc(version: number, xid: number, ports: Port[], more = false): OfMessage {
  return { type: "port_desc_reply", version, xid, flags: more ? 1 : 0, ports };
}

/** wire round-trips a message through the real codec, so every test input and output is encodable. */
function wire(m: OfMessage): OfMessage {
  return decodeMessage(encodeMessage(m));
}

function sent(step: Step, type: OfMessage["type"]): OfMessage[] {
  return step.send.filter((m) => m.type === type);
}

function find<T extends OfMessage["type"]>(step: Step, type: T): Extract<OfMessage, { type: T }> {
  const m = step.send.find((x) => x.type === type);
  if (!m) throw new Error(`no ${type} in ${step.send.map((x) => x.type).join(",")}`);
  return m as Extract<OfMessage, { type: T }>;
}

/** handshake drives a controller-mode session to `up`; returns the session and every step. */
function handshake(version: number, dpid: bigint, o: Partial<SessionOptions> = {}) {
  const s = new Session(opts(o), 0);
  const start = s.start(0);
  const h = s.fromSwitch(wire(hello(version, version >= 4 ? [1, version] : undefined)), 1);
  const fr = find(h, "features_request");
  const ports = [port(1, "p1", version), port(2, "p2", version), port(0xfffe, "br0", version)];
  let up = s.fromSwitch(wire(features(version, fr.xid, dpid, ports)), 2);
  if (version >= 4) {
    expect(up.events).toEqual([]);
    const pd = find(h, "port_desc_request");
    up = s.fromSwitch(wire(portDesc(version, pd.xid, ports)), 3);
  }
  return { s, start, h, up };
}

describe("version negotiation (OpenFlow 1.3.5 §6.3.1)", () => {
  // [we offer, switch header version, switch bitmap (undefined = none), expected version or "fail"]
  const table: [number[], number, number[] | undefined, number | "fail"][] = [
    [[1, 4], 4, [1, 4], 4],
    [[1, 4], 3, [1, 2, 3], 1],
    [[1, 4], 6, [1, 4, 5, 6], 4],
    [[1, 2, 3, 4, 5, 6], 6, [1, 4, 5, 6], 6],
    [[1, 4], 1, undefined, 1],
    [[1, 4], 6, undefined, 4],
    [[1, 4], 2, undefined, "fail"],
    [[4], 1, undefined, "fail"],
    [[1, 4], 6, [5, 6], "fail"],
    [[1], 4, [1, 4], 1], // we send no bitmap: the lower header version
    [[4, 6], 5, [1, 4, 5], 4],
    [[1, 4], 4, [1, 4, 7, 31, 33, 70], 4], // unknown bits tolerated
  ];
  it.each(table)("offer %j, switch v%i bitmap %j -> %s", (ours, theirV, theirBitmap, expected) => {
    const r = negotiate(buildHello(ours, 1), hello(theirV, theirBitmap), ours);
    if (expected === "fail") {
      expect(r.ok).toBe(false);
    } else {
      expect(r).toEqual({ ok: true, version: expected });
    }
  });

  it("answers a mismatch with ERROR HELLO_FAILED/INCOMPATIBLE, then closes", () => {
    const s = new Session(opts({ versions: [4] }), 0);
    const start = s.start(0);
    expect(start.send).toHaveLength(1);
    const h0 = wire(start.send[0]!) as Hello;
    expect(h0.version).toBe(4);
    const step = s.fromSwitch(wire(hello(1)), 5);
    expect(step.send).toHaveLength(1);
    const err = wire(step.send[0]!);
    expect(err).toMatchObject({ type: "error", errType: 0, code: 0, version: 1, xid: 99 });
    expect(new TextDecoder().decode((err as { data: Uint8Array }).data)).toMatch(/not offered/);
    expect(step.close).toMatch(/version negotiation failed/);
    expect(step.events).toEqual([]);
    expect(s.deadline()).toBeUndefined();
  });

  it("sends HELLO with the highest offered version and a bitmap of all", () => {
    const s = new Session(opts({ versions: [1, 4] }), 0);
    const h = wire(s.start(0).send[0]!) as Hello;
    expect(h.version).toBe(4);
    expect(h.elements).toEqual([{ type: "versionbitmap", bitmaps: [0b10010] }]);
  });
});

describe("handshake per version", () => {
  it.each([1, 2, 3, 4, 5, 6])("OpenFlow wire version %i reaches up with dpid, version and ports", (v) => {
    const dpid = 0xfedcba9876543210n;
    const { h, up } = handshake(v, dpid);
    expect(sent(h, "features_request")).toHaveLength(1);
    expect(sent(h, "port_desc_request")).toHaveLength(v >= 4 ? 1 : 0);
    for (const m of h.send) expect(m.version).toBe(v);
    expect(up.events).toHaveLength(1);
    const ev = up.events[0]!;
    expect(ev.type).toBe("up");
    if (ev.type !== "up") return;
    expect(ev.datapath.dpid).toBe(dpid);
    expect(ev.datapath.version).toBe(["1.0", "1.1", "1.2", "1.3", "1.4", "1.5"][v - 1]);
    expect(ev.datapath.peer).toBe("10.0.0.1:40000");
    expect(ev.datapath.auxiliaryId).toBe(0);
    expect(ev.datapath.ports.map((p) => [p.no, p.name])).toEqual([
      [1, "p1"],
      [2, "p2"],
      [0xfffe, "br0"],
    ]);
    expect(ev.datapath.ports[0]!.mac).toBe("aa:bb:cc:00:00:01");
  });

  it("reassembles PORT_DESC replies flagged REPLY_MORE before reporting up", () => {
    const s = new Session(opts(), 0);
    s.start(0);
    const h = s.fromSwitch(wire(hello(4, [1, 4])), 1);
    const fr = find(h, "features_request");
    const pd = find(h, "port_desc_request");
    expect(s.fromSwitch(wire(features(4, fr.xid, 5n, [])), 2).events).toEqual([]);
    const a = s.fromSwitch(wire(portDesc(4, pd.xid, [port(1, "a", 4), port(2, "b", 4)], true)), 3);
    expect(a.events).toEqual([]);
    const b = s.fromSwitch(wire(portDesc(4, pd.xid, [port(3, "c", 4)], true)), 4);
    expect(b.events).toEqual([]);
    const c = s.fromSwitch(wire(portDesc(4, pd.xid, [port(4, "d", 4)])), 5);
    expect(c.events).toHaveLength(1);
    const ev = c.events[0]!;
    expect(ev.type === "up" && ev.datapath.ports.map((p) => p.name)).toEqual(["a", "b", "c", "d"]);
  });

  it("reports up with no ports when the switch refuses PORT_DESC", () => {
    const s = new Session(opts(), 0);
    s.start(0);
    const h = s.fromSwitch(wire(hello(4, [4])), 1);
    s.fromSwitch(wire(features(4, find(h, "features_request").xid, 7n, [])), 2);
    const pd = find(h, "port_desc_request");
    const e = s.fromSwitch(
      wire({ type: "error", version: 4, xid: pd.xid, errType: 1, code: 1, data: new Uint8Array(0) }),
      3,
    );
    expect(e.events).toMatchObject([{ type: "up", datapath: { dpid: 7n, ports: [] } }]);
  });

  it("closes when the first message is not HELLO", () => {
    const s = new Session(opts(), 0);
    s.start(0);
    const step = s.fromSwitch(wire(features(1, 1, 1n, [])), 1);
    expect(step.close).toMatch(/expected HELLO first/);
  });

  it("closes after the handshake timeout, with no event", () => {
    const s = new Session(opts(), 0);
    s.start(0);
    s.fromSwitch(wire(hello(4, [4])), 1);
    expect(s.deadline()).toBeLessThanOrEqual(10_000);
    expect(s.tick(9_999).close).toBeUndefined();
    const t = s.tick(10_000);
    expect(t.close).toMatch(/handshake timeout/);
    expect(t.events).toEqual([]);
  });

  it("reports PORT_STATUS add/delete/modify after up and keeps the port table", () => {
    const { s } = handshake(4, 9n);
    const add = s.fromSwitch(
      wire({ type: "port_status", version: 4, xid: 0, reason: 0, port: port(7, "p7", 4) }),
      10,
    );
    expect(add.events).toEqual([
      { type: "port", dpid: 9n, reason: "add", port: { no: 7, name: "p7", mac: "aa:bb:cc:00:00:07" } },
    ]);
    const mod = s.fromSwitch(
      wire({ type: "port_status", version: 4, xid: 0, reason: 2, port: port(1, "p1", 4) }),
      11,
    );
    expect(mod.events[0]).toMatchObject({ type: "port", reason: "modify" });
    const del = s.fromSwitch(
      wire({ type: "port_status", version: 4, xid: 0, reason: 1, port: port(2, "p2", 4) }),
      12,
    );
    expect(del.events[0]).toMatchObject({ type: "port", reason: "delete", port: { no: 2 } });
    expect(s.datapath!.ports.map((p) => p.no)).toEqual([1, 7, 0xfffe]);
  });
});

describe("keepalive", () => {
  it("answers ECHO_REQUEST with the same xid and payload", () => {
    const { s } = handshake(4, 1n);
    const step = s.fromSwitch(
      wire({ type: "echo_request", version: 4, xid: 77, data: Uint8Array.of(1, 2, 3) }),
      20,
    );
    expect(step.send.map(wire)).toEqual([
      { type: "echo_reply", version: 4, xid: 77, data: Uint8Array.of(1, 2, 3) },
    ]);
  });

  it("probes an idle switch and declares it down after the echo timeout", () => {
    const { s } = handshake(4, 0xabn);
    // Last message from the switch at t=3: probe due at 5003, timeout at 8003.
    expect(s.deadline()).toBe(5003);
    expect(s.tick(5002).send).toEqual([]);
    const probe = s.tick(5003);
    expect(probe.send.map((m) => m.type)).toEqual(["echo_request"]);
    expect(s.deadline()).toBe(8003);
    expect(s.tick(8002).close).toBeUndefined();
    const dead = s.tick(8003);
    expect(dead.close).toMatch(/echo timeout/);
    expect(dead.events).toEqual([{ type: "down", dpid: 0xabn, reason: dead.close }]);
  });

  it("any message from the switch answers the probe", () => {
    const { s } = handshake(1, 2n);
    const probe = s.tick(5003);
    const req = find(probe, "echo_request");
    const rep = s.fromSwitch(
      wire({ type: "echo_reply", version: 1, xid: req.xid, data: new Uint8Array(0) }),
      6000,
    );
    expect(rep.close).toBeUndefined();
    expect(s.deadline()).toBe(11000);
    expect(s.tick(8003).close).toBeUndefined();
  });

  it("reports down once when the transport closes, never before up", () => {
    const { s } = handshake(4, 3n);
    expect(s.closed("switch closed the connection", 50).events).toEqual([
      { type: "down", dpid: 3n, reason: "switch closed the connection" },
    ]);
    expect(s.closed("again", 51).events).toEqual([]);
    const t = new Session(opts(), 0);
    t.start(0);
    expect(t.closed("x", 1).events).toEqual([]);
  });
});

describe("auxiliary connections (OpenFlow 1.3.5 §6.3.6)", () => {
  it("is not a new switch: no up, no down, still kept alive", () => {
    const s = new Session(opts(), 0);
    s.start(0);
    const h = s.fromSwitch(wire(hello(4, [4])), 1);
    const f = s.fromSwitch(wire(features(4, find(h, "features_request").xid, 5n, [], 1)), 2);
    expect(f.events).toEqual([]);
    expect(f.logs.some((l) => /auxiliary/.test(l.msg))).toBe(true);
    expect(s.isUp).toBe(false);
    expect(s.tick(5002).send.map((m) => m.type)).toEqual(["echo_request"]);
    expect(s.closed("bye", 5003).events).toEqual([]);
  });
});

describe("role requests (listen mode)", () => {
  it("1.3 slave: reads the generation id with NOCHANGE, then asks SLAVE with exactly it", () => {
    const s = new Session(opts({ role: "slave" }), 0);
    s.start(0);
    const h = s.fromSwitch(wire(hello(4, [1, 4])), 1);
    const probe = find(h, "role_request");
    expect(probe).toMatchObject({ role: 0, generationId: 0n });
    const gen = 0x8000000000000005n;
    const r1 = s.fromSwitch(
      wire({ type: "role_reply", version: 4, xid: probe.xid, role: 1, generationId: gen }),
      2,
    );
    const slave = find(r1, "role_request");
    expect(slave).toMatchObject({ role: 3, generationId: gen });
    // STALE (ROLE_REQUEST_FAILED/STALE): the master moved on; read again.
    const stale = s.fromSwitch(
      wire({ type: "error", version: 4, xid: slave.xid, errType: 11, code: 0, data: new Uint8Array(0) }),
      3,
    );
    const probe2 = find(stale, "role_request");
    expect(probe2).toMatchObject({ role: 0 });
    const gen2 = gen + 1n;
    const r2 = s.fromSwitch(
      wire({ type: "role_reply", version: 4, xid: probe2.xid, role: 1, generationId: gen2 }),
      4,
    );
    const slave2 = find(r2, "role_request");
    expect(slave2).toMatchObject({ role: 3, generationId: gen2 });
    const granted = s.fromSwitch(
      wire({ type: "role_reply", version: 4, xid: slave2.xid, role: 3, generationId: gen2 }),
      5,
    );
    expect(granted.send).toEqual([]);
    expect(granted.logs.map((l) => l.msg)).toContain("switch granted the role");
  });

  it("1.0 slave uses Nicira's role request", () => {
    const s = new Session(opts({ role: "slave" }), 0);
    s.start(0);
    const h = s.fromSwitch(wire(hello(1)), 1);
    expect(find(h, "nx_role_request")).toMatchObject({ role: 2, version: 1 });
    expect(sent(h, "role_request")).toEqual([]);
  });

  it.each([1, 4])("role none sends no role request (v%i); equal sends EQUAL", (v) => {
    const none = new Session(opts({ role: "none" }), 0);
    none.start(0);
    const h = none.fromSwitch(wire(hello(v, v >= 4 ? [v] : undefined)), 1);
    expect(h.send.filter((m) => m.type.includes("role"))).toEqual([]);
    const eq = new Session(opts({ role: "equal" }), 0);
    eq.start(0);
    const e = eq.fromSwitch(wire(hello(v, v >= 4 ? [v] : undefined)), 1);
    const roles = e.send.filter((m) => m.type.includes("role"));
    expect(roles).toHaveLength(1);
    expect(roles[0]).toMatchObject(
      v === 1 ? { type: "nx_role_request", role: 0 } : { type: "role_request", role: 1 },
    );
  });
});

describe("never a message that changes the switch", () => {
  it("assertReadOnly rejects anything outside the read-only list", () => {
    expect(() =>
      assertReadOnly({ type: "unknown", version: 4, xid: 1, msgType: 14, body: new Uint8Array(0) }),
    ).toThrow(/refuses/);
    expect(READ_ONLY_TYPES.has("unknown")).toBe(false);
  });

  const arbMsg = fc.oneof(
    fc.record({ kind: fc.constant("hello" as const), v: fc.integer({ min: 1, max: 6 }) }),
    fc.record({ kind: fc.constant("features" as const), aux: fc.integer({ min: 0, max: 2 }) }),
    fc.record({ kind: fc.constant("portdesc" as const), more: fc.boolean() }),
    fc.record({ kind: fc.constant("echo" as const), xid: fc.nat() }),
    fc.record({ kind: fc.constant("status" as const), reason: fc.integer({ min: 0, max: 3 }) }),
    fc.record({ kind: fc.constant("unknown" as const), t: fc.integer({ min: 7, max: 40 }) }),
    fc.record({ kind: fc.constant("error" as const), t: fc.integer({ min: 0, max: 12 }) }),
    fc.record({ kind: fc.constant("role" as const), g: fc.bigInt({ min: 0n, max: (1n << 64n) - 1n }) }),
    fc.record({ kind: fc.constant("tick" as const), dt: fc.integer({ min: 0, max: 20_000 }) }),
  );

  it("sends only read-only messages whatever the switch does (controller and relay modes)", () => {
    fc.assert(
      fc.property(
        fc.constantFrom("controller" as const, "relay" as const),
        fc.constantFrom("slave" as const, "equal" as const, "none" as const),
        fc.array(arbMsg, { maxLength: 30 }),
        (mode, role, script) => {
          const s = new Session(opts({ mode, role }), 0);
          let now = 0;
          const all: OfMessage[] = [...s.start(now).send];
          if (mode === "relay") {
            all.push(...s.upstreamConnected(1).send);
            all.push(...s.fromUpstream(hello(4, [1, 4], 5), 1).send);
          }
          let xid = 1;
          for (const a of script) {
            now += 1;
            let step: Step;
            const v = s.wireVersion ?? 4;
            switch (a.kind) {
              case "hello":
                step = s.fromSwitch(hello(a.v, a.v >= 4 ? [1, a.v] : undefined), now);
                break;
              case "features":
                step = s.fromSwitch(features(v, xid++, 42n, [port(1, "x", v)], a.aux), now);
                break;
              case "portdesc":
                step = s.fromSwitch(portDesc(v, xid++, [port(2, "y", v)], a.more), now);
                break;
              case "echo":
                step = s.fromSwitch(
                  { type: "echo_request", version: v, xid: a.xid, data: new Uint8Array(0) },
                  now,
                );
                break;
              case "status":
                step = s.fromSwitch(
                  { type: "port_status", version: v, xid: 0, reason: a.reason, port: port(3, "z", v) },
                  now,
                );
                break;
              case "unknown":
                step = s.fromSwitch(
                  { type: "unknown", version: v, xid: 0, msgType: a.t, body: new Uint8Array(4) },
                  now,
                );
                break;
              case "error":
                step = s.fromSwitch(
                  { type: "error", version: v, xid: xid++, errType: a.t, code: 0, data: new Uint8Array(0) },
                  now,
                );
                break;
              case "role":
                step = s.fromSwitch(
                  { type: "role_reply", version: v, xid: xid++, role: 3, generationId: a.g },
                  now,
                );
                break;
              case "tick":
                now += a.dt;
                step = s.tick(now);
                break;
            }
            all.push(...step.send);
          }
          for (const m of all) {
            expect(READ_ONLY_TYPES.has(m.type)).toBe(true);
            expect(() => encodeMessage(m)).not.toThrow();
          }
        },
      ),
      { numRuns: 400 },
    );
  });
});

describe("relay observer", () => {
  function relayed(o: Partial<SessionOptions> = {}) {
    const s = new Session(opts({ mode: "relay", ...o }), 0);
    expect(s.start(0).send).toEqual([]);
    expect(s.fromSwitch(wire(hello(4, [1, 4])), 10).drop).toBe(false);
    s.upstreamConnected(20);
    s.fromUpstream(wire(hello(1)), 30);
    return s;
  }

  it("learns the datapath from the exchange the upstream drives, sending nothing itself", () => {
    const s = relayed();
    // upstream offered 1.0 only (bare header): the peers agree on 1.0
    s.fromUpstream(wire({ type: "features_request", version: 1, xid: 7 }), 40);
    const f = s.fromSwitch(wire(features(1, 7, 0x1234n, [port(1, "s1-eth1", 1)])), 50);
    expect(f.drop).toBe(false);
    expect(f.send).toEqual([]);
    expect(f.events).toMatchObject([{ type: "up", datapath: { dpid: 0x1234n, version: "1.0" } }]);
    const e = s.fromSwitch(wire({ type: "echo_request", version: 1, xid: 3, data: new Uint8Array(0) }), 60);
    expect(e.send).toEqual([]); // the upstream answers, not rfboot
    expect(e.drop).toBe(false);
  });

  it("asks FEATURES and PORT_DESC itself when the upstream is slow, and drops exactly those replies", () => {
    const s = new Session(opts({ mode: "relay" }), 0);
    s.fromSwitch(wire(hello(4, [1, 4])), 10);
    s.upstreamConnected(20);
    s.fromUpstream(wire(hello(4, [4])), 30);
    expect(s.deadline()).toBe(1030);
    expect(s.tick(1029).send).toEqual([]);
    const inj = s.tick(1030);
    const fr = find(inj, "features_request");
    expect(fr.xid).toBeGreaterThanOrEqual(RELAY_XID_BASE);
    expect(fr.version).toBe(4);
    // the upstream's own request and reply pass through untouched
    const other = s.fromSwitch(
      wire({ type: "echo_reply", version: 4, xid: fr.xid + 1, data: new Uint8Array(0) }),
      1040,
    );
    expect(other.drop).toBe(false);
    const f = s.fromSwitch(wire(features(4, fr.xid, 77n, [])), 1050);
    expect(f.drop).toBe(true);
    expect(f.events).toEqual([]);
    const inj2 = s.tick(2050);
    const pd = find(inj2, "port_desc_request");
    const p1 = s.fromSwitch(wire(portDesc(4, pd.xid, [port(1, "a", 4)], true)), 2060);
    expect(p1.drop).toBe(true);
    const p2 = s.fromSwitch(wire(portDesc(4, pd.xid, [port(2, "b", 4)])), 2070);
    expect(p2.drop).toBe(true);
    expect(p2.events).toMatchObject([{ type: "up", datapath: { dpid: 77n, version: "1.3" } }]);
    // a later reply with the same xid is not ours any more
    expect(s.fromSwitch(wire(portDesc(4, pd.xid, [])), 2080).drop).toBe(false);
  });

  it("does not inject when the upstream asked in time", () => {
    const s = new Session(opts({ mode: "relay" }), 0);
    s.fromSwitch(wire(hello(4, [4])), 10);
    s.upstreamConnected(20);
    s.fromUpstream(wire(hello(4, [4])), 30);
    s.fromUpstream(wire({ type: "features_request", version: 4, xid: 1 }), 40);
    s.fromUpstream(wire({ type: "port_desc_request", version: 4, xid: 2, flags: 0 }), 40);
    expect(s.tick(5000).send.filter((m) => m.type !== "echo_request")).toEqual([]);
  });

  it("probes an idle switch with an ECHO whose reply is dropped", () => {
    const s = relayed();
    s.fromUpstream(wire({ type: "features_request", version: 1, xid: 7 }), 40);
    s.fromSwitch(wire(features(1, 7, 1n, [])), 50);
    const probe = s.tick(5050);
    const req = find(probe, "echo_request");
    expect(req.xid).toBeGreaterThanOrEqual(RELAY_XID_BASE);
    const rep = s.fromSwitch(
      wire({ type: "echo_reply", version: 1, xid: req.xid, data: new Uint8Array(0) }),
      5060,
    );
    expect(rep.drop).toBe(true);
  });

  it("goes standalone when the upstream does not connect in time, and completes the handshake itself", () => {
    const s = new Session(opts({ mode: "relay" }), 0);
    s.fromSwitch(wire(hello(4, [1, 4])), 10);
    expect(s.deadline()).toBe(300);
    const t = s.tick(300);
    expect(t.detachUpstream).toMatch(/not connected within 300 ms/);
    expect(t.send.map((m) => m.type)).toEqual(["hello", "features_request", "port_desc_request"]);
    expect(t.send.every((m) => m.xid < RELAY_XID_BASE)).toBe(true);
    const fr = find(t, "features_request");
    const pd = find(t, "port_desc_request");
    s.fromSwitch(wire(features(4, fr.xid, 5n, [])), 310);
    const up = s.fromSwitch(wire(portDesc(4, pd.xid, [port(1, "p", 4)])), 320);
    expect(up.events).toMatchObject([{ type: "up", datapath: { dpid: 5n } }]);
    // standalone answers echo itself
    const e = s.fromSwitch(wire({ type: "echo_request", version: 4, xid: 9, data: new Uint8Array(0) }), 330);
    expect(e.send.map((m) => m.type)).toEqual(["echo_reply"]);
  });

  it("goes standalone when the upstream refuses, or connects but never says HELLO", () => {
    const a = new Session(opts({ mode: "relay" }), 0);
    a.fromSwitch(wire(hello(1)), 5);
    const f = a.upstreamFailed("ECONNREFUSED", 6);
    expect(f.detachUpstream).toBe("ECONNREFUSED");
    expect(f.send.map((m) => m.type)).toEqual(["hello", "features_request"]);
    const b = new Session(opts({ mode: "relay" }), 0);
    b.fromSwitch(wire(hello(4, [4])), 5);
    b.upstreamConnected(10);
    expect(b.tick(1009).detachUpstream).toBeUndefined();
    expect(b.tick(1010).detachUpstream).toMatch(/no HELLO within 1000 ms/);
  });

  it("closes the switch when the upstream goes away after it spoke", () => {
    const s = relayed();
    s.fromUpstream(wire({ type: "features_request", version: 1, xid: 7 }), 40);
    s.fromSwitch(wire(features(1, 7, 1n, [])), 50);
    const g = s.upstreamFailed("upstream closed the connection", 60);
    expect(g.close).toMatch(/upstream closed/);
    expect(g.events).toMatchObject([{ type: "down", dpid: 1n }]);
  });
});
