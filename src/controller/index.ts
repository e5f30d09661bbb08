/** The controller's public API: createController and its event types, plus the OpenFlow codec. */
export {
  ALL_VERSIONS,
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
export {
  DEFAULT_SESSION_TIMING,
  READ_ONLY_TYPES,
  MAX_SWITCH_PORTS,
  Session,
  type DatapathInfo,
  type PortInfo,
  type PortReason,
  type RoleSetting,
  type SessionEvent,
  type SessionOptions,
  type Step,
} from "./session.js";
export { negotiate } from "./session-negotiate.js";
export { DEFAULT_UPSTREAM, type UpstreamOptions } from "./relay.js";
export {
  DEFAULT_CONNECTION_LIMITS,
  plainTcpServer,
  tlsServer,
  type ConnectionLimits,
  type TlsServerOptions,
  type ListenAddress,
  type ServerFactory,
} from "./server.js";
export * from "./codec/index.js";
