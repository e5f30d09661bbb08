/**
 * One Datapath per dpid holds everything the daemon knows about that switch and its VM: the connection, the
 * VM resolved from the config at join, the ports seen at join, the leave and retry timers, the retry state,
 * the readiness watch, the lease and the placement. The DatapathTable is the only index: by dpid, and by VM
 * name for libvirt's answers (which name domains, not switches).
 */
import type { UpEvent } from "../controller/index.js";
import type { Cancel } from "./clock.js";
import type { ResolvedVm } from "./config/index.js";
import type { KnownDomainState } from "./libvirt/index.js";
import type { KnownPlacement } from "./placement.js";
import type { PrewarmImage } from "./store/index.js";

/** Datapath is the state of one dpid: a connected switch, or one known from records and libvirt. */
export class Datapath {
  /** conn is the switch's current main connection; undefined while it is not connected. */
  conn: UpEvent | undefined;
  /**
   * joinPorts are the switch's port numbers at its last join. They are kept after the switch leaves, so the
   * leave policy and any re-resolution (reload) see the VM and port list that was ensured.
   */
  joinPorts: readonly number[] = [];
  /** vm is the VM resolved from the config at join (again at reload); undefined: the dpid has no VM. */
  vm: ResolvedVm | undefined;
  /** placement is where the VM is defined or was placed (records, `list --all`, our own decisions). */
  placement: KnownPlacement | undefined;
  /**
   * definedAs is `host uuid configFingerprint` of the definition the VM's domain was last given (from the
   * record at start-up, then from each successful ensure; cleared when an ensure fails, as the domain's
   * definition is then unknown). A domain already defined from the same VM config is not redefined.
   */
  definedAs: string | undefined;
  /**
   * knownState is the state of the VM's domain read or made ahead of its switch's join (domains ahead), on
   * `host`, with whether its disk is in place: the join starts it without asking libvirt again. Dropped by
   * any libvirt event of the domain and by every start (its own or another action's).
   */
  knownState: (KnownDomainState & { host: string; diskReady: boolean }) | undefined;
  /** ensuredAt is the wall-clock ms of the last successful ensure (a host probe older than that is stale). */
  ensuredAt: number | undefined;
  /**
   * prewarmImage is the VM's prewarm save image (from its record at start-up, then from each prewarm), until
   * a start restores or drops it; its host is where the VM must go to restore it.
   */
  prewarmImage: PrewarmImage | undefined;
  /** replacedFrom is the lost host the hostLoss policy moved the VM away from (its stale copy is stopped). */
  replacedFrom: string | undefined;
  /** attempts counts consecutive failed ensures (recorded; reset by a success). */
  attempts = 0;
  /** retryDelayMs is the last backoff delay; undefined before the first failure. */
  retryDelayMs: number | undefined;
  /** leased: this instance holds the dpid's lease (renewed while it serves the switch). */
  leased = false;
  /**
   * leaseUntil: when the lease this instance holds expires, by this instance's clock (`clock.now()`), as of
   * its last claim or renewal; 0 when not held.
   */
  leaseUntil = 0;
  private recordVmName: string | undefined;
  private restartDelayMs: number | undefined;
  private restartedAt: number | undefined;
  private leaveTimer: Cancel | undefined;
  private retryTimer: Cancel | undefined;
  private readiness: AbortController | undefined;

  constructor(readonly dpidHex: string) {}

  /** vmName is the VM's name: from the join's resolution, else from the records or libvirt. */
  get vmName(): string | undefined {
    return this.vm?.name ?? this.recordVmName;
  }

  set vmName(name: string | undefined) {
    this.recordVmName = name;
  }

  /** joined: the switch connected to this instance at least once. */
  joined = false;

  /** connected: the switch is connected now. */
  get connected(): boolean {
    return this.conn !== undefined;
  }

  /** join records a new connection and the ports it reported. */
  join(e: UpEvent): void {
    this.conn = e;
    this.joined = true;
    this.joinPorts = e.ports.map((p) => p.no);
  }

  /** leave records that the connection is gone; the join's ports and VM are kept. */
  leave(): void {
    this.conn = undefined;
  }

  /** armLeave sets the leave grace timer, replacing a previous one. */
  armLeave(cancel: Cancel): void {
    this.leaveTimer?.();
    this.leaveTimer = cancel;
  }

  /** leaveFired forgets the leave timer (it ran). */
  leaveFired(): void {
    this.leaveTimer = undefined;
  }

  /** cancelLeave stops a pending leave grace timer; true when there was one. */
  cancelLeave(): boolean {
    const had = this.leaveTimer !== undefined;
    this.leaveTimer?.();
    this.leaveTimer = undefined;
    return had;
  }

  /** armRetry sets the retry timer, replacing a previous one. */
  armRetry(cancel: Cancel): void {
    this.retryTimer?.();
    this.retryTimer = cancel;
  }

  /** retryFired forgets the retry timer (it ran). */
  retryFired(): void {
    this.retryTimer = undefined;
  }

  /** leavePending: the leave grace period runs. */
  get leavePending(): boolean {
    return this.leaveTimer !== undefined;
  }

  /** retryWaiting: an ensure waits out its backoff. */
  get retryWaiting(): boolean {
    return this.retryTimer !== undefined;
  }

  /** cancelRetry stops a waiting retry; true when there was one. */
  cancelRetry(): boolean {
    const had = this.retryTimer !== undefined;
    this.retryTimer?.();
    this.retryTimer = undefined;
    return had;
  }

  /** nextRetryDelay doubles the backoff from `initialMs` up to `maxMs` and returns it. */
  nextRetryDelay(initialMs: number, maxMs: number): number {
    this.retryDelayMs = this.retryDelayMs === undefined ? initialMs : Math.min(this.retryDelayMs * 2, maxMs);
    return this.retryDelayMs;
  }

  /**
   * nextRestartDelay is the wait before starting a VM that stopped behind rfboot's back, at `now` (clock
   * ms): `initialMs` for the first stop, or one `resetMs` or more after the last restart; doubled (up to
   * `maxMs`) for each stop that follows a restart sooner, so a guest that keeps crashing is not restarted in
   * a tight loop.
   */
  nextRestartDelay(now: number, initialMs: number, maxMs: number, resetMs: number): number {
    const fresh =
      this.restartDelayMs === undefined ||
      this.restartedAt === undefined ||
      now - this.restartedAt >= resetMs;
    this.restartDelayMs = fresh ? initialMs : Math.min(Math.max(this.restartDelayMs! * 2, initialMs), maxMs);
    this.restartedAt = now;
    return this.restartDelayMs;
  }

  /** succeeded resets the retry state after a successful ensure at wall-clock ms `at`. */
  succeeded(at: number): void {
    this.retryDelayMs = undefined;
    this.attempts = 0;
    this.ensuredAt = at;
  }

  /** watchReadiness aborts any previous readiness watch and returns the signal of a new one. */
  watchReadiness(): AbortController {
    this.readiness?.abort();
    this.readiness = new AbortController();
    return this.readiness;
  }

  /** abortReadiness stops the readiness watch, if any. */
  abortReadiness(): void {
    this.readiness?.abort();
  }

  /** dispose stops every timer and watch (daemon stop). */
  dispose(): void {
    this.cancelLeave();
    this.cancelRetry();
    this.abortReadiness();
  }
}

/** DatapathStatus is a snapshot of one Datapath for status displays (and tests). */
export interface DatapathStatus {
  dpidHex: string;
  connected: boolean;
  /** joined: the switch connected to this instance at least once (false: known from config or records). */
  joined?: boolean;
  vm?: string;
  /** dataPorts: the VM's data ports (switch port -> VM interface number) as resolved at join. */
  dataPorts: { dpPort: number; vmPort: number }[];
  /** joinPorts: the switch's port numbers at its last join. */
  joinPorts: number[];
  host?: string;
  attempts: number;
  leased: boolean;
  leavePending: boolean;
  retryWaiting: boolean;
}

/** statusOf takes a snapshot of a Datapath. */
export function statusOf(dp: Datapath): DatapathStatus {
  return {
    dpidHex: dp.dpidHex,
    connected: dp.connected,
    joined: dp.joined,
    ...(dp.vmName ? { vm: dp.vmName } : {}),
    dataPorts: (dp.vm?.ports ?? []).map((p) => ({ dpPort: p.dpPort, vmPort: p.vmPort })),
    joinPorts: [...dp.joinPorts],
    ...(dp.placement ? { host: dp.placement.host } : {}),
    attempts: dp.attempts,
    leased: dp.leased,
    leavePending: dp.leavePending,
    retryWaiting: dp.retryWaiting,
  };
}

/** DatapathTable holds one Datapath per dpid (16 hex digits). */
export class DatapathTable {
  private readonly byDpid = new Map<string, Datapath>();

  /** get returns the dpid's Datapath, if known. */
  get(dpidHex: string): Datapath | undefined {
    return this.byDpid.get(dpidHex);
  }

  /** obtain returns the dpid's Datapath, creating it. */
  obtain(dpidHex: string): Datapath {
    let dp = this.byDpid.get(dpidHex);
    if (!dp) {
      dp = new Datapath(dpidHex);
      this.byDpid.set(dpidHex, dp);
    }
    return dp;
  }

  /** forget drops a dpid's Datapath (it has no VM and is not connected: nothing to keep). */
  forget(dpidHex: string): void {
    const dp = this.byDpid.get(dpidHex);
    dp?.dispose();
    this.byDpid.delete(dpidHex);
  }

  /** byVm returns the Datapath whose VM has this name. */
  byVm(name: string): Datapath | undefined {
    for (const dp of this.byDpid.values()) if (dp.vmName === name) return dp;
    return undefined;
  }

  /** all lists every known Datapath. */
  all(): Datapath[] {
    return [...this.byDpid.values()];
  }

  /** connected lists the Datapaths whose switch is connected. */
  connected(): Datapath[] {
    return this.all().filter((d) => d.connected);
  }

  /** placements lists the known placements (placement's input). */
  placements(): KnownPlacement[] {
    const out: KnownPlacement[] = [];
    for (const dp of this.byDpid.values()) if (dp.placement) out.push(dp.placement);
    return out;
  }

  /** onHost lists the Datapaths whose VM is placed on `host`. */
  onHost(host: string): Datapath[] {
    return this.all().filter((d) => d.placement?.host === host);
  }
}
