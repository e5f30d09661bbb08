/** The reliability scenarios by id, for bench/reliability.ts (the tests import each scenario directly). */
import { crashDuringBurst } from "./scenario-crash.js";
import { duplicateDpid } from "./scenario-dup.js";
import { hostLoss } from "./scenario-hostloss.js";
import { upstreamRestart } from "./scenario-relay.js";
import { flapping } from "./scenario-flap.js";
import { libvirtdOutage } from "./scenario-libvirtd.js";
import { mongoOutage } from "./scenario-mongo.js";
import type { ScenarioResult } from "./util.js";

/** Scenario names one runnable fault scenario. */
export interface Scenario {
  id: string;
  run: () => Promise<ScenarioResult>;
}

/** SCENARIOS lists every fault scenario of issue 6. */
export const SCENARIOS: readonly Scenario[] = [
  { id: "sigkill-burst", run: () => crashDuringBurst(32, 10) },
  { id: "libvirtd-outage", run: () => libvirtdOutage(16, 4, 20_000) },
  { id: "mongodb-outage", run: () => mongoOutage(8, 8, 20_000) },
  { id: "flapping-sim", run: () => flapping("sim") },
  { id: "flapping-ovs", run: () => flapping("ovs", 50, 10_000) },
  { id: "duplicate-dpid", run: () => duplicateDpid(8) },
  { id: "host-loss", run: () => hostLoss(4, 3) },
  { id: "upstream-restart", run: () => upstreamRestart(3000) },
];
