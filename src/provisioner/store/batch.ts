/**
 * TurnBatcher: calls made while a batch is being collected (one event-loop turn) or while earlier batches
 * are in flight are sent to MongoDB as one command. On FerretDB every command costs about 2 ms whatever
 * it carries (found measuring a burst of joins: 256 `findOne` by `_id` take ~460 ms in a row, one
 * `find({_id: {$in: [...256]}})` ~25 ms; 256 `insertOne` ~440 ms, one `insertMany` ~12 ms), so a burst of
 * joins must not pay one round trip per datapath. A lone call waits only for the end of the current turn, or,
 * with `immediate`, not at all: when no batch is in flight or being collected, it is sent as it is made (a
 * join's lease claim is usually alone, and the turn it would wait for is the rest of the join's work: 2.7 ms
 * measured). The calls that arrive while it is in flight form the next batch, so a burst still batches: its
 * first call goes alone, the others together after it.
 */

import { MongoNetworkError } from "mongodb";
import { StoreError } from "../../common/errors.js";

/** BatchResult is one call's outcome inside a batch: a value, or the error of that call alone. */
export type BatchResult<O> =
  { readonly ok: true; readonly value: O } | { readonly ok: false; readonly error: unknown };

/** TurnBatcherOptions bound a batch and how many batches may be in flight at once. */
export interface TurnBatcherOptions {
  /** max calls in one batch (default 256). */
  readonly max?: number;
  /** maxInFlight batches at once (default 2); later calls wait and form the next batch. */
  readonly maxInFlight?: number;
  /**
   * stallMs bounds one batch (default 20000, above the driver's socket timeout). The driver can lose an
   * operation whose connection dies (see outbox.ts, stallMs): its promise never settles. A stalled batch
   * rejects its calls with a transient StoreError and frees its slot, so later calls are not held forever.
   */
  readonly stallMs?: number;
  /**
   * immediate: a call made while no batch is in flight or being collected starts its batch at once
   * (synchronously, inside `call`) instead of at the end of the turn (default false).
   */
  readonly immediate?: boolean;
}

interface Pending<I, O> {
  readonly input: I;
  resolve(o: O): void;
  reject(e: unknown): void;
}

/**
 * TurnBatcher runs `runBatch` over the inputs of the calls collected; it must return one result per input,
 * in order. A rejection of `runBatch` rejects every call of that batch.
 */
export class TurnBatcher<I, O> {
  private queue: Pending<I, O>[] = [];
  private scheduled = false;
  private inFlight = 0;
  private readonly max: number;
  private readonly maxInFlight: number;
  private readonly stallMs: number;
  private readonly immediate: boolean;

  constructor(
    private readonly runBatch: (inputs: readonly I[]) => Promise<readonly BatchResult<O>[]>,
    options: TurnBatcherOptions = {},
  ) {
    this.max = Math.max(1, options.max ?? 256);
    this.maxInFlight = Math.max(1, options.maxInFlight ?? 2);
    this.stallMs = options.stallMs ?? 20_000;
    this.immediate = options.immediate ?? false;
  }

  /** call adds `input` to the next batch and resolves with its result. */
  call(input: I): Promise<O> {
    return new Promise<O>((resolve, reject) => {
      this.queue.push({ input, resolve, reject });
      // Idle (nothing in flight, no batch being collected): this call is the whole batch, sent now.
      if (this.immediate && this.inFlight === 0 && !this.scheduled && this.queue.length === 1) this.flush();
      else this.schedule();
    });
  }

  private schedule(): void {
    if (this.scheduled || this.queue.length === 0 || this.inFlight >= this.maxInFlight) return;
    this.scheduled = true;
    setImmediate(() => {
      this.scheduled = false;
      this.flush();
    });
  }

  private flush(): void {
    while (this.queue.length > 0 && this.inFlight < this.maxInFlight) {
      const batch = this.queue.splice(0, this.max);
      this.inFlight++;
      let results: Promise<readonly BatchResult<O>[]>;
      try {
        results = this.runBatch(batch.map((p) => p.input));
      } catch (err) {
        results = Promise.reject(err);
      }
      let timer: NodeJS.Timeout | undefined;
      const stalled = new Promise<never>((_, reject) => {
        timer = setTimeout(
          () =>
            reject(
              new StoreError(
                `a batch of ${batch.length} MongoDB calls did not settle within ${this.stallMs} ms`,
                "batch",
                { cause: new MongoNetworkError("operation stalled"), outage: true },
              ),
            ),
          this.stallMs,
        );
        timer.unref();
      });
      Promise.race([results, stalled])
        .then(
          (rs) => {
            for (const [i, p] of batch.entries()) {
              const r = rs[i];
              if (!r) p.reject(new Error(`batch returned ${rs.length} results for ${batch.length} calls`));
              else if (r.ok) p.resolve(r.value);
              else p.reject(r.error);
            }
          },
          (err: unknown) => {
            for (const p of batch) p.reject(err);
          },
        )
        .finally(() => {
          clearTimeout(timer);
          this.inFlight--;
          this.schedule();
        });
    }
  }
}
