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
 * document; `_id: {$in: [...]}` too: 7-10 ms against 1.6 ms for an equality on 200 documents), so the latest
 * generation is found by `_id` lookups: a head document `{_id: "<dpid>"}` holds a hint of the generation
 * (it may lag, never lead), and generations are probed forward from it.
 *
 * Generation 1 is never deleted (the later ones are once superseded), so every chain has its `#1` and a dpid's
 * first claim is one command: the insert of `#1`, which wins only where no claim was ever made (a lost insert
 * is claimed the long way). Versions before that rule deleted `#1` when they took generation 2, and an insert
 * of `#1` into such a chain would win beside the real holder. `prepare` (store setup) makes that case
 * impossible once, rather than each claim paying a read of the hint for it: one scan finds every chain without
 * `#1`, moves its hint up to the chain's top generation where the hint is missing or lags by more than one,
 * then inserts a `#1` released at the epoch by no owner (`""`, which no claim may use), so `latest()` still
 * walks to the real generation. The same scan seeds `known`, so a restarted instance goes straight to a leased
 * dpid's generation instead of losing an insert of `#1` first.
 *
 * Until that scan has run (the server was down at setup), and for good once a chain without `#1` was seen
 * (at setup, in a `renewAll` scan, or by a claim), a first claim also reads the hint beside the insert: an
 * insert that won beside a hint is not the latest generation; it is released in place (which repairs the
 * chain) and the lease is claimed the long way.
 *
 * Mixed versions. Beside instances that keep `#1` (this version, and the one before it, which read the hint
 * beside every first claim), all of the above holds. Beside an older one that still deletes `#1`, only as far
 * as what it does is seen: a chain it leaves without `#1` is repaired by this instance's next scan
 * (`renewAll`: every third of a lease ttl in the daemon, while it holds a lease), which also turns the hint
 * read on for good. Not guaranteed: a first claim of a dpid whose chain appeared after this instance's setup,
 * that this instance never touched and that the older one took to generation 2 before any chain without `#1`
 * was seen, wins beside the holder; so does, even with the hint read on, a first claim of a chain whose hint
 * the older one failed to write before it deleted `#1`, until a scan repairs it. Run such a version beside
 * this one only while upgrading; an instance that logged a repair has one-command first claims again after
 * its next start.
 *
 * Asking for a lease. An instance may hold a dpid's lease while its switch is away (leases ahead): an
 * instance whose join is refused then writes a want document `{_id: "<dpid>!want", want: true, wantedBy}`,
 * and the holder's `renewAll` reports it, so that the holder gives the lease up unless its own switch is
 * connected. Only contenders write want documents (an upsert: the last one wins, which is all a want needs);
 * the holder never writes the generation they point at for them, so a want cannot race a renewal (FerretDB
 * has no compare-and-swap, see above). Want documents carry `gen: 0` and no owner, so scans of versions that
 * do not know them never take one for a generation.
 *
 * Instances compare `expiresAt` with their own clock: clocks must agree to well within `margin`.
 */
import type { Collection } from "mongodb";
import { attempt, insertUnordered, wrap } from "./errors.js";
import { TurnBatcher, type BatchResult } from "./batch.js";
import type { Lease } from "./types.js";
import { checkDpidHex, checkName } from "./validate.js";

/** DEFAULT_LEASE_TTL_MS is the lease lifetime the daemon uses unless told otherwise. */
export const DEFAULT_LEASE_TTL_MS = 30_000;

/**
 * leaseMarginMs: a holder extends its own generation only while more than this is left, and a contender
 * waits for expiry, so instances' clocks must agree to well within it.
 */
export function leaseMarginMs(ttlMs: number): number {
  return Math.min(Math.max(ttlMs / 4, 1), 2_000);
}

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
  /** repairedAt: a `#1` put back by `prepare` into a chain an older rfboot left without it. */
  repairedAt?: Date;
  /** want: a want document (`<dpid>!want`): `wantedBy` asked for the lease at `wantedAt`. */
  want?: boolean;
  wantedBy?: string;
  wantedAt?: Date;
}

type GenDoc = LeaseDoc & { owner: string; expiresAt: Date };

/** LeaseTableOptions: who hears of repaired chains (`during`: the setup scan, or a later `renewAll` scan). */
export interface LeaseTableOptions {
  readonly onRepair?: (dpids: readonly string[], during: "setup" | "scan") => void;
}

/** REPAIR_OWNER owns the `#1` put back into an old chain: no claim can use it (checkName refuses it). */
const REPAIR_OWNER = "";

function genId(dpidHex: string, gen: number): string {
  return `${dpidHex}#${gen}`;
}

function wantId(dpidHex: string): string {
  return `${dpidHex}!want`;
}

/** isChainDoc: a head or a generation (not a want document). */
function isChainDoc(d: LeaseDoc): boolean {
  return d.want !== true;
}

function toLease(d: GenDoc): Lease {
  return { dpidHex: d.dpid, owner: d.owner, expiresAt: d.expiresAt, generation: d.gen };
}

/** LeaseTable implements claim/renew/release over the lease collection. */
export class LeaseTable {
  /** known caches the highest generation seen per dpid (a probe start; never ahead of the database). */
  private readonly known = new Map<string, number>();

  /** reads: `_id` lookups of concurrent claims, one `find({_id: {$in}})` per batch (see batch.ts). */
  private readonly reads: TurnBatcher<string, LeaseDoc | null>;
  /** inserts: new generations of concurrent claims, one unordered `insertMany` per batch. */
  private readonly inserts: TurnBatcher<LeaseDoc, boolean>;
  /** checked: `prepare` has scanned the collection (every chain had, or has again, its `#1`). */
  private checked = false;
  /** legacySeen: a chain without `#1` was seen: an older rfboot may run beside (see the top). */
  private legacySeen = false;

  constructor(
    private readonly col: Collection<LeaseDoc>,
    private readonly options: LeaseTableOptions = {},
  ) {
    // Both batchers send a lone call at once (a join's claim is usually alone; see batch.ts, immediate): an
    // `_id` equality read costs less than waiting for the turn to pair it into an `$in`, which scans.
    this.reads = new TurnBatcher(
      async (ids) => {
        const unique = [...new Set(ids)];
        // A lone lookup by equality (indexed); several in one `$in` (a scan, but one command for a burst).
        const docs =
          unique.length === 1
            ? await this.col.find({ _id: unique[0]! }).toArray()
            : await this.col.find({ _id: { $in: unique } }).toArray();
        const byId = new Map(docs.map((d) => [d._id, d]));
        return ids.map((id): BatchResult<LeaseDoc | null> => ({ ok: true, value: byId.get(id) ?? null }));
      },
      { immediate: true },
    );
    // One insert batch at a time: on a database that commits one write at a time (FerretDB/SQLite, a sync
    // per commit) a second batch in flight only waits for the lock, while the claims arriving meanwhile
    // make the next batch bigger. A duplicate is a generation another instance created first: a lost race.
    this.inserts = new TurnBatcher(
      async (docs) => {
        const dup = await insertUnordered(this.col, docs);
        return docs.map((_, i): BatchResult<boolean> => ({ ok: true, value: !dup.has(i) }));
      },
      { maxInFlight: 1, immediate: true },
    );
  }

  /**
   * prepare runs at store setup (every lookup is by `_id`: no index to create): one scan of the collection
   * seeds `known` and repairs the chains an older rfboot left without `#1` (see the top). Until it has run,
   * first claims read the hint beside their insert.
   */
  async prepare(now: Date = new Date()): Promise<void> {
    const repaired = await this.repair((await this.col.find({}).toArray()).filter(isChainDoc), now);
    this.checked = true;
    if (repaired.length > 0) this.options.onRepair?.(repaired, "setup");
  }

  /**
   * repair takes the documents of a scan (heads and generations): it raises `known` to each dpid's top
   * generation, and gives every chain without `#1` a hint that reaches its top, then a released `#1`.
   * Returns the dpids repaired. An insert of `#1` that loses was beaten by a claim's (made before the
   * hint was fixed: the case this narrows, see the top).
   */
  private async repair(docs: readonly LeaseDoc[], now: Date): Promise<string[]> {
    const chains = new Map<string, { hint?: number; top: number; first: boolean }>();
    for (const d of docs) {
      const c = chains.get(d.dpid) ?? { top: 0, first: false };
      if (d.head) c.hint = d.gen;
      else {
        c.top = Math.max(c.top, d.gen);
        c.first ||= d.gen === 1;
      }
      chains.set(d.dpid, c);
    }
    const broken: [string, { hint?: number; top: number }][] = [];
    for (const [dpid, c] of chains) {
      if (c.top > (this.known.get(dpid) ?? 0)) this.known.set(dpid, c.top);
      if (c.top >= 2 && !c.first) broken.push([dpid, c]);
    }
    if (broken.length === 0) return [];
    this.legacySeen = true;
    // The hint first: latest() walks from `#1` only without a hint, and from a hint lagging over a deleted
    // generation it stops short. `$max`: a winner moving the hint on meanwhile is not moved back.
    for (const [dpid, c] of broken) {
      if (c.hint !== undefined && c.hint >= c.top - 1) continue;
      await this.col.updateOne(
        { _id: dpid },
        { $max: { gen: c.top }, $set: { dpid, head: true } },
        { upsert: true },
      );
    }
    await insertUnordered(
      this.col,
      broken.map(([dpid]) => ({
        _id: genId(dpid, 1),
        dpid,
        gen: 1,
        owner: REPAIR_OWNER,
        expiresAt: new Date(0),
        acquiredAt: now,
        releasedAt: now,
        repairedAt: now,
      })),
    );
    return broken.map(([dpid]) => dpid);
  }

  private async byId(id: string): Promise<GenDoc | null> {
    return (await this.reads.call(id)) as GenDoc | null;
  }

  /** latest returns the current generation document of a dpid, or null when it never had a lease. */
  private async latest(dpidHex: string): Promise<GenDoc | null> {
    for (let restart = 0; restart < 2; restart++) {
      // Each step reads a generation and its successor together (one batched round trip).
      const pair = (g: number) =>
        Promise.all([g > 0 ? this.byId(genId(dpidHex, g)) : null, this.byId(genId(dpidHex, g + 1))]);
      let gen = this.known.get(dpidHex);
      let cur: GenDoc | null;
      let next: GenDoc | null;
      if (gen === undefined || restart > 0) {
        // The hint and generation 1 together: a datapath claimed only once has no hint.
        const [head, first] = await Promise.all([this.reads.call(dpidHex), this.byId(genId(dpidHex, 1))]);
        gen = head?.gen ?? 0;
        [cur, next] = gen === 0 ? [null, first] : await pair(gen);
      } else {
        [cur, next] = await pair(gen);
      }
      while (next) {
        cur = next;
        gen++;
        next = await this.byId(genId(dpidHex, gen + 1));
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
    const won = await this.insertGen(dpidHex, gen, owner, expiresAt, now);
    if (!won) return false;
    this.known.set(dpidHex, gen);
    // Generation 1 needs no hint: latest() probes `#1` when there is none. Later ones: best effort, the lease
    // is won either way: move the hint, and drop the superseded generation, but never `#1` (a first claim's
    // insert relies on it) and only once the hint moved past it (without a hint, latest() starts at `#1`).
    if (gen === 1) return true;
    const moved = await this.col
      .updateOne({ _id: dpidHex }, { $set: { dpid: dpidHex, gen, head: true } }, { upsert: true })
      .then(
        () => true,
        () => false,
      );
    if (moved && gen - 1 > 1)
      await this.col.deleteOne({ _id: genId(dpidHex, gen - 1) }).catch(() => undefined);
    return true;
  }

  /** insertGen inserts generation `gen` (batched with concurrent claims); false when it exists already. */
  private insertGen(
    dpidHex: string,
    gen: number,
    owner: string,
    expiresAt: Date,
    now: Date,
  ): Promise<boolean> {
    return this.inserts.call({
      _id: genId(dpidHex, gen),
      dpid: dpidHex,
      gen,
      owner,
      expiresAt,
      acquiredAt: now,
    });
  }

  /**
   * firstClaim tries a dpid this table has never seen a generation of: the insert of `#1` alone, true when
   * it won (no claim was ever made: `#1` is the lease); undefined when it lost, and the caller claims the
   * long way. Before `prepare` ran, or once a chain without `#1` was seen, the hint is read beside the insert
   * (see the top): an insert that won beside a hint is not the latest generation, so nobody reads it as the
   * lease; it is released in place, which gives that chain its `#1` again.
   */
  private async firstClaim(
    dpidHex: string,
    owner: string,
    expiresAt: Date,
    now: Date,
  ): Promise<true | undefined> {
    if (this.checked && !this.legacySeen) {
      if (!(await this.insertGen(dpidHex, 1, owner, expiresAt, now))) return undefined;
      this.known.set(dpidHex, 1);
      return true;
    }
    const [won, head] = await Promise.all([
      this.insertGen(dpidHex, 1, owner, expiresAt, now),
      this.reads.call(dpidHex),
    ]);
    if (won && !head) {
      this.known.set(dpidHex, 1);
      return true;
    }
    if (won) {
      this.legacySeen = true;
      await this.col
        .updateOne(
          { _id: genId(dpidHex, 1), owner, acquiredAt: now },
          { $set: { owner: REPAIR_OWNER, expiresAt: new Date(0), releasedAt: now, repairedAt: now } },
        )
        .catch(() => undefined);
    }
    return undefined;
  }

  private margin(ttlMs: number): number {
    return leaseMarginMs(ttlMs);
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
    if (cached === undefined && mayTake && (await this.firstClaim(dpidHex, owner, expiresAt, now)))
      return true;
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
   * renewAll extends the leases `owner` holds, with one scan of the collection and one updateMany (cheaper
   * than renew() per dpid on FerretDB). `dpids` lists the leases the caller believes it holds
   * (default: every lease the scan finds for `owner`). Returns the dpids renewed and those no longer held
   * (taken over by another owner after expiry, or released).
   */
  async renewAll(
    owner: string,
    ttlMs: number,
    now: Date = new Date(),
    dpids?: readonly string[],
  ): Promise<{ renewed: string[]; lost: string[]; wanted: string[] }> {
    checkName(owner, "renewAll.owner");
    for (const [i, d] of (dpids ?? []).entries()) checkDpidHex(d, `renewAll.dpids[${i}]`);
    return attempt("renewAll", async () => {
      // Heads too (FerretDB scans for any filter): the scan also finds chains an older rfboot left without `#1`,
      // and the want documents of the leases asked for.
      const found = await this.col.find({}).toArray();
      const docs = found.filter(isChainDoc);
      const wants = new Map<string, LeaseDoc>();
      for (const d of found) if (!isChainDoc(d)) wants.set(d.dpid, d);
      const all = docs.filter((d) => !d.head) as GenDoc[];
      const top = new Map<string, GenDoc>();
      const mine = new Set<string>();
      for (const d of all) {
        if ((top.get(d.dpid)?.gen ?? -1) < d.gen) top.set(d.dpid, d);
        if (d.owner === owner) mine.add(d.dpid);
      }
      const renewed: string[] = [];
      const lost: string[] = [];
      const expiresAt = new Date(now.getTime() + ttlMs);
      const extend: GenDoc[] = [];
      for (const dpid of [...(dpids ?? mine)].sort()) {
        const cur = top.get(dpid);
        let ok = false;
        if (!cur) {
          ok = false;
        } else if (cur.owner === owner && cur.expiresAt.getTime() - now.getTime() > this.margin(ttlMs)) {
          // Seen as the latest by the scan and valid beyond the margin: nobody can have taken it since.
          extend.push(cur);
          this.known.set(dpid, cur.gen);
          ok = true;
        } else if (cur.owner === owner && cur.expiresAt.getTime() > 0) {
          // Expired, or too close to expiry, but nobody took it: a new generation of its own.
          ok = await this.acquire(dpid, owner, ttlMs, now, false);
        }
        (ok ? renewed : lost).push(dpid);
      }
      // One command for all of them (FerretDB: ~1.3 ms per document instead of ~4 ms per updateOne).
      if (extend.length > 0) {
        await this.col.updateMany(
          { _id: { $in: extend.map((d) => d._id) }, owner },
          { $set: { expiresAt, renewedAt: now } },
        );
      }
      // Best effort, after the renewals: the next scan tries again.
      const repaired = await this.repair(docs, now).catch(() => []);
      if (repaired.length > 0) this.options.onRepair?.(repaired, "scan");
      // Asked for by another owner within a ttl (an older want is from a contender gone since).
      const wanted = renewed.filter((d) => {
        const w = wants.get(d);
        return (
          w !== undefined && w.wantedBy !== owner && (w.wantedAt?.getTime() ?? 0) > now.getTime() - ttlMs
        );
      });
      return { renewed, lost, wanted };
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

  /**
   * want asks the holder of a dpid's lease to give it up (see the top): `owner`'s switch joined it and was
   * refused. The holder keeps it while its own switch is connected.
   */
  async want(dpidHex: string, owner: string, now: Date = new Date()): Promise<void> {
    checkDpidHex(dpidHex, "want.dpid");
    checkName(owner, "want.owner");
    await attempt(
      "want",
      () =>
        this.col.updateOne(
          { _id: wantId(dpidHex) },
          { $set: { dpid: dpidHex, gen: 0, want: true, wantedBy: owner, wantedAt: now } },
          { upsert: true },
        ),
      dpidHex,
    );
  }

  /** unwant withdraws `owner`'s want of a dpid's lease (it holds the lease now, or no longer asks). */
  async unwant(dpidHex: string, owner: string): Promise<void> {
    checkDpidHex(dpidHex, "unwant.dpid");
    checkName(owner, "unwant.owner");
    await attempt("unwant", () => this.col.deleteOne({ _id: wantId(dpidHex), wantedBy: owner }), dpidHex);
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
      const all = (await this.col.find({ head: { $ne: true }, want: { $ne: true } }).toArray()) as GenDoc[];
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
