/** Stable domain uuids: UUIDv5 (RFC 9562 §5.5) of the VM name, so `virsh define` of the same VM is an upsert. */
import { createHash } from "node:crypto";

/**
 * RFBOOT_UUID_NAMESPACE is rfboot's fixed UUIDv5 namespace: itself UUIDv5 of the URL namespace
 * (RFC 9562 Appendix A) and `https://github.com/CPqD/RouteFlow#rfboot`. Never change it: every derived
 * domain uuid would change with it and the next define would create duplicates.
 */
export const RFBOOT_UUID_NAMESPACE = "439f0499-48e5-56c1-8765-0fcfc682850d";

/** UUID_RE matches a canonical (8-4-4-4-12 hex) uuid in either case. */
export const UUID_RE = /^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$/;

/** uuidV5 computes the RFC 9562 §5.5 name-based (SHA-1) uuid of `name` in `namespace`. */
export function uuidV5(namespace: string, name: string): string {
  if (!UUID_RE.test(namespace))
    throw new TypeError(`uuidV5: namespace is not a uuid: ${JSON.stringify(namespace)}`);
  const h = createHash("sha1")
    .update(Buffer.from(namespace.replaceAll("-", ""), "hex"))
    .update(Buffer.from(name, "utf8"))
    .digest()
    .subarray(0, 16);
  h[6] = (h[6]! & 0x0f) | 0x50; // version 5
  h[8] = (h[8]! & 0x3f) | 0x80; // RFC variant
  const x = h.toString("hex");
  return `${x.slice(0, 8)}-${x.slice(8, 12)}-${x.slice(12, 16)}-${x.slice(16, 20)}-${x.slice(20)}`;
}

/**
 * stableUuid derives the domain uuid of VM `name`: UUIDv5 in `namespace` (default RFBOOT_UUID_NAMESPACE;
 * pass a per-deployment namespace uuid to keep two deployments' VMs of the same name apart).
 * Deterministic: the same inputs always give the same uuid, never a random one.
 */
export function stableUuid(name: string, namespace: string = RFBOOT_UUID_NAMESPACE): string {
  return uuidV5(namespace, name);
}
