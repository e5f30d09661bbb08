/**
 * `rfboot decode HEX | --file F`: decodes OpenFlow messages and prints each as one line of JSON
 * (datapath ids as 16 hex digits, other 64-bit values as decimal strings, bytes as hex), with names
 * beside the numbers as ovs-ofctl ofp-print shows them: `"reason":2,"reasonName":"MODIFY"` for an
 * enum (null when unassigned on that version), `"config":65,"configNames":["PORT_DOWN","NO_PACKET_IN"]`
 * for a flag set (a bit without a name as "0x400"), `"portNoName":"LOCAL"` for reserved ports. Names
 * are the spec's, per version, without the constant's prefix. Text from the wire (port names) is
 * printable: control bytes, bytes that are not UTF-8 and backslashes as `\xHH`.
 *
 * Several messages: the ones before a bad frame are printed, then the bad frame exits 2 with one line
 * naming its index, stream offset and what is wrong at which byte. A HELLO whose element list does
 * not parse is printed as far as it does (the rest as `trailing`, the reason as `problem`) with a
 * warning on stderr, exit 0, as ofp-print shows it with its "unknown data in hello".
 */
import { readFileSync } from "node:fs";
import type { Command } from "commander";
import { dpidToHex } from "../../common/dpid.js";
import { OpenFlowError, UsageError, errorMessage } from "../../common/errors.js";
import { Framer, decodeMessage, withNames, type OfMessage } from "../../controller/index.js";

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

/** toJson renders a decoded message with names (withNames): dpid as 16 hex digits, other bigints decimal, bytes as hex. */
export function toJson(msg: OfMessage): string {
  return JSON.stringify(withNames(msg), (key, value: unknown) => {
    if (typeof value === "bigint") return key === "datapathId" ? dpidToHex(value) : value.toString(10);
    if (value instanceof Uint8Array) return Buffer.from(value).toString("hex");
    return value;
  });
}

/** Decoded is what decodeStream makes of the input: the messages that decoded, in order, and why it stopped. */
export interface Decoded {
  messages: OfMessage[];
  /** Warnings about messages shown as far as they parse (a HELLO with undecodable elements). */
  warnings: string[];
  /** The error at the first frame that could not be framed or decoded; nothing after it is decoded. */
  failure?: OpenFlowError;
}

/** where names a message in errors and warnings: its place (from 1) and stream offset. */
function where(index: number, at: number): string {
  return `message ${index + 1} (at byte ${at}): `;
}

/**
 * decodeStream frames and decodes `bytes` up to the first bad frame, keeping the messages before it.
 * Errors name the message (its index from 1 and stream offset, when not the only one) and the byte.
 * A HELLO whose elements do not parse is kept as far as they do, as ovs-ofctl ofp-print shows it,
 * with a warning.
 */
export function decodeStream(bytes: Uint8Array): Decoded {
  const out: Decoded = { messages: [], warnings: [] };
  if (bytes.length === 0) {
    out.failure = new OpenFlowError(
      "no input bytes: give at least one 8-byte OpenFlow header",
      "truncated",
      0,
    );
    return out;
  }
  const framer = new Framer();
  let frames: Buffer[] = [];
  let framing: OpenFlowError | undefined;
  try {
    frames = framer.push(bytes);
    // A bad header right after whole frames is reported by the next push.
    framer.push(new Uint8Array(0));
  } catch (err) {
    if (!(err instanceof OpenFlowError)) throw err;
    framing = err;
  }
  let at = 0;
  for (const [i, frame] of frames.entries()) {
    try {
      const msg = decodeMessage(frame, { lenientHello: true });
      if (msg.type === "hello" && msg.problem !== undefined) {
        out.warnings.push(
          `${where(i, at)}${msg.problem}; the HELLO is shown with the bytes from there on as "trailing"`,
        );
      }
      out.messages.push(msg);
    } catch (err) {
      if (!(err instanceof OpenFlowError)) throw err;
      const abs = at + (err.offset ?? 0);
      const many = frames.length > 1 || framing !== undefined || framer.pending > 0;
      out.failure = new OpenFlowError(
        many ? `${where(i, at)}${err.message}; stream byte ${abs}` : err.message,
        err.code,
        abs,
        { cause: err },
      );
      return out;
    }
    at += frame.length;
  }
  const index = frames.length;
  if (framing !== undefined) {
    out.failure =
      index > 0
        ? new OpenFlowError(`${where(index, at)}${framing.message}`, framing.code, framing.offset, {
            cause: framing,
          })
        : framing;
  } else if (framer.pending > 0) {
    const left = framer.pending;
    const want = left >= 4 ? Buffer.from(bytes.subarray(at + 2, at + 4)).readUInt16BE(0) : undefined;
    out.failure = new OpenFlowError(
      `message ${index > 0 ? `${index + 1} ` : ""}at byte ${at} is cut short: ${left} byte(s) left` +
        (want !== undefined ? ` but its header length says ${want}` : ", less than the 8-byte header"),
      "truncated",
      at + left,
    );
  }
  return out;
}

/** decodeAll decodes every message in `bytes`, or throws the error of the first bad frame. */
export function decodeAll(bytes: Uint8Array): OfMessage[] {
  const { messages, failure } = decodeStream(bytes);
  if (failure) throw failure;
  return messages;
}

/** registerDecode adds `rfboot decode`. */
export function registerDecode(program: Command): void {
  program
    .command("decode")
    .description(
      "decode OpenFlow 1.0-1.5 messages from hex or a file; prints one JSON object per message, with " +
        "names beside numbers (reasonName, configNames, portNoName...); the messages before a bad one " +
        "are printed, then it exits 2 naming the message and byte",
    )
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
      const { messages, warnings, failure } = decodeStream(bytes);
      for (const msg of messages) process.stdout.write(toJson(msg) + "\n");
      for (const w of warnings) process.stderr.write(`rfboot: warning: ${w}\n`);
      // The good messages are out; the first bad one ends the run with exit 2 (main prints the error).
      if (failure) throw failure;
    });
}
