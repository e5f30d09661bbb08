// config-info.mjs: prints the few facts rftest needs from an rfboot config, as KEY=value lines for bash.
//
//   node rftest/lib/config-info.mjs config/rftest2.yaml
//   RFCFG_MODE=listen            openflow.mode (listen | relay)
//   RFCFG_LISTEN_PORT=6653       openflow.listen.port: where the switches reach rfboot
//   RFCFG_UPSTREAM_PORT=6633     openflow.upstream.port (relay mode; else empty)
//   RFCFG_MONGO_URI=mongodb://127.0.0.1:27017
//   RFCFG_DB=db                  mongo.database (RouteFlow's `db` by default)
//   RFCFG_PREFIX=rfboot          mongo.collectionPrefix (rfboot's own collections: <prefix>_vms ...)
//   RFCFG_LEAVE=keep:30          policies.leave (action:graceSeconds)
//   RFCFG_VMS=rfvmA,rfvmB        datapaths.*.name
//
//   node rftest/lib/config-info.mjs config/rftest2.yaml --hypervisor lxc --out /var/lib/rfboot-lab/rftest2/rfboot.yaml
// writes a copy of the config whose VMs use another hypervisor (rftest's --hypervisor), then prints the lines
// above for the copy. qemu, kvm: same direct kernel boot on qemu:///system. lxc: the guest's busybox rootfs
// (rftest/guest/build-guest.sh's rootfs-lxc) with its /init, on lxc:///system. Others (xen-pv, xen-hvm,
// test): only defaults.hypervisor changes; rfboot's own checks say what else they need.
//
//   node rftest/lib/config-info.mjs config/rftest2.yaml --leave suspend:5 --out /var/lib/rfboot-lab/rftest2/rfboot.yaml
// writes a copy whose policies.leave is {action: suspend, graceSeconds: 5} (rftest's --leave; the grace defaults
// to the config's own, else 30). --hypervisor and --leave combine.
// A deliberately shallow read (defaults as documented in config/README.md); rfboot itself validates the file.
// Exit 2 when the file cannot be read or is not YAML/JSON, or a value is not shell-safe.
import console from "node:console";
import { readFileSync, writeFileSync } from "node:fs";
import process from "node:process";
import { parse, stringify } from "yaml";

function fail(msg) {
  console.error(`config-info: ${msg}`);
  process.exit(2);
}

const USAGE = "usage: config-info.mjs CONFIG.yaml [--hypervisor X] [--leave ACTION[:GRACE_S]] [--out FILE]";
const LEAVE_ACTIONS = ["keep", "shutdown", "destroy", "suspend"];
const [file, ...rest] = process.argv.slice(2);
if (!file) fail(USAGE);
let hypervisor;
let leave;
let outFile;
for (let i = 0; i < rest.length; i += 2) {
  if (rest[i + 1] === undefined) fail(USAGE);
  if (rest[i] === "--hypervisor") hypervisor = rest[i + 1];
  else if (rest[i] === "--leave") leave = rest[i + 1];
  else if (rest[i] === "--out") outFile = rest[i + 1];
  else fail(USAGE);
}
// A derived copy needs somewhere to go, and --out alone would copy nothing.
if ((hypervisor === undefined && leave === undefined) !== (outFile === undefined)) fail(USAGE);
let doc;
try {
  doc = parse(readFileSync(file, "utf8")) ?? {};
} catch (e) {
  fail(`cannot read ${file}: ${e.message}`);
}
if (hypervisor !== undefined) {
  const GUEST = "/var/lib/rfboot/guest";
  if (!["qemu", "kvm", "lxc", "xen-pv", "xen-hvm", "test"].includes(hypervisor)) {
    fail(`--hypervisor must be qemu, kvm, lxc, xen-pv, xen-hvm or test, not ${hypervisor}`);
  }
  doc.defaults = { ...(doc.defaults ?? {}), hypervisor };
  if (hypervisor === "lxc") {
    doc.defaults.boot = {
      type: "init",
      init: "/init",
      args: ["rfboot.name={name}"],
      rootfs: `${GUEST}/rootfs-lxc`,
    };
    doc.hosts = (doc.hosts ?? [{ name: "local" }]).map((h) => ({ ...h, uri: "lxc:///system" }));
  } else if (hypervisor === "qemu" || hypervisor === "kvm") {
    doc.hosts = (doc.hosts ?? [{ name: "local" }]).map((h) => ({ ...h, uri: "qemu:///system" }));
  }
  for (const d of Object.values(doc.datapaths ?? {})) {
    // A per-VM hypervisor or boot would win over the defaults: drop them so that the choice applies.
    if (d && typeof d === "object") {
      delete d.hypervisor;
      if (hypervisor === "lxc") delete d.boot;
    }
  }
}
if (leave !== undefined) {
  const m = /^([a-z]+)(?::([0-9]+))?$/.exec(leave);
  if (!m || !LEAVE_ACTIONS.includes(m[1])) {
    fail(
      `--leave must be ACTION[:GRACE_SECONDS] with ACTION one of ${LEAVE_ACTIONS.join(", ")}, not ${leave}`,
    );
  }
  const policies = doc.policies ?? {};
  const grace = m[2] !== undefined ? Number(m[2]) : (policies.leave?.graceSeconds ?? 30);
  doc.policies = { ...policies, leave: { action: m[1], graceSeconds: grace } };
}
if (outFile !== undefined) {
  const why = [hypervisor && `--hypervisor ${hypervisor}`, leave && `--leave ${leave}`].filter(Boolean);
  writeFileSync(outFile, `# derived from ${file} by rftest (${why.join(" ")})\n${stringify(doc)}`);
}
const leavePolicy = doc.policies?.leave ?? {};
const of = doc.openflow ?? {};
const mongo = doc.mongo ?? {};
const out = {
  RFCFG_MODE: of.mode ?? "listen",
  RFCFG_LISTEN_PORT: of.listen?.port ?? 6653,
  RFCFG_UPSTREAM_PORT: of.mode === "relay" ? (of.upstream?.port ?? 6633) : "",
  RFCFG_MONGO_URI: mongo.uri ?? "mongodb://127.0.0.1:27017",
  RFCFG_DB: mongo.database ?? "db",
  RFCFG_PREFIX: mongo.collectionPrefix ?? "rfboot",
  RFCFG_LEAVE: `${leavePolicy.action ?? "keep"}:${leavePolicy.graceSeconds ?? 30}`,
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
