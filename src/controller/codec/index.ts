/** The OpenFlow 1.0-1.5 codec: message model, decode/encode, framing, builders (public surface). */
export type * from "./types.js";
export * from "./constants.js";
export { decodeMessage, encodeMessage } from "./message.js";
export { withNames, type Named } from "./names.js";
export { Framer, FrameScanner, frameEnd, type FramerOptions } from "./framer.js";
export {
  buildHello,
  helloBitmapVersions,
  negotiateVersion,
  buildFeaturesRequest,
  buildEchoRequest,
  buildEchoReply,
  buildPortDescRequest,
  buildRoleRequest,
  buildNxRoleRequest,
  buildBarrierRequest,
  buildHelloFailed,
  buildBadRequest,
  collectPortDesc,
  type PortDescProgress,
} from "./builders.js";
