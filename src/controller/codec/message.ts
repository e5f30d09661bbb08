/** decodeMessage / encodeMessage: one switch per direction over the message families (STYLE 2). */
import { OpenFlowError } from "../../common/errors.js";
import type { OfMessage } from "./types.js";

/** decodeMessage decodes one whole frame; throws OpenFlowError with the offset of the failing byte. */
export function decodeMessage(frame: Uint8Array): OfMessage {
  throw new OpenFlowError(`decodeMessage: not implemented yet (${frame.length} bytes)`, "bad-field", 0);
}

/** encodeMessage encodes a message to its wire bytes (the header length is computed). */
export function encodeMessage(msg: OfMessage): Buffer {
  throw new OpenFlowError(`encodeMessage: not implemented yet (${msg.type})`, "bad-field");
}
