/**
 * Hostile OpenFlow peers against a real Controller on loopback (issue 6, hostile input): bad lengths
 * (0..7, above the maximum, bodies that do not fit), no common version, slow and silent peers, floods of
 * connections from one address, a per-peer/global connection limit, the admission hook and disconnect(),
 * the per-connection log budget. Throughout, a well-behaved switch connected from another loopback
 * address (127.0.0.2) must stay up and keep getting ECHO replies, and memory must come back down.
 */
import { afterEach, describe, expect, it } from "vitest";
import {
  buildHello,
  createController,
  decodeMessage,
  encodeMessage,
  type Controller,
  type ControllerEvent,
  type ControllerOptions,
  type OfMessage,
} from "../../src/controller/index.js";
import { OFPBRC, OFPET_BAD_REQUEST, OFPET_HELLO_FAILED } from "../../src/controller/codec/index.js";
import { silentLogger } from "../../src/common/log.js";
import { parseConfig } from "../../src/provisioner/config/index.js";
import { controllerFromConfig } from "../../src/provisioner/wiring.js";
import { connect } from "node:net";
import { networkInterfaces } from "node:os";
import {
  Peer,
  captureLog,
  closedWithin,
  connectFrom,
  heapMiB,
  openFileLimit,
  rawConnect,
  sleep,
  until,
} from "./helpers.js";

const GOOD = { dpid: 0x5n, versions: [1, 4], ports: [{ no: 1, name: "s5-eth1", mac: "02:00:00:00:05:01" }] };

interface Harness {
  ctl: Controller;
  port: number;
  events: ControllerEvent[];
}

const open: Controller[] = [];
const peers: Peer[] = [];

afterEach(async () => {
  for (const p of peers.splice(0)) p.destroy();
  for (const c of open.splice(0)) await c.close();
});

async function start(o: Partial<ControllerOptions> = {}): Promise<Harness> {
  const ctl = createController({
    listen: { host: "127.0.0.1", port: 0 },
    mode: "listen",
    role: "none",
    ...o,
  });
  open.push(ctl);
  const events: ControllerEvent[] = [];
  ctl.on("up", (e) => events.push(e));
  ctl.on("down", (e) => events.push(e));
  ctl.on("port", (e) => events.push(e));
  const addr = await ctl.start();
  return { ctl, port: addr.port, events };
}

/** goodSwitch connects a well-behaved switch from 127.0.0.2 and waits for `up`. */
async function goodSwitch(h: Harness, dpid = GOOD.dpid): Promise<Peer> {
  const p = await connectFrom(h.port, "127.0.0.2");
  peers.push(p);
  p.actAsSwitch({ ...GOOD, dpid });
  await until(() => h.events.some((e) => e.type === "up" && e.dpid === dpid), 5000, `up of ${dpid}`);
  return p;
}

/** echoes sends an ECHO_REQUEST from the switch side and waits for the matching reply. */
async function echoes(p: Peer, xid: number): Promise<void> {
  const version = p.messages.length > 0 ? p.messages[0]!.version : 4;
  p.send({ type: "echo_request", version: version === 1 ? 1 : 4, xid, data: new Uint8Array([1, 2, 3]) });
  const r = await p.next("echo_reply", 5000);
  expect(r.xid).toBe(xid);
}

/** helloed connects a raw peer, reads rfboot's HELLO and answers with `hello` (default 1.3). */
async function helloed(port: number, hello: OfMessage = buildHello([4], 1)): Promise<Peer> {
  const p = await connectFrom(port);
  peers.push(p);
  await p.next("hello");
  p.send(hello);
  return p;
}

function header(version: number, type: number, length: number, xid: number): Buffer {
  const b = Buffer.alloc(8);
  b.writeUInt8(version, 0);
  b.writeUInt8(type, 1);
  b.writeUInt16BE(length, 2);
  b.writeUInt32BE(xid, 4);
  return b;
}

describe("bind address", () => {
  it("the OpenFlow port binds to 127.0.0.1 unless configured", async () => {
    const cfg = parseConfig("{}");
    expect(cfg.openflow.listen.host).toBe("127.0.0.1");
    const h = await start({ listen: { host: cfg.openflow.listen.host, port: 0 } });
    (await rawConnect(h.port)).destroy();
    const outside = Object.values(networkInterfaces())
      .flat()
      .find((a) => a !== undefined && a.family === "IPv4" && !a.internal);
    // This machine may have no non-loopback address (then only the default itself is checked).
    if (outside) {
      const result = await new Promise<string>((resolve) => {
        const s = connect({ host: outside.address, port: h.port });
        s.once("connect", () => {
          s.destroy();
          resolve("connected");
        });
        s.once("error", (e: NodeJS.ErrnoException) => resolve(e.code ?? "error"));
      });
      expect(result).toBe("ECONNREFUSED");
    }
  });
});

describe("bad lengths get OFPET_BAD_REQUEST/OFPBRC_BAD_LEN, then the connection is closed", () => {
  it.each([0, 1, 2, 3, 4, 5, 6, 7])("header length %i after the HELLO exchange", async (len) => {
    const h = await start();
    const good = await goodSwitch(h);
    const p = await helloed(h.port);
    await p.next("features_request");
    const bad = header(4, 2, len, 0xabcd0000 + len);
    p.send(bad);
    const err = await p.next("error");
    expect(err.errType).toBe(OFPET_BAD_REQUEST);
    expect(err.code).toBe(OFPBRC.BAD_LEN);
    expect(err.version).toBe(4);
    expect(err.xid).toBe(0xabcd0000 + len);
    expect(Buffer.from(err.data).equals(bad)).toBe(true);
    await p.closed;
    await echoes(good, 77);
    expect(h.events.filter((e) => e.type === "down")).toEqual([]);
  });

  it("a zero length as the very first bytes (before any HELLO) is answered in rfboot's highest version", async () => {
    const h = await start({ versions: [1, 4] });
    const p = await connectFrom(h.port);
    peers.push(p);
    await p.next("hello");
    p.send(header(0x47, 0, 0, 7)); // version byte unknown ("G"), length 0
    const err = await p.next("error");
    expect([err.errType, err.code, err.version, err.xid]).toEqual([OFPET_BAD_REQUEST, OFPBRC.BAD_LEN, 4, 7]);
    await p.closed;
  });

  it("a length above the configured maximum is refused the same way (maxMessageLength)", async () => {
    const h = await start({ maxMessageLength: 1024 });
    const p = await helloed(h.port);
    await p.next("features_request");
    p.send(header(4, 10, 2000, 42)); // a PACKET_IN claiming 2000 bytes
    const err = await p.next("error");
    expect([err.errType, err.code, err.xid]).toEqual([OFPET_BAD_REQUEST, OFPBRC.BAD_LEN, 42]);
    await p.closed;
  });

  it("a body that does not fit its type (truncated FEATURES_REPLY) gets BAD_LEN too", async () => {
    const h = await start();
    const p = await helloed(h.port);
    const fr = await p.next("features_request");
    const bytes = Buffer.concat([header(4, 6, 8 + 10, fr.xid), Buffer.alloc(10)]);
    p.send(bytes);
    const err = await p.next("error");
    expect([err.errType, err.code, err.xid]).toEqual([OFPET_BAD_REQUEST, OFPBRC.BAD_LEN, fr.xid]);
    expect(Buffer.from(err.data).equals(bytes)).toBe(true);
    await p.closed;
    expect(h.events).toEqual([]);
  });

  it("frames before the bad one in the same chunk are still handled (an ECHO is answered first)", async () => {
    const h = await start();
    const p = await helloed(h.port);
    await p.next("features_request");
    p.send(
      Buffer.concat([
        encodeMessage({ type: "echo_request", version: 4, xid: 5, data: new Uint8Array(0) }),
        header(4, 2, 3, 6),
      ]),
    );
    expect((await p.next("echo_reply")).xid).toBe(5);
    expect((await p.next("error")).code).toBe(OFPBRC.BAD_LEN);
    await p.closed;
  });
});

describe("version negotiation failures get HELLO_FAILED, then close", () => {
  it("no common version (switch 1.0 only, rfboot 1.3 only)", async () => {
    const h = await start({ versions: [4] });
    const p = await helloed(h.port, buildHello([1], 9));
    const err = await p.next("error");
    expect([err.errType, err.code, err.xid]).toEqual([OFPET_HELLO_FAILED, 0, 9]);
    expect(Buffer.from(err.data).toString("latin1")).toMatch(/version/);
    await p.closed;
  });

  it("a HELLO with version byte 0 (fuzz finding: used to throw out of the socket handler)", async () => {
    const h = await start({ versions: [1, 4] });
    const good = await goodSwitch(h);
    const p = await connectFrom(h.port);
    peers.push(p);
    await p.next("hello");
    p.send(header(0, 0, 8, 3));
    const err = await p.next("error");
    expect([err.errType, err.code, err.version]).toEqual([OFPET_HELLO_FAILED, 0, 1]);
    await p.closed;
    await echoes(good, 78);
  });
});

describe("slow and silent peers", () => {
  it(
    "peers that stall in a header, never finish the handshake, or never speak are closed at the handshake timeout",
    { timeout: 30_000 },
    async () => {
      const h = await start({ handshakeTimeoutMs: 1500, echoIntervalMs: 500, echoTimeoutMs: 1000 });
      const good = await goodSwitch(h);
      const heap0 = heapMiB();
      const N = 150;
      const socks = [];
      for (let i = 0; i < N; i++) {
        const s = await rawConnect(h.port);
        s.on("error", () => undefined);
        s.on("data", () => undefined);
        const kind = i % 5;
        if (kind === 1) s.write(header(4, 0, 16, 1).subarray(0, 4)); // half a header, then nothing
        if (kind === 2) s.write(header(4, 0, 65535, 1)); // a 64 KiB HELLO announced, never sent
        if (kind === 3) s.write(encodeMessage(buildHello([4], 1))); // HELLO, then never FEATURES_REPLY
        if (kind === 4) {
          s.write(encodeMessage(buildHello([4], 1)));
          s.write(Buffer.concat([header(4, 6, 32, 2), Buffer.alloc(10)])); // FEATURES_REPLY cut short
        }
        socks.push(s);
      }
      expect(h.ctl.connectionCount).toBeGreaterThanOrEqual(N);
      const t0 = Date.now();
      const closed = await Promise.all(socks.map((s) => closedWithin(s, 4000)));
      expect(closed.every(Boolean)).toBe(true);
      expect(Date.now() - t0).toBeLessThan(4000);
      await until(() => h.ctl.connectionCount === 1, 3000, "only the good switch left");
      // The good switch was probed (echo interval 500 ms), answered, and is still up.
      await echoes(good, 79);
      expect(h.events.filter((e) => e.type === "down")).toEqual([]);
      expect(heapMiB() - heap0).toBeLessThan(16);
    },
  );

  it("a switch that stalls in the middle of a frame once up is declared dead by the echo timeout", async () => {
    const h = await start({ echoIntervalMs: 300, echoTimeoutMs: 300 });
    const p = await goodSwitch(h);
    p.stopAnswering();
    p.send(header(4, 10, 100, 1).subarray(0, 8)); // a PACKET_IN header; the body never comes
    await until(() => h.events.some((e) => e.type === "down"), 3000, "down by echo timeout");
    const down = h.events.find((e) => e.type === "down");
    expect(down && down.type === "down" && down.reason).toMatch(/echo timeout/);
  });
});

describe("10,000 connections from one peer", () => {
  it(
    "sequential and concurrent bursts: the process stays up, memory is bounded, the limit holds, a good switch is unaffected",
    { timeout: 300_000 },
    async () => {
      const perPeer = 256;
      const h = await start({ maxConnectionsPerPeer: perPeer, handshakeTimeoutMs: 5000 });
      const good = await goodSwitch(h);
      const heap0 = heapMiB();
      // Concurrent bursts: each socket uses two descriptors here (both ends live in this process).
      const fdLimit = openFileLimit();
      const burst = Math.max(100, Math.min(2000, Math.floor((fdLimit - 200) / 2) - perPeer));
      let connected = 0;
      let total = 0;
      let maxOpen = 0;
      let handled = h.ctl.acceptStats().accepted;
      while (total < 5000) {
        const n = Math.min(burst, 5000 - total);
        const socks = await Promise.all(
          Array.from({ length: n }, () =>
            rawConnect(h.port).then(
              (s) => {
                s.on("error", () => undefined);
                connected++;
                return s;
              },
              () => undefined,
            ),
          ),
        );
        // connect() resolves once the kernel completed the handshake; wait until rfboot accepted each one.
        const seen0 = handled;
        const ok = socks.filter(Boolean).length;
        await until(
          () => {
            const st = h.ctl.acceptStats();
            maxOpen = Math.max(maxOpen, h.ctl.connectionCount);
            return st.accepted + st.refused - seen0 >= ok;
          },
          60_000,
          "every burst connection accepted or refused",
        );
        handled = h.ctl.acceptStats().accepted + h.ctl.acceptStats().refused;
        expect(h.ctl.connectionCount).toBeLessThanOrEqual(perPeer + 1);
        for (const s of socks) s?.destroy();
        total += n;
        console.log(
          `burst: ${total} connections, ${JSON.stringify(h.ctl.acceptStats())}, max open ${maxOpen}`,
        );
        await until(() => h.ctl.connectionCount <= 1, 30_000, "burst connections gone");
      }
      expect(h.ctl.acceptStats().refused).toBeGreaterThan(0);
      expect(maxOpen).toBeGreaterThanOrEqual(perPeer); // the limit was reached, not undercut
      await echoes(good, 80);
      // Sequential: 5,000 connections one after another (50 at a time), each sending a HELLO then closing.
      const hello = encodeMessage(buildHello([4], 1));
      let seq = 0;
      while (seq < 5000) {
        await Promise.all(
          Array.from({ length: 50 }, async () => {
            const s = await rawConnect(h.port);
            s.on("error", () => undefined);
            s.resume(); // read rfboot's HELLO and its FIN, so 'close' comes
            s.write(hello);
            s.end();
            await closedWithin(s, 5000);
          }),
        );
        seq += 50;
        if (seq % 1000 === 0) console.log(`sequential: ${seq}`);
      }
      total += seq;
      expect(total).toBe(10_000);
      await until(() => h.ctl.connectionCount === 1, 30_000, "all flood connections gone");
      await echoes(good, 81);
      expect(h.events.filter((e) => e.type === "down")).toEqual([]);
      expect(h.ctl.datapaths().map((d) => d.dpid)).toEqual([GOOD.dpid]);
      expect(heapMiB() - heap0).toBeLessThan(24);
      expect(connected).toBeGreaterThan(0);
    },
  );

  it("a global limit (maxConnections) holds too, and the listener keeps accepting once connections close", async () => {
    const h = await start({ maxConnections: 20 });
    const socks = await Promise.all(
      Array.from({ length: 60 }, () =>
        rawConnect(h.port).then((s) => {
          s.on("error", () => undefined);
          return s;
        }),
      ),
    );
    await sleep(100);
    expect(h.ctl.connectionCount).toBeLessThanOrEqual(20);
    expect(h.ctl.acceptStats().refused).toBeGreaterThanOrEqual(40);
    for (const s of socks) s.destroy();
    await until(() => h.ctl.connectionCount === 0, 3000, "connections gone");
    await goodSwitch(h);
  });
});

describe("limits from the config file", () => {
  it("openflow.maxConnectionsPerPeer and maxMessageLength reach the controller (controllerFromConfig)", async () => {
    const cfg = parseConfig(
      "openflow: { listen: { host: 127.0.0.1, port: 6999 }, maxConnectionsPerPeer: 3, maxMessageLength: 512 }",
      { format: "yaml" },
    );
    const ctl = controllerFromConfig(
      { ...cfg, openflow: { ...cfg.openflow, listen: { host: "127.0.0.1", port: 0 } } },
      silentLogger,
    );
    open.push(ctl);
    const { port } = await ctl.start();
    const socks = await Promise.all(Array.from({ length: 6 }, () => rawConnect(port)));
    for (const s of socks) s.on("error", () => undefined);
    await until(() => ctl.acceptStats().accepted + ctl.acceptStats().refused >= 6, 5000, "all six handled");
    expect(ctl.acceptStats()).toMatchObject({ accepted: 3, refused: 3 });
    for (const s of socks) s.destroy();
    await until(() => ctl.connectionCount === 0, 5000, "closed");
    const p = await helloed(port);
    await p.next("features_request");
    p.send(header(4, 10, 600, 5));
    expect((await p.next("error")).code).toBe(OFPBRC.BAD_LEN);
  });
});

describe("admission policy (policies.unknownDatapath.action: refuse)", () => {
  it("a refused datapath is closed with no up or down; an admitted one comes up; disconnect() drops it with down", async () => {
    const h = await start({ admit: (d) => (d.dpid === 0x99n ? "unknown datapath (policy refuse)" : true) });
    const bad = await connectFrom(h.port, "127.0.0.3");
    peers.push(bad);
    bad.actAsSwitch({ ...GOOD, dpid: 0x99n });
    await bad.closed;
    expect(h.events).toEqual([]);
    expect(h.ctl.acceptStats().notAdmitted).toBe(1);
    await goodSwitch(h);
    expect(h.ctl.disconnect(0x99n, "x")).toBe(false);
    expect(h.ctl.disconnect(GOOD.dpid, "policy changed")).toBe(true);
    await until(() => h.events.some((e) => e.type === "down"), 3000, "down after disconnect");
    expect(h.events.map((e) => e.type)).toEqual(["up", "down"]);
    expect(h.ctl.datapaths()).toEqual([]);
  });

  it("controllerFromConfig applies policies.unknownDatapath.action: refuse (and follows the config in force)", async () => {
    const text = (action: string) =>
      [
        "openflow: { listen: { host: 127.0.0.1, port: 6999 } }",
        `policies: { unknownDatapath: { action: ${action} } }`,
        'datapaths: { "0x5": { name: rfvmA, vmId: "02:a0:a0:a0:a0:a0", dataPorts: 1 } }',
      ].join("\n");
    let current = parseConfig(text("refuse"), { format: "yaml" });
    const local = { ...current, openflow: { ...current.openflow, listen: { host: "127.0.0.1", port: 0 } } };
    const ctl = controllerFromConfig(local, silentLogger, () => current);
    open.push(ctl);
    const ups: bigint[] = [];
    ctl.on("up", (e) => ups.push(e.dpid));
    const { port } = await ctl.start();
    const stranger = await connectFrom(port, "127.0.0.3");
    peers.push(stranger);
    stranger.actAsSwitch({ ...GOOD, dpid: 0x99n });
    await stranger.closed;
    const known = await connectFrom(port, "127.0.0.2");
    peers.push(known);
    known.actAsSwitch(GOOD);
    await until(() => ups.includes(0x5n), 5000, "known datapath up");
    expect(ups).toEqual([0x5n]);
    expect(ctl.acceptStats().notAdmitted).toBe(1);
    // After a reload to `ignore`, the stranger is served (the daemon then ignores it).
    current = parseConfig(text("ignore"), { format: "yaml" });
    const again = await connectFrom(port, "127.0.0.3");
    peers.push(again);
    again.actAsSwitch({ ...GOOD, dpid: 0x99n });
    await until(() => ups.includes(0x99n), 5000, "stranger up under ignore");
  });

  it("a refused connection presenting an admitted dpid's twin does not replace the admitted one", async () => {
    let refuse = false;
    const h = await start({ admit: () => (refuse ? false : true) });
    const good = await goodSwitch(h);
    refuse = true;
    const twin = await connectFrom(h.port, "127.0.0.3");
    peers.push(twin);
    twin.actAsSwitch(GOOD);
    await twin.closed;
    await echoes(good, 82);
    expect(h.events.map((e) => e.type)).toEqual(["up"]);
  });
});

describe("log budget", () => {
  it("a switch spamming unsolicited ERRORs cannot flood the log", async () => {
    const cap = captureLog();
    const h = await start({ logger: cap.logger });
    const p = await goodSwitch(h);
    const spam = encodeMessage({
      type: "error",
      version: 4,
      xid: 1,
      errType: 1,
      code: 1,
      data: new Uint8Array(0),
    });
    p.send(Buffer.concat(Array.from({ length: 2000 }, () => spam)));
    await echoes(p, 83);
    const errLines = cap.lines.filter((l) => l.msg === "switch sent an error");
    expect(errLines.length).toBeGreaterThan(0);
    expect(errLines.length).toBeLessThanOrEqual(25);
  });
});

describe("decode of what rfboot sends back", () => {
  it("every ERROR rfboot sent in these tests decodes (sanity of buildBadRequest)", () => {
    const m = decodeMessage(
      encodeMessage({
        type: "error",
        version: 1,
        xid: 2,
        errType: OFPET_BAD_REQUEST,
        code: OFPBRC.BAD_LEN,
        data: header(1, 0, 3, 2),
      }),
    );
    expect(m.type).toBe("error");
  });
});
