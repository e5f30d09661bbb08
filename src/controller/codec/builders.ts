/**
 * Builders for the messages the controller session sends, plus the small pure helpers it needs
 * (version bitmap reading, negotiation, PORT_DESC REPLY_MORE reassembly).
 */
import { OpenFlowError } from "../../common/errors.js";
import {
  NX_ROLE,
  OFPCR_ROLE,
  OFPET_BAD_REQUEST,
  OFPET_HELLO_FAILED,
  OFPHFC_INCOMPATIBLE,
  OFPMPF_REPLY_MORE,
  OFPP_ANY,
  OFP_VERSIONS,
} from "./constants.js";
import type {
  BarrierRequest,
  EchoReply,
  EchoRequest,
  ErrorMsg,
  FeaturesRequest,
  Hello,
  NxRoleRequest,
  Port,
  PortDescReply,
  PortDescRequest,
  RoleRequest,
} from "./types.js";

function checkVersions(versions: readonly number[]): void {
  if (versions.length === 0) throw new OpenFlowError("HELLO needs at least one version", "bad-version");
  for (const v of versions) {
    if (!Number.isInteger(v) || v < 1 || v > 0x7f) {
      throw new OpenFlowError(`HELLO version ${v} is not a wire version byte (1..127)`, "bad-version");
    }
  }
}

/**
 * buildHello makes a HELLO whose header carries the highest version and, when more than one version
 * is offered or any version is 1.3.1+-capable, an OFPHET_VERSIONBITMAP element listing all of them
 * (OpenFlow 1.3.5 §6.3.1). A lone 1.0 HELLO stays the bare 8-byte header 1.0 switches expect.
 */
export function buildHello(versions: readonly number[], xid = 0): Hello {
  checkVersions(versions);
  const max = Math.max(...versions);
  if (versions.length === 1 && max < OFP_VERSIONS["1.3"])
    return { type: "hello", version: max, xid, elements: [] };
  const words = new Array<number>(Math.floor(max / 32) + 1).fill(0);
  for (const v of versions) words[Math.floor(v / 32)] = (words[Math.floor(v / 32)]! | (1 << (v % 32))) >>> 0;
  return { type: "hello", version: max, xid, elements: [{ type: "versionbitmap", bitmaps: words }] };
}

/** helloBitmapVersions lists the versions of a HELLO's first version bitmap, ascending; undefined without one. */
export function helloBitmapVersions(hello: Hello): number[] | undefined {
  const el = hello.elements.find((e) => e.type === "versionbitmap");
  if (el === undefined || el.type !== "versionbitmap") return undefined;
  const out: number[] = [];
  el.bitmaps.forEach((word, i) => {
    for (let bit = 0; bit < 32; bit++) if ((word >>> bit) & 1) out.push(i * 32 + bit);
  });
  return out;
}

/**
 * negotiateVersion picks the version for a session (OpenFlow 1.3.5 §6.3.1): with a peer bitmap, the
 * highest version both sides list; without, the lower of the two header versions if we support it.
 * Returns undefined when there is no common version (answer HELLO_FAILED/INCOMPATIBLE).
 */
export function negotiateVersion(ours: readonly number[], peer: Hello): number | undefined {
  const theirs = helloBitmapVersions(peer);
  if (theirs !== undefined) {
    const common = ours.filter((v) => theirs.includes(v));
    return common.length > 0 ? Math.max(...common) : undefined;
  }
  const v = Math.min(Math.max(...ours), peer.version);
  return ours.includes(v) ? v : undefined;
}

/** buildFeaturesRequest makes an OFPT_FEATURES_REQUEST. */
export function buildFeaturesRequest(version: number, xid: number): FeaturesRequest {
  return { type: "features_request", version, xid };
}

/** buildEchoRequest makes an OFPT_ECHO_REQUEST carrying `data`. */
export function buildEchoRequest(
  version: number,
  xid: number,
  data: Uint8Array = new Uint8Array(0),
): EchoRequest {
  return { type: "echo_request", version, xid, data };
}

/** buildEchoReply answers an echo request with the same version, xid and payload (OpenFlow 1.3.5 §6.3.2). */
export function buildEchoReply(request: EchoRequest): EchoReply {
  return { type: "echo_reply", version: request.version, xid: request.xid, data: request.data };
}

/**
 * buildPortDescRequest makes a PORT_DESC request: multipart OFPMP_PORT_DESC on 1.3+ (1.5 with
 * port_no = OFPP_ANY), OVS's OFPST_PORT_DESC stats request on 1.0 (and 1.1/1.2, which OVS accepts).
 */
export function buildPortDescRequest(version: number, xid: number): PortDescRequest {
  return version >= OFP_VERSIONS["1.5"]
    ? { type: "port_desc_request", version, xid, flags: 0, portNo: OFPP_ANY }
    : { type: "port_desc_request", version, xid, flags: 0 };
}

/** buildRoleRequest makes an OFPT_ROLE_REQUEST (1.2+); role from OFPCR_ROLE, generation id 0 by default. */
export function buildRoleRequest(
  version: number,
  xid: number,
  role: number = OFPCR_ROLE.SLAVE,
  generationId = 0n,
): RoleRequest {
  if (version < OFP_VERSIONS["1.2"]) {
    throw new OpenFlowError(
      `ROLE_REQUEST needs OpenFlow 1.2+ (version byte ${version}); use buildNxRoleRequest on 1.0`,
      "bad-version",
    );
  }
  return { type: "role_request", version, xid, role, generationId };
}

/** buildNxRoleRequest makes Nicira's NXT_ROLE_REQUEST for OpenFlow 1.0 (role from NX_ROLE). */
export function buildNxRoleRequest(xid: number, role: number = NX_ROLE.SLAVE): NxRoleRequest {
  return { type: "nx_role_request", version: OFP_VERSIONS["1.0"], xid, role };
}

/** buildBarrierRequest makes an OFPT_BARRIER_REQUEST. */
export function buildBarrierRequest(version: number, xid: number): BarrierRequest {
  return { type: "barrier_request", version, xid };
}

/** buildHelloFailed makes ERROR HELLO_FAILED/INCOMPATIBLE with an ASCII explanation as data (§7.5.4.1). */
export function buildHelloFailed(version: number, xid: number, text: string): ErrorMsg {
  return {
    type: "error",
    version,
    xid,
    errType: OFPET_HELLO_FAILED,
    code: OFPHFC_INCOMPATIBLE,
    data: Uint8Array.from(Buffer.from(text.replace(/[^\x20-\x7e]/g, "?"), "latin1")),
  };
}

/**
 * buildBadRequest makes ERROR BAD_REQUEST/`code` whose data is the start of the offending message (at most
 * 64 bytes: OpenFlow 1.3.5 §7.5.4 asks for "at least 64 bytes of the failed request"; 1.0 §5.4.4 the same).
 */
export function buildBadRequest(version: number, xid: number, code: number, offending: Uint8Array): ErrorMsg {
  return {
    type: "error",
    version,
    xid,
    errType: OFPET_BAD_REQUEST,
    code,
    data: Uint8Array.from(offending.subarray(0, 64)),
  };
}

/** PortDescProgress is the state of a PORT_DESC reassembly. */
export interface PortDescProgress {
  /** Ports gathered so far, in reply order. */
  ports: Port[];
  /** True when the last part (no REPLY_MORE flag) has arrived. */
  done: boolean;
}

/**
 * collectPortDesc adds one PORT_DESC reply part to what was gathered so far (pure): the replies of
 * one request share its xid and all but the last carry OFPMPF_REPLY_MORE (OpenFlow 1.3.5 §7.3.5).
 */
export function collectPortDesc(sofar: readonly Port[], reply: PortDescReply): PortDescProgress {
  return { ports: [...sofar, ...reply.ports], done: (reply.flags & OFPMPF_REPLY_MORE) === 0 };
}
