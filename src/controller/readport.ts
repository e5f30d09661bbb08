/**
 * Relay reads into reused memory (Node's `onread` socket option) instead of a fresh 64 KiB buffer
 * per read.
 *
 * Why: on a packet-in flood the relay's cost was mostly memory, not parsing: every read of a
 * Node socket allocates a new buffer (and hands it through the Readable stream machinery), which the
 * relay writes on and the garbage collector then frees. Reading into the same memory again, and
 * writing it on at once, took a forwarder's CPU per GiB from about 1.1 s to about 0.6 s on the lab
 * machine (bench/controller.ts measures it; bench/README.md has the figures).
 *
 * The contract (ReadMemory) is what makes reuse safe. A read lands in one of two kinds of memory:
 * - `scratch`: one buffer shared by every port of the process that is not in a flow. Reads are
 *   delivered one at a time and the next read may land in the same bytes, so the reader must copy
 *   whatever it keeps or writes (these reads are small: handshakes, echoes, port status).
 * - `lent`: the port's own buffer, taken once a read of FLOW_READ_BYTES or more shows a flow. The
 *   reader may write views of it; if a write is still queued when it returns (the peer is slower),
 *   it calls pin() and the port reads into a new buffer from then on, leaving the old one to the
 *   queued write (and the garbage collector). Own buffers are bounded by OWN_READ_BUDGET_BYTES for
 *   the whole process; beyond it a flow reads into scratch memory and is copied.
 * A port returns to scratch memory after IDLE_READS reads in a row below SMALL_READ_BYTES.
 *
 * Sockets the relay opens (to the upstream controller) take `onread` when they are created. A switch's
 * socket is accepted by net.Server, which has no such option: `adoptAccepted` re-wraps the accepted
 * connection's handle in a Socket created with `onread` (the same construction Node's net.Server uses
 * for an accepted connection, plus the option). It relies on `socket._handle` and the Socket
 * constructor's `handle` option, which Node uses internally and does not document; where they are
 * not there it returns undefined and the caller keeps the Node-allocated reads (`owned`), so an
 * unexpected Node release costs speed, never correctness. test/unit/controller/readport.test.ts fails
 * if this Node does not take the fast path.
 */
import { Socket } from "node:net";
import { TLSSocket } from "node:tls";

/** SCRATCH_READ_BYTES is the size of the shared read buffer (the size of Node's own reads). */
export const SCRATCH_READ_BYTES = 64 * 1024;
/**
 * OWN_READ_MIN_BYTES and OWN_READ_MAX_BYTES: a flowing port's own buffer starts at the first size and
 * doubles, up to the second, each time a read fills it (the peer is writing faster than the relay
 * reads): fewer, larger reads and writes where the relay would otherwise fall behind.
 */
export const OWN_READ_MIN_BYTES = 256 * 1024;
export const OWN_READ_MAX_BYTES = 1024 * 1024;
/** OWN_READ_BUDGET_BYTES bounds the own buffers of the whole process (64 to 256 flowing ports). */
export const OWN_READ_BUDGET_BYTES = 64 * 1024 * 1024;
/** FLOW_READ_BYTES: a read at least this large moves a port to its own buffer. */
export const FLOW_READ_BYTES = SCRATCH_READ_BYTES / 2;
/** SMALL_READ_BYTES and IDLE_READS: this many reads in a row below this size end a flow. */
export const SMALL_READ_BYTES = 4 * 1024;
export const IDLE_READS = 16;

/** ReadMemory says how long the bytes handed to a reader stay valid (see the module comment). */
export type ReadMemory =
  /** Node allocated them for this read alone: keep them as long as you like. */
  | { readonly kind: "owned" }
  /** Shared scratch memory: copy whatever must outlive the call. */
  | { readonly kind: "scratch" }
  /** The port's own buffer: views may be written on; call pin() if one is still queued on return. */
  | { readonly kind: "lent"; pin(): void };

/** OWNED is the ReadMemory of a chunk from a socket's 'data' event. */
export const OWNED: ReadMemory = Object.freeze({ kind: "owned" });
const SCRATCH: ReadMemory = Object.freeze({ kind: "scratch" });

/** ReadPortStats counts, for the whole process, how reads landed (for benches and tests). */
export interface ReadPortStats {
  scratchReads: number;
  scratchBytes: number;
  lentReads: number;
  lentBytes: number;
  /** Own buffers left to a queued write and replaced. */
  pins: number;
  /** Flows refused an own buffer because the budget was spent. */
  overBudget: number;
  /** Bytes of own buffers held by ports now. */
  ownBytes: number;
}

const stats: ReadPortStats = {
  scratchReads: 0,
  scratchBytes: 0,
  lentReads: 0,
  lentBytes: 0,
  pins: 0,
  overBudget: 0,
  ownBytes: 0,
};

/** readPortStats returns a copy of the process-wide counters. */
export function readPortStats(): ReadPortStats {
  return { ...stats };
}

let scratch: Buffer | undefined;

function scratchBuffer(): Buffer {
  scratch ??= Buffer.allocUnsafeSlow(SCRATCH_READ_BYTES);
  return scratch;
}

/** ReadSink receives each read: `chunk` is valid as `memory` says. */
export type ReadSink = (chunk: Buffer, memory: ReadMemory) => void;

/**
 * ReadPort feeds one socket's reads to a sink from reused memory. Pass `port.onread` as the socket's
 * `onread` option (net.connect, new Socket, adoptAccepted); call close() when the socket closes.
 */
export class ReadPort {
  private own: Buffer | undefined;
  private ownSize = OWN_READ_MIN_BYTES;
  private pinned = false;
  private flowing = false;
  private smallReads = 0;
  private closed = false;
  private sinkFn: ReadSink | undefined;
  /** Reads that arrived before a sink was set (copies), delivered when it is. */
  private early: Buffer[] = [];
  private readonly lent: ReadMemory = Object.freeze({ kind: "lent", pin: () => this.pin() });

  /** onread is the socket option: Node calls `buffer` for the memory of the next read. */
  readonly onread = {
    buffer: (): Buffer => this.next(),
    callback: (n: number, buf: Buffer): boolean => {
      this.deliver(n, buf);
      return true;
    },
  };

  constructor(sink?: ReadSink) {
    this.sinkFn = sink;
  }

  /** sink sets where reads go; reads that came before it are handed over first (as `owned`). */
  set sink(fn: ReadSink) {
    this.sinkFn = fn;
    const early = this.early;
    this.early = [];
    for (const b of early) fn(b, OWNED);
  }

  /** close releases the own buffer (its budget); later reads, if any, are dropped. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.dropOwn();
    this.sinkFn = undefined;
    this.early = [];
  }

  private pin(): void {
    if (this.own !== undefined) this.pinned = true;
  }

  private dropOwn(): void {
    if (this.own === undefined) return;
    stats.ownBytes -= this.own.length;
    this.own = undefined;
    this.pinned = false;
  }

  private next(): Buffer {
    if (!this.flowing || this.closed) return scratchBuffer();
    if (this.pinned) {
      stats.pins++;
      this.dropOwn(); // the queued write keeps it alive until it is flushed
    }
    const have = this.own?.length ?? 0;
    if (have < this.ownSize) {
      if (stats.ownBytes - have + this.ownSize <= OWN_READ_BUDGET_BYTES) {
        this.dropOwn();
        this.own = Buffer.allocUnsafeSlow(this.ownSize);
        stats.ownBytes += this.ownSize;
      } else if (this.own === undefined) {
        stats.overBudget++;
        this.flowing = false;
        this.ownSize = OWN_READ_MIN_BYTES;
        return scratchBuffer();
      } else {
        this.ownSize = have; // no budget to grow: keep the buffer it has
      }
    }
    return this.own!;
  }

  private deliver(n: number, buf: Buffer): void {
    const chunk = buf.subarray(0, n);
    const isOwn = buf === this.own;
    if (isOwn) {
      stats.lentReads++;
      stats.lentBytes += n;
    } else {
      stats.scratchReads++;
      stats.scratchBytes += n;
    }
    if (this.closed) return;
    const sink = this.sinkFn;
    if (sink === undefined) this.early.push(Buffer.from(chunk));
    else sink(chunk, isOwn ? this.lent : SCRATCH);
    // The flow state decides where the next read lands (next() runs right after this).
    if (n >= FLOW_READ_BYTES) {
      this.flowing = true;
      this.smallReads = 0;
      if (isOwn && n === buf.length && this.ownSize < OWN_READ_MAX_BYTES) this.ownSize *= 2;
    } else if (this.flowing && n < SMALL_READ_BYTES && ++this.smallReads >= IDLE_READS) {
      this.flowing = false;
      this.smallReads = 0;
      this.ownSize = OWN_READ_MIN_BYTES;
      this.dropOwn();
    }
  }
}

/**
 * adoptAccepted re-wraps an accepted plain-TCP socket so that it reads through `port`, and returns
 * the new Socket; `raw` becomes an empty shell that is destroyed when the new one closes (so a
 * net.Server's connection count and anything listening for `raw`'s close stay right). Call it in the
 * server's connection listener, before anything reads. Returns undefined, leaving `raw` untouched,
 * for a TLS socket or where this Node's net module is not as expected (see the module comment).
 */
export function adoptAccepted(raw: Socket, port: ReadPort): Socket | undefined {
  if (raw instanceof TLSSocket) return undefined;
  const shell = raw as unknown as {
    _handle?: { readStop?: unknown; readStart?: unknown; reading?: boolean } | null;
  };
  const handle = shell._handle;
  if (
    handle === null ||
    typeof handle !== "object" ||
    typeof handle.readStop !== "function" ||
    typeof handle.readStart !== "function" ||
    raw.destroyed
  ) {
    return undefined;
  }
  let adopted: Socket;
  try {
    // The accepted socket has started reading; stop, and clear the flag Node keeps beside the handle
    // so that the new Socket starts it again (with its own buffer).
    (handle.readStop as () => number).call(handle);
    handle.reading = false;
    shell._handle = null;
    adopted = new Socket({
      handle,
      readable: true,
      writable: true,
      onread: port.onread,
    } as ConstructorParameters<typeof Socket>[0]);
  } catch {
    shell._handle = handle;
    handle.reading = true;
    (handle.readStart as () => number).call(handle);
    return undefined;
  }
  adopted.once("close", () => raw.destroy());
  return adopted;
}
