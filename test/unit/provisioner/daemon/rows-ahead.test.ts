/**
 * The configured VMs' rfconfig rows are written ahead, on fakes: at start-up and on reload, before any switch
 * joins, so a join's path has no row write; rows MongoDB did not confirm (an outage) are written at the join.
 */
import { afterEach, describe, expect, it } from "vitest";
import { settle } from "./fakes.js";
import { unitConfig, joinAndSettle, rig, type Rig } from "./rig.js";

let r: Rig | undefined;
afterEach(async () => {
  await r?.stop();
  r = undefined;
});

const upserts = (x: Rig) => x.store.rows.map((rows) => rows.map((row) => `${row.vm_id}/${row.vm_port}`));

describe("rows ahead", () => {
  it("a reload that adds a configured VM writes its rows at once, before its switch joins; its join writes none", async () => {
    r = await rig({ vms: 1 });
    expect(upserts(r)).toHaveLength(1);
    await r.daemon.reload(unitConfig(r.stateDir, { vms: 2 }));
    await settle();
    expect(upserts(r)).toHaveLength(2);
    expect(r.store.rows[1]!.map((x) => x.dp_id)).toEqual(["2", "2"]);
    await joinAndSettle(r, 2n);
    expect(upserts(r)).toHaveLength(2);
    expect(r.store.records.get("0000000000000002")?.state).toBe("running");
  });

  it("rows only buffered at start-up (MongoDB away) are written again at the join", async () => {
    r = await rig({
      before: (x) => {
        x.store.online = false;
      },
    });
    expect(upserts(r)).toHaveLength(1);
    r.store.online = true;
    await joinAndSettle(r, 1n);
    expect(upserts(r)).toHaveLength(2);
    expect(r.store.rows[1]!.map((x) => x.dp_id)).toEqual(["1", "1"]);
  });

  it("a refused start-up write is logged and each join writes its own rows", async () => {
    r = await rig({
      before: (x) => x.store.failNext("upsertRfconfigRows", new Error("not authorized on db")),
    });
    await joinAndSettle(r, 1n);
    expect(r.store.rows.map((rows) => rows.map((x) => x.dp_id))).toEqual([["1", "1"]]);
    expect(r.store.records.get("0000000000000001")?.state).toBe("running");
  });
});
