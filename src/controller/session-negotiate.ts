/**
 * OpenFlow version negotiation (OpenFlow 1.3.5 §6.3.1 "Connection Setup", §7.5.1 HELLO elements;
 * OpenFlow 1.4.1 §7.5.1): pure functions shared by the controller-side session and the relay observer.
 */
import type { Hello } from "./codec/index.js";
import { buildHello, helloBitmapVersions, versionName } from "./codec/index.js";

/** NegotiationResult is the agreed wire version, or the reason nothing matched. */
export type NegotiationResult = { ok: true; version: number } | { ok: false; reason: string };

/**
 * ourHello builds the HELLO rfboot sends: header version = the highest offered version, plus a version
 * bitmap element whenever it says more than the header (the codec's buildHello; OpenFlow 1.3.5 §7.5.1).
 */
export function ourHello(versions: readonly number[], xid: number): Hello {
  return buildHello(versions, xid);
}

/**
 * negotiate applies OpenFlow 1.3.5 §6.3.1: when both HELLOs carry a version bitmap the version is the
 * highest bit set in both; otherwise it is the smaller of the two header versions, which must be one
 * this side supports. Unknown bitmap bits (versions beyond 1.5) are tolerated and simply never match.
 */
export function negotiate(ours: Hello, theirs: Hello, supported: readonly number[]): NegotiationResult {
  const mine = helloBitmapVersions(ours);
  const peer = helloBitmapVersions(theirs);
  if (mine !== undefined && peer !== undefined) {
    const common = peer.filter((v) => mine.includes(v) && supported.includes(v));
    if (common.length === 0) {
      return {
        ok: false,
        reason: `no common version: we offer ${fmt(mine)}, the peer offers ${fmt(peer)}`,
      };
    }
    return { ok: true, version: Math.max(...common) };
  }
  const version = Math.min(ours.version, theirs.version);
  if (!supported.includes(version)) {
    return {
      ok: false,
      reason:
        `the lower header version ${fmt([version])} is not offered (we offer ${fmt([...supported])}, ` +
        `the peer's HELLO says ${fmt([theirs.version])})`,
    };
  }
  return { ok: true, version };
}

/**
 * observedVersion is what two third-party peers agree on (relay mode): bitmaps when both have one,
 * else the lower header version. Each peer checks its own support; the relay only needs the result.
 */
export function observedVersion(a: Hello, b: Hello): number | undefined {
  const x = helloBitmapVersions(a);
  const y = helloBitmapVersions(b);
  if (x !== undefined && y !== undefined) {
    const common = x.filter((v) => y.includes(v));
    return common.length === 0 ? undefined : Math.max(...common);
  }
  return Math.min(a.version, b.version);
}

/** fmt renders wire versions as "1.0, 1.3" (unknown bytes as 0xNN). */
export function fmt(versions: readonly number[]): string {
  return versions.map((v) => versionName(v) ?? `0x${v.toString(16).padStart(2, "0")}`).join(", ");
}
