/**
 * Ports of a connected switch reaching its VM, on fakes: a port added to a template VM's switch gets its
 * rfconfig row and then its NIC (live and in the definition) with RouteFlow's MAC and device name; a
 * deleted port keeps both under policy keep, and under detach loses the NIC and exactly its row; a port of
 * a configured VM outside its data ports changes nothing.
 */
import { afterEach, describe, expect, it } from "vitest";
import { settle } from "./fakes.js";
import { hex16, joinAndSettle, rig, uri, type Rig } from "./rig.js";

let r: Rig | undefined;
afterEach(async () => {
  await r?.stop();
  r = undefined;
});

const TEMPLATE = (portDeleted: string) =>
  `policies: { leave: { action: keep }, unknownDatapath: { action: template, template: { dataPorts: switch } }, portDeleted: { action: ${portDeleted} } }\nreadiness: { consoleMarker: null }`;

/** ifaces lists the `<target dev=...>` names of a domain's document on the fake host. */
function ifaces(x: Rig, vm: string): string[] {
  const xml = x.libvirt.host(uri(1)).domains.get(vm)?.xml ?? "";
  return [...xml.matchAll(/<target dev=["']([^"']+)["']/g)].map((m) => m[1]!);
}

async function portAndSettle(x: Rig, dpid: bigint, reason: "add" | "delete" | "modify", no: number) {
  x.switches.port(dpid, reason, no);
  await settle();
  await x.daemon.idle();
  await settle();
}

describe("ports of a connected switch", () => {
  it("an added port of a template VM: its row is written, then its NIC attached live and persistent", async () => {
    r = await rig({ extra: TEMPLATE("keep") });
    await joinAndSettle(r, 0x42n, [1, 2]);
    const vm = r.seen.ensured[0]!.vm;
    expect(ifaces(r, vm)).toEqual([`${vm}.1`, `${vm}.2`]);
    const rowsBefore = r.store.rows.length;
    // How many attach-device calls libvirt had seen when each row write began.
    const attachesAtRow: number[] = [];
    const upsert = r.store.upsertRfconfigRows.bind(r.store);
    r.store.upsertRfconfigRows = (rows) => {
      attachesAtRow.push(r!.libvirt.argsOf(uri(1), "attach-device").length);
      return upsert(rows);
    };
    await portAndSettle(r, 0x42n, "add", 3);
    expect(attachesAtRow).toEqual([0]);
    // The row: exactly eth3 <-> switch port 3, written before any attach-device was sent.
    expect(r.store.rows.slice(rowsBefore).map((rows) => rows.map((x) => [x.vm_port, x.dp_port]))).toEqual([
      [["3", "3"]],
    ]);
    const attach = r.libvirt.argsOf(uri(1), "attach-device");
    expect(attach).toHaveLength(1);
    expect(attach[0]!.slice(0, 2)).toEqual(["attach-device", vm]);
    expect(attach[0]!.slice(3)).toEqual(["--live", "--config"]);
    expect(ifaces(r, vm)).toEqual([`${vm}.1`, `${vm}.2`, `${vm}.3`]);
    expect(r.seen.port).toEqual([{ dpidHex: hex16(0x42n), vm, port: 3, action: "attached" }]);
    // The same port reported again changes nothing.
    await portAndSettle(r, 0x42n, "add", 3);
    expect(r.libvirt.argsOf(uri(1), "attach-device")).toHaveLength(1);
    expect(ifaces(r, vm)).toHaveLength(3);
  });

  it("a deleted port under policy keep: NIC and row stay", async () => {
    r = await rig({ extra: TEMPLATE("keep") });
    await joinAndSettle(r, 0x42n, [1, 2]);
    const vm = r.seen.ensured[0]!.vm;
    await portAndSettle(r, 0x42n, "delete", 2);
    expect(r.libvirt.argsOf(uri(1), "detach-device")).toEqual([]);
    expect(r.store.deleted).toEqual([]);
    expect(ifaces(r, vm)).toEqual([`${vm}.1`, `${vm}.2`]);
  });

  it("a deleted port under policy detach: the NIC is detached, then exactly its row removed", async () => {
    r = await rig({ extra: TEMPLATE("detach") });
    await joinAndSettle(r, 0x42n, [1, 2]);
    const vm = r.seen.ensured[0]!.vm;
    await portAndSettle(r, 0x42n, "delete", 2);
    expect(r.libvirt.argsOf(uri(1), "detach-device")).toHaveLength(1);
    expect(ifaces(r, vm)).toEqual([`${vm}.1`]);
    expect(r.store.deleted.map((rows) => rows.map((x) => [x.vm_port, x.dp_port]))).toEqual([[["2", "2"]]]);
  });

  it("a port of a configured VM outside its data ports changes nothing", async () => {
    r = await rig();
    await joinAndSettle(r, 1n, [1, 2]);
    await portAndSettle(r, 1n, "add", 9);
    expect(r.libvirt.argsOf(uri(1), "attach-device")).toEqual([]);
    expect(r.seen.port).toEqual([]);
  });
});

describe("rows written after both sides registered (a port added to a connected switch)", () => {
  const LATE = (action: string) =>
    `policies: { leave: { action: keep }, unknownDatapath: { action: template, template: { dataPorts: switch } }, lateRows: { action: ${action} } }\nreadiness: { consoleMarker: null }`;

  it("policy report: records it and says what to do; the switch keeps its connection", async () => {
    r = await rig({ extra: LATE("report") });
    await joinAndSettle(r, 0x42n, [1, 2]);
    const vm = r.seen.ensured[0]!.vm;
    expect(r.store.eventsOf(hex16(0x42n))).not.toContain("late-rows");
    await portAndSettle(r, 0x42n, "add", 3);
    const late = r.store.events.filter((e) => e.kind === "late-rows");
    expect(late).toHaveLength(1);
    expect(late[0]!.detail).toMatch(/written after the VM and the switch registered \(port 3 added\)/);
    expect(late[0]!.detail).toMatch(/Reconnect the switch .* restart rfclient in /);
    expect(late[0]!.detail).toContain(vm);
    expect((await r.store.getRecord(hex16(0x42n)))?.lastError).toMatchObject({ kind: "late-rows" });
    expect(r.switches.disconnected).toEqual([]);
    // The same port again attaches nothing: nothing late either.
    await portAndSettle(r, 0x42n, "add", 3);
    expect(r.store.events.filter((e) => e.kind === "late-rows")).toHaveLength(1);
  });

  it("policy reconnect (relay): closes the switch's connection once the row is written", async () => {
    r = await rig({
      extra: LATE("reconnect"),
      openflow:
        "openflow: { mode: relay, listen: { host: 127.0.0.1, port: 6653 }, upstream: { host: 127.0.0.1, port: 6633 } }",
    });
    await joinAndSettle(r, 0x42n, [1, 2]);
    const rowsBefore = r.store.rows.length;
    await portAndSettle(r, 0x42n, "add", 3);
    expect(r.store.rows.length).toBe(rowsBefore + 1);
    expect(r.switches.disconnected).toEqual([
      { dpid: 0x42n, reason: expect.stringMatching(/rfconfig rows written late \(port 3 added\)/) as string },
    ]);
    const late = r.store.events.filter((e) => e.kind === "late-rows");
    expect(late[0]!.detail).toMatch(/rfboot closed the switch's connection/);
  });

  it("reconnect is refused in listen mode, naming the key", async () => {
    await expect(rig({ extra: LATE("reconnect") })).rejects.toThrow(/policies\.lateRows\.action.*relay/);
  });
});
