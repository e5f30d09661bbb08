/**
 * The demo's lab database reset (rftest/lib/show-mongo.mjs reset), on a real MongoDB-wire server: RouteFlow's
 * collections go as RouteFlow's own rftest drops them, rfboot's own go unless --keep-state, nothing else.
 */
import { randomBytes } from "node:crypto";
import { join } from "node:path";
import { execa } from "execa";
import { MongoClient, type Db } from "mongodb";
import { afterAll, beforeAll, expect, it } from "vitest";
import { describeWith, MONGO_URI, REPO } from "../helpers/env.js";

const ROUTEFLOW = ["rftable", "rfconfig", "rfstats", "rfclient<->rfserver", "rfserver<->rfproxy"];
const RFBOOT = ["rfbtr_vms", "rfbtr_events", "rfbtr_leases"];

describeWith(["mongo"], "rftest's lab database reset", () => {
  const database = `rfbt_reset_${randomBytes(4).toString("hex")}`;
  let client: MongoClient;
  let db: Db;
  const names = async () =>
    (await db.listCollections({}, { nameOnly: true }).toArray()).map((c) => c.name).sort();
  const fill = async () => {
    for (const n of [...ROUTEFLOW, ...RFBOOT, "rfisl", "someone_else"])
      await db.collection(n).insertOne({ x: 1 });
  };
  const reset = (...extra: string[]) =>
    execa(
      "node",
      [
        join(REPO, "rftest/lib/show-mongo.mjs"),
        "reset",
        "--uri",
        MONGO_URI,
        "--db",
        database,
        "--prefix",
        "rfbtr_",
        ...extra,
      ],
      { reject: false },
    );

  beforeAll(async () => {
    client = await new MongoClient(MONGO_URI).connect();
    db = client.db(database);
  });
  afterAll(async () => {
    await db?.dropDatabase();
    await client?.close();
  });

  it("drops RouteFlow's lab collections and rfboot's, and leaves every other collection", async () => {
    await fill();
    const r = await reset();
    expect(r.exitCode, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/dropped .*rfconfig/);
    expect(await names()).toEqual(["rfisl", "someone_else"]);
    // Again on an empty lab database: nothing to drop, still exit 0.
    const again = await reset();
    expect(again.exitCode).toBe(0);
    expect(again.stdout).toMatch(/dropped nothing/);
  });

  it("--keep-state keeps rfboot's own collections", async () => {
    await fill();
    const r = await reset("--keep-state");
    expect(r.exitCode, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/kept rfboot's/);
    expect(await names()).toEqual([...RFBOOT, "rfisl", "someone_else"].sort());
  });
});
