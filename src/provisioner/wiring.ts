/** wiring: builds the controller the daemon uses from the `openflow` config section. */
import { readFileSync } from "node:fs";
import type { Logger } from "../common/log.js";
import {
  OFP_VERSIONS,
  createController,
  tlsServer,
  type Controller,
  type ServerFactory,
} from "../controller/index.js";
import type { RfbootConfig } from "./config/index.js";

/** controllerFromConfig maps `openflow` (seconds, version names) onto the controller's options (ms, wire bytes). */
export function controllerFromConfig(config: RfbootConfig, logger: Logger): Controller {
  const of = config.openflow;
  // OVS `ssl:` controllers: rfboot presents its certificate and, with a CA, verifies the switch's.
  const createServer: ServerFactory | undefined = of.tls
    ? tlsServer({
        cert: readFileSync(of.tls.cert),
        key: readFileSync(of.tls.key),
        ...(of.tls.ca ? { ca: readFileSync(of.tls.ca) } : {}),
        // A peer that opens TCP but never finishes the TLS handshake is dropped like a slow OpenFlow one.
        handshakeTimeoutMs: of.handshakeTimeoutSeconds * 1000,
      })
    : undefined;
  return createController({
    listen: { host: of.listen.host, port: of.listen.port },
    mode: of.mode,
    upstream: { host: of.upstream.host, port: of.upstream.port },
    versions: of.versions.map((v) => OFP_VERSIONS[v]),
    role: of.role,
    echoIntervalMs: of.echoIntervalSeconds * 1000,
    echoTimeoutMs: of.echoTimeoutSeconds * 1000,
    handshakeTimeoutMs: of.handshakeTimeoutSeconds * 1000,
    maxConnections: of.maxConnections,
    maxConnectionsPerPeer: of.maxConnectionsPerPeer,
    maxMessageLength: of.maxMessageLength,
    logger,
    ...(createServer ? { createServer } : {}),
  });
}
