// config-info.mjs: prints the few facts rftest needs from an rfboot config, as KEY=value lines for bash.
//
//   node rftest/lib/config-info.mjs config/rftest2.yaml
//   RFCFG_MODE=listen            openflow.mode (listen | relay)
//   RFCFG_LISTEN_PORT=6653       openflow.listen.port: where the switches reach rfboot
//   RFCFG_UPSTREAM_PORT=6633     openflow.upstream.port (relay mode; else empty)
//   RFCFG_MONGO_URI=mongodb://127.0.0.1:27017
//   RFCFG_DB=db                  mongo.database (RouteFlow's `db` by default)
//   RFCFG_PREFIX=rfboot          mongo.collectionPrefix (rfboot's own collections: <prefix>_vms ...)
//   RFCFG_VMS=rfvmA,rfvmB        datapaths.*.name
// A deliberately shallow read (defaults as documented in config/README.md); rfboot itself validates the file.
// Exit 2 when the file cannot be read or is not YAML/JSON, or a value is not shell-safe.
import console from "node:console";
import { readFileSync } from "node:fs";
import process from "node:process";
import { parse } from "yaml";

function fail(msg) {
  console.error(`config-info: ${msg}`);
  process.exit(2);
}

const file = process.argv[2];
if (!file) fail("usage: config-info.mjs CONFIG.yaml");
let doc;
try {
  doc = parse(readFileSync(file, "utf8")) ?? {};
} catch (e) {
  fail(`cannot read ${file}: ${e.message}`);
}
const of = doc.openflow ?? {};
const mongo = doc.mongo ?? {};
const out = {
  RFCFG_MODE: of.mode ?? "listen",
  RFCFG_LISTEN_PORT: of.listen?.port ?? 6653,
  RFCFG_UPSTREAM_PORT: of.mode === "relay" ? (of.upstream?.port ?? 6633) : "",
  RFCFG_MONGO_URI: mongo.uri ?? "mongodb://127.0.0.1:27017",
  RFCFG_DB: mongo.database ?? "db",
  RFCFG_PREFIX: mongo.collectionPrefix ?? "rfboot",
  RFCFG_VMS: Object.values(doc.datapaths ?? {})
    .map((d) => d?.name)
    .filter(Boolean)
    .join(","),
};
for (const [k, v] of Object.entries(out)) {
  const s = String(v);
  // The values end up in bash variables and command lines: allow only what such values contain.
  if (!/^[A-Za-z0-9_.,:/@%+=?&-]*$/.test(s)) fail(`${k} has characters rftest does not accept: ${s}`);
  console.log(`${k}=${s}`);
}
