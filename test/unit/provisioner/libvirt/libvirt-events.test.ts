import { chmodSync, mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import {
  LibvirtEvents,
  parseEventLine,
  recordStateOf,
  type DomainEvent,
  type PolledDomain,
} from "../../../../src/provisioner/libvirt/libvirt-events.js";

/** Lines printed by `virsh event --loop --all --timestamp` on this machine (test and qemu drivers). */
const REAL = [
  "2026-11-22 00:47:12.176+0000: event 'lifecycle' for domain 'rfbtv-probe': Defined Added",
  "2026-11-22 00:47:12.196+0000: event 'lifecycle' for domain 'rfbtv-probe': Started Booted",
  "2026-11-22 00:47:12.236+0000: event 'lifecycle' for domain 'rfbtv-probe': Suspended Paused",
  "2026-11-22 00:47:12.301+0000: event 'lifecycle' for domain 'rfbtv-probe': Resumed Unpaused",
  "2026-11-22 00:47:12.466+0000: event 'lifecycle' for domain 'rfbtv-probe': Stopped Saved",
  "2026-11-22 00:47:12.702+0000: event 'lifecycle' for domain 'rfbtv-probe': Stopped Shutdown",
  "2026-11-22 00:47:12.853+0000: event 'lifecycle' for domain 'rfbtv-probe': Undefined Removed",
];

describe("parseEventLine", () => {
  it("parses lifecycle lines with timestamp, event and detail", () => {
    const evs = REAL.map((l) => parseEventLine(l, "h1"));
    expect(evs.map((e) => e && e.type === "lifecycle" && [e.event, e.detail])).toEqual([
      ["Defined", "Added"],
      ["Started", "Booted"],
      ["Suspended", "Paused"],
      ["Resumed", "Unpaused"],
      ["Stopped", "Saved"],
      ["Stopped", "Shutdown"],
      ["Undefined", "Removed"],
    ]);
    expect(evs[0]).toMatchObject({ host: "h1", domain: "rfbtv-probe", source: "event" });
    expect(evs[0]!.at.toISOString()).toBe("2026-11-22T00:47:12.176Z");
  });
  it("keeps other event kinds and lines without timestamp", () => {
    expect(
      parseEventLine("2026-11-22 00:47:12.176+0100: event 'reboot' for domain 'a b'", "h"),
    ).toMatchObject({
      type: "other",
      kind: "reboot",
      domain: "a b",
      detail: "",
    });
    expect(parseEventLine("event 'lifecycle' for domain 'x': Crashed Panicked", "h")).toMatchObject({
      type: "lifecycle",
      event: "Crashed",
      detail: "Panicked",
    });
    expect(parseEventLine("event 'lifecycle' for domain 'x': Exploded", "h")).toMatchObject({
      type: "other",
      kind: "lifecycle",
      detail: "Exploded",
    });
  });
  it("ignores non-event lines and garbage", () => {
    for (const l of ["", "events received: 3", "\u0000\u00ff", "event 'x' for dom"])
      expect(parseEventLine(l, "h")).toBeUndefined();
  });
});

describe("LibvirtEvents", () => {
  const dir = mkdtempSync(join(tmpdir(), "rfbtv-ev-"));
  it("streams parsed events and restarts the child when it exits", async () => {
    const fake = join(dir, "virsh");
    writeFileSync(
      fake,
      `#!/bin/sh\necho "$*" > ${dir}/args\nprintf "%s\\n" "${REAL[1]}"\nprintf "garbage\\n"\nexit 1\n`,
    );
    chmodSync(fake, 0o755);
    const ev = new LibvirtEvents({
      host: { name: "h1", uri: "test:///default" },
      virsh: fake,
      restartMinMs: 20,
      restartMaxMs: 40,
    });
    const got: DomainEvent[] = [];
    ev.on("event", (e: DomainEvent) => got.push(e));
    ev.start();
    const t0 = Date.now();
    while (got.length < 3 && Date.now() - t0 < 5000) await new Promise((r) => setTimeout(r, 10));
    await ev.stop();
    expect(got.length).toBeGreaterThanOrEqual(3);
    expect(
      got.every((e) => e.type === "lifecycle" && e.event === "Started" && e.domain === "rfbtv-probe"),
    ).toBe(true);
    expect(ev.restarts).toBeGreaterThanOrEqual(2);
    const { readFileSync } = await import("node:fs");
    expect(readFileSync(join(dir, "args"), "utf8").trim()).toBe(
      "-c test:///default event --loop --all --timestamp",
    );
  });
  it("polling reports differences (new, changed, gone) and poll errors", async () => {
    const fake = join(dir, "sleeper");
    writeFileSync(fake, "#!/bin/sh\nexec sleep 30\n");
    chmodSync(fake, 0o755);
    const states: PolledDomain[][] = [
      [
        { name: "a", state: "running" },
        { name: "b", state: "shutoff" },
      ],
      [
        { name: "a", state: "paused" },
        { name: "c", state: "running" },
      ],
    ];
    let n = 0;
    const ev = new LibvirtEvents({
      host: { name: "h1", uri: "test:///default" },
      virsh: fake,
      pollMs: 60_000,
      poll: async () => {
        if (n >= states.length) throw new Error("libvirtd down");
        return states[n++]!;
      },
    });
    const got: DomainEvent[] = [];
    const errs: unknown[] = [];
    ev.on("event", (e: DomainEvent) => got.push(e));
    ev.on("poll-error", (e: unknown) => errs.push(e));
    ev.start();
    await ev.pollOnce(); // seeds from states[0] (first poll started by start())
    await ev.pollOnce();
    await ev.pollOnce();
    await ev.stop();
    expect(got.map((e) => e.type === "state" && [e.domain, e.previous, e.state])).toEqual([
      ["a", "running", "paused"],
      ["c", "undefined", "running"],
      ["b", "shutoff", "undefined"],
    ]);
    expect(errs).toHaveLength(1);
  });
});

describe("recordStateOf", () => {
  it("maps the real event lines to record states (saved = suspended; start and pause leave the record)", () => {
    const states = REAL.map((l) => {
      const e = parseEventLine(l, "h1");
      return e ? recordStateOf(e) : "unparsed";
    });
    expect(states).toEqual([undefined, undefined, undefined, undefined, "suspended", "stopped", "missing"]);
  });

  it("maps polled states: shut off = stopped, gone = missing, running = no change", () => {
    const polled = (state: "shutoff" | "undefined" | "running"): DomainEvent => ({
      type: "state",
      host: "h1",
      domain: "vm1",
      state,
      previous: "running",
      at: new Date(0),
      source: "poll",
    });
    expect([polled("shutoff"), polled("undefined"), polled("running")].map(recordStateOf)).toEqual([
      "stopped",
      "missing",
      undefined,
    ]);
  });
});
