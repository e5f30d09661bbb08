/** Finds the shared OpenFlow vectors (Ryu packet_data + JSON, real captures) by walking SHARED; never copied. */
import { existsSync, readFileSync, readdirSync } from "node:fs";
import { join } from "node:path";
import { SHARED } from "../../../helpers/env.js";

/** VECTORS_DIR holds Ryu's packet_data/ and json/ and the captures/. */
export const VECTORS_DIR = join(SHARED, "openflow-vectors");

/** VectorFile is one file under ryu/packet_data/ofNN. */
export interface VectorFile {
  /** "of13/4-6-ofp_features_reply.packet" */
  name: string;
  path: string;
  bytes: Buffer;
  /** Ryu's JSON decoding parsed with 64-bit-safe integers (big ones as strings), when present. */
  json?: Record<string, unknown>;
}

/** parseRyuJson parses Ryu's JSON keeping integers beyond 2^53 exact (as decimal strings). */
export function parseRyuJson(text: string): Record<string, unknown> {
  return JSON.parse(text.replace(/([:[,]\s*)(\d{16,})(?=\s*[,}\]])/g, '$1"$2"')) as Record<string, unknown>;
}

/** vectorFiles lists every file of every ofNN directory (any extension), sorted. */
export function vectorFiles(): VectorFile[] {
  const base = join(VECTORS_DIR, "ryu", "packet_data");
  const out: VectorFile[] = [];
  for (const dir of readdirSync(base).sort()) {
    if (!/^of1[0-5]$/.test(dir)) continue;
    for (const f of readdirSync(join(base, dir)).sort()) {
      const path = join(base, dir, f);
      const jsonPath = join(VECTORS_DIR, "ryu", "json", dir, `${f}.json`);
      const v: VectorFile = { name: `${dir}/${f}`, path, bytes: readFileSync(path) };
      if (existsSync(jsonPath)) v.json = parseRyuJson(readFileSync(jsonPath, "utf8"));
      out.push(v);
    }
  }
  return out;
}

/** captureFiles lists the real-switch captures (*.pcap, *.pcapng). */
export function captureFiles(): string[] {
  const dir = join(VECTORS_DIR, "captures");
  return readdirSync(dir)
    .filter((f) => /\.pcap(ng)?$/.test(f))
    .sort()
    .map((f) => join(dir, f));
}
