/** Datapath ids and MACs: 64-bit values kept as BigInt, printed as 16 hex digits or decimal strings. */

const MAX_U64 = (1n << 64n) - 1n;

/** dpidToHex renders a datapath id as 16 lower-case hex digits. */
export function dpidToHex(dpid: bigint): string {
  return dpid.toString(16).padStart(16, "0");
}

/** dpidToDecimal renders a datapath id as RouteFlow stores it: a decimal string. */
export function dpidToDecimal(dpid: bigint): string {
  return dpid.toString(10);
}

/**
 * parseDpid accepts `0x`-prefixed or bare hex (up to 16 digits, colons allowed as in OVS's
 * `00:00:..`), or `dec:123` for decimal; returns undefined when the text is not a 64-bit id.
 */
export function parseDpid(text: string): bigint | undefined {
  let t = text.trim().toLowerCase();
  if (t.startsWith("dec:")) {
    const d = t.slice(4);
    if (!/^[0-9]{1,20}$/.test(d)) return undefined;
    const v = BigInt(d);
    return v <= MAX_U64 ? v : undefined;
  }
  if (t.startsWith("0x")) t = t.slice(2);
  t = t.replaceAll(":", "");
  if (!/^[0-9a-f]{1,16}$/.test(t)) return undefined;
  return BigInt("0x" + t);
}

/** macToBigInt reads `aa:bb:cc:dd:ee:ff` as a 48-bit integer (RouteFlow's vm_id). */
export function macToBigInt(mac: string): bigint {
  return BigInt("0x" + mac.replaceAll(":", ""));
}

/** bigIntToMac renders a 48-bit integer as a colon-separated lower-case MAC. */
export function bigIntToMac(v: bigint): string {
  const hex = v.toString(16).padStart(12, "0");
  return hex.match(/../g)!.join(":");
}

/** macBytesToString renders 6 bytes as `aa:bb:cc:dd:ee:ff`. */
export function macBytesToString(bytes: Uint8Array): string {
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join(":");
}
