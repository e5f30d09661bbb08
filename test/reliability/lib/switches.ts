/**
 * Simulated OpenFlow 1.3 switches for volume: in-process clients over real loopback TCP that answer the
 * handshake like Open vSwitch (HELLO, FEATURES_REPLY, PORT_DESC, ECHO, ROLE; test/unit/controller/fake-peers.ts
 * builds the replies with the codec's encodeMessage). One SimSwitch keeps reconnecting like a real switch
 * when its session is closed, until `stop()`.
 */
import { Peer, type FakeSwitchSpec } from "../../unit/controller/fake-peers.js";
import { sleep } from "./util.js";

/** simSpec builds the spec of an OpenFlow 1.3 switch with `ports` ports (numbers 1..n). */
export function simSpec(dpid: bigint, ports: number): FakeSwitchSpec {
  const hex = dpid.toString(16).padStart(12, "0").slice(-12);
  return {
    dpid,
    versions: [4],
    ports: Array.from({ length: ports }, (_, i) => ({
      no: i + 1,
      name: `s${dpid.toString(16)}-eth${i + 1}`,
      mac: `aa:${hex.slice(2, 4)}:${hex.slice(4, 6)}:${hex.slice(6, 8)}:${hex.slice(8, 10)}:${(i + 1).toString(16).padStart(2, "0")}`,
    })),
  };
}

/** SimSwitchOptions: where to connect and how to behave when the session ends. */
export interface SimSwitchOptions {
  port: number;
  host?: string;
  /** reconnect after the session closes (default true), after reconnectMs (default 300, like OVS's 1 s floor / 3). */
  reconnect?: boolean;
  reconnectMs?: number;
}

/** SimSwitch is one simulated switch. `sessions` counts TCP sessions opened; `handshakes` complete handshakes. */
export class SimSwitch {
  peer: Peer | undefined;
  sessions = 0;
  handshakes = 0;
  private stopped = false;
  private loop: Promise<void> | undefined;

  constructor(
    readonly spec: FakeSwitchSpec,
    readonly opts: SimSwitchOptions,
  ) {}

  /** session opens one session and resolves once the controller asked for PORT_DESC (the handshake is done). */
  async session(timeoutMs = 5000): Promise<Peer> {
    const p = await Peer.connect(this.opts.port, this.opts.host);
    this.peer = p;
    this.sessions++;
    p.actAsSwitch(this.spec);
    await p.waitFor(
      () => p.isClosed || p.messages.some((m) => m.type === "port_desc_request"),
      timeoutMs,
      "PORT_DESC request",
    );
    if (!p.isClosed) this.handshakes++;
    return p;
  }

  /** start connects and keeps the switch connected (reconnecting) until stop(). */
  start(): void {
    this.stopped = false;
    this.loop ??= (async () => {
      while (!this.stopped) {
        try {
          const p = await this.session();
          await p.closed;
        } catch {
          // refused or handshake timeout: retry as a switch would
        }
        if (this.stopped || this.opts.reconnect === false) break;
        await sleep(this.opts.reconnectMs ?? 300);
      }
      this.loop = undefined;
    })();
  }

  /** disconnect closes the current session (the switch will reconnect if started). */
  disconnect(): void {
    this.peer?.socket.destroy();
  }

  /** stop closes the session and stops reconnecting. */
  async stop(): Promise<void> {
    this.stopped = true;
    this.peer?.socket.destroy();
    await this.loop;
  }
}

/** Fleet is a set of simulated switches. */
export class Fleet {
  constructor(readonly switches: SimSwitch[]) {}

  /** of builds n switches with dpids base+1..base+n, `ports(i)` ports each. */
  static of(n: number, base: bigint, port: number, ports: (i: number) => number): Fleet {
    return new Fleet(
      Array.from(
        { length: n },
        (_, i) => new SimSwitch(simSpec(base + BigInt(i + 1), ports(i)), { port, reconnectMs: 300 }),
      ),
    );
  }

  start(): void {
    for (const s of this.switches) s.start();
  }

  async stop(): Promise<void> {
    await Promise.all(this.switches.map((s) => s.stop()));
  }
}
