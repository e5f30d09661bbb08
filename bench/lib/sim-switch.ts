/**
 * A simulated OpenFlow 1.3 switch for benches: a TCP client on loopback that does what Open vSwitch does when
 * it connects to a controller (HELLO with a version bitmap, FEATURES_REPLY with its datapath id, the PORT_DESC
 * multipart reply, ROLE_REPLY, ECHO_REPLY, BARRIER_REPLY), built with rfboot's own codec (encodeMessage).
 *
 * The controller asks FEATURES_REQUEST and PORT_DESC_REQUEST back to back; the switch answers both in one
 * write with FEATURES_REPLY last, so `featuresAt` (performance.now() of that write) is the moment the
 * controller has everything it needs to report the datapath: the start of rfboot's reaction.
 */
import { connect, type Socket } from "node:net";
import { Framer, buildHello, decodeMessage, encodeMessage, type Port } from "../../src/controller/index.js";
import { OFPCR_ROLE } from "../../src/controller/codec/index.js";

/** SimSwitch is one connected simulated switch. */
export interface SimSwitch {
  dpid: bigint;
  sock: Socket;
  /** featuresAt is performance.now() when FEATURES_REPLY (the last handshake reply) was written. */
  featuresAt: Promise<number>;
  /** featuresCpu is process.cpuUsage() at that moment (this process's CPU time, for "own time" splits). */
  featuresCpu?: NodeJS.CpuUsage;
  close(): void;
}

function port(no: number, dpid: bigint): Port {
  const low = Number(dpid & 0xffffn);
  const b = (x: number) => x.toString(16).padStart(2, "0");
  return {
    portNo: no,
    hwAddr: `0a:00:${b(low >> 8)}:${b(low & 0xff)}:00:${b(no)}`,
    name: `s${low.toString(16)}-eth${no}`.slice(0, 15),
    config: 0,
    state: 4, // OFPPS_LIVE
    curr: 0,
    advertised: 0,
    supported: 0,
    peer: 0,
    currSpeed: 10_000_000,
    maxSpeed: 10_000_000,
  };
}

/** connectSimSwitch opens a simulated switch with `dataPorts` ports to 127.0.0.1:`ctlPort`. */
export function connectSimSwitch(ctlPort: number, dpid: bigint, dataPorts: number): Promise<SimSwitch> {
  return new Promise((resolve, reject) => {
    const sock = connect({ host: "127.0.0.1", port: ctlPort });
    const framer = new Framer();
    let resolveFeatures!: (t: number) => void;
    const featuresAt = new Promise<number>((r) => (resolveFeatures = r));
    let featuresXid: number | undefined;
    let portDescXid: number | undefined;
    let sim: SimSwitch | undefined;
    const answerHandshake = () => {
      if (featuresXid === undefined || portDescXid === undefined) return;
      const buf = Buffer.concat([
        encodeMessage({
          type: "port_desc_reply",
          version: 4,
          xid: portDescXid,
          flags: 0,
          ports: Array.from({ length: dataPorts }, (_, i) => port(i + 1, dpid)),
        }),
        encodeMessage({
          type: "features_reply",
          version: 4,
          xid: featuresXid,
          datapathId: dpid,
          nBuffers: 0,
          nTables: 254,
          auxiliaryId: 0,
          capabilities: 0x4f,
          reserved: 0,
        }),
      ]);
      featuresXid = portDescXid = -1; // answered; a later request gets a plain reply below
      sock.write(buf);
      const t = performance.now();
      if (sim) sim.featuresCpu = process.cpuUsage();
      resolveFeatures(t);
    };
    sock.setNoDelay(true);
    sock.once("error", reject);
    sock.on("error", () => undefined);
    sock.once("connect", () => {
      sock.write(encodeMessage(buildHello([4], 1)));
      sim = { dpid, sock, featuresAt, close: () => sock.destroy() };
      resolve(sim);
    });
    sock.on("data", (chunk: Buffer) => {
      for (const f of framer.push(chunk)) {
        const m = decodeMessage(f);
        switch (m.type) {
          case "features_request":
            if (featuresXid === undefined) {
              featuresXid = m.xid;
              answerHandshake();
            }
            break;
          case "port_desc_request":
            if (portDescXid === undefined) {
              portDescXid = m.xid;
              answerHandshake();
            }
            break;
          case "role_request":
            // A NOCHANGE probe learns the current role (EQUAL for a fresh connection); else it is granted.
            sock.write(
              encodeMessage({
                type: "role_reply",
                version: 4,
                xid: m.xid,
                role: m.role === OFPCR_ROLE.NOCHANGE ? OFPCR_ROLE.EQUAL : m.role,
                generationId: m.generationId,
              }),
            );
            break;
          case "echo_request":
            sock.write(encodeMessage({ type: "echo_reply", version: 4, xid: m.xid, data: m.data }));
            break;
          case "barrier_request":
            sock.write(encodeMessage({ type: "barrier_reply", version: 4, xid: m.xid }));
            break;
          default:
            break;
        }
      }
    });
  });
}
