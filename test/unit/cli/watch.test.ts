import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { main } from "../../../src/cli/main.js";
import { parseHostPort, parseVersions } from "../../../src/cli/commands/watch.js";
import { Peer, freePort, until } from "../controller/fake-peers.js";

let out: string;
let err: string;
beforeEach(() => {
  out = "";
  err = "";
  vi.spyOn(process.stdout, "write").mockImplementation(
    (s: string | Uint8Array) => ((out += String(s)), true),
  );
  vi.spyOn(process.stderr, "write").mockImplementation(
    (s: string | Uint8Array) => ((err += String(s)), true),
  );
});
afterEach(() => vi.restoreAllMocks());

describe("rfboot watch: arguments", () => {
  it("parses HOST:PORT and version lists", () => {
    expect(parseHostPort("127.0.0.1:6653", "--listen")).toEqual({ host: "127.0.0.1", port: 6653 });
    expect(parseHostPort("[::1]:0", "--listen")).toEqual({ host: "::1", port: 0 });
    expect(parseVersions("1.0, 1.3,1.5")).toEqual([1, 4, 6]);
  });

  it.each([
    [["watch"], /--listen HOST:PORT is required/],
    [["watch", "--listen", "6653"], /--listen: expected HOST:PORT/],
    [["watch", "--listen", "h:70000"], /--listen: expected HOST:PORT/],
    [["watch", "--listen", "h:1", "--relay", "x"], /--relay: expected HOST:PORT/],
    [["watch", "--listen", "h:1", "--versions", "1.3,2.0"], /unknown OpenFlow version "2.0"/],
    [["watch", "--listen", "h:1", "--role", "master"], /--role: expected slave, equal or none/],
    [["watch", "--listen", "h:1", "--echo-interval", "0"], /--echo-interval: expected a positive number/],
    [["watch", "--listen", "h:1", "--relay", "h:2", "--role", "slave"], /listen mode only/],
  ])("%j exits 2 with one line naming the problem", async (args, msg) => {
    expect(await main(args)).toBe(2);
    expect(err).toMatch(msg);
    expect(err.trim().split("\n")).toHaveLength(1);
  });
});

describe("rfboot watch: events", () => {
  it("prints one JSON line per event and stops cleanly on SIGTERM", async () => {
    const port = await freePort();
    process.env.RFBOOT_LOG_LEVEL = "silent";
    const run = main(["watch", "--listen", `127.0.0.1:${port}`, "--versions", "1.0,1.3"]);
    let s: Peer | undefined;
    for (let i = 0; i < 100 && !s; i++) {
      s = await Peer.connect(port).catch(() => undefined);
      if (!s) await new Promise((r) => setTimeout(r, 20));
    }
    s!.actAsSwitch({
      dpid: 0xfedcba9876543210n,
      versions: [1, 4],
      ports: [{ no: 1, name: "p1", mac: "aa:bb:cc:dd:ee:01" }],
    });
    await until(() => out.includes("\n"), 3000, "up line");
    expect(JSON.parse(out.split("\n")[0]!)).toEqual({
      event: "up",
      dpid: "fedcba9876543210",
      version: "1.3",
      peer: `127.0.0.1:${s!.socket.localPort}`,
      ports: [{ no: 1, name: "p1", mac: "aa:bb:cc:dd:ee:01" }],
    });
    process.emit("SIGTERM");
    expect(await run).toBe(0);
    const lines = out
      .trim()
      .split("\n")
      .map((l) => JSON.parse(l) as Record<string, unknown>);
    expect(lines.map((l) => l.event)).toEqual(["up", "down"]);
    expect(lines[1]).toMatchObject({ dpid: "fedcba9876543210", reason: "rfboot is stopping" });
    await s!.closed;
    delete process.env.RFBOOT_LOG_LEVEL;
  });
});
