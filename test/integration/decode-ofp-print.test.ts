/**
 * The names `rfboot decode` puts beside the numbers, checked against an independent oracle: Open
 * vSwitch's `ovs-ofctl ofp-print` (one message) and `ofp-parse` (a file of messages) on the same
 * bytes. Port status (1.0, 1.3, 1.5), features replies (1.0-1.3), reserved ports, roles and every
 * error code rfboot names on every version. OVS spells a few names its own way; SPELLING lists
 * those, so that any other difference fails.
 */
import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, expect, it } from "vitest";
import { toJson } from "../../src/cli/commands/decode.js";
import {
  OFPERR10,
  OFPERR11,
  OFPET10,
  OFPET11,
  OFPP10,
  OFPP11,
  OFPCR_ROLE,
  decodeMessage,
  encodeMessage,
  type OfMessage,
  type Port,
} from "../../src/controller/codec/index.js";
import { SHARED, describeWith } from "../helpers/env.js";

const ENV = { ...process.env, LC_ALL: "C" };
const VECTORS = join(SHARED, "openflow-vectors", "ryu", "packet_data");
const tmp = mkdtempSync(join(tmpdir(), "rfbt-ofp-print-"));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

function ofpPrint(bytes: Uint8Array): string {
  return execFileSync("ovs-ofctl", ["ofp-print", Buffer.from(bytes).toString("hex")], {
    encoding: "utf8",
    env: ENV,
    stdio: ["ignore", "pipe", "ignore"],
  });
}

/** shown is what `rfboot decode` prints for the bytes, parsed. */
function shown(bytes: Uint8Array): Record<string, unknown> {
  return JSON.parse(toJson(decodeMessage(bytes))) as Record<string, unknown>;
}

/**
 * SPELLING maps rfboot's name (the spec's) to how ovs-ofctl prints it where the two differ. OVS
 * writes speeds with a hyphen and the negotiation bits with AUTO_, abbreviates port status reasons,
 * prints 1.0 actions by its own lower-case action names, calls 1.0's NONE port ANY, and names a
 * role or error code once for all versions (BAD_VENDOR, IS_SECONDARY, "secondary").
 */
const SPELLING: Readonly<Record<string, string>> = {
  AUTONEG: "AUTO_NEG",
  PAUSE: "AUTO_PAUSE",
  PAUSE_ASYM: "AUTO_PAUSE_ASYM",
  ADD: "ADD",
  DELETE: "DEL",
  MODIFY: "MOD",
  NONE: "ANY",
};
const feature = (n: string): string => SPELLING[n] ?? n.replace(/^(\d+[MGT]B)_(HD|FD)$/, "$1-$2");

const ACTIONS10: Readonly<Record<string, string>> = {
  OUTPUT: "output",
  SET_VLAN_VID: "set_vlan_vid",
  SET_VLAN_PCP: "set_vlan_pcp",
  STRIP_VLAN: "strip_vlan",
  SET_DL_SRC: "mod_dl_src",
  SET_DL_DST: "mod_dl_dst",
  SET_NW_SRC: "mod_nw_src",
  SET_NW_DST: "mod_nw_dst",
  SET_NW_TOS: "mod_nw_tos",
  SET_TP_SRC: "mod_tp_src",
  SET_TP_DST: "mod_tp_dst",
  ENQUEUE: "enqueue",
};

/** ERROR_SPELLING: "TYPE/CODE" (rfboot's names) -> OVS's code name, where OVS uses one name for all versions. */
const ERROR_SPELLING: Readonly<Record<string, string>> = {
  "FLOW_MOD_FAILED/ALL_TABLES_FULL": "TABLE_FULL",
  "BAD_REQUEST/BAD_EXPERIMENTER": "BAD_VENDOR",
  "BAD_REQUEST/BAD_EXP_TYPE": "BAD_SUBTYPE",
  "BAD_REQUEST/BAD_MULTIPART": "BAD_STAT",
  "BAD_REQUEST/IS_SLAVE": "IS_SECONDARY",
  "BAD_ACTION/BAD_EXPERIMENTER": "BAD_VENDOR",
  "BAD_ACTION/BAD_EXP_TYPE": "BAD_VENDOR_TYPE",
  "BAD_ACTION/BAD_EXPERIMENTER_TYPE": "BAD_VENDOR_TYPE",
  "BAD_INSTRUCTION/UNSUP_EXP_INST": "BAD_EXPERIMENTER",
};

/**
 * OVS_CANNOT lists the codes ovs-ofctl 3.1 itself misreads: TABLE_FEATURES_FAILED 2-4 on 1.4+ (a
 * decode error) and BAD_ARGUMENT on 1.3 (printed as a property error).
 */
const OVS_CANNOT = new Set(["5/13/2", "5/13/3", "5/13/4", "6/13/2", "6/13/3", "6/13/4", "4/13/4"]);

/** field returns the words of one "name: words" line of an ofp-print port block ("0" for none). */
function field(text: string, name: string): string[] {
  const m = new RegExp(`^\\s+${name}:\\s+(.*)$`, "m").exec(text);
  if (!m) return [];
  const words = m[1]!.trim().split(/\s+/);
  return words.length === 1 && words[0] === "0" ? [] : words;
}

const sorted = (xs: readonly string[]): string[] => [...xs].sort();

const port = (portNo: number, extra: Partial<Port> = {}): Port => ({
  portNo,
  hwAddr: "02:00:00:00:00:01",
  name: "br0",
  config: 0,
  state: 0,
  curr: 0,
  advertised: 0,
  supported: 0,
  peer: 0,
  currSpeed: 0,
  maxSpeed: 0,
  ...extra,
});

describeWith(["ovs"], "rfboot decode names agree with ovs-ofctl ofp-print", () => {
  const portStatuses: [string, Uint8Array][] = [
    [
      "1.0, every config bit, STP_BLOCK + LINK_DOWN, every feature",
      encodeMessage({
        type: "port_status",
        version: 1,
        xid: 1,
        reason: 2,
        port: port(1, {
          config: 0x7f,
          state: 0x301,
          curr: 0xfff,
          advertised: 0x2a0,
          supported: 0x5,
          peer: 0x820,
        }),
      }),
    ],
    [
      "1.0, STP_FORWARD",
      encodeMessage({ type: "port_status", version: 1, xid: 2, reason: 0, port: port(2, { state: 0x200 }) }),
    ],
    ...([4, 6] as const).map((version): [string, Uint8Array] => [
      `version byte ${version}, every config, state and feature bit`,
      encodeMessage({
        type: "port_status",
        version,
        xid: 3,
        reason: 1,
        port: port(3, {
          config: 0x65,
          state: 0x7,
          curr: 0xffff,
          advertised: 0x2820,
          supported: 0x8000,
          peer: 0x1,
        }),
      }),
    ]),
    ["Ryu of13/4-39 (1.3)", readFileSync(join(VECTORS, "of13", "4-39-ofp_port_status.packet"))],
    [
      "Ryu of15 port_status (1.5)",
      readFileSync(join(VECTORS, "of15", "libofproto-OFP15-port_status.packet")),
    ],
  ];

  it.each(portStatuses)("PORT_STATUS %s: reason, config, state and features", (_name, bytes) => {
    const ours = shown(bytes) as { reasonName: string; port: Record<string, string[]> };
    const text = ofpPrint(bytes);
    expect(text).toMatch(new RegExp(`OFPT_PORT_STATUS .*\\): ${SPELLING[ours.reasonName]}: `));
    expect(sorted(field(text, "config"))).toEqual(sorted(ours.port.configNames!));
    // ovs-ofctl 3.1 glues the STP state to the next word ("STP_BLOCKLINK_DOWN"): split it again.
    const state = field(text, "state").flatMap((w) =>
      w.replace(/^(STP_[A-Z]+?)(LINK_DOWN)$/, "$1 $2").split(" "),
    );
    expect(sorted(state)).toEqual(sorted(ours.port.stateNames!));
    for (const [ovs, key] of [
      ["current", "currNames"],
      ["advertised", "advertisedNames"],
      ["supported", "supportedNames"],
      ["peer", "peerNames"],
    ] as const) {
      expect(field(text, ovs), ovs).toEqual(ours.port[key]!.map(feature));
    }
  });

  it.each([
    [1, OFPP10],
    [4, OFPP11],
  ] as const)(
    "reserved port numbers on version byte %i: the names ofp-print puts before (name)",
    (version, table) => {
      for (const [name, portNo] of Object.entries(table)) {
        const bytes = encodeMessage({ type: "port_status", version, xid: 1, reason: 0, port: port(portNo) });
        const ours = shown(bytes) as { port: { portNoName: string } };
        expect(ours.port.portNoName).toBe(name);
        expect(ofpPrint(bytes)).toMatch(new RegExp(`: ADD: ${SPELLING[name] ?? name}\\(br0\\): `));
      }
    },
  );

  it("FEATURES_REPLY 1.0-1.3: capabilities (ofp-print leaves out bits it has no name for) and 1.0 actions", () => {
    const replies: OfMessage[] = [
      {
        type: "features_reply",
        version: 1,
        xid: 1,
        datapathId: 1n,
        nBuffers: 0,
        nTables: 1,
        capabilities: 0xef,
        actions: 0xfff,
        ports: [],
      },
      ...[2, 3].map((version): OfMessage => ({
        type: "features_reply",
        version,
        xid: 1,
        datapathId: 1n,
        nBuffers: 0,
        nTables: 1,
        capabilities: 0x1ff,
        reserved: 0,
        ports: [],
      })),
      {
        type: "features_reply",
        version: 4,
        xid: 1,
        datapathId: 1n,
        nBuffers: 0,
        nTables: 1,
        auxiliaryId: 0,
        capabilities: 0x16f,
        reserved: 0,
      },
    ];
    const bytes = [
      ...replies.map((m) => encodeMessage(m)),
      readFileSync(join(VECTORS, "of10", "1-6-ofp_switch_features.packet")),
      readFileSync(join(VECTORS, "of13", "4-6-ofp_features_reply.packet")),
    ];
    for (const b of bytes) {
      const ours = shown(b) as { capabilitiesNames: string[]; actionsNames?: string[] };
      const text = ofpPrint(b);
      const caps = /^capabilities: (.*)$/m.exec(text)![1]!.trim().split(/\s+/);
      expect(sorted(caps)).toEqual(sorted(ours.capabilitiesNames.filter((n) => !n.startsWith("0x"))));
      if (ours.actionsNames) {
        const actions = /^actions: (.*)$/m.exec(text)![1]!.trim().split(/\s+/);
        expect(sorted(actions)).toEqual(sorted(ours.actionsNames.map((n) => ACTIONS10[n]!)));
      }
    }
  });

  it("ROLE_REQUEST 1.3: every role", () => {
    const ovsRole: Record<string, RegExp> = {
      NOCHANGE: /role=nochange/,
      EQUAL: /role=equal/,
      MASTER: /role=(master|primary)/,
      SLAVE: /role=(slave|secondary)/,
    };
    for (const [name, role] of Object.entries(OFPCR_ROLE)) {
      const bytes = encodeMessage({ type: "role_request", version: 4, xid: 1, role, generationId: 0n });
      expect(shown(bytes).roleName).toBe(name);
      expect(ofpPrint(bytes)).toMatch(ovsRole[name]!);
    }
  });

  it("ERROR: every type and code rfboot names on every version, in one ofp-parse run", () => {
    const cases: { version: number; errType: number; code: number; typeName: string; codeName: string }[] =
      [];
    for (let version = 1; version <= 6; version++) {
      const types =
        version === 1
          ? Object.entries(OFPET10)
          : Object.entries(OFPET11).flatMap(([n, [t, since]]) => (version >= since ? [[n, t] as const] : []));
      for (const [typeName, errType] of types) {
        const codes = (version === 1 ? OFPERR10 : OFPERR11)[typeName] ?? [];
        codes.forEach((_entry, code) => cases.push({ version, errType, code, typeName, codeName: "" }));
      }
    }
    const frames: Buffer[] = [];
    for (const [i, c] of cases.entries()) {
      const bytes = encodeMessage({
        type: "error",
        version: c.version,
        xid: i,
        errType: c.errType,
        code: c.code,
        data: new Uint8Array(0),
      });
      c.codeName = (shown(bytes).codeName as string | null) ?? "";
      frames.push(bytes);
    }
    const file = join(tmp, "errors.bin");
    writeFileSync(file, Buffer.concat(frames));
    const text = execFileSync("ovs-ofctl", ["ofp-parse", file], { encoding: "utf8", env: ENV });
    const ovs = new Map<number, string>();
    for (const m of text.matchAll(
      /^OFPT_ERROR .*\(xid=0x([0-9a-f]+)\): (?:OFP[A-Z]+_([A-Z0-9_]+)|(.*))$/gm,
    )) {
      ovs.set(parseInt(m[1]!, 16), m[2] ?? m[3]!);
    }
    let checked = 0;
    for (const [i, c] of cases.entries()) {
      if (c.codeName === "") continue; // a code that first appears in a later version
      if (OVS_CANNOT.has(`${c.version}/${c.errType}/${c.code}`)) continue;
      const want = ERROR_SPELLING[`${c.typeName}/${c.codeName}`] ?? c.codeName;
      expect(ovs.get(i), `version byte ${c.version} ${c.typeName} code ${c.code}`).toBe(want);
      checked++;
    }
    expect(checked).toBeGreaterThan(400);
  });

  it("HELLO with a malformed element list: both show it (ofp-print as unknown data), neither refuses it", () => {
    const frame = Buffer.from("04000018000000050001000800000012000100070000001200", "hex").subarray(0, 24);
    const text = ofpPrint(frame);
    expect(text).toMatch(/^OFPT_HELLO \(OF1\.3\) \(xid=0x5\):/);
    expect(text).toMatch(/unknown data in hello/);
    const ours = JSON.parse(toJson(decodeMessage(frame, { lenientHello: true }))) as Record<string, unknown>;
    expect(ours).toMatchObject({ type: "hello", xid: 5, trailing: "0001000700000012" });
    expect(ours.problem).toMatch(/version bitmap length at offset 18: 7 is not 4 \+ a multiple of 4/);
  });

  it("ERROR HELLO_FAILED: type and code names, and the text both print", () => {
    const bytes = encodeMessage({
      type: "error",
      version: 4,
      xid: 0,
      errType: 0,
      code: 0,
      data: new TextEncoder().encode("no common version"),
    });
    const ours = shown(bytes);
    expect(ours).toMatchObject({
      errTypeName: "HELLO_FAILED",
      codeName: "INCOMPATIBLE",
      text: "no common version",
    });
    expect(ofpPrint(bytes)).toMatch(/OFPHFC_INCOMPATIBLE\nno common version/);
  });

  it.each([
    ["of10/1-4-ofp_packet_in.packet", "action"],
    ["of12/3-4-ofp_packet_in.packet", "action"],
    ["of13/4-4-ofp_packet_in.packet", "action"],
    ["of14/5-4-ofp_packet_in.packet", "action_set"],
    // OVS calls 1.4's TABLE_MISS by its 1.0-1.3 name.
    ["of15/libofproto-OFP15-packet_in.packet", "no_match"],
  ])("PACKET_IN %s: the reason ofp-print shows as (via %s)", (name, via) => {
    const bytes = readFileSync(join(VECTORS, name));
    const ours = shown(bytes) as { reasonName: string };
    expect(ofpPrint(bytes)).toMatch(new RegExp(`\\(via ${via}\\)`));
    expect(ours.reasonName).toBe(via === "no_match" ? "TABLE_MISS" : via.toUpperCase());
  });
});
