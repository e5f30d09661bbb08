/** Relay mode over real sockets: scripted fake switches in front, a scripted fake upstream behind. */
import { afterEach, describe, expect, it } from "vitest";
import {
  buildHello,
  encodeMessage,
  createController,
  type Controller,
  type ControllerEvent,
  type ControllerOptions,
} from "../../../src/controller/index.js";
import { FakeUpstream, Peer, collect, freePort, packetIn, until } from "./fake-peers.js";

const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const f of cleanups.splice(0).reverse()) await f();
});

async function upstream(onPeer?: (p: Peer) => void, port = 0): Promise<FakeUpstream> {
  const u = new FakeUpstream(onPeer);
  await u.listen(port);
  cleanups.push(() => u.close());
  return u;
}

async function relay(upPort: number, over: Partial<ControllerOptions> = {}) {
  const c: Controller = createController({
    listen: { host: "127.0.0.1", port: 0 },
    mode: "relay",
    upstream: { host: "127.0.0.1", port: upPort },
    ...over,
  });
  cleanups.push(() => c.close());
  const events = collect<ControllerEvent>(c);
  const { port } = await c.start();
  return { c, events, port };
}

async function sw(port: number): Promise<Peer> {
  const p = await Peer.connect(port);
  cleanups.push(() => p.destroy());
  return p;
}

const PORTS = [
  { no: 1, name: "s1-eth1", mac: "aa:bb:cc:dd:ee:01" },
  { no: 2, name: "s1-eth2", mac: "aa:bb:cc:dd:ee:02" },
];

/**
 * relayedOf10 relays an OpenFlow 1.0 switch to an upstream that asks FEATURES, waits until the switch
 * is up and its FEATURES_REPLY reached the upstream, and returns the upstream's byte count from there
 * (it stops keeping messages).
 */
async function relayedOf10(dpid: bigint) {
  const up = await upstream((p) => {
    p.send(buildHello([1], 11));
    p.send({ type: "features_request", version: 1, xid: 12 });
  });
  const { events, port } = await relay(up.port);
  const s = await sw(port);
  s.actAsSwitch({ dpid: dpid, versions: [1], ports: PORTS });
  await until(() => events.length === 1, 3000, "up");
  const u = await up.peer(0);
  await u.waitFor(() => u.messages.some((m) => m.type === "features_reply"), 3000, "features_reply upstream");
  u.keep = false;
  const before = u.received;
  return { events, s, u, before };
}

describe("relay mode over sockets", () => {
  it("forwards both directions byte for byte and learns the datapath from the upstream's handshake", async () => {
    const up = await upstream((p) => {
      p.send(buildHello([1], 11));
      p.send({ type: "features_request", version: 1, xid: 12 });
    });
    const { c, events, port } = await relay(up.port);
    const s = await sw(port);
    s.actAsSwitch({ dpid: 0x99n, versions: [1, 4], ports: PORTS });
    await until(() => events.length === 1, 3000, "up");
    expect(events[0]).toMatchObject({ type: "up", dpid: 0x99n, version: "1.0", mode: "relay" });
    expect(c.datapaths()[0]!.ports.map((p) => p.name)).toEqual(["s1-eth1", "s1-eth2"]);
    const u = await up.peer(0);
    await u.waitFor(
      () => u.messages.some((m) => m.type === "features_reply"),
      3000,
      "features_reply upstream",
    );

    // switch -> upstream: packet-ins split at awkward offsets and merged
    const flood = Buffer.concat(Array.from({ length: 300 }, (_, i) => packetIn(1000 + i, 60 + (i % 50))));
    const before = u.bytes.length;
    for (let off = 0; off < flood.length; off += 777) s.socket.write(flood.subarray(off, off + 777));
    await u.waitFor(() => u.bytes.length >= before + flood.length, 3000, "flood at upstream");
    expect(u.bytes.subarray(before)).toEqual(flood);

    // upstream -> switch: arbitrary messages (a 1.0 FLOW_MOD-sized blob, a barrier) arrive unchanged
    const flowMod = Buffer.alloc(72, 0x5a);
    flowMod.writeUInt8(1, 0);
    flowMod.writeUInt8(14, 1);
    flowMod.writeUInt16BE(72, 2);
    const barrier = encodeMessage({ type: "barrier_request", version: 1, xid: 77 });
    const sBefore = s.bytes.length;
    u.socket.write(Buffer.concat([flowMod, barrier]).subarray(0, 50));
    u.socket.write(Buffer.concat([flowMod, barrier]).subarray(50));
    await s.waitFor(() => s.bytes.length >= sBefore + 80, 3000, "upstream bytes at switch");
    expect(s.bytes.subarray(sBefore)).toEqual(Buffer.concat([flowMod, barrier]));

    // the upstream saw exactly what the switch sent, from its HELLO on
    const switchSent = Buffer.concat([
      encodeMessage(buildHello([1, 4], 1)),
      encodeMessage(u.messages.find((m) => m.type === "features_reply")!),
    ]);
    expect(u.bytes.subarray(0, switchSent.length)).toEqual(switchSent);
  });

  it("forwards a message it cannot decode unchanged and keeps relaying", async () => {
    const { events, s, u, before } = await relayedOf10(0x98n);
    // A FEATURES_REPLY cut short (12 bytes): the codec rejects it, the peers may not.
    const odd = Buffer.from([1, 6, 0, 12, 0, 0, 0, 5, 1, 2, 3, 4]);
    s.send(odd);
    s.send({ type: "echo_request", version: 1, xid: 6, data: new Uint8Array(0) });
    await u.waitFor(() => u.received >= before + 20, 3000, "odd frame + echo upstream");
    expect(u.received - before).toBe(20);
    expect(s.isClosed).toBe(false);
    expect(events).toHaveLength(1);
  });

  it("passes on the whole frames before a bad length, then closes both sides", async () => {
    const { events, s, u, before } = await relayedOf10(0x97n);
    // One write: a PACKET_IN, then a header whose length (4) is below the 8-byte header.
    s.send(Buffer.concat([packetIn(7, 24), Buffer.from([1, 10, 0, 4, 0, 0, 0, 8])]));
    await Promise.all([u.closed, s.closed]);
    expect(u.received - before).toBe(24);
    await until(() => events.length === 2, 3000, "down");
    expect(events[1]).toMatchObject({
      type: "down",
      dpid: 0x97n,
      reason: expect.stringMatching(/header length 4/),
    });
  });

  it("closing one side closes the other, and reports down", async () => {
    const up = await upstream((p) => {
      p.send(buildHello([4], 1));
      p.send({ type: "features_request", version: 4, xid: 2 });
      p.send({ type: "port_desc_request", version: 4, xid: 3, flags: 0 });
    });
    const { events, port } = await relay(up.port);
    const s1 = await sw(port);
    s1.actAsSwitch({ dpid: 1n, versions: [4], ports: PORTS });
    await until(() => events.length === 1);
    const u1 = await up.peer(0);
    s1.close();
    await u1.closed;
    await until(() => events.length === 2);
    expect(events[1]).toMatchObject({ type: "down", dpid: 1n });

    const s2 = await sw(port);
    s2.actAsSwitch({ dpid: 2n, versions: [4], ports: PORTS });
    await until(() => events.length === 3);
    const u2 = await up.peer(1);
    u2.close();
    await s2.closed;
    await until(() => events.length === 4);
    expect(events[3]).toMatchObject({
      type: "down",
      dpid: 2n,
      reason: expect.stringMatching(/upstream closed/),
    });
  });

  it("respects backpressure in both directions", async () => {
    const up = await upstream((p) => p.send(buildHello([1], 1)));
    // None of rfboot's own requests during the test: neither idle probes (a paused peer looks idle) nor the
    // FEATURES_REQUEST it injects when the upstream does not ask (this upstream never does). Either is 8 bytes
    // to the switch that would be counted with the forwarded bytes, depending on timing.
    const { c, port } = await relay(up.port, {
      echoIntervalMs: 600_000,
      echoTimeoutMs: 1_200_000,
      injectAfterMs: 600_000,
    });
    const s = await sw(port);
    s.send(buildHello([1], 1));
    const u = await up.peer(0);
    await u.waitFor(() => u.bytes.length >= 8, 3000, "hello at upstream");
    await s.waitFor(() => s.bytes.length >= 8, 3000, "hello at switch");

    // The sender ignores its own backpressure and queues 160 MiB (one reused buffer) while the
    // receiver does not read. The relay must stop reading from the sender once its write to the
    // receiver reports backpressure, so what it holds stays around one read chunk plus a socket's
    // high-water mark; a relay that ignored backpressure would hold tens of MiB after 0.5 s.
    const chunk = Buffer.concat(Array.from({ length: 1024 }, (_, i) => packetIn(i, 1024)));
    const total = 160;
    const written = total * chunk.length;
    for (const [from, to, name] of [
      [s, u, "switch->upstream"],
      [u, s, "upstream->switch"],
    ] as const) {
      to.socket.pause();
      to.keep = false;
      const base = to.received;
      for (let i = 0; i < total; i++) from.send(chunk);
      let peak = 0;
      for (let t = 0; t < 10; t++) {
        await new Promise((r) => setTimeout(r, 50));
        peak = Math.max(peak, c.bufferedBytes());
      }
      expect(peak, name).toBeLessThan(4 * 1024 * 1024);
      to.socket.resume();
      await to.waitFor(() => to.received >= base + written, 30_000, `${name} drained`);
      expect(to.received - base, name).toBe(written);
    }
  }, 60_000);

  it("reports the switch when the upstream is down, then hands it over once the upstream is back", async () => {
    const upPort = await freePort();
    const { events, port } = await relay(upPort, { upstreamRetryInitialMs: 100, upstreamRetryMaxMs: 200 });
    const s1 = await sw(port);
    s1.actAsSwitch({ dpid: 0xfedcba9876543210n, versions: [1, 4], ports: PORTS });
    await until(() => events.length === 1, 3000, "up while upstream is down");
    expect(events[0]).toMatchObject({ type: "up", dpid: 0xfedcba9876543210n, version: "1.3" });
    expect(events[0]).toMatchObject({ ports: PORTS });
    // standalone: rfboot answers echo itself
    s1.send({ type: "echo_request", version: 4, xid: 5, data: new Uint8Array(0) });
    expect((await s1.next("echo_reply")).xid).toBe(5);

    // the upstream comes back: the relay closes the switch so that it reconnects through it
    const up = await upstream((p) => {
      p.send(buildHello([4], 1));
      p.send({ type: "features_request", version: 4, xid: 2 });
      p.send({ type: "port_desc_request", version: 4, xid: 3, flags: 0 });
    }, upPort);
    await s1.closed;
    const s2 = await sw(port); // the switch reconnects
    s2.actAsSwitch({ dpid: 0xfedcba9876543210n, versions: [1, 4], ports: PORTS });
    await until(() => events.length === 2, 3000, "up again");
    expect(events.map((e) => e.type)).toEqual(["up", "up"]); // no down for the handover
    // the upstream got a clean session: it starts with the switch's HELLO
    const u = up.peers[up.peers.length - 1]!;
    await u.next("features_reply");
    expect(u.bytes.subarray(0, 16)).toEqual(encodeMessage(buildHello([1, 4], 1)));
  });

  it("reports down after the handover grace when the switch does not come back", async () => {
    const upPort = await freePort();
    const { events, port } = await relay(upPort, {
      upstreamRetryInitialMs: 50,
      upstreamRetryMaxMs: 50,
      handoverGraceMs: 300,
    });
    const s1 = await sw(port);
    s1.actAsSwitch({ dpid: 0x77n, versions: [1], ports: PORTS });
    await until(() => events.length === 1, 3000, "up while upstream is down");
    await upstream(() => undefined, upPort);
    await s1.closed; // handover: the relay closed the switch
    const closedAt = Date.now();
    await until(() => events.length === 2, 3000, "down after the grace");
    expect(Date.now() - closedAt).toBeGreaterThanOrEqual(250);
    expect(events[1]).toMatchObject({
      type: "down",
      dpid: 0x77n,
      reason: expect.stringMatching(/handover.*not back within 300 ms/),
    });
  });

  it("asks FEATURES itself when the upstream is slow and hides the reply from it", async () => {
    const up = await upstream((p) => p.send(buildHello([4], 1))); // never asks anything
    const { events, port } = await relay(up.port, { injectAfterMs: 100 });
    const s = await sw(port);
    s.actAsSwitch({ dpid: 7n, versions: [4], ports: PORTS });
    await until(() => events.length === 1, 3000, "up");
    expect(events[0]).toMatchObject({ dpid: 7n, ports: PORTS });
    const u = await up.peer(0);
    // the switch received rfboot's requests, the upstream never saw the replies
    const fr = await s.next("features_request");
    expect(fr.xid).toBeGreaterThanOrEqual(0xf0f00000);
    await new Promise((r) => setTimeout(r, 100));
    expect(u.messages.map((m) => m.type)).toEqual(["hello"]);
    // later, the upstream asks itself and gets its own reply
    u.send({ type: "features_request", version: 4, xid: 55 });
    const fr2 = await u.next("features_reply");
    expect(fr2.xid).toBe(55);
  });

  it("goes standalone when the upstream accepts but never says HELLO", async () => {
    const up = await upstream(() => undefined);
    const { events, port } = await relay(up.port, { upstreamHelloTimeoutMs: 200 });
    const s = await sw(port);
    s.actAsSwitch({ dpid: 9n, versions: [1], ports: PORTS });
    await until(() => events.length === 1, 3000, "up");
    const u = await up.peer(0);
    await u.closed;
    expect(s.isClosed).toBe(false);
  });
});
