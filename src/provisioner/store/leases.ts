/**
 * Leases: several rfboot instances share one database and each dpid is acted on by one of them at a time.
 *
 * FerretDB 1.24 (SQLite) applies `updateOne(filter, update)` as read, then write, without a compare-and-swap:
 * two instances racing `updateOne({_id, expiresAt: {$lt: now}}, {$set: {owner}})` BOTH see
 * `modifiedCount: 1` (measured: 151 of 200 expired leases had two winners; `$inc` by 400 concurrent callers
 * added 3). The only atomic primitive it offers is the uniqueness of `_id` on insert. So a lease is a chain
 * of generation documents `{_id: "<dpid>#<gen>"}`: a change of holder INSERTS generation g+1, and the unique
 * `_id` lets exactly one contender win it. In-place updates are limited to the holder extending its own,
 * still valid, generation, at least `margin` before it expires; a contender only bumps an expired one, so
 * the two never write the same generation concurrently. The same code is correct on a real MongoDB.
 * Instances compare `expiresAt` with their own clock: clocks must agree to well within `margin`.
 */
import type { Collection } from "mongodb";
import { attempt, isDuplicateKey, wrap } from "./errors.js";
import type { Lease } from "./types.js";
import { checkDpidHex, checkName } from "./validate.js";

/** LeaseDoc is one generation of a dpid's lease, as stored in `<prefix>leases`. */
export interface LeaseDoc {
  _id: string;
  dpid: string;
  gen: number;
  owner: string;
  expiresAt: Date;
  acquiredAt: Date;
  renewedAt?: Date;
  releasedAt?: Date;
}

function leaseId(dpidHex: string, gen: number): string {
  return `${dpidHex}#${String(gen).padStart(10, "0")}`;
}

function toLease(d: LeaseDoc): Lease {
  return { dpidHex: d.dpid, owner: d.owner, expiresAt: d.expiresAt, generation: d.gen };
}

/** LeaseTable implements claim/renew/release over the lease collection. */
export class LeaseTable {
  constructor(private readonly col: Collection<LeaseDoc>) {}

  /** ensureIndexes creates the (dpid, gen) and owner indexes. */
  async ensureIndexes(): Promise<void> {
    await this.col.createIndex({ dpid: 1, gen: -1 });
    await this.col.createIndex({ owner: 1 });
  }

  private latest(dpidHex: string): Promise<LeaseDoc | null> {
    return this.col.find({ dpid: dpidHex }).sort({ gen: -1 }).limit(1).next();
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
        _id: leaseId(dpidHex, gen),
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
    // Older generations are history now; nobody writes them once a newer one exists. Best effort: the
    // lease is won either way, and the next winner cleans up what is left.
    await this.col.deleteMany({ dpid: dpidHex, gen: { $lt: gen } }).catch(() => undefined);
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
      if (ours && left > this.margin(ttlMs)) {
        // Still valid well beyond the margin: nobody else may touch this generation, extend it in place.
        await this.col.updateOne({ _id: cur._id, owner }, { $set: { expiresAt, renewedAt: now } });
        const after = await this.latest(dpidHex);
        return after?._id === cur._id && after.owner === owner;
      }
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

  /** heldBy lists the dpids whose valid lease `owner` holds at `now`. */
  async heldBy(owner: string, now: Date = new Date()): Promise<Lease[]> {
    checkName(owner, "heldBy.owner");
    try {
      const mine = await this.col.find({ owner, expiresAt: { $gt: now } }).toArray();
      if (mine.length === 0) return [];
      const dpids = [...new Set(mine.map((d) => d.dpid))];
      const all = await this.col.find({ dpid: { $in: dpids } }).toArray();
      const top = new Map<string, LeaseDoc>();
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
