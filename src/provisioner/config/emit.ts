/** Writing configs as YAML (import-csv, init): keys quoted where YAML would misread them, MACs quoted. */
import { Document, isPair, isScalar, visit, Scalar } from "yaml";

/**
 * configYaml renders a plain config object as YAML with a leading comment. Datapath keys and vmIds are
 * double-quoted so no YAML reader takes `0x5` for a number or a MAC for something else.
 */
export function configYaml(obj: unknown, comment?: string): string {
  const doc = new Document(obj);
  quoteIds(doc);
  if (comment) doc.commentBefore = comment;
  return doc.toString({ lineWidth: 0 });
}

/** quoteIds double-quotes datapath keys and vmId values in a YAML document, in place. */
export function quoteIds(doc: Document): void {
  visit(doc, {
    Pair(_, pair, path) {
      const parent = path[path.length - 2];
      const inDatapaths = isPair(parent) && isScalar(parent.key) && parent.key.value === "datapaths";
      if (inDatapaths && isScalar(pair.key)) pair.key.type = Scalar.QUOTE_DOUBLE;
      if (
        isScalar(pair.key) &&
        pair.key.value === "vmId" &&
        isScalar(pair.value) &&
        typeof pair.value.value === "string"
      ) {
        pair.value.type = Scalar.QUOTE_DOUBLE;
      }
    },
  });
}
