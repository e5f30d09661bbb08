/**
 * One test per failure: each inline YAML is a valid config but for one thing, and the
 * ConfigError must name that key path (and, where it helps, the value).
 */
import { describe, expect, it } from "vitest";
import { ConfigError, describeConfigError } from "../../../../src/common/errors.js";
import { parseConfig } from "../../../../src/provisioner/config/index.js";

const VM = `{ name: rfvmA, vmId: "02:a0:a0:a0:a0:a0", dataPorts: 2 }`;

/** [what, yaml, expected ConfigError.path, message fragment] */
const CASES: [string, string, string, RegExp][] = [
  // top level
  ["unknown top-level key", `datapath: {}`, "datapath", /unknown key/],
  ["top level is a list", `- a\n- b`, "", /top level must be a mapping/],
  ["YAML syntax error", `datapaths: {"0x5": [}`, "", /YAML error at line 1/],
  ["duplicate YAML key", `mongo: {}\nmongo: {}`, "", /YAML error.*line 2/i],
  ["version 2", `version: 2`, "version", /must be one of 1|invalid/i],
  ["relative stateDir", `stateDir: var/lib/rfboot`, "stateDir", /absolute path/],
  ["stateDir with ..", `stateDir: /var/lib/../../etc`, "stateDir", /\.\. component/],
  ["stateDir with shell syntax", `stateDir: "/var/lib/$(reboot)"`, "stateDir", /may contain only/],
  // openflow
  ["port 0", `openflow: { listen: { host: 127.0.0.1, port: 0 } }`, "openflow.listen.port", /at least 1/],
  [
    "port 65536",
    `openflow: { upstream: { host: 127.0.0.1, port: 65536 } }`,
    "openflow.upstream.port",
    /at most 65535/,
  ],
  [
    "port as string",
    `openflow: { listen: { host: 127.0.0.1, port: "6653" } }`,
    "openflow.listen.port",
    /must be a number/,
  ],
  ["bad mode", `openflow: { mode: proxy }`, "openflow.mode", /listen, relay/],
  [
    "bad listen host",
    `openflow: { listen: { host: "a b", port: 6653 } }`,
    "openflow.listen.host",
    /host name or an IP/,
  ],
  ["unknown version", `openflow: { versions: ["1.0", "1.6"] }`, "openflow.versions[1]", /1\.0, 1\.1/],
  ["duplicate version", `openflow: { versions: [1.0, "1.0"] }`, "openflow.versions", /twice/],
  ["no versions", `openflow: { versions: [] }`, "openflow.versions", /at least 1/],
  ["bad role", `openflow: { role: master }`, "openflow.role", /slave, equal, none/],
  [
    "echo timeout below interval",
    `openflow: { echoIntervalSeconds: 10, echoTimeoutSeconds: 5 }`,
    "openflow.echoTimeoutSeconds",
    /longer than echoIntervalSeconds/,
  ],
  [
    "negative handshake timeout",
    `openflow: { handshakeTimeoutSeconds: -1 }`,
    "openflow.handshakeTimeoutSeconds",
    /./,
  ],
  [
    "relay to itself",
    `openflow: { mode: relay, listen: { host: 0.0.0.0, port: 6633 } }`,
    "openflow.upstream",
    /loop/,
  ],
  ["tls key relative", `openflow: { tls: { cert: /etc/c.pem, key: k.pem } }`, "openflow.tls.key", /absolute/],
  ["tls without key", `openflow: { tls: { cert: /etc/c.pem } }`, "openflow.tls.key", /required/],
  // mongo
  ["mongo uri not mongo", `mongo: { uri: "http://127.0.0.1:27017" }`, "mongo.uri", /MongoDB URI/],
  ["mongo uri with space", `mongo: { uri: "mongodb://a b" }`, "mongo.uri", /whitespace/],
  ["mongo operator as database", `mongo: { database: { $gt: "" } }`, "mongo.database", /MongoDB operator/],
  ["mongo database with dot", `mongo: { database: "db.rfconfig" }`, "mongo.database", /database name/],
  [
    "collection prefix $",
    `mongo: { collectionPrefix: "$where" }`,
    "mongo.collectionPrefix",
    /starting with a letter/,
  ],
  ["collection prefix system", `mongo: { collectionPrefix: system }`, "mongo.collectionPrefix", /system/],
  // hosts
  ["no hosts", `hosts: []`, "hosts", /at least 1/],
  ["host without uri", `hosts: [{ name: a }]`, "hosts[0].uri", /required/],
  ["host uri not libvirt", `hosts: [{ name: a, uri: "/var/run/libvirt" }]`, "hosts[0].uri", /libvirt URI/],
  [
    "host uri with shell",
    `hosts: [{ name: a, uri: "qemu+ssh://h/system;reboot" }]`,
    "hosts[0].uri",
    /must not contain/,
  ],
  [
    "host name with space",
    `hosts: [{ name: "a b", uri: "qemu:///system" }]`,
    "hosts[0].name",
    /may contain only/,
  ],
  [
    "duplicate host name",
    `hosts: [{ name: a, uri: "qemu:///system" }, { name: a, uri: "test:///default" }]`,
    "hosts[1].name",
    /used twice/,
  ],
  [
    "duplicate host uri",
    `hosts: [{ name: a, uri: "qemu:///system" }, { name: b, uri: "qemu:///system" }]`,
    "hosts[1].uri",
    /same libvirt URI/,
  ],
  [
    "dataPlane without trunkBridge",
    `hosts: [{ name: a, uri: "qemu+ssh://a/system", dataPlane: {} }]`,
    "hosts[0].dataPlane.trunkBridge",
    /required/,
  ],
  [
    "dataPlane trunk bridge longer than a device name",
    `hosts: [{ name: a, uri: "qemu+ssh://a/system", dataPlane: { trunkBridge: trunk-to-rack-two } }]`,
    "hosts[0].dataPlane.trunkBridge",
    /IFNAMSIZ/,
  ],
  [
    "dataPlane host bridge with a space",
    `hosts: [{ name: a, uri: "qemu+ssh://a/system", dataPlane: { trunkBridge: t0, bridge: "br vms" } }]`,
    "hosts[0].dataPlane.bridge",
    /device name/,
  ],
  [
    "dataPlane unknown key",
    `hosts: [{ name: a, uri: "qemu+ssh://a/system", dataPlane: { trunkBridge: t0, vni: 100 } }]`,
    "hosts[0].dataPlane.vni",
    /unknown key/,
  ],
  ["maxVms 0", `hosts: [{ name: a, uri: "qemu:///system", maxVms: 0 }]`, "hosts[0].maxVms", /at least 1/],
  ["maxVms fraction", `hosts: [{ name: a, uri: "qemu:///system", maxVms: 2.5 }]`, "hosts[0].maxVms", /./],
  [
    "storageDir relative",
    `hosts: [{ name: a, uri: "qemu:///system", storageDir: disks }]`,
    "hosts[0].storageDir",
    /absolute/,
  ],
  [
    "unknown hypervisor on host",
    `hosts: [{ name: a, uri: "qemu:///system", hypervisors: [vbox] }]`,
    "hosts[0].hypervisors[0]",
    /kvm, qemu/,
  ],
  [
    "host unknown key",
    `hosts: [{ name: a, uri: "qemu:///system", cpus: 4 }]`,
    "hosts[0].cpus",
    /unknown key/,
  ],
  // defaults and profiles
  [
    "defaults: bad hypervisor",
    `defaults: { hypervisor: vmware }`,
    "defaults.hypervisor",
    /kvm, qemu, lxc, xen-pv, xen-hvm, test/,
  ],
  ["defaults: vcpus 0", `defaults: { vcpus: 0 }`, "defaults.vcpus", /at least 1/],
  ["defaults: vcpus 1.5", `defaults: { vcpus: 1.5 }`, "defaults.vcpus", /must be a whole number, got 1\.5/],
  [
    "17-digit dpid",
    `datapaths: { "12345678901234567": ${VM} }`,
    `datapaths."12345678901234567"`,
    /has 17 hex digits: a datapath id has 64 bits, at most 16/,
  ],
  [
    "dec: dpid over 64 bits",
    `datapaths: { "dec:18446744073709551616": ${VM} }`,
    `datapaths."dec:18446744073709551616"`,
    /too large: a datapath id has 64 bits/,
  ],
  ["defaults: memory string", `defaults: { memoryMiB: 128M }`, "defaults.memoryMiB", /must be a number/],
  ["defaults: bad arch", `defaults: { arch: amd64 }`, "defaults.arch", /x86_64/],
  [
    "defaults: bad boot type",
    `defaults: { boot: { type: pxe } }`,
    "defaults.boot.type",
    /kernel, disk, init, bootloader/,
  ],
  [
    "defaults: kernel relative",
    `defaults: { boot: { kernel: vmlinuz } }`,
    "defaults.boot.kernel",
    /absolute/,
  ],
  [
    "defaults: cmdline newline",
    `defaults: { boot: { cmdline: "console=ttyS0\\ninit=/bin/sh" } }`,
    "defaults.boot.cmdline",
    /must not contain/,
  ],
  [
    "defaults: cmdline xml",
    `defaults: { boot: { cmdline: "a</cmdline><kernel>/x" } }`,
    "defaults.boot.cmdline",
    /must not contain "<"/,
  ],
  [
    "defaults: cmdline shell",
    'defaults: { boot: { cmdline: "a `reboot`" } }',
    "defaults.boot.cmdline",
    /must not contain/,
  ],
  [
    "defaults: bridge too long",
    `defaults: { network: { data: { bridge: averyveryverylongbridge } } }`,
    "defaults.network.data.bridge",
    /IFNAMSIZ/,
  ],
  [
    "defaults: management type",
    `defaults: { network: { management: { type: macvtap } } }`,
    "defaults.network.management.type",
    /bridge, network/,
  ],
  [
    "defaults: disk format",
    `defaults: { disk: { image: /i.img, format: vmdk } }`,
    "defaults.disk.format",
    /qcow2, raw/,
  ],
  [
    "defaults: disk image xml",
    `defaults: { disk: { image: "/i<x>.img" } }`,
    "defaults.disk.image",
    /may contain only/,
  ],
  ["defaults: unknown key", `defaults: { ram: 128 }`, "defaults.ram", /unknown key/],
  [
    "defaults: lifecycle",
    `defaults: { lifecycle: { onCrash: explode } }`,
    "defaults.lifecycle.onCrash",
    /destroy/,
  ],
  ["profile unknown key", `profiles: { small: { memory: 64 } }`, "profiles.small.memory", /unknown key/],
  ["profile bad name", `profiles: { "a b": { vcpus: 1 } }`, `profiles."a b"`, /profile names/],
  [
    "profile extends unknown",
    `profiles: { small: { extends: tiny } }`,
    "profiles.small.extends",
    /unknown profile/,
  ],
  ["profile cycle", `profiles: { a: { extends: b }, b: { extends: a } }`, "profiles.a.extends", /cycle/],
  // datapaths
  ["datapaths a list", `datapaths: [${VM}]`, "datapaths", /mapping/],
  ["dpid not hex", `datapaths: { "0xzz": ${VM} }`, `datapaths."0xzz"`, /not a datapath id/],
  [
    "dpid over 64 bits",
    `datapaths: { "0x10000000000000000": ${VM} }`,
    `datapaths."0x10000000000000000"`,
    /has 17 hex digits: a datapath id has 64 bits/,
  ],
  [
    "dpid twice (0x5 and 5)",
    `datapaths: { "0x5": ${VM}, "5": { name: b, vmId: "02:b0:b0:b0:b0:b0", dataPorts: 1 } }`,
    `datapaths."5"`,
    /same datapath as "0x5"/,
  ],
  [
    "dpid twice (OVS colon form)",
    `datapaths: { "0x5": ${VM}, "00:00:00:00:00:00:00:05": { name: b, vmId: "02:b0:b0:b0:b0:b0", dataPorts: 1 } }`,
    `datapaths."00:00:00:00:00:00:00:05"`,
    /same datapath/,
  ],
  [
    "dpid twice (5 unquoted and quoted)",
    `datapaths: { 5: ${VM}, "5": { name: b, vmId: "02:b0:b0:b0:b0:b0", dataPorts: 1 } }`,
    `datapaths."5"`,
    /written twice/,
  ],
  [
    "dpid twice (dec:)",
    `datapaths: { "0x10": ${VM}, "dec:16": { name: b, vmId: "02:b0:b0:b0:b0:b0", dataPorts: 1 } }`,
    `datapaths."dec:16"`,
    /same datapath/,
  ],
  ["unquoted ambiguous dpid", `datapaths: { 10: ${VM} }`, `datapaths."10"`, /ambiguous.*quote it/],
  [
    "unquoted dpid >= 2^53",
    `datapaths: { 9007199254740993: ${VM} }`,
    `datapaths."9007199254740993"`,
    /2\^53.*quote it/,
  ],
  [
    "unquoted 16-digit dpid (dp0's)",
    `datapaths: { 7266767372667673: ${VM} }`,
    `datapaths."7266767372667673"`,
    /ambiguous.*"0x7266767372667673"/,
  ],
  ["float dpid", `datapaths: { 1.5: ${VM} }`, `datapaths."1.5"`, /not a datapath id/],
  [
    "entry missing name",
    `datapaths: { "0x5": { vmId: "02:a0:a0:a0:a0:a0", dataPorts: 1 } }`,
    `datapaths."0x5".name`,
    /required/,
  ],
  [
    "name with slash",
    `datapaths: { "0x5": { name: "../etc", vmId: "02:a0:a0:a0:a0:a0", dataPorts: 1 } }`,
    `datapaths."0x5".name`,
    /may contain only/,
  ],
  [
    "name with xml",
    `datapaths: { "0x5": { name: "a'/><x", vmId: "02:a0:a0:a0:a0:a0", dataPorts: 1 } }`,
    `datapaths."0x5".name`,
    /may contain only/,
  ],
  [
    "name as mongo operator",
    `datapaths: { "0x5": { name: { $ne: null }, vmId: "02:a0:a0:a0:a0:a0", dataPorts: 1 } }`,
    `datapaths."0x5".name`,
    /MongoDB operator/,
  ],
  [
    "name starts with -",
    `datapaths: { "0x5": { name: "-rf", vmId: "02:a0:a0:a0:a0:a0", dataPorts: 1 } }`,
    `datapaths."0x5".name`,
    /not starting/,
  ],
  [
    "vmId multicast",
    `datapaths: { "0x5": { name: a, vmId: "01:00:5e:00:00:01", dataPorts: 1 } }`,
    `datapaths."0x5".vmId`,
    /multicast/,
  ],
  [
    "vmId zero",
    `datapaths: { "0x5": { name: a, vmId: "00:00:00:00:00:00", dataPorts: 1 } }`,
    `datapaths."0x5".vmId`,
    /zero/,
  ],
  [
    "vmId bare digits",
    `datapaths: { "0x5": { name: a, vmId: "2A0A0A0A0A0", dataPorts: 1 } }`,
    `datapaths."0x5".vmId`,
    /not a vm_id/,
  ],
  [
    "vmId over 48 bits",
    `datapaths: { "0x5": { name: a, vmId: 281474976710656, dataPorts: 1 } }`,
    `datapaths."0x5".vmId`,
    /48 bits/,
  ],
  [
    "vmId operator",
    `datapaths: { "0x5": { name: a, vmId: { $gt: "" }, dataPorts: 1 } }`,
    `datapaths."0x5".vmId`,
    /./,
  ],
  [
    "duplicate name",
    `datapaths: { "0x5": ${VM}, "0x6": { name: rfvmA, vmId: "02:b0:b0:b0:b0:b0", dataPorts: 1 } }`,
    `datapaths."0x6".name`,
    /used twice/,
  ],
  [
    "duplicate vmId",
    `datapaths: { "0x5": ${VM}, "0x6": { name: b, vmId: "dec:2888912904352", dataPorts: 1 } }`,
    `datapaths."0x6".vmId`,
    /used twice/,
  ],
  [
    "data MAC of one VM is another's vmId",
    `datapaths: { "0x5": ${VM}, "0x6": { name: b, vmId: "02:a1:a1:a1:a1:a1", dataPorts: 1 } }`,
    `datapaths."0x6".vmId`,
    /also a MAC/,
  ],
  [
    "no ports given",
    `datapaths: { "0x5": { name: a, vmId: "02:a0:a0:a0:a0:a0" } }`,
    `datapaths."0x5".dataPorts`,
    /required/,
  ],
  [
    "both dataPorts and portMap",
    `datapaths: { "0x5": { name: a, vmId: "02:a0:a0:a0:a0:a0", dataPorts: 1, portMap: [{ vmPort: 1, dpPort: 1 }] } }`,
    `datapaths."0x5".portMap`,
    /not both/,
  ],
  [
    "dataPorts negative",
    `datapaths: { "0x5": { name: a, vmId: "02:a0:a0:a0:a0:a0", dataPorts: -1 } }`,
    `datapaths."0x5".dataPorts`,
    /at least 0/,
  ],
  [
    "dataPorts huge",
    `datapaths: { "0x5": { name: a, vmId: "02:a0:a0:a0:a0:a0", dataPorts: 1000 } }`,
    `datapaths."0x5".dataPorts`,
    /at most 256/,
  ],
  [
    "portMap vmPort twice",
    `datapaths: { "0x5": { name: a, vmId: "02:a0:a0:a0:a0:a0", portMap: [{ vmPort: 1, dpPort: 1 }, { vmPort: 1, dpPort: 2 }] } }`,
    `datapaths."0x5".portMap[1].vmPort`,
    /used twice/,
  ],
  [
    "portMap dpPort twice",
    `datapaths: { "0x5": { name: a, vmId: "02:a0:a0:a0:a0:a0", portMap: [{ vmPort: 1, dpPort: 3 }, { vmPort: 2, dpPort: 3 }] } }`,
    `datapaths."0x5".portMap[1].dpPort`,
    /used twice/,
  ],
  [
    "portMap dpPort 0",
    `datapaths: { "0x5": { name: a, vmId: "02:a0:a0:a0:a0:a0", portMap: [{ vmPort: 1, dpPort: 0 }] } }`,
    `datapaths."0x5".portMap[0].dpPort`,
    /at least 1/,
  ],
  [
    "portMap reserved port",
    `datapaths: { "0x5": { name: a, vmId: "02:a0:a0:a0:a0:a0", portMap: [{ vmPort: 1, dpPort: 4294967294 }] } }`,
    `datapaths."0x5".portMap[0].dpPort`,
    /at most/,
  ],
  [
    "portMap unknown key",
    `datapaths: { "0x5": { name: a, vmId: "02:a0:a0:a0:a0:a0", portMap: [{ vmPort: 1, port: 1 }] } }`,
    `datapaths."0x5".portMap[0].dpPort`,
    /required|unknown/,
  ],
  [
    "unknown profile",
    `datapaths: { "0x5": { name: a, vmId: "02:a0:a0:a0:a0:a0", dataPorts: 1, profile: big } }`,
    `datapaths."0x5".profile`,
    /unknown profile/,
  ],
  [
    "unknown host pin",
    `datapaths: { "0x5": { name: a, vmId: "02:a0:a0:a0:a0:a0", dataPorts: 1, host: far } }`,
    `datapaths."0x5".host`,
    /no such host/,
  ],
  [
    "pinned host without the hypervisor",
    `hosts: [{ name: q, uri: "qemu:///system" }, { name: l, uri: "lxc:///system" }]\ndatapaths: { "0x5": { name: a, vmId: "02:a0:a0:a0:a0:a0", dataPorts: 1, host: l } }`,
    `datapaths."0x5".host`,
    /does not run qemu/,
  ],
  [
    "no host for lxc",
    `datapaths: { "0x5": { name: a, vmId: "02:a0:a0:a0:a0:a0", dataPorts: 1, hypervisor: lxc, boot: { type: init, init: /sbin/init, rootfs: /srv/a } } }`,
    `datapaths."0x5".hypervisor`,
    /no host runs lxc/,
  ],
  [
    "lxc with kernel boot",
    `hosts: [{ name: l, uri: "lxc:///system" }]\ndatapaths: { "0x5": { name: a, vmId: "02:a0:a0:a0:a0:a0", dataPorts: 1, hypervisor: lxc } }`,
    `datapaths."0x5".boot.type`,
    /./,
  ],
  [
    "boot disk without disk",
    `datapaths: { "0x5": { name: a, vmId: "02:a0:a0:a0:a0:a0", dataPorts: 1, boot: { type: disk } } }`,
    `datapaths."0x5".boot.type`,
    /needs disk.image/,
  ],
  [
    "init boot without rootfs",
    `datapaths: { "0x5": { name: a, vmId: "02:a0:a0:a0:a0:a0", dataPorts: 1, boot: { type: init, init: /sbin/init } } }`,
    `datapaths."0x5".boot.rootfs`,
    /required/,
  ],
  [
    "currentMemory above memory",
    `datapaths: { "0x5": { name: a, vmId: "02:a0:a0:a0:a0:a0", dataPorts: 1, memoryMiB: 64, currentMemoryMiB: 128 } }`,
    `datapaths."0x5".currentMemoryMiB`,
    /must not exceed/,
  ],
  [
    "unknown placeholder",
    `datapaths: { "0x5": { name: a, vmId: "02:a0:a0:a0:a0:a0", dataPorts: 1, boot: { cmdline: "x={host}" } } }`,
    `datapaths."0x5".boot.cmdline`,
    /unknown placeholder \{host\}/,
  ],
  [
    "placeholder making .. ",
    `datapaths: { "0x5": { name: "..x", vmId: "02:a0:a0:a0:a0:a0", dataPorts: 1 } }`,
    `datapaths."0x5".name`,
    /./,
  ],
  ["machine for lxc", `defaults: { machine: "pc;reboot" }`, "defaults.machine", /machine type/],
  ["cpuset junk", `defaults: { cpuset: "0-3 && reboot" }`, "defaults.cpuset", /cpuset/],
  [
    "entry unknown key",
    `datapaths: { "0x5": { name: a, vmId: "02:a0:a0:a0:a0:a0", dataPorts: 1, vm_id: 1 } }`,
    `datapaths."0x5".vm_id`,
    /unknown key/,
  ],
  // policies and readiness
  [
    "unknown policy action",
    `policies: { unknownDatapath: { action: boot } }`,
    "policies.unknownDatapath.action",
    /ignore, template, refuse/,
  ],
  [
    "template name without dpid",
    `policies: { unknownDatapath: { action: template, template: { name: rfvm } } }`,
    "policies.unknownDatapath.template.name",
    /must contain \{dpid\}/,
  ],
  [
    "template name with bad chars",
    `policies: { unknownDatapath: { action: template, template: { name: "rf vm{dpid}" } } }`,
    "policies.unknownDatapath.template.name",
    /may contain only/,
  ],
  [
    "template unknown profile",
    `policies: { unknownDatapath: { action: template, template: { profile: x } } }`,
    "policies.unknownDatapath.template.profile",
    /unknown profile/,
  ],
  [
    "template unknown host",
    `policies: { unknownDatapath: { action: template, template: { host: x } } }`,
    "policies.unknownDatapath.template.host",
    /no such host/,
  ],
  [
    "leave action",
    `policies: { leave: { action: hibernate } }`,
    "policies.leave.action",
    /keep, shutdown, destroy, suspend/,
  ],
  [
    "echo interval zero (an exclusive bound)",
    `openflow: { echoIntervalSeconds: 0 }`,
    "openflow.echoIntervalSeconds",
    /must be greater than 0, got 0/,
  ],
  [
    "leave grace negative",
    `policies: { leave: { graceSeconds: -5 } }`,
    "policies.leave.graceSeconds",
    /at least 0/,
  ],
  [
    "duplicate policy",
    `policies: { duplicateDatapath: oldest-wins }`,
    "policies.duplicateDatapath",
    /newest-wins/,
  ],
  [
    "prewarm enabled not a boolean",
    `policies: { prewarm: { enabled: "yes" } }`,
    "policies.prewarm.enabled",
    /true or false/,
  ],
  [
    "prewarm concurrency 0",
    `policies: { prewarm: { concurrency: 0 } }`,
    "policies.prewarm.concurrency",
    /at least 1/,
  ],
  [
    "prewarm concurrency 65",
    `policies: { prewarm: { concurrency: 65 } }`,
    "policies.prewarm.concurrency",
    /at most 64/,
  ],
  [
    "prewarm concurrency 1.5",
    `policies: { prewarm: { concurrency: 1.5 } }`,
    "policies.prewarm.concurrency",
    /whole number/,
  ],
  [
    "prewarm order unknown",
    `policies: { prewarm: { order: random } }`,
    "policies.prewarm.order",
    /config, recent/,
  ],
  [
    "prewarm memoryMiB negative",
    `policies: { prewarm: { memoryMiB: -1 } }`,
    "policies.prewarm.memoryMiB",
    /at least 0/,
  ],
  [
    "prewarm diskMiB negative",
    `policies: { prewarm: { diskMiB: -512 } }`,
    "policies.prewarm.diskMiB",
    /at least 0/,
  ],
  ["prewarm unknown key", `policies: { prewarm: { eager: true } }`, "policies.prewarm.eager", /unknown key/],
  [
    "marker not a regex",
    `readiness: { consoleMarker: "([" }`,
    "readiness.consoleMarker",
    /regular expression/,
  ],
  [
    "consoleMarker with a nested quantifier (catastrophic backtracking on guest output)",
    `readiness: { consoleMarker: "^(a+)+$" }`,
    "readiness.consoleMarker",
    /nested quantifiers/,
  ],
  ["readiness timeout 0", `readiness: { timeoutSeconds: 0 }`, "readiness.timeoutSeconds", /./],
  ["portRegister string", `readiness: { portRegister: "yes" }`, "readiness.portRegister", /true or false/],
];

describe("every invalid value is a ConfigError naming its key path", () => {
  it.each(CASES)("%s", (_what, yaml, path, message) => {
    let err: unknown;
    try {
      parseConfig(yaml, { source: "t.yaml" });
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(ConfigError);
    const ce = err as ConfigError;
    expect({ path: ce.path, message: ce.message }).toEqual({ path, message: expect.stringMatching(message) });
    expect(ce.message.split("\n")).toHaveLength(1);
  });

  it("shows the bad value and the YAML line", () => {
    const yaml = `hosts:\n  - name: a\n    uri: "qemu:///system"\n    maxVms: 0\n`;
    expect(() => parseConfig(yaml, { source: "c.yaml" })).toThrow(
      "hosts[0].maxVms: must be at least 1, got 0 (c.yaml line 4)",
    );
  });

  it("counts further problems", () => {
    expect(() => parseConfig(`openflow: { mode: x, role: y }\nmongo: { database: "a.b" }`)).toThrow(
      /\[and 2 more problems\]/,
    );
  });

  /** problemsOf returns `path: message` of every problem a config has. */
  function problemsOf(yaml: string): string[] {
    try {
      parseConfig(yaml, { source: "c.yaml" });
    } catch (e) {
      if (e instanceof ConfigError) return e.problems.map((p) => `${p.path}: ${p.message}`);
      throw e;
    }
    return [];
  }

  it("lists every schema problem at once, each at its own key and line", () => {
    const yaml = [
      "openflow:",
      "  mode: x",
      "  role: y",
      "mongo:",
      '  database: "a.b"',
      "  bogus: 1",
      "  other: 2",
    ].join("\n");
    const got = problemsOf(yaml);
    expect(got).toHaveLength(5);
    let err: unknown;
    try {
      parseConfig(yaml, { source: "c.yaml" });
    } catch (e) {
      err = e;
    }
    const text = describeConfigError(err as ConfigError);
    expect(text.split("\n")).toHaveLength(6);
    expect(text).toMatch(/^5 problems:\n {2}openflow\.mode: /);
    expect(got).toEqual(
      expect.arrayContaining([
        expect.stringMatching(/^openflow\.mode: must be one of listen, relay, got "x" \(c\.yaml line 2\)$/),
        expect.stringMatching(/^openflow\.role: .*\(c\.yaml line 3\)$/),
        expect.stringMatching(/^mongo\.database: .*\(c\.yaml line 5\)$/),
        "mongo.bogus: unknown key; check the spelling against config/README.md (c.yaml line 6)",
        "mongo.other: unknown key; check the spelling against config/README.md (c.yaml line 7)",
      ]),
    );
  });

  it("lists every cross-check and VM problem at once, in file order", () => {
    const yaml = [
      "openflow: { echoIntervalSeconds: 10, echoTimeoutSeconds: 5 }",
      "hosts: [{ name: a, uri: 'qemu:///system' }, { name: a, uri: 'test:///default' }]",
      "datapaths:",
      `  "0x5": { name: rfvmA, vmId: "02:a0:a0:a0:a0:a0", dataPorts: 1 }`,
      `  "0x6": { name: rfvmA, vmId: "02:b0:b0:b0:b0:b0", dataPorts: 1 }`,
      `  "0x7": { name: c, vmId: "02:c0:c0:c0:c0:c0", dataPorts: 1, memoryMiB: 64, currentMemoryMiB: 128 }`,
      `  "12345678901234567": { name: d, vmId: "02:d0:d0:d0:d0:d0", dataPorts: 1 }`,
      `  10: { name: e, vmId: "02:e0:e0:e0:e0:e0", dataPorts: 1 }`,
    ].join("\n");
    const got = problemsOf(yaml);
    expect(got.map((l) => l.replace(/: .*\(c\.yaml line (\d+)\)$/, " @$1"))).toEqual([
      "openflow.echoTimeoutSeconds @1",
      "hosts[1].name @2",
      `datapaths."0x6".name @5`,
      `datapaths."0x7".currentMemoryMiB @6`,
      `datapaths."12345678901234567" @7`,
      `datapaths."10" @8`,
    ]);
  });

  it("reports a problem found after merging at the key the user wrote, in the profile or defaults", () => {
    const yaml = [
      "defaults:",
      "  memoryMiB: 64",
      "profiles:",
      "  big:",
      "    currentMemoryMiB: 128",
      "datapaths:",
      `  "0x5": { name: a, vmId: "02:a0:a0:a0:a0:a0", dataPorts: 1, profile: big }`,
    ].join("\n");
    expect(problemsOf(yaml)).toEqual([
      "profiles.big.currentMemoryMiB: must not exceed memoryMiB (64) (c.yaml line 5)",
    ]);
    const lxc = [
      "hosts: [{ name: l, uri: 'lxc:///system' }]",
      "defaults:",
      "  hypervisor: lxc",
      `  boot: { type: init, init: /sbin/init, rootfs: "/srv/{name}" }`,
      "  network: { nicModel: virtio }",
      "datapaths:",
      `  "0x5": { name: a, vmId: "02:a0:a0:a0:a0:a0", dataPorts: 1 }`,
    ].join("\n");
    expect(problemsOf(lxc)).toEqual([
      expect.stringMatching(/^defaults\.network\.nicModel: .*\(c\.yaml line 5\)$/),
    ]);
  });

  it("hides a MongoDB password in messages", () => {
    try {
      parseConfig(`mongo: { uri: "mongodb://rf:s3cret@h:27017/x y" }`);
      expect.unreachable();
    } catch (e) {
      expect((e as ConfigError).message).not.toContain("s3cret");
      expect((e as ConfigError).value).not.toContain("s3cret");
    }
  });

  it("rejects JSON that is not JSON, and duplicate JSON keys", () => {
    expect(() => parseConfig(`{"datapaths": {,}}`, { format: "json" })).toThrow(/not valid JSON/);
    expect(() => parseConfig(`{"mongo": {}, "mongo": {}}`, { format: "json" })).toThrow(ConfigError);
  });

  it("rejects an empty file and an oversized one", () => {
    expect(() => parseConfig("")).toThrow(/is empty/);
    expect(() => parseConfig("# only a comment\n")).toThrow(/is empty/);
    const huge = `datapaths: {}\n${"#".repeat(4 * 1024 * 1024)}\n`;
    expect(() => parseConfig(huge)).toThrow(/limit is 4194304/);
  });

  it("does not let __proto__ through as a key", () => {
    expect(() => parseConfig(`{"__proto__": {"stateDir": "/tmp"}}`, { format: "json" })).toThrow(ConfigError);
    expect(() => parseConfig(`defaults: {"__proto__": {"vcpus": 2}}`)).toThrow(ConfigError);
  });

  it("rejects YAML alias bombs", () => {
    const bomb = ["a: &a [x, x, x, x, x, x, x, x, x, x]"];
    for (let i = 1; i < 10; i++)
      bomb.push(
        `${String.fromCharCode(97 + i)}: &${String.fromCharCode(97 + i)} [${Array(10)
          .fill(`*${String.fromCharCode(96 + i)}`)
          .join(", ")}]`,
      );
    expect(() => parseConfig(bomb.join("\n"))).toThrow(ConfigError);
  });
});
