/**
 * The daemon's time: a monotonic clock for intervals and deadlines, the wall clock for records, and one-shot
 * timers. Every part of the daemon takes a DaemonClock, so tests drive retries, grace periods, probes and
 * readiness timeouts by advancing a fake clock instead of sleeping.
 */

/** Cancel stops a timer; calling it after the timer fired, or twice, does nothing. */
export type Cancel = () => void;

/** DaemonClock is the time source and timer factory of the daemon's parts. */
export interface DaemonClock {
  /** now returns monotonic milliseconds (for intervals and deadlines; never goes back). */
  now(): number;
  /** date returns the wall-clock time (for records, lease expiry and probe timestamps). */
  date(): Date;
  /** after runs `fn` once, `ms` from now. Real timers never keep the process alive on their own. */
  after(ms: number, fn: () => void): Cancel;
}

/** systemClock is the real clock: performance.now, new Date and unref'd setTimeout. */
export const systemClock: DaemonClock = {
  now: () => performance.now(),
  date: () => new Date(),
  after(ms, fn) {
    const t = setTimeout(fn, Math.max(0, ms));
    t.unref();
    return () => clearTimeout(t);
  },
};

/** every runs `fn` every `ms` on `clock` until the returned Cancel is called. */
export function every(clock: DaemonClock, ms: number, fn: () => void): Cancel {
  let cancel: Cancel | undefined;
  let stopped = false;
  const arm = () => {
    cancel = clock.after(ms, () => {
      if (stopped) return;
      arm();
      fn();
    });
  };
  arm();
  return () => {
    stopped = true;
    cancel?.();
  };
}

/** sleep resolves after `ms` on `clock` (or at once when `signal` aborts). */
export function sleep(clock: DaemonClock, ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal?.aborted) {
      resolve();
      return;
    }
    const cancel = clock.after(ms, done);
    function done() {
      cancel();
      signal?.removeEventListener("abort", done);
      resolve();
    }
    signal?.addEventListener("abort", done, { once: true });
  });
}
