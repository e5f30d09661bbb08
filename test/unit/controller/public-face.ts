/**
 * publicFace reads what an index.ts exports, for the tests that pin a module's public names: the
 * values (what importing the module yields at run time) and the type-only names (from the export
 * lists of the source, which the type checker alone would otherwise see). The source must consist of
 * explicit `export { ... } from "..."` lists: anything else (`export *`, a local declaration) makes it
 * throw, since a wildcard would let a name in without a change to the list.
 */
import { readFileSync } from "node:fs";

/** Face is a module's exported names, sorted: values and type-only names apart. */
export interface Face {
  values: string[];
  types: string[];
}

/** publicFace loads `indexUrl` (a file: URL of an index.ts) and reads its export lists. */
export async function publicFace(indexUrl: URL): Promise<Face> {
  const code = readFileSync(indexUrl, "utf8")
    .replace(/\/\*[\s\S]*?\*\//g, "")
    .replace(/\/\/.*$/gm, "");
  const lists = /export\s+(type\s+)?\{([^}]*)\}\s+from\s+"[^"]+";/g;
  const rest = code.replace(lists, "").trim();
  if (rest !== "") throw new Error(`${indexUrl.pathname}: not an explicit export list: ${rest.slice(0, 80)}`);
  const declared = { values: [] as string[], types: [] as string[] };
  for (const [, allTypes, names] of code.matchAll(lists)) {
    for (const item of names!.split(",").map((s) => s.trim())) {
      if (item === "") continue;
      const isType = allTypes !== undefined || item.startsWith("type ");
      const name = item
        .replace(/^type\s+/, "")
        .split(/\s+as\s+/)
        .pop()!;
      (isType ? declared.types : declared.values).push(name);
    }
  }
  const loaded = Object.keys((await import(indexUrl.href)) as object).sort();
  const values = declared.values.sort();
  if (loaded.join() !== values.join()) {
    throw new Error(
      `${indexUrl.pathname}: run-time exports ${loaded.join()} differ from the lists ${values.join()}`,
    );
  }
  return { values, types: declared.types.sort() };
}
