/**
 * The relay's reply poll (src/controller/replypoll.ts): which messages are requests and replies per
 * OpenFlow version, when a poll starts and ends, its CPU budget, and that a real relay polls while an
 * echo's reply is on its way.
 */
import { afterEach, describe, expect, it } from "vitest";
import { Framer, buildHello, createController, encodeMessage } from "../../../src/controller/index.js";
import { KIND_REPLY, KIND_REQUEST, ReplyPoll, messageKind } from "../../../src/controller/replypoll.js";
import { FakeUpstream, Peer, startQuietRelay, until } from "./fake-peers.js";

const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const f of cleanups.splice(0).reverse()) await f();
});

const turn = () => new Promise<void>((r) => setImmediate(r));

describe("messageKind", () => {
  it("knows the request/reply pairs of each version and nothing else", () => {
    for (let v = 1; v <= 6; v++) {
      expect(messageKind(v, 2), `echo request ${v}`).toBe(1);
      expect(messageKind(v, 3), `echo reply ${v}`).toBe(2);
      expect(messageKind(v, 1), `error ${v}`).toBe(2);
      expect(messageKind(v, 10), `packet-in ${v}`).toBe(0);
      expect(messageKind(v, 14), `flow-mod ${v}`).toBe(0);
    }
    // BARRIER and STATS moved between 1.0 and 1.1.
    expect([messageKind(1, 18), messageKind(1, 19), messageKind(1, 16)]).toEqual([1, 2, 1]);
    expect([messageKind(4, 20), messageKind(4, 21), messageKind(4, 18), messageKind(4, 16)]).toEqual([
      1, 2, 1, 0,
    ]);
    // ROLE exists from 1.2, GET_ASYNC from 1.3; 1.0's vendor messages are neither.
    expect([messageKind(2, 24), messageKind(3, 24), messageKind(3, 26), messageKind(4, 26)]).toEqual([
      0, 1, 0, 1,
    ]);
    expect(messageKind(1, 4)).toBe(0);
    expect(messageKind(9, 2)).toBe(0); // unknown version
  });
});

describe("messageKind, for every version and type byte", () => {
  it("equals the request/reply pairs written out by number from the specs", () => {
    // OpenFlow 1.0.0 §5.1 and 1.5.1 §7.1, by number: [request, reply] per version; ERROR (1) is a reply.
    const pairs = (v: number): [number, number][] =>
      v === 1
        ? [
            [2, 3],
            [5, 6],
            [7, 8],
            [16, 17],
            [18, 19],
            [20, 21],
          ]
        : [
            [2, 3],
            [5, 6],
            [7, 8],
            [18, 19],
            [20, 21],
            ...(v <= 4 ? [[22, 23] as [number, number]] : []),
            ...(v >= 3 ? [[24, 25] as [number, number]] : []),
            ...(v >= 4 ? [[26, 27] as [number, number]] : []),
          ];
    for (let v = 0; v <= 8; v++) {
      const want = new Array<number>(256).fill(0);
      if (v >= 1 && v <= 6) {
        want[1] = KIND_REPLY;
        for (const [req, rep] of pairs(v)) {
          want[req] = KIND_REQUEST;
          want[rep] = KIND_REPLY;
        }
      }
      const got = Array.from({ length: 256 }, (_, t) => messageKind(v, t));
      expect(got, `version ${v}`).toEqual(want);
    }
  });
});

describe("ReplyPoll", () => {
  function clocked(windowUs: number, cpuShare: number) {
    let t = 1000;
    const poll = new ReplyPoll({ windowUs, cpuShare }, () => t);
    return { poll, advance: (ms: number) => (t += ms) };
  }

  it("polls from a request until its reply passes", async () => {
    const { poll, advance } = clocked(1000, 0.25);
    poll.sawRequests(1);
    expect(poll.stats.polls).toBe(1);
    for (let i = 0; i < 5; i++) {
      advance(0.05);
      await turn();
    }
    expect(poll.stats.answered).toBe(0); // still polling: the reply has not passed
    poll.sawReplies(1);
    await turn();
    await turn();
    expect(poll.stats).toMatchObject({ polls: 1, answered: 1, expired: 0 });
    expect(poll.stats.polledMs).toBeGreaterThan(0.2);
  });

  it("gives up at the window's end, and one poll serves requests that overlap", async () => {
    const { poll, advance } = clocked(500, 0.25);
    poll.sawRequests(2);
    advance(0.3);
    poll.sawRequests(1); // extends the window; no second poll
    await turn();
    poll.sawReplies(1);
    advance(0.6);
    await turn();
    await turn();
    expect(poll.stats).toMatchObject({ polls: 1, answered: 0, expired: 1 });
  });

  it("stops at its CPU budget and polls again once the budget has refilled", async () => {
    // 1% of a core: a 10 ms bucket refilled at 10 ms per second.
    const { poll, advance } = clocked(1_000_000, 0.01);
    poll.sawRequests(1);
    for (let i = 0; i < 30 && poll.stats.expired === 0; i++) {
      advance(1);
      await turn();
    }
    expect(poll.stats.expired).toBe(1);
    expect(poll.stats.polledMs).toBeLessThanOrEqual(12);
    poll.sawRequests(1);
    expect(poll.stats.overBudget).toBe(1); // spent: the relay sleeps as before
    advance(2000); // refilled
    poll.sawRequests(1);
    expect(poll.stats.polls).toBe(2);
    poll.sawReplies(1); // (ends the poll: this test's clock stands still otherwise)
    await turn();
    await turn();
    expect(poll.stats.answered).toBe(1);
  });

  it("is off with a zero window or a zero share", () => {
    expect(new ReplyPoll({ windowUs: 0, cpuShare: 0.25 }).enabled).toBe(false);
    expect(new ReplyPoll({ windowUs: 1000, cpuShare: 0 }).enabled).toBe(false);
    const p = new ReplyPoll({ windowUs: 0, cpuShare: 0.25 });
    p.sawRequests(3);
    expect(p.stats.polls).toBe(0);
  });
});

describe("reply poll in a relay", () => {
  async function relay(over: Record<string, number> = {}) {
    const up = new FakeUpstream((p) => {
      p.send(buildHello([4], 1));
      // An upstream that answers echoes, as rfproxy does.
      const framer = new Framer();
      p.socket.on("data", (chunk: Buffer) => {
        for (const f of framer.push(chunk)) {
          if (f[1] !== 2) continue;
          const reply = Buffer.from(f);
          reply[1] = 3;
          p.send(reply);
        }
      });
    });
    await up.listen(0);
    cleanups.push(() => up.close());
    const { c, port } = await startQuietRelay(up.port, over);
    cleanups.push(() => c.close());
    const s = await Peer.connect(port);
    cleanups.push(() => void s.destroy());
    s.send(buildHello([4], 1));
    await s.waitFor(() => s.received >= 8, 3000, "hello at switch");
    return { c, s };
  }

  it("polls while a switch's echo is answered upstream, and ends with the reply", async () => {
    const { c, s } = await relay();
    expect(c.replyPoll).toBeDefined();
    const before = { ...c.replyPoll!.stats };
    for (let xid = 100; xid < 110; xid++) {
      s.send(encodeMessage({ type: "echo_request", version: 4, xid, data: new Uint8Array([1, 2, 3]) }));
      const r = await s.next("echo_reply");
      expect(r.xid).toBe(xid);
    }
    await until(() => c.replyPoll!.stats.polls - before.polls >= 10, 3000, "polls");
    const st = c.replyPoll!.stats;
    expect(st.polls - before.polls).toBe(10);
    // Each poll ended when the reply passed (a 1 ms window is far longer than a local echo here).
    expect(st.answered - before.answered).toBeGreaterThanOrEqual(8);
  });

  it("never polls with relayReplyPollUs 0", async () => {
    const { c, s } = await relay({ relayReplyPollUs: 0 });
    expect(c.replyPoll).toBeUndefined();
    s.send(encodeMessage({ type: "echo_request", version: 4, xid: 7, data: new Uint8Array() }));
    expect((await s.next("echo_reply")).xid).toBe(7);
  });

  it("refuses a bad window or share, naming the option", () => {
    for (const [k, v] of [
      ["relayReplyPollUs", -1],
      ["relayReplyPollUs", Number.NaN],
      ["relayReplyPollCpuShare", 1.5],
    ] as const) {
      expect(() =>
        createController({ listen: { host: "127.0.0.1", port: 0 }, mode: "relay", [k]: v }),
      ).toThrow(new RegExp(k));
    }
  });
});
