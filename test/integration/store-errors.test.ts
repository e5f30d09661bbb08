/**
 * Error classification against the real driver and a real MongoDB-wire server: a batched write (insertMany,
 * bulkWrite) that fails because the server went away must count as an outage (the outbox keeps it), and one
 * the server refuses (duplicate key) must not. Found under the MongoDB outage test once writes were batched:
 * the driver wraps the network failure in a MongoBulkWriteError with no write errors and no cause.
 */
import { randomBytes } from "node:crypto";
import { connect, createServer, type Server, type Socket } from "node:net";
import { MongoBulkWriteError, MongoClient } from "mongodb";
import { afterAll, beforeAll, expect, it } from "vitest";
import { duplicateIndexes, isTransient } from "../../src/provisioner/store/errors.js";
import { describeWith, MONGO_URI } from "../helpers/env.js";

/** A TCP proxy to the test server that can be cut, so the client sees the server vanish. */
async function proxyTo(uri: string): Promise<{ port: number; cut(): Promise<void> }> {
  const m = /^mongodb:\/\/([^:/]+):(\d+)/.exec(uri);
  if (!m) throw new Error(`cannot proxy ${uri}`);
  const socks: Socket[] = [];
  const server: Server = createServer((s) => {
    const u = connect(Number(m[2]), m[1]);
    socks.push(s, u);
    s.on("error", () => undefined);
    u.on("error", () => undefined);
    s.pipe(u);
    u.pipe(s);
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  const port = (server.address() as { port: number }).port;
  return {
    port,
    cut: async () => {
      await new Promise<void>((r) => {
        server.close(() => r());
        for (const s of socks) s.destroy();
      });
    },
  };
}

describeWith(["mongo"], "store error classification with the real driver", () => {
  const database = `rfbt_err_${randomBytes(4).toString("hex")}`;
  let direct: MongoClient;

  beforeAll(async () => {
    direct = await new MongoClient(MONGO_URI).connect();
  });
  afterAll(async () => {
    await direct?.db(database).dropDatabase();
    await direct?.close();
  });

  it("a duplicate in an unordered insertMany is a refusal with its index, not an outage", async () => {
    const col = direct.db(database).collection<{ _id: string }>("dups");
    await col.insertOne({ _id: "a" });
    const err = await col
      .insertMany([{ _id: "b" }, { _id: "a" }, { _id: "c" }], { ordered: false })
      .catch((e: unknown) => e);
    expect(err).toBeInstanceOf(MongoBulkWriteError);
    expect(isTransient(err)).toBe(false);
    expect(duplicateIndexes(err)).toEqual(new Set([1]));
    expect(await col.countDocuments({})).toBe(3);
  });

  it("insertMany and bulkWrite against a server that went away are outages", async () => {
    const proxy = await proxyTo(MONGO_URI);
    const client = new MongoClient(`mongodb://127.0.0.1:${proxy.port}`, { serverSelectionTimeoutMS: 1000 });
    try {
      await client.connect();
      const col = client.db(database).collection<{ _id: string; a?: number }>("gone");
      await col.insertMany([{ _id: "x" }]);
      await proxy.cut();
      const errors = await Promise.all([
        col.insertMany([{ _id: "y" }, { _id: "z" }], { ordered: false }).catch((e: unknown) => e),
        col
          .bulkWrite([{ updateOne: { filter: { _id: "x" }, update: { $set: { a: 1 } }, upsert: true } }], {
            ordered: false,
          })
          .catch((e: unknown) => e),
        col.insertOne({ _id: "w" }).catch((e: unknown) => e),
      ]);
      for (const err of errors) {
        expect(err).toBeInstanceOf(Error);
        expect(isTransient(err)).toBe(true);
        expect(duplicateIndexes(err)).toBeUndefined();
      }
    } finally {
      await client.close().catch(() => undefined);
    }
  });
});
