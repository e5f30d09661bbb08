/**
 * OpenFlow over TLS with a real Open vSwitch (`ssl:` controller): a CA, rfboot's certificate and two switch
 * certificates (one from the CA rfboot trusts, one from another CA) are made with the openssl CLI;
 * `ovs-vsctl set-ssl` gives ovs-vswitchd its key, certificate and the CA it checks rfboot against. rfboot
 * runs controllerFromConfig with `openflow.tls {cert, key, ca}`. The trusted switch comes `up`; the switch
 * with a certificate from another CA is refused in the TLS handshake (no `up`, a TLS failure counted).
 */
import { execa } from "execa";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { connect as tlsConnect } from "node:tls";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, expect, it } from "vitest";
import type { Controller, UpEvent } from "../../src/controller/index.js";
import { parseConfig } from "../../src/provisioner/config/index.js";
import { controllerFromConfig } from "../../src/provisioner/wiring.js";
import { describeWith } from "../helpers/env.js";
import { captureLog, rawConnect, until } from "./helpers.js";

const BR_OK = "rfbt-sec-tls1";
const BR_BAD = "rfbt-sec-tls2";
const DPID_OK = "00000000000a11ce";
const DPID_BAD = "0000000000000bad";

const vsctl = (...args: string[]) => execa("ovs-vsctl", ["--timeout=10", ...args]).then((r) => r.stdout);
const openssl = (...args: string[]) => execa("openssl", args, { stdin: "ignore" });

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once("error", reject);
    s.listen(0, "127.0.0.1", () => {
      const a = s.address();
      const port = typeof a === "object" && a ? a.port : 0;
      s.close(() => resolve(port));
    });
  });
}

/** makeCa creates a self-signed CA under dir/name.{key,crt}. */
async function makeCa(dir: string, name: string): Promise<void> {
  await openssl(
    "req",
    "-x509",
    "-newkey",
    "rsa:2048",
    "-nodes",
    "-days",
    "2",
    "-subj",
    `/CN=${name}`,
    "-keyout",
    join(dir, `${name}.key`),
    "-out",
    join(dir, `${name}.crt`),
    "-addext",
    "basicConstraints=critical,CA:TRUE",
    "-addext",
    "keyUsage=critical,keyCertSign,cRLSign",
  );
}

/** makeCert creates dir/name.{key,crt} signed by CA `ca`. */
async function makeCert(dir: string, name: string, ca: string): Promise<void> {
  const ext = join(dir, `${name}.ext`);
  writeFileSync(ext, "basicConstraints=CA:FALSE\nsubjectAltName=IP:127.0.0.1,DNS:localhost\n");
  await openssl(
    "req",
    "-newkey",
    "rsa:2048",
    "-nodes",
    "-subj",
    `/CN=${name}`,
    "-keyout",
    join(dir, `${name}.key`),
    "-out",
    join(dir, `${name}.csr`),
  );
  await openssl(
    "x509",
    "-req",
    "-in",
    join(dir, `${name}.csr`),
    "-days",
    "2",
    "-CA",
    join(dir, `${ca}.crt`),
    "-CAkey",
    join(dir, `${ca}.key`),
    "-CAcreateserial",
    "-extfile",
    ext,
    "-out",
    join(dir, `${name}.crt`),
  );
}

async function addBridge(br: string, dpid: string, port: number): Promise<void> {
  await vsctl(
    "--may-exist",
    "add-br",
    br,
    "--",
    "set",
    "bridge",
    br,
    "datapath_type=netdev",
    "protocols=OpenFlow10,OpenFlow13",
    `other-config:datapath-id=${dpid}`,
    "fail_mode=secure",
    "--",
    "set-controller",
    br,
    `ssl:127.0.0.1:${port}`,
  );
  const uuids = (await vsctl("get", "bridge", br, "controller")).replace(/[[\]\s]/g, "").split(",");
  for (const u of uuids.filter(Boolean)) await vsctl("set", "controller", u, "max_backoff=1000");
}

describeWith(["ovs"], "OpenFlow over TLS with a real Open vSwitch", () => {
  let dir = "";
  let ctl: Controller | undefined;
  const ups: UpEvent[] = [];
  const cap = captureLog({ level: "info" });

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), "rfbt-sec-tls-"));
    await makeCa(dir, "ca");
    await makeCa(dir, "otherca");
    await makeCert(dir, "rfboot", "ca");
    await makeCert(dir, "switch", "ca");
    await makeCert(dir, "rogue", "otherca");
    const port = await freePort();
    const config = parseConfig(
      [
        "openflow:",
        "  mode: listen",
        "  role: none",
        `  listen: { host: 127.0.0.1, port: ${port} }`,
        "  versions: ['1.0', '1.3']",
        `  tls: { cert: ${dir}/rfboot.crt, key: ${dir}/rfboot.key, ca: ${dir}/ca.crt }`,
      ].join("\n"),
      { format: "yaml" },
    );
    ctl = controllerFromConfig(config, cap.logger);
    ctl.on("up", (e) => ups.push(e));
    await ctl.start();
    // ovs-vswitchd's own key and certificate, and the CA it checks rfboot's certificate against.
    await vsctl("set-ssl", `${dir}/switch.key`, `${dir}/switch.crt`, `${dir}/ca.crt`);
    await addBridge(BR_OK, DPID_OK, port);
  }, 120_000);

  afterAll(async () => {
    await vsctl("--if-exists", "del-br", BR_OK).catch(() => undefined);
    await vsctl("--if-exists", "del-br", BR_BAD).catch(() => undefined);
    await vsctl("del-ssl").catch(() => undefined);
    await ctl?.close();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it(
    "a switch whose certificate the configured CA signed comes up over ssl:",
    { timeout: 60_000 },
    async () => {
      await until(() => ups.some((e) => e.dpid === BigInt(`0x${DPID_OK}`)), 30_000, "up over TLS");
      const up = ups.find((e) => e.dpid === BigInt(`0x${DPID_OK}`))!;
      expect(up.version).toBe("1.3");
      // OVS itself reports the ssl: controller connected.
      const uuid = (await vsctl("get", "bridge", BR_OK, "controller")).replace(/[[\]\s]/g, "");
      for (let i = 0; i < 50; i++) {
        if ((await vsctl("get", "controller", uuid, "is_connected")).trim() === "true") break;
        await new Promise((r) => setTimeout(r, 200));
      }
      expect((await vsctl("get", "controller", uuid, "is_connected")).trim()).toBe("true");
    },
  );

  it(
    "a switch with a certificate from another CA is refused in the TLS handshake",
    { timeout: 60_000 },
    async () => {
      await vsctl("--if-exists", "del-br", BR_OK);
      const before = ctl!.acceptStats().tlsFailures;
      // Same CA for checking rfboot (so OVS itself is satisfied); its own certificate is the rogue one.
      await vsctl("set-ssl", `${dir}/rogue.key`, `${dir}/rogue.crt`, `${dir}/ca.crt`);
      await addBridge(BR_BAD, DPID_BAD, Number(ctl!.options.listen.port));
      await until(() => ctl!.acceptStats().tlsFailures >= before + 2, 30_000, "refused TLS handshakes");
      expect(ups.some((e) => e.dpid === BigInt(`0x${DPID_BAD}`))).toBe(false);
      expect(ctl!.connectionCount).toBe(0);
      const errs = cap.lines
        .filter((l) => l.msg === "TLS handshake with a switch failed; connection closed")
        .map((l) => String(l.err));
      await until(
        () => cap.lines.some((l) => /certificate|verify/i.test(String(l.err))),
        15_000,
        "cert refusal logged",
      );
      expect(errs.length).toBeGreaterThan(0);
    },
  );

  it(
    "a TLS client without any certificate, and a plain TCP client, get no OpenFlow session",
    { timeout: 30_000 },
    async () => {
      const port = Number(ctl!.options.listen.port);
      const before = ctl!.acceptStats().tlsFailures;
      const anon = tlsConnect({
        host: "127.0.0.1",
        port,
        ca: readFileSync(`${dir}/ca.crt`),
        servername: "localhost",
      });
      anon.on("error", () => undefined);
      const gotData = await new Promise<boolean>((resolve) => {
        anon.once("data", () => resolve(true));
        anon.once("close", () => resolve(false));
      });
      expect(gotData).toBe(false);
      const plain = await rawConnect(port);
      plain.on("error", () => undefined);
      plain.write(Buffer.from("0100000800000001", "hex")); // an OpenFlow HELLO in clear text
      const plainData = await new Promise<boolean>((resolve) => {
        plain.once("data", (d: Buffer) => resolve(d.length >= 8 && d[0]! >= 1 && d[0]! <= 6 && d[1] === 0));
        plain.once("close", () => resolve(false));
      });
      expect(plainData).toBe(false);
      plain.destroy();
      await until(() => ctl!.acceptStats().tlsFailures >= before + 2, 10_000, "both refused");
      expect(ctl!.connectionCount).toBe(0);
    },
  );
});
