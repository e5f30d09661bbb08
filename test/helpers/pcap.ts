/**
 * A small pcap / pcapng reader and per-direction TCP stream reassembly, for feeding real switch
 * captures to the OpenFlow codec in tests. Link types: Ethernet (with 802.1Q/802.1ad tags), Linux
 * cooked v1/v2, raw IP and BSD loopback; IPv4 and IPv6 (no extension headers); TCP only.
 */

/** CapturedPacket is one link-layer frame from a capture file. */
export interface CapturedPacket {
  /** Link type (LINKTYPE_*: 1 Ethernet, 113 Linux SLL, 276 SLL2, 101 raw IP, 0 loopback). */
  linkType: number;
  data: Uint8Array;
}

/** TcpSegment is one TCP segment with its payload. */
export interface TcpSegment {
  src: string;
  dst: string;
  sport: number;
  dport: number;
  seq: number;
  syn: boolean;
  fin: boolean;
  rst: boolean;
  payload: Uint8Array;
}

/** TcpStream is one direction of a TCP connection, reassembled. */
export interface TcpStream {
  /** "src:sport>dst:dport". */
  key: string;
  sport: number;
  dport: number;
  /**
   * Contiguous byte runs in sequence order: the first starts at ISN+1 (or the lowest seq seen); a new
   * run starts after each gap (a segment missing from the capture).
   */
  runs: Uint8Array[];
  /** Whether the stream starts at a SYN (so byte 0 is a message boundary). */
  fromSyn: boolean;
  /** Number of gaps (missing bytes between runs). */
  gaps: number;
  /** Segments dropped as retransmissions (fully covered by bytes already placed). */
  retransmits: number;
  segments: number;
}

/** readCapture parses a pcap (any byte order, usec or nsec) or pcapng file into link-layer packets. */
export function readCapture(file: Uint8Array): CapturedPacket[] {
  const dv = new DataView(file.buffer, file.byteOffset, file.byteLength);
  const magic = dv.getUint32(0, false);
  if (magic === 0x0a0d0d0a) return readPcapng(file, dv);
  const le = magic === 0xd4c3b2a1 || magic === 0x4d3cb2a1;
  if (!le && magic !== 0xa1b2c3d4 && magic !== 0xa1b23c4d) {
    throw new Error(`not a pcap/pcapng file (magic 0x${magic.toString(16)})`);
  }
  const linkType = dv.getUint32(20, le) & 0xffff;
  const out: CapturedPacket[] = [];
  let at = 24;
  while (at + 16 <= file.length) {
    const incl = dv.getUint32(at + 8, le);
    const start = at + 16;
    if (start + incl > file.length) break; // truncated last record
    out.push({ linkType, data: file.subarray(start, start + incl) });
    at = start + incl;
  }
  return out;
}

function readPcapng(file: Uint8Array, dv: DataView): CapturedPacket[] {
  const out: CapturedPacket[] = [];
  let le = true;
  let interfaces: number[] = [];
  let at = 0;
  while (at + 12 <= file.length) {
    const typeBE = dv.getUint32(at, false);
    if (typeBE === 0x0a0d0d0a) {
      // Section header: the byte-order magic decides the endianness of this section.
      le = dv.getUint32(at + 8, true) === 0x1a2b3c4d;
      interfaces = [];
    }
    const type = dv.getUint32(at, le);
    const len = dv.getUint32(at + 4, le);
    if (len < 12 || at + len > file.length) break;
    if (type === 1) {
      interfaces.push(dv.getUint16(at + 8, le));
    } else if (type === 6) {
      // Enhanced packet block: interface id, timestamp (8), captured len, original len, data.
      const ifId = dv.getUint32(at + 8, le);
      const capLen = dv.getUint32(at + 20, le);
      out.push({ linkType: interfaces[ifId] ?? 1, data: file.subarray(at + 28, at + 28 + capLen) });
    } else if (type === 3) {
      // Simple packet block: original length, data (interface 0, captured = block length - 16).
      const capLen = Math.min(dv.getUint32(at + 8, le), len - 16);
      out.push({ linkType: interfaces[0] ?? 1, data: file.subarray(at + 12, at + 12 + capLen) });
    } else if (type === 2) {
      // Obsolete packet block: interface id (2), drops (2), timestamp (8), caplen, len, data.
      const ifId = dv.getUint16(at + 8, le);
      const capLen = dv.getUint32(at + 20, le);
      out.push({ linkType: interfaces[ifId] ?? 1, data: file.subarray(at + 28, at + 28 + capLen) });
    }
    at += len;
  }
  return out;
}

function ipv4(b: Uint8Array, at: number): string {
  return `${b[at]}.${b[at + 1]}.${b[at + 2]}.${b[at + 3]}`;
}

function ipv6(b: Uint8Array, at: number): string {
  const parts: string[] = [];
  for (let i = 0; i < 16; i += 2) parts.push(((b[at + i]! << 8) | b[at + i + 1]!).toString(16));
  return `[${parts.join(":")}]`;
}

/** networkStart returns the ethertype and offset of the network header, or undefined. */
function networkStart(p: CapturedPacket): { etherType: number; at: number } | undefined {
  const d = p.data;
  const u16 = (i: number) => (d[i]! << 8) | d[i + 1]!;
  switch (p.linkType) {
    case 1: {
      if (d.length < 14) return undefined;
      let at = 12;
      let et = u16(at);
      while ((et === 0x8100 || et === 0x88a8 || et === 0x9100) && d.length >= at + 6) {
        at += 4;
        et = u16(at);
      }
      return { etherType: et, at: at + 2 };
    }
    case 113:
      return d.length >= 16 ? { etherType: u16(14), at: 16 } : undefined;
    case 276:
      return d.length >= 20 ? { etherType: u16(0), at: 20 } : undefined;
    case 101:
    case 12:
    case 14:
      return d.length > 0 ? { etherType: d[0]! >> 4 === 6 ? 0x86dd : 0x0800, at: 0 } : undefined;
    case 0:
      return d.length > 4 ? { etherType: d[4]! >> 4 === 6 ? 0x86dd : 0x0800, at: 4 } : undefined;
    default:
      return undefined;
  }
}

/** tcpSegment extracts the TCP segment of a packet, or undefined when it is not TCP over IP. */
export function tcpSegment(p: CapturedPacket): TcpSegment | undefined {
  const net = networkStart(p);
  if (!net) return undefined;
  const d = p.data;
  let at = net.at;
  let src: string;
  let dst: string;
  let end: number;
  if (net.etherType === 0x0800) {
    if (d.length < at + 20 || d[at]! >> 4 !== 4 || d[at + 9] !== 6) return undefined;
    const ihl = (d[at]! & 0x0f) * 4;
    const total = (d[at + 2]! << 8) | d[at + 3]!;
    const fragOff = ((d[at + 6]! & 0x1f) << 8) | d[at + 7]!;
    if (fragOff !== 0) return undefined;
    src = ipv4(d, at + 12);
    dst = ipv4(d, at + 16);
    end = Math.min(d.length, at + total);
    at += ihl;
  } else if (net.etherType === 0x86dd) {
    if (d.length < at + 40 || d[at + 6] !== 6) return undefined;
    const payloadLen = (d[at + 4]! << 8) | d[at + 5]!;
    src = ipv6(d, at + 8);
    dst = ipv6(d, at + 24);
    end = Math.min(d.length, at + 40 + payloadLen);
    at += 40;
  } else {
    return undefined;
  }
  if (end < at + 20) return undefined;
  const dv = new DataView(d.buffer, d.byteOffset, d.byteLength);
  const off = (d[at + 12]! >> 4) * 4;
  const flags = d[at + 13]!;
  return {
    src,
    dst,
    sport: dv.getUint16(at),
    dport: dv.getUint16(at + 2),
    seq: dv.getUint32(at + 4),
    syn: (flags & 0x02) !== 0,
    fin: (flags & 0x01) !== 0,
    rst: (flags & 0x04) !== 0,
    payload: d.subarray(Math.min(at + off, end), end),
  };
}

/**
 * reassembleTcp groups segments per direction and lays payloads out by sequence number (mod 2^32),
 * dropping retransmissions and trimming overlaps; a gap starts a new run.
 */
export function reassembleTcp(packets: readonly CapturedPacket[]): TcpStream[] {
  const dirs = new Map<string, TcpSegment[]>();
  for (const p of packets) {
    const s = tcpSegment(p);
    if (!s) continue;
    const key = `${s.src}:${s.sport}>${s.dst}:${s.dport}`;
    let list = dirs.get(key);
    if (!list) dirs.set(key, (list = []));
    list.push(s);
  }
  const streams: TcpStream[] = [];
  for (const [key, segs] of dirs) {
    const syn = segs.find((s) => s.syn);
    const first = segs[0]!;
    // Offsets are relative to the first segment seen, as signed 32-bit distances (wrap-safe).
    const rel = (seq: number) => (seq - first.seq) | 0;
    let base: number;
    if (syn) base = rel(syn.seq) + 1;
    else base = Math.min(...segs.filter((s) => s.payload.length > 0).map((s) => rel(s.seq)), 0);
    const withData = segs
      .filter((s) => s.payload.length > 0)
      .map((s) => ({ off: rel(s.seq) - base, payload: s.payload }))
      .sort((a, b) => a.off - b.off);
    const runs: Uint8Array[][] = [[]];
    let next = syn ? 0 : (withData[0]?.off ?? 0);
    let retransmits = 0;
    for (const s of withData) {
      const endOff = s.off + s.payload.length;
      if (endOff <= next) {
        retransmits++;
        continue;
      }
      if (s.off > next) runs.push([]);
      runs[runs.length - 1]!.push(s.payload.subarray(Math.max(0, next - s.off)));
      next = endOff;
    }
    streams.push({
      key,
      sport: first.sport,
      dport: first.dport,
      runs: runs.map(concat).filter((r) => r.length > 0),
      fromSyn: syn !== undefined,
      gaps: runs.length - 1,
      retransmits,
      segments: segs.length,
    });
  }
  return streams;
}

function concat(parts: readonly Uint8Array[]): Uint8Array {
  const total = parts.reduce((n, p) => n + p.length, 0);
  const out = new Uint8Array(total);
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}
