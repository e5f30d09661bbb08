/**
 * Port descriptions, three layouts: ofp_phy_port (OpenFlow 1.0 §5.2.1, 48 bytes), ofp_port
 * (1.1-1.3, 1.3.5 §7.2.1, 64 bytes) and the property-based ofp_port (1.4.1 §7.2.1, 40 bytes + properties).
 */
import { OpenFlowError } from "../../common/errors.js";
import { OFPPDPT, OFP_VERSIONS } from "./constants.js";
import { readTlv, writeTlv } from "./props.js";
import type { Port, PortProp, PortPropEthernet } from "./types.js";
import { PadReader, PadWriter, Reader, Writer, macBytes, macString } from "./wire.js";

/** OFP_MAX_PORT_NAME_LEN is the size of the name field (OpenFlow 1.3.5 §7.2.1). */
export const OFP_MAX_PORT_NAME_LEN = 16;

/** PORT_LEN10 / PORT_LEN11 are the fixed port sizes of 1.0 and 1.1-1.3; PORT_LEN14 is 1.4+'s fixed part. */
export const PORT_LEN10 = 48;
export const PORT_LEN11 = 64;
export const PORT_LEN14 = 40;

const ETHERNET_PROP_LEN = 32;
const utf8 = new TextDecoder("utf-8");
const utf8enc = new TextEncoder();

/** decodeName reads a NUL-terminated (or full-width) name. */
function decodeName(raw: Uint8Array): string {
  const nul = raw.indexOf(0);
  return utf8.decode(nul === -1 ? raw : raw.subarray(0, nul));
}

/** canonicalName is the NUL-padded UTF-8 of a name, or undefined when it does not fit in 16 bytes. */
function canonicalName(name: string): Uint8Array | undefined {
  const bytes = utf8enc.encode(name);
  if (bytes.length > OFP_MAX_PORT_NAME_LEN) return undefined;
  const out = new Uint8Array(OFP_MAX_PORT_NAME_LEN);
  out.set(bytes);
  return out;
}

function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && a.every((x, i) => x === b[i]);
}

function readName(r: Reader): { name: string; rawName?: Uint8Array } {
  const raw = r.bytes(OFP_MAX_PORT_NAME_LEN, "port name");
  const name = decodeName(raw);
  const canon = canonicalName(name);
  return canon !== undefined && sameBytes(canon, raw) ? { name } : { name, rawName: raw };
}

function writeName(w: Writer, port: Port): void {
  if (
    port.rawName !== undefined &&
    port.rawName.length === OFP_MAX_PORT_NAME_LEN &&
    decodeName(port.rawName) === port.name
  ) {
    w.bytes(port.rawName);
    return;
  }
  const canon = canonicalName(port.name);
  if (canon === undefined) {
    throw new OpenFlowError(
      `port ${port.portNo} name ${JSON.stringify(port.name)} is longer than ${OFP_MAX_PORT_NAME_LEN} bytes in UTF-8`,
      "bad-field",
    );
  }
  w.bytes(canon);
}

function decodePortProps(r: Reader): PortProp[] {
  const props: PortProp[] = [];
  while (r.remaining > 0) {
    const tlv = readTlv(r, "port property");
    if (tlv.tlvType === OFPPDPT.ETHERNET) {
      const b = tlv.body;
      if (b.remaining !== ETHERNET_PROP_LEN - 4) {
        b.fail("ethernet port property length", `${b.remaining + 4} is not ${ETHERNET_PROP_LEN}`, tlv.at + 2);
      }
      const pads = new PadReader();
      pads.skip(b, 4, "ethernet property padding");
      const eth: PortPropEthernet = {
        type: "ethernet",
        curr: b.u32("curr"),
        advertised: b.u32("advertised"),
        supported: b.u32("supported"),
        peer: b.u32("peer"),
        currSpeed: b.u32("curr_speed"),
        maxSpeed: b.u32("max_speed"),
      };
      const pad = pads.result();
      if (pad !== undefined) eth.pad = pad;
      // A 32-byte property needs no trailing padding; anything readTlv kept would be lost, so refuse it.
      if (tlv.pad !== undefined) b.fail("ethernet port property padding", "unexpected bytes after it", b.end);
      props.push(eth);
    } else {
      const other: PortProp = { type: "other", propType: tlv.tlvType, data: tlv.body.rest() };
      if (tlv.pad !== undefined) other.pad = tlv.pad;
      props.push(other);
    }
  }
  return props;
}

function encodePortProps(w: Writer, props: readonly PortProp[]): void {
  for (const p of props) {
    if (p.type === "ethernet") {
      w.u16(OFPPDPT.ETHERNET).u16(ETHERNET_PROP_LEN);
      new PadWriter(w, p.pad).write(4);
      w.u32(p.curr).u32(p.advertised).u32(p.supported).u32(p.peer).u32(p.currSpeed).u32(p.maxSpeed);
    } else {
      writeTlv(w, p.propType, p.data, p.pad);
    }
  }
}

/** decodePort reads one port in the layout of `version`; the reader must be positioned at it. */
export function decodePort(r: Reader, version: number): Port {
  const start = r.offset;
  if (version === OFP_VERSIONS["1.0"]) {
    r.need(PORT_LEN10, "port (48 bytes)");
    const portNo = r.u16("port_no");
    const hwAddr = macString(r.view(6, "hw_addr"));
    const { name, rawName } = readName(r);
    const port: Port = {
      portNo,
      hwAddr,
      name,
      config: r.u32("config"),
      state: r.u32("state"),
      curr: r.u32("curr"),
      advertised: r.u32("advertised"),
      supported: r.u32("supported"),
      peer: r.u32("peer"),
    };
    if (rawName) port.rawName = rawName;
    return port;
  }
  if (version < OFP_VERSIONS["1.4"]) {
    r.need(PORT_LEN11, "port (64 bytes)");
    const pads = new PadReader();
    const portNo = r.u32("port_no");
    pads.skip(r, 4);
    const hwAddr = macString(r.view(6, "hw_addr"));
    pads.skip(r, 2);
    const { name, rawName } = readName(r);
    const port: Port = {
      portNo,
      hwAddr,
      name,
      config: r.u32("config"),
      state: r.u32("state"),
      curr: r.u32("curr"),
      advertised: r.u32("advertised"),
      supported: r.u32("supported"),
      peer: r.u32("peer"),
      currSpeed: r.u32("curr_speed"),
      maxSpeed: r.u32("max_speed"),
    };
    if (rawName) port.rawName = rawName;
    const pad = pads.result();
    if (pad) port.pad = pad;
    return port;
  }
  r.need(PORT_LEN14, "port (40 bytes + properties)");
  const pads = new PadReader();
  const portNo = r.u32("port_no");
  const length = r.u16("port length");
  if (length < PORT_LEN14)
    r.fail("port length", `${length} is below the ${PORT_LEN14}-byte port header`, start + 4);
  if (length - 6 > r.remaining) r.need(length - 6, `port (length ${length})`);
  const body = r.sub(length - 6, "port");
  pads.skip(body, 2);
  const hwAddr = macString(body.view(6, "hw_addr"));
  pads.skip(body, 2);
  const { name, rawName } = readName(body);
  const config = body.u32("config");
  const state = body.u32("state");
  const properties = decodePortProps(body);
  const eth = properties.find((p): p is PortPropEthernet => p.type === "ethernet");
  const port: Port = {
    portNo,
    hwAddr,
    name,
    config,
    state,
    curr: eth?.curr ?? 0,
    advertised: eth?.advertised ?? 0,
    supported: eth?.supported ?? 0,
    peer: eth?.peer ?? 0,
    properties,
  };
  if (eth) {
    port.currSpeed = eth.currSpeed;
    port.maxSpeed = eth.maxSpeed;
  }
  if (rawName) port.rawName = rawName;
  const pad = pads.result();
  if (pad) port.pad = pad;
  return port;
}

/** encodePort writes one port in the layout of `version`. */
export function encodePort(w: Writer, port: Port, version: number): void {
  const mac = macBytes(port.hwAddr);
  if (version === OFP_VERSIONS["1.0"]) {
    if (port.portNo > 0xffff) {
      throw new OpenFlowError(`port number ${port.portNo} does not fit OpenFlow 1.0's 16 bits`, "bad-field");
    }
    w.u16(port.portNo).bytes(mac);
    writeName(w, port);
    w.u32(port.config).u32(port.state).u32(port.curr).u32(port.advertised).u32(port.supported).u32(port.peer);
    return;
  }
  const pads = new PadWriter(w, port.pad);
  if (version < OFP_VERSIONS["1.4"]) {
    w.u32(port.portNo);
    pads.write(4);
    w.bytes(mac);
    pads.write(2);
    writeName(w, port);
    w.u32(port.config).u32(port.state).u32(port.curr).u32(port.advertised).u32(port.supported).u32(port.peer);
    w.u32(port.currSpeed ?? 0).u32(port.maxSpeed ?? 0);
    return;
  }
  const start = w.length;
  w.u32(port.portNo).u16(0);
  pads.write(2);
  w.bytes(mac);
  pads.write(2);
  writeName(w, port);
  w.u32(port.config).u32(port.state);
  const props: readonly PortProp[] = port.properties ?? [
    {
      type: "ethernet",
      curr: port.curr,
      advertised: port.advertised,
      supported: port.supported,
      peer: port.peer,
      currSpeed: port.currSpeed ?? 0,
      maxSpeed: port.maxSpeed ?? 0,
    },
  ];
  encodePortProps(w, props);
  const length = w.length - start;
  if (length > 0xffff)
    throw new OpenFlowError(`port ${port.portNo} is ${length} bytes, over 65535`, "bad-length");
  w.patchU16(start + 4, length);
}

/** decodePorts reads ports until the reader's end (a port list: FEATURES_REPLY 1.0-1.2, PORT_DESC reply). */
export function decodePorts(r: Reader, version: number): Port[] {
  const ports: Port[] = [];
  while (r.remaining > 0) ports.push(decodePort(r, version));
  return ports;
}
