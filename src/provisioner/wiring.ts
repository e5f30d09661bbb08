/** wiring: builds the controller the daemon uses from the `openflow` config section. */
import { readFileSync } from "node:fs";
import type { Logger } from "../common/log.js";
import {
  OFP_VERSIONS,
  createController,
  tlsServer,
  type Controller,
  type DatapathInfo,
  type ServerFactory,
} from "../controller/index.js";
import { dpidToHex } from "../common/dpid.js";
import { resolveDatapath, type RfbootConfig } from "./config/index.js";

/**
 * controllerFromConfig maps `openflow` (seconds, version names) onto the controller's options (ms, wire
 * bytes). With `policies.unknownDatapath.action: refuse`, a datapath the config does not list is refused
 * at the end of its handshake (closed, no `up`); `current` gives the config in force (after a reload),
 * default the one passed here.
 */
export function controllerFromConfig(
  config: RfbootConfig,
  logger: Logger,
  current: () => RfbootConfig = () => config,
): Controller {
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
    relayReplyPollUs: of.relayReplyPollMicroseconds,
    relayReplyPollCpuShare: of.relayReplyPollCpuShare,
    logger,
    admit: (datapath) => admitDatapath(current(), datapath),
    ...(createServer ? { createServer } : {}),
  });
}

/**
 * admitDatapath applies `policies.unknownDatapath.action: refuse`: true, or the reason a datapath is not
 * served. A datapath whose entry cannot be resolved (a config error) is admitted, so the daemon reports it.
 */
export function admitDatapath(config: RfbootConfig, datapath: DatapathInfo): true | string {
  if (config.policies.unknownDatapath.action !== "refuse") return true;
  try {
    if (
      resolveDatapath(
        config,
        datapath.dpid,
        datapath.ports.map((p) => p.no),
      ) !== undefined
    )
      return true;
  } catch {
    return true;
  }
  return `datapath ${dpidToHex(datapath.dpid)} is not in the config and policies.unknownDatapath.action is refuse`;
}
