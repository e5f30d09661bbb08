/**
 * Leases: several rfboot instances share one database and each dpid is acted on by one of them at a time.
 *
 * FerretDB 1.24 (SQLite) applies `updateOne(filter, update)` as read, then write, without a compare-and-swap:
 * two instances racing `updateOne({_id, expiresAt: {$lt: now}}, {$set: {owner}})` BOTH see
 * `modifiedCount: 1` (measured: 151 of 200 expired leases had two winners; 400 concurrent `$inc: 1` added 3).
 * The only atomic primitive it offers is the uniqueness of `_id` on insert. So a lease is a chain of
 * generation documents `{_id: "<dpid>#<gen>"}`: a change of holder INSERTS generation g+1, and the unique
 * `_id` lets exactly one contender win it. In-place updates are limited to the holder extending its own
 * generation while it is still valid for more than `margin`; a contender only inserts after expiry, so the
 * two never write concurrently. The same code is correct on a real MongoDB.
 *
 * Only `_id` equality is indexed on FerretDB/SQLite (any other filter scans the collection, ~60 us per
 * document), so the latest generation is found by `_id` lookups: a head document `{_id: "<dpid>"}` holds a
 * hint of the generation (it may lag, never lead), and generations are probed forward from it.
 * Instances compare `expiresAt` with their own clock: clocks must agree to well within `margin`.
 */
import type { Collection } from "mongodb";
import { attempt, isDuplicateKey, wrap } from "./errors.js";
import type { Lease } from "./types.js";
import { checkDpidHex, checkName } from "./validate.js";

/** LeaseDoc is one generation of a dpid's lease, or (with `head: true`) the dpid's generation hint. */
export interface LeaseDoc {
  _id: string;
  dpid: string;
  gen: number;
  head?: boolean;
  owner?: string;
  expiresAt?: Date;
  acquiredAt?: Date;
  renewedAt?: Date;
  releasedAt?: Date;
}

type GenDoc = LeaseDoc & { owner: string; expiresAt: Date };

function genId(dpidHex: string, gen: number): string {
  return `${dpidHex}#${gen}`;
}

function toLease(d: GenDoc): Lease {
  return { dpidHex: d.dpid, owner: d.owner, expiresAt: d.expiresAt, generation: d.gen };
}

/** LeaseTable implements claim/renew/release over the lease collection. */
export class LeaseTable {
  /** known caches the highest generation seen per dpid (a probe start; never ahead of the database). */
  private readonly known = new Map<string, number>();

  constructor(private readonly col: Collection<LeaseDoc>) {}

  /** ensureIndexes is a no-op kept for symmetry: every lookup is by `_id`. */
  async ensureIndexes(): Promise<void> {}

  private async byId(id: string): Promise<GenDoc | null> {
    return (await this.col.findOne({ _id: id })) as GenDoc | null;
  }

  /** latest returns the current generation document of a dpid, or null when it never had a lease. */
  private async latest(dpidHex: string): Promise<GenDoc | null> {
    for (let restart = 0; restart < 2; restart++) {
      let gen = this.known.get(dpidHex);
      if (gen === undefined || restart > 0) {
        gen = (await this.col.findOne({ _id: dpidHex }))?.gen ?? 0;
      }
      let cur = gen > 0 ? await this.byId(genId(dpidHex, gen)) : null;
      for (;;) {
        const next = await this.byId(genId(dpidHex, gen + 1));
        if (!next) break;
        cur = next;
        gen++;
      }
      if (cur || gen === 0) {
        if (gen > 0) this.known.set(dpidHex, gen);
        return cur;
      }
      // The cached generation is gone without a successor (database reset): start again from the head.
      this.known.delete(dpidHex);
    }
    return null;
  }

  /** tryInsert creates generation `gen`; false when another instance created it first. */
  private async tryInsert(
    dpidHex: string,
    gen: number,
    owner: string,
    expiresAt: Date,
    now: Date,
  ): Promise<boolean> {
    try {
      await this.col.insertOne({
        _id: genId(dpidHex, gen),
        dpid: dpidHex,
        gen,
        owner,
        expiresAt,
        acquiredAt: now,
      });
    } catch (err) {
      if (isDuplicateKey(err)) return false;
      throw err;
    }
    this.known.set(dpidHex, gen);
    // Best effort, the lease is won either way: move the hint, and drop the superseded generation.
    await this.col
      .updateOne({ _id: dpidHex }, { $set: { dpid: dpidHex, gen, head: true } }, { upsert: true })
      .catch(() => undefined);
    if (gen > 1) await this.col.deleteOne({ _id: genId(dpidHex, gen - 1) }).catch(() => undefined);
    return true;
  }

  private margin(ttlMs: number): number {
    return Math.min(Math.max(ttlMs / 4, 1), 2_000);
  }

  /**
   * claim returns true when `owner` holds the dpid's lease afterwards, valid until now + ttlMs: the lease was
   * free, expired, or already `owner`'s (then it is renewed). False when another owner holds a valid lease.
   */
  async claim(dpidHex: string, owner: string, ttlMs: number, now: Date = new Date()): Promise<boolean> {
    checkDpidHex(dpidHex, "claim.dpid");
    checkName(owner, "claim.owner");
    return attempt("claim", () => this.acquire(dpidHex, owner, ttlMs, now, true), dpidHex);
  }

  /** renew extends `owner`'s lease; false when the lease is not (or no longer) `owner`'s. */
  async renew(dpidHex: string, owner: string, ttlMs: number, now: Date = new Date()): Promise<boolean> {
    checkDpidHex(dpidHex, "renew.dpid");
    checkName(owner, "renew.owner");
    return attempt("renew", () => this.acquire(dpidHex, owner, ttlMs, now, false), dpidHex);
  }

  private async acquire(
    dpidHex: string,
    owner: string,
    ttlMs: number,
    now: Date,
    mayTake: boolean,
  ): Promise<boolean> {
    const expiresAt = new Date(now.getTime() + ttlMs);
    // Fast path for the holder (periodic renewal): its cached generation, extended in place.
    const cached = this.known.get(dpidHex);
    if (cached !== undefined) {
      const cur = await this.byId(genId(dpidHex, cached));
      if (cur && cur.owner === owner && cur.expiresAt.getTime() - now.getTime() > this.margin(ttlMs)) {
        return this.extend(cur, expiresAt, now);
      }
    }
    // Two rounds: a lost insert race is re-read once (the winner may be this owner's twin process).
    for (let round = 0; round < 2; round++) {
      const cur = await this.latest(dpidHex);
      if (!cur) {
        if (!mayTake) return false;
        if (await this.tryInsert(dpidHex, 1, owner, expiresAt, now)) return true;
        continue;
      }
      const left = cur.expiresAt.getTime() - now.getTime();
      const ours = cur.owner === owner;
      if (ours && left > this.margin(ttlMs)) return this.extend(cur, expiresAt, now);
      if (left < 0 || ours) {
        if (!ours && !mayTake) return false;
        if (await this.tryInsert(dpidHex, cur.gen + 1, owner, expiresAt, now)) return true;
        continue;
      }
      return false;
    }
    const cur = await this.latest(dpidHex);
    return cur !== null && cur.owner === owner && cur.expiresAt.getTime() > now.getTime();
  }

  /**
   * extend moves the expiry of the holder's own generation, valid beyond the margin: no contender may write
   * it (they only insert after expiry), so an in-place update is safe; then checks no newer generation exists.
   */
  private async extend(cur: GenDoc, expiresAt: Date, now: Date): Promise<boolean> {
    await this.col.updateOne({ _id: cur._id }, { $set: { expiresAt, renewedAt: now } });
    return !(await this.byId(genId(cur.dpid, cur.gen + 1)));
  }

  /**
   * renewAll extends the leases `owner` holds, with one scan of the collection plus one write per lease
   * (cheaper than renew() per dpid on FerretDB). `dpids` lists the leases the caller believes it holds
   * (default: every lease the scan finds for `owner`). Returns the dpids renewed and those no longer held
   * (taken over by another owner after expiry, or released).
   */
  async renewAll(
    owner: string,
    ttlMs: number,
    now: Date = new Date(),
    dpids?: readonly string[],
  ): Promise<{ renewed: string[]; lost: string[] }> {
    checkName(owner, "renewAll.owner");
    for (const [i, d] of (dpids ?? []).entries()) checkDpidHex(d, `renewAll.dpids[${i}]`);
    return attempt("renewAll", async () => {
      const all = (await this.col.find({ head: { $ne: true } }).toArray()) as GenDoc[];
      const top = new Map<string, GenDoc>();
      const mine = new Set<string>();
      for (const d of all) {
        if ((top.get(d.dpid)?.gen ?? -1) < d.gen) top.set(d.dpid, d);
        if (d.owner === owner) mine.add(d.dpid);
      }
      const renewed: string[] = [];
      const lost: string[] = [];
      const expiresAt = new Date(now.getTime() + ttlMs);
      for (const dpid of [...(dpids ?? mine)].sort()) {
        const cur = top.get(dpid);
        let ok = false;
        if (!cur) {
          ok = false;
        } else if (cur.owner === owner && cur.expiresAt.getTime() - now.getTime() > this.margin(ttlMs)) {
          // Seen as the latest by the scan and valid beyond the margin: nobody can have taken it since.
          await this.col.updateOne({ _id: cur._id }, { $set: { expiresAt, renewedAt: now } });
          this.known.set(dpid, cur.gen);
          ok = true;
        } else if (cur.owner === owner && cur.expiresAt.getTime() > 0) {
          // Expired, or too close to expiry, but nobody took it: a new generation of its own.
          ok = await this.acquire(dpid, owner, ttlMs, now, false);
        }
        (ok ? renewed : lost).push(dpid);
      }
      return { renewed, lost };
    });
  }

  /** release gives the lease up (expires it now) if `owner` holds it; returns whether it did. */
  async release(dpidHex: string, owner: string, now: Date = new Date()): Promise<boolean> {
    checkDpidHex(dpidHex, "release.dpid");
    return attempt(
      "release",
      async () => {
        const cur = await this.latest(dpidHex);
        if (!cur || cur.owner !== owner) return false;
        // Expire rather than delete: generations must keep growing so a stale reader cannot reuse one.
        const r = await this.col.updateOne(
          { _id: cur._id, owner },
          { $set: { expiresAt: new Date(0), releasedAt: now } },
        );
        return r.matchedCount === 1;
      },
      dpidHex,
    );
  }

  /** current returns the lease of one dpid (its latest generation), expired or not. */
  async current(dpidHex: string): Promise<Lease | undefined> {
    checkDpidHex(dpidHex, "lease.dpid");
    const d = await attempt("lease", () => this.latest(dpidHex), dpidHex);
    return d ? toLease(d) : undefined;
  }

  /** heldBy lists the dpids whose valid lease `owner` holds at `now` (one scan of the collection). */
  async heldBy(owner: string, now: Date = new Date()): Promise<Lease[]> {
    checkName(owner, "heldBy.owner");
    try {
      const all = (await this.col.find({ head: { $ne: true } }).toArray()) as GenDoc[];
      const top = new Map<string, GenDoc>();
      for (const d of all) if ((top.get(d.dpid)?.gen ?? -1) < d.gen) top.set(d.dpid, d);
      return [...top.values()]
        .filter((d) => d.owner === owner && d.expiresAt.getTime() > now.getTime())
        .sort((a, b) => a.dpid.localeCompare(b.dpid))
        .map(toLease);
    } catch (err) {
      throw wrap("heldBy", err, owner);
    }
  }
}
