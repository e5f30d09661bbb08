/**
 * `rfboot run --http` as an operator runs it, a child process with a private libvirtd (test driver) and
 * FerretDB: /healthz answers without the token, every other path needs it (header or query), /readyz turns
 * 200 once the controller listens and the host was probed, /api/state and /metrics show the host and the
 * configured datapath, and a non-loopback address without a token is refused with exit 2. With
 * `policies.prewarm` on, the datapath's VM is booted and saved ahead of its switch: /api/state, the page and
 * /metrics show it prewarmed on its host.
 */
import { randomBytes } from "node:crypto";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { execa, type ResultPromise } from "execa";
import { MongoClient } from "mongodb";
import { afterAll, beforeAll, expect, it } from "vitest";
import { MONGO_URI, REPO, describeWith } from "../helpers/env.js";
import { freePort, until } from "../helpers/real.js";
import { startLibvirtHosts, stopLibvirtHosts, type LibvirtTestHost } from "../helpers/libvirt-hosts.js";

const RFBOOT = join(REPO, "bin", "rfboot");
const TAG = randomBytes(3).toString("hex");
const DB = `rfbt_rh_${TAG}`;
const DPID = `${TAG}0c`.padStart(16, "0");

describeWith(["libvirt", "mongo", "root"], "rfboot run --http as a child process", () => {
  let host: LibvirtTestHost;
  let dir: string;
  let cfg: string;
  let child: ResultPromise | undefined;

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), "rfbt-rh-"));
    host = (await startLibvirtHosts(1, { prefix: "rfbt-rh" }))[0]!;
    cfg = join(dir, "rfboot.yaml");
    writeFileSync(
      cfg,
      `stateDir: ${dir}/state
openflow: { mode: listen, listen: { host: 127.0.0.1, port: ${await freePort()} } }
mongo: { uri: "${MONGO_URI}", database: ${DB} }
hosts:
  - { name: h1, uri: "${host.testUri}", maxVms: 5 }
defaults: { hypervisor: test, memoryMiB: 64 }
datapaths:
  "0x${DPID}": { name: rfbtrh${TAG}, vmId: "02:4c:00:${TAG.slice(0, 2)}:${TAG.slice(2, 4)}:01", dataPorts: 1 }
`,
    );
    writeFileSync(join(dir, "token"), "t0ken-" + TAG + "\n");
    await execa(RFBOOT, ["--help"], { reject: false });
  });

  afterAll(async () => {
    if (child && child.exitCode === null) child.kill("SIGKILL");
    await child?.catch(() => undefined);
    if (host) await stopLibvirtHosts([host]);
    const mongo = await MongoClient.connect(MONGO_URI);
    for (const db of [DB, `${DB}p`])
      await mongo
        .db(db)
        .dropDatabase()
        .catch(() => undefined);
    await mongo.close();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it("refuses a non-loopback address without a token (exit 2)", async () => {
    const r = await execa(RFBOOT, ["run", "--config", cfg, "--http", "0.0.0.0:1"], { reject: false });
    expect(r.exitCode).toBe(2);
    expect(r.stderr).toMatch(/refusing to serve a non-loopback address without a token/);
  });

  it("serves health without the token, everything else with it; ready once listening and probed", async () => {
    const port = await freePort();
    const token = `t0ken-${TAG}`;
    child = execa(
      RFBOOT,
      ["run", "--config", cfg, "--http", `${port}`, "--http-token-file", join(dir, "token")],
      {
        env: { RFBOOT_LOG_JSON: "1" },
        reject: false,
        stdin: "ignore",
      },
    );
    const base = `http://127.0.0.1:${port}`;
    const auth = { authorization: `Bearer ${token}` };
    await until(
      "/healthz",
      async () =>
        (await fetch(`${base}/healthz`).catch(() => undefined))?.status === 200 ? true : undefined,
      30_000,
    );
    expect((await fetch(`${base}/api/state`)).status).toBe(401);
    expect((await fetch(`${base}/`, { headers: { authorization: "Bearer nope" } })).status).toBe(401);
    await until(
      "/readyz 200",
      async () => ((await fetch(`${base}/readyz`, { headers: auth })).status === 200 ? true : undefined),
      30_000,
    );
    type State = {
      datapaths: { dpid: string; switch: string; state: string }[];
      hosts: { name: string; reachable: boolean; capacityLeft: number }[];
      readiness: { ready: boolean };
    };
    const getState = async () => (await (await fetch(`${base}/api/state?token=${token}`)).json()) as State;
    // Its switch never came; its domain is defined ahead of it (policies.defineAhead), shut off, and counts
    // among the host's VMs.
    const state = await until(
      "the VM's domain defined ahead",
      async () => {
        const st = await getState();
        return st.datapaths[0]?.state === "stopped" ? st : undefined;
      },
      30_000,
    );
    expect(state.datapaths).toEqual([
      expect.objectContaining({ dpid: DPID, switch: "never", state: "stopped" }),
    ]);
    expect(state.hosts).toEqual([expect.objectContaining({ name: "h1", reachable: true, capacityLeft: 4 })]);
    const metrics = await (await fetch(`${base}/metrics`, { headers: auth })).text();
    expect(metrics).toContain('rfboot_host_reachable{host="h1"} 1');
    expect(metrics).toContain('rfboot_host_capacity_left{host="h1"} 4');
    expect(metrics).toContain("rfboot_store_online 1");
    const html = await (await fetch(`${base}/?token=${token}`)).text();
    expect(html).toContain(DPID);
    child.kill("SIGTERM");
    expect((await child).exitCode).toBe(0);
  });

  it("prewarm on: the VM is saved ahead of its switch; /api/state, the page and /metrics show it", async () => {
    const dpid = `${TAG}0d`.padStart(16, "0");
    const name = `rfbtrhp${TAG}`;
    const on = join(dir, "prewarm.yaml");
    writeFileSync(
      on,
      `stateDir: ${dir}/state
openflow: { mode: listen, listen: { host: 127.0.0.1, port: ${await freePort()} } }
mongo: { uri: "${MONGO_URI}", database: ${DB}p }
hosts:
  - { name: h1, uri: "${host.testUri}", maxVms: 5 }
defaults: { hypervisor: test, memoryMiB: 64 }
readiness: { consoleMarker: null }
policies: { prewarm: { enabled: true, diskMiB: 1024 } }
datapaths:
  "0x${dpid}": { name: ${name}, vmId: "02:4c:00:${TAG.slice(0, 2)}:${TAG.slice(2, 4)}:02", dataPorts: 1 }
`,
    );
    const port = await freePort();
    child = execa(RFBOOT, ["run", "--config", on, "--http", `${port}`], {
      env: { RFBOOT_LOG_JSON: "1" },
      reject: false,
      stdin: "ignore",
    });
    const base = `http://127.0.0.1:${port}`;
    type Dp = {
      dpid: string;
      state: string;
      host?: string;
      lastError?: string;
      prewarm?: { at: string; host: string; imageMiB: number };
    };
    const state = await until(
      "the VM prewarmed",
      async () => {
        const r = await fetch(`${base}/api/state`).catch(() => undefined);
        if (r?.status !== 200) return undefined;
        const s = (await r.json()) as {
          datapaths: Dp[];
          hosts: { name: string; prewarmed: number; prewarmImagesMiB: number }[];
        };
        // A failure fails now, with its reason, rather than after the timeout.
        const st = s.datapaths[0]?.state;
        return st === "prewarmed" || st === "failed" ? s : undefined;
      },
      60_000,
    );
    expect(state.datapaths[0]!.lastError).toBeUndefined();
    expect(state.datapaths).toEqual([
      expect.objectContaining({
        dpid,
        switch: "never",
        host: "h1",
        state: "prewarmed",
        prewarm: { at: expect.stringMatching(/^\d{4}-/), host: "h1", imageMiB: 64 },
      }),
    ]);
    expect(Date.now() - Date.parse(state.datapaths[0]!.prewarm!.at)).toBeLessThan(60_000);
    expect(state.hosts).toEqual([
      expect.objectContaining({ name: "h1", prewarmed: 1, prewarmImagesMiB: 64 }),
    ]);
    // The domain is saved on the host, not running: libvirt has its managed-save image.
    const info = await execa("virsh", ["-c", host.testUri, "dominfo", name], { env: { LC_ALL: "C" } });
    expect(info.stdout).toMatch(/^State:\s+shut off$/m);
    expect(info.stdout).toMatch(/^Managed save:\s+yes$/m);
    const html = await (await fetch(`${base}/`)).text();
    expect(html).toContain(`<span class="st prewarmed">prewarmed</span> <small class="prewarm">image `);
    expect(html).toContain(`1 prewarmed, 64 MiB`);
    const metrics = await (await fetch(`${base}/metrics`)).text();
    expect(metrics).toContain('rfboot_prewarmed_vms{host="h1"} 1');
    expect(metrics).toContain('rfboot_prewarm_total{outcome="saved"} 1');
    expect(metrics).toContain('rfboot_vms{state="prewarmed"} 1');
    child.kill("SIGTERM");
    expect((await child).exitCode).toBe(0);
  }, 90_000);
});
