/** Runs one reliability scenario by id and prints its result as JSON (debugging aid for bench/reliability.ts). */
import { SCENARIOS } from "../../test/reliability/lib/scenarios.js";

async function main(): Promise<void> {
  const id = process.argv[2] ?? "";
  const s = SCENARIOS.find((x) => x.id === id);
  if (!s) throw new Error(`unknown scenario ${id}; known: ${SCENARIOS.map((x) => x.id).join(", ")}`);
  const r = await s.run();
  console.log(JSON.stringify(r, null, 2));
}

void main();
