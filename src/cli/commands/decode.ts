/**
 * `rfboot decode HEX | --file F`: decodes OpenFlow messages and prints each as one line of JSON
 * (datapath ids as 16 hex digits, other 64-bit values as decimal strings, bytes as hex).
 * Malformed input exits 2 with one line naming what is wrong and at which byte.
 */
import { readFileSync } from "node:fs";
import type { Command } from "commander";
import { dpidToHex } from "../../common/dpid.js";
import { OpenFlowError, UsageError, errorMessage } from "../../common/errors.js";
import { Framer, decodeMessage, msgTypeName, versionName, type OfMessage } from "../../controller/index.js";

/** parseHex reads hex text: whitespace, `:` and `-` separators and `0x` prefixes are ignored. */
export function parseHex(text: string, source: string): Buffer {
  const cleaned = text.replace(/0x/gi, "").replace(/[\s:-]/g, "");
  const bad = cleaned.search(/[^0-9a-fA-F]/);
  if (bad !== -1) {
    throw new UsageError(
      `${source}: ${JSON.stringify(cleaned[bad])} is not a hex digit (hex digit ${bad}); give hex like 0100000800000001`,
    );
  }
  if (cleaned.length % 2 !== 0) {
    throw new UsageError(`${source}: odd number of hex digits (${cleaned.length}); each byte needs two`);
  }
  return Buffer.from(cleaned, "hex");
}

/** looksLikeHex tells a hex text file from a binary capture of OpenFlow bytes. */
function looksLikeHex(bytes: Buffer): boolean {
  if (bytes.length === 0) return false;
  const text = bytes.toString("latin1");
  return /^[\s0-9a-fA-Fx:-]+$/.test(text) && /[0-9a-fA-F]{2}/.test(text);
}

/** toJson renders a decoded message: bigint dpid as 16 hex digits, other bigints decimal, bytes as hex. */
export function toJson(msg: OfMessage): string {
  const shown: Record<string, unknown> = { ...msg };
  shown.versionName = versionName(msg.version) ?? null;
  if (msg.type === "unknown") shown.msgTypeName = msgTypeName(msg.version, msg.msgType) ?? null;
  return JSON.stringify(shown, (key, value: unknown) => {
    if (typeof value === "bigint") return key === "datapathId" ? dpidToHex(value) : value.toString(10);
    if (value instanceof Uint8Array) return Buffer.from(value).toString("hex");
    return value;
  });
}

/** decodeAll frames and decodes every message in `bytes`; errors name the message and stream offset. */
export function decodeAll(bytes: Uint8Array): OfMessage[] {
  if (bytes.length === 0)
    throw new OpenFlowError("no input bytes: give at least one 8-byte OpenFlow header", "truncated", 0);
  const framer = new Framer();
  const frames = framer.push(bytes);
  // A bad header right after whole frames is reported by the next push.
  framer.push(new Uint8Array(0));
  if (framer.pending > 0) {
    const at = framer.offset;
    const want =
      framer.pending >= 4 ? Buffer.from(bytes.subarray(at + 2, at + 4)).readUInt16BE(0) : undefined;
    throw new OpenFlowError(
      `message at byte ${at} is cut short: ${framer.pending} byte(s) left` +
        (want !== undefined ? ` but its header length says ${want}` : ", less than the 8-byte header"),
      "truncated",
      at + framer.pending,
    );
  }
  const out: OfMessage[] = [];
  let at = 0;
  frames.forEach((frame, i) => {
    try {
      out.push(decodeMessage(frame));
    } catch (err) {
      if (!(err instanceof OpenFlowError)) throw err;
      const abs = at + (err.offset ?? 0);
      throw new OpenFlowError(
        frames.length > 1
          ? `message ${i + 1} (at byte ${at}): ${err.message}; stream byte ${abs}`
          : err.message,
        err.code,
        abs,
        { cause: err },
      );
    }
    at += frame.length;
  });
  return out;
}

/** registerDecode adds `rfboot decode`. */
export function registerDecode(program: Command): void {
  program
    .command("decode")
    .description("decode OpenFlow 1.0-1.5 messages from hex or a file; prints one JSON object per message")
    .argument("[hex...]", "message bytes in hex (spaces and colons allowed)")
    .option("-f, --file <path>", "read the bytes from a file (binary, or hex text)")
    .action((hex: string[], opts: { file?: string }) => {
      let bytes: Buffer;
      if (opts.file !== undefined) {
        if (hex.length > 0) throw new UsageError("give either HEX or --file, not both");
        let raw: Buffer;
        try {
          raw = readFileSync(opts.file);
        } catch (err) {
          throw new UsageError(`cannot read --file ${opts.file}: ${errorMessage(err)}`, { cause: err });
        }
        bytes = looksLikeHex(raw) ? parseHex(raw.toString("latin1"), opts.file) : raw;
      } else {
        if (hex.length === 0) throw new UsageError("nothing to decode: give HEX or --file F");
        bytes = parseHex(hex.join(""), "HEX");
      }
      for (const msg of decodeAll(bytes)) process.stdout.write(toJson(msg) + "\n");
    });
}
