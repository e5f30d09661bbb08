/**
 * The relay's reused read memory (src/controller/readport.ts) over real sockets: what goes in comes
 * out byte for byte when buffers are reused, pinned by queued writes and replaced, and when one
 * scratch buffer serves many connections at once; the accepted-socket adoption keeps a net.Server's
 * bookkeeping; and this Node does take the fast path.
 */
import { createHash, randomBytes } from "node:crypto";
import { connect, createServer, Socket, type AddressInfo } from "node:net";
import { TLSSocket } from "node:tls";
import { afterEach, describe, expect, it } from "vitest";
import { buildHello, type ControllerOptions } from "../../../src/controller/index.js";
import {
  FLOW_READ_BYTES,
  OWN_READ_BUDGET_BYTES,
  OWN_READ_MAX_BYTES,
  OWN_READ_MIN_BYTES,
  ReadPort,
  adoptAccepted,
  readPortStats,
  type ReadMemory,
} from "../../../src/controller/readport.js";
import { FakeUpstream, Peer, startQuietRelay, until } from "./fake-peers.js";

const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const f of cleanups.splice(0).reverse()) await f();
});

/** frames builds `count` OpenFlow 1.0 PACKET_INs of `size` bytes with random bodies (so reuse shows). */
function frames(count: number, size: number): Buffer {
  const out = randomBytes(count * size);
  for (let i = 0; i < count; i++) {
    const o = i * size;
    out.writeUInt8(1, o);
    out.writeUInt8(10, o + 1);
    out.writeUInt16BE(size, o + 2);
    out.writeUInt32BE(i, o + 4);
  }
  return out;
}

/** Digest hashes what a socket receives after `skip` bytes, without keeping it. */
class Digest {
  private readonly hash = createHash("sha256");
  bytes = 0;
  constructor(
    socket: Socket,
    private skip: number,
  ) {
    socket.on("data", (chunk: Buffer) => {
      const drop = Math.min(this.skip, chunk.length);
      this.skip -= drop;
      if (drop < chunk.length) {
        this.hash.update(chunk.subarray(drop));
        this.bytes += chunk.length - drop;
      }
    });
  }
  hex(): string {
    return this.hash.digest("hex");
  }
}

const sha = (b: Buffer) => createHash("sha256").update(b).digest("hex");

async function relayPair(over: Partial<ControllerOptions> = {}) {
  const up = new FakeUpstream((p) => p.send(buildHello([1], 1)));
  await up.listen(0);
  cleanups.push(() => up.close());
  const { c, port } = await startQuietRelay(up.port, over);
  cleanups.push(() => c.close());
  return { up, c, port };
}

async function connectedPair(over: Partial<ControllerOptions> = {}) {
  const { up, c, port } = await relayPair(over);
  const s = await Peer.connect(port);
  cleanups.push(() => s.destroy());
  s.send(buildHello([1], 1));
  const u = await up.peer(0);
  await u.waitFor(() => u.received >= 8, 3000, "hello at upstream");
  await s.waitFor(() => s.received >= 8, 3000, "hello at switch");
  s.keep = false;
  u.keep = false;
  return { c, s, u };
}

/**
 * flood sends `data` from one peer while the other reads in bursts (paused 30 ms of every 40), so the
 * relay's writes queue and its own read buffers get pinned and replaced; it returns what arrived.
 */
async function flood(from: Peer, to: Peer, data: Buffer): Promise<{ bytes: number; hex: string }> {
  const digest = new Digest(to.socket, 0);
  const stutter = setInterval(() => {
    to.socket.pause();
    setTimeout(() => to.socket.resume(), 30);
  }, 40);
  try {
    for (let o = 0; o < data.length; o += 300_000) {
      if (!from.socket.write(data.subarray(o, o + 300_000))) {
        await new Promise((r) => from.socket.once("drain", r));
      }
    }
    await until(() => digest.bytes >= data.length, 30_000, "flood delivered");
  } finally {
    clearInterval(stutter);
    to.socket.resume();
  }
  return { bytes: digest.bytes, hex: digest.hex() };
}

describe("relay reads into reused memory", () => {
  it("forwards a flood byte for byte both ways while the receiver stutters (own buffers pinned, replaced)", async () => {
    const { s, u } = await connectedPair();
    for (const [from, to, name] of [
      [s, u, "switch->upstream"],
      [u, s, "upstream->switch"],
    ] as const) {
      const before = readPortStats();
      const data = frames(24_000, 1000); // 24 MB of random frames
      const got = await flood(from, to, data);
      const after = readPortStats();
      expect(got.bytes, name).toBe(data.length);
      expect(got.hex, name).toBe(sha(data));
      // The fast path was taken (this Node supports it) and its hard case happened: a buffer still
      // queued for a slow receiver was replaced, not read into again.
      expect(after.lentBytes - before.lentBytes, name).toBeGreaterThan(data.length / 2);
      expect(after.pins - before.pins, name).toBeGreaterThan(0);
    }
    expect(readPortStats().ownBytes).toBeLessThanOrEqual(OWN_READ_BUDGET_BYTES);
  }, 90_000);

  it("with relayReusesReadMemory false, relays the same flood through Node's own read buffers", async () => {
    const { s, u } = await connectedPair({ relayReusesReadMemory: false });
    const before = readPortStats();
    const data = frames(8_000, 1000);
    const got = await flood(s, u, data);
    expect(got.hex).toBe(sha(data));
    const after = readPortStats();
    expect(after.lentReads + after.scratchReads).toBe(before.lentReads + before.scratchReads);
  }, 60_000);

  it("never reads into memory a queued write still holds: own buffer (pinned) and scratch (copied)", async () => {
    // Each case fills the kernel buffers towards a paused upstream with reads of a known size, paced so
    // that every piece is one read, until the relay holds a write it could not pass on; then more reads
    // land (into the same memory, if the relay got it wrong) before the upstream reads again.
    for (const [piece, kind] of [
      [48 * 1024, "lent"],
      [12 * 1024, "scratch"],
    ] as const) {
      const { up, c, port } = await relayPair();
      const a = await Peer.connect(port);
      const b = await Peer.connect(port);
      cleanups.push(
        () => a.destroy(),
        () => b.destroy(),
      );
      a.send(buildHello([1], 1));
      const ua = await up.peer(0);
      await ua.waitFor(() => ua.received >= 8, 3000, "hello from a");
      b.send(buildHello([1], 1));
      const ub = await up.peer(1);
      await ub.waitFor(() => ub.received >= 8, 3000, "hello from b");
      for (const p of [a, b, ua, ub]) p.keep = false;
      const da = new Digest(ua.socket, 0);
      const db = new Digest(ub.socket, 0);
      ua.socket.pause();
      const readBytes = () => {
        const st = readPortStats();
        return st.lentBytes + st.scratchBytes;
      };
      /** paced sends one piece and waits until the relay has read it; false if it stopped reading. */
      const paced = async (p: Peer, data: Buffer) => {
        const want = readBytes() + data.length;
        p.send(data);
        const deadline = Date.now() + 500;
        while (readBytes() < want) {
          if (Date.now() > deadline) return false;
          await new Promise((r) => setImmediate(r));
        }
        return true;
      };
      const pins0 = readPortStats().pins;
      const sentA: Buffer[] = [];
      // A big read first, so that the "lent" case is flowing (own buffer) from then on.
      if (kind === "lent") {
        const big = frames(8, 8 * 1024);
        sentA.push(big);
        await paced(a, big);
      }
      let extra = -1;
      for (let i = 0; i < 4000 && extra < 3; i++) {
        const d = frames(piece / 1024, 1024);
        sentA.push(d);
        if (!(await paced(a, d))) break;
        if (c.bufferedBytes() > 0) extra++;
      }
      expect(c.bufferedBytes(), `${kind}: the relay holds a queued write`).toBeGreaterThan(0);
      const sentB: Buffer[] = [];
      for (let i = 0; i < 16; i++) {
        const d = frames(piece / 1024, 1024);
        sentB.push(d);
        await paced(b, d);
      }
      ua.socket.resume();
      const wantA = Buffer.concat(sentA);
      const wantB = Buffer.concat(sentB);
      await until(() => da.bytes >= wantA.length && db.bytes >= wantB.length, 30_000, "delivered");
      expect(da.hex(), `${kind}: a's stream`).toBe(sha(wantA));
      expect(db.hex(), `${kind}: b's stream`).toBe(sha(wantB));
      if (kind === "lent") expect(readPortStats().pins - pins0).toBeGreaterThan(0);
      for (const f of cleanups.splice(0).reverse()) await f();
    }
  }, 90_000);

  it("keeps many connections apart when they all read into the one scratch buffer", async () => {
    const { up, port } = await relayPair();
    const n = 24;
    const switches: Peer[] = [];
    for (let i = 0; i < n; i++) {
      const p = await Peer.connect(port);
      cleanups.push(() => p.destroy());
      p.send(buildHello([1], 1));
      switches.push(p);
    }
    await until(() => up.peers.length === n, 5000, "all upstream connections");
    const uppers = await Promise.all(switches.map((_, i) => up.peer(i)));
    for (const u of uppers) await u.waitFor(() => u.received >= 8, 3000, "hello at upstream");
    for (const u of uppers) u.keep = false;
    const digests = uppers.map((u) => new Digest(u.socket, 0));
    // Small writes (scratch-sized reads), interleaved across the switches.
    const sent = switches.map(() => frames(300, 200));
    for (let k = 0; k < 300; k += 10) {
      for (const [i, p] of switches.entries()) p.send(sent[i]!.subarray(k * 200, (k + 10) * 200));
      await new Promise((r) => setImmediate(r));
    }
    await until(() => digests.every((d) => d.bytes >= 300 * 200), 10_000, "every stream delivered");
    // Each upstream connection got exactly one switch's bytes (the order of accepts is the relay's).
    const want = sent.map(sha).sort();
    const got = digests.map((d) => d.hex()).sort();
    expect(got).toEqual(want);
  }, 60_000);
});

describe("ReadPort", () => {
  it("reads small chunks into scratch, a flow into its own buffer, and returns to scratch when it ends", async () => {
    const server = createServer();
    await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
    cleanups.push(() => new Promise<void>((r) => server.close(() => r())));
    const peerP = new Promise<Socket>((r) => server.once("connection", r));
    const seen: { n: number; kind: ReadMemory["kind"] }[] = [];
    const port = new ReadPort((chunk, memory) => seen.push({ n: chunk.length, kind: memory.kind }));
    const sock = connect({
      host: "127.0.0.1",
      port: (server.address() as AddressInfo).port,
      onread: port.onread,
    });
    cleanups.push(() => {
      sock.destroy();
      port.close();
    });
    const peer = await peerP;
    cleanups.push(() => void peer.destroy());
    const settle = async (bytes: number) => {
      const want = seen.reduce((a, s) => a + s.n, 0) + bytes;
      await until(() => seen.reduce((a, s) => a + s.n, 0) >= want, 3000, "delivered");
    };
    peer.write(Buffer.alloc(100));
    await settle(100);
    expect(seen.at(-1)!.kind).toBe("scratch");
    // One large write arrives in reads of which at least one is big enough to start a flow.
    peer.write(Buffer.alloc(4 * FLOW_READ_BYTES));
    await settle(4 * FLOW_READ_BYTES);
    peer.write(Buffer.alloc(4 * FLOW_READ_BYTES));
    await settle(4 * FLOW_READ_BYTES);
    expect(seen.some((s) => s.kind === "lent")).toBe(true);
    // Small reads one at a time end the flow: back to scratch.
    for (let i = 0; i < 40; i++) {
      peer.write(Buffer.alloc(10));
      await settle(10);
    }
    expect(seen.at(-1)!.kind).toBe("scratch");
  });
});

describe("ReadPort memory", () => {
  /** drive feeds a port one read of `n` bytes the way Node does: take the next buffer, report the read. */
  function drive(port: ReadPort, n: number): Buffer {
    const buf = port.onread.buffer();
    port.onread.callback(Math.min(n, buf.length), buf);
    return buf;
  }

  it("grows a flowing port's buffer while reads fill it, up to the maximum", () => {
    const port = new ReadPort(() => undefined);
    cleanups.push(() => port.close());
    drive(port, FLOW_READ_BYTES); // a flow shows in scratch memory
    const sizes: number[] = [];
    for (let i = 0; i < 6; i++) sizes.push(drive(port, 1 << 30).length); // every read fills its buffer
    expect(sizes).toEqual([
      OWN_READ_MIN_BYTES,
      2 * OWN_READ_MIN_BYTES,
      OWN_READ_MAX_BYTES,
      OWN_READ_MAX_BYTES,
      OWN_READ_MAX_BYTES,
      OWN_READ_MAX_BYTES,
    ]);
  });

  it("keeps own buffers of all ports within the budget, the rest reading into scratch", () => {
    const before = readPortStats();
    const ports = Array.from({ length: OWN_READ_BUDGET_BYTES / OWN_READ_MIN_BYTES + 8 }, () => {
      const p = new ReadPort(() => undefined);
      cleanups.push(() => p.close());
      return p;
    });
    const kinds = ports.map((p) => {
      drive(p, FLOW_READ_BYTES);
      return drive(p, FLOW_READ_BYTES).length === OWN_READ_MIN_BYTES ? "own" : "scratch";
    });
    const after = readPortStats();
    expect(after.ownBytes).toBeLessThanOrEqual(OWN_READ_BUDGET_BYTES);
    expect(kinds.filter((k) => k === "own").length).toBe(
      (OWN_READ_BUDGET_BYTES - before.ownBytes) / OWN_READ_MIN_BYTES,
    );
    expect(after.overBudget - before.overBudget).toBeGreaterThanOrEqual(8);
    // Closing the ports gives the budget back.
    for (const p of ports) p.close();
    expect(readPortStats().ownBytes).toBe(before.ownBytes);
  });
});

describe("adoptAccepted", () => {
  it("re-wraps an accepted socket; the server's count and close still follow the connection", async () => {
    const server = createServer();
    const adopted: Socket[] = [];
    const got: Buffer[] = [];
    server.on("connection", (raw) => {
      const port = new ReadPort((chunk) => got.push(Buffer.from(chunk)));
      const s = adoptAccepted(raw, port);
      expect(s).toBeDefined();
      s!.once("close", () => port.close());
      s!.write("from the adopted socket");
      adopted.push(s!);
    });
    await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
    const client = connect({ host: "127.0.0.1", port: (server.address() as AddressInfo).port });
    const reply: Buffer[] = [];
    client.on("data", (d: Buffer) => reply.push(d));
    await new Promise((r) => client.once("connect", r));
    client.write("to the adopted socket");
    await until(() => Buffer.concat(got).toString() === "to the adopted socket", 3000, "read via port");
    await until(() => Buffer.concat(reply).toString() === "from the adopted socket", 3000, "write");
    const count = () => new Promise<number>((r, j) => server.getConnections((e, n) => (e ? j(e) : r(n))));
    expect(await count()).toBe(1);
    const closed = new Promise<void>((r) => server.close(() => r()));
    client.end();
    await closed; // resolves only once the connection (the shell) is gone too
    expect(await count()).toBe(0);
    expect(adopted[0]!.destroyed).toBe(true);
  });

  it("leaves a TLS socket alone", () => {
    const raw = new Socket();
    const tls = new TLSSocket(raw);
    cleanups.push(() => {
      tls.destroy();
      raw.destroy();
    });
    expect(adoptAccepted(tls, new ReadPort())).toBeUndefined();
  });
});
