/**
 * The controller's public face: createController, its options and events, the TLS listener factory,
 * and the part of the OpenFlow codec that tools built on rfboot use (frame, decode, encode, name, show).
 * Everything else under controller/ is internal; the list is pinned by a test so that a change to it
 * is a decision, not a side effect.
 */
export {
  Controller,
  createController,
  eventToJson,
  type AcceptStats,
  type ControllerEvent,
  type ControllerEvents,
  type ControllerMode,
  type ControllerOptions,
  type DownEvent,
  type PortEvent,
  type UpEvent,
} from "./controller.js";
export { type DatapathInfo, type PortInfo, type PortReason, type RoleSetting } from "./session.js";
export { tlsServer, type ListenAddress, type ServerFactory, type TlsServerOptions } from "./server.js";
export {
  Framer,
  OFP_VERSIONS,
  buildHello,
  decodeMessage,
  encodeMessage,
  msgTypeName,
  versionName,
  withNames,
  type FramerOptions,
  type Named,
  type OfMessage,
  type OfVersionName,
  type Port,
} from "./codec/index.js";
