/** `rfboot events`' pieces: --since ages and times, the line format, and the follower printing each event once. */
import { describe, expect, it } from "vitest";
import { Follower, formatEvent, parseSince } from "../../../src/cli/commands/events.js";

const NOW = new Date("2026-01-01T12:00:00Z");
const ev = (id: string, at: string, kind = "join") => ({
  id,
  at: new Date(at),
  kind,
  dpid: "00000000000000a1",
});

describe("parseSince", () => {
  it.each([
    ["30s", "2026-01-01T11:59:30.000Z"],
    ["10m", "2026-01-01T11:50:00.000Z"],
    ["1.5h", "2026-01-01T10:30:00.000Z"],
    ["1d", "2025-12-31T12:00:00.000Z"],
    ["2025-12-31T08:00:00Z", "2025-12-31T08:00:00.000Z"],
  ])("%s", (text, want) => expect(parseSince(text, NOW).toISOString()).toBe(want));

  it.each(["yesterday", "10", "5w", ""])("refuses %j", (text) =>
    expect(() => parseSince(text, NOW)).toThrow(/--since: expected an age/),
  );
});

describe("Follower", () => {
  it("prints each event once across polls that overlap at the latest time", () => {
    const f = new Follower();
    expect(
      f.fresh([ev("1", "2026-01-01T10:00:00Z"), ev("2", "2026-01-01T10:00:01Z")]).map((e) => e.id),
    ).toEqual(["1", "2"]);
    expect(f.since()?.toISOString()).toBe("2026-01-01T10:00:01.000Z");
    // The next poll is `at >= since`: event 2 comes back, with a new one at the same millisecond.
    expect(
      f.fresh([ev("2", "2026-01-01T10:00:01Z"), ev("3", "2026-01-01T10:00:01Z")]).map((e) => e.id),
    ).toEqual(["3"]);
    expect(
      f
        .fresh([
          ev("2", "2026-01-01T10:00:01Z"),
          ev("3", "2026-01-01T10:00:01Z"),
          ev("4", "2026-01-01T10:00:05Z"),
        ])
        .map((e) => e.id),
    ).toEqual(["4"]);
  });

  it("skips what is older than --since", () => {
    const f = new Follower(new Date("2026-01-01T10:00:00Z"));
    expect(
      f.fresh([ev("1", "2026-01-01T09:59:59Z"), ev("2", "2026-01-01T10:00:00Z")]).map((e) => e.id),
    ).toEqual(["2"]);
  });
});

describe("formatEvent", () => {
  it("is time, dpid, VM, kind, detail; missing ones are dashes", () => {
    expect(
      formatEvent({ ...ev("1", "2026-01-01T10:00:00Z", "ready"), vm: "rfvm1", detail: "console marker" }),
    ).toBe("2026-01-01T10:00:00.000Z  00000000000000a1  rfvm1  ready  console marker");
    expect(formatEvent({ id: "2", at: new Date("2026-01-01T10:00:00Z"), kind: "reconciled" })).toBe(
      "2026-01-01T10:00:00.000Z  -  -  reconciled",
    );
  });
});
