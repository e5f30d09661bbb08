/**
 * The live page in a real headless Chromium: a daemon with a scripted controller (two switches join), a
 * private libvirtd (test driver) as its host and FerretDB as its store, serving `--http`'s listener. The page
 * (first as `chromium --dump-dom` sees it, then through the DevTools protocol) shows both datapaths, their
 * VMs, host, rfconfig rows and the picture; when a switch leaves the page changes without a reload (pushed on
 * /events, the token it was opened with passed on). Its screenshot is saved as docs/live-page.png.
 */
import { randomBytes } from "node:crypto";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { execa } from "execa";
import { MongoClient } from "mongodb";
import { afterAll, beforeAll, expect, it } from "vitest";
import {
  Daemon,
  LiveServer,
  LiveState,
  daemonInputs,
  loadConfig,
  onDaemonChange,
} from "../../src/provisioner/index.js";
import { Browser, CHROMIUM_FLAGS, type Page } from "../helpers/chromium.js";
import { MONGO_URI, REPO, describeWith } from "../helpers/env.js";
import { startLibvirtHosts, stopLibvirtHosts, type LibvirtTestHost } from "../helpers/libvirt-hosts.js";
import { until } from "../helpers/real.js";
import { FakeSwitches } from "../unit/provisioner/daemon/fakes.js";

const TAG = randomBytes(3).toString("hex");
const DB = `rfbt_lp_${TAG}`;
const A = BigInt(`0x${TAG}a1`);
const B = BigInt(`0x${TAG}b2`);
const hex16 = (d: bigint) => d.toString(16).padStart(16, "0");
const TOKEN = `tok${TAG}`;

describeWith(["libvirt", "mongo", "root", "chromium"], "the live page in headless Chromium", () => {
  let host: LibvirtTestHost;
  let dir: string;
  let daemon: Daemon;
  let switches: FakeSwitches;
  let server: LiveServer;
  let url: string;
  let api: string;
  let browser: Browser | undefined;
  let unsubscribe: () => void;

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), "rfbt-lp-"));
    host = (await startLibvirtHosts(1, { prefix: "rfbt-lp" }))[0]!;
    const cfg = join(dir, "rfboot.yaml");
    writeFileSync(
      cfg,
      `stateDir: ${dir}/state
mongo: { uri: "${MONGO_URI}", database: ${DB} }
hosts:
  - { name: lab1, uri: "${host.testUri}", maxVms: 4, maxConcurrentStarts: 2 }
defaults: { hypervisor: test, memoryMiB: 64 }
datapaths:
  "0x${hex16(A)}": { name: rftest-a-${TAG}, vmId: "02:1a:00:${TAG.slice(0, 2)}:${TAG.slice(2, 4)}:01", dataPorts: 2 }
  "0x${hex16(B)}": { name: rftest-b-${TAG}, vmId: "02:1a:00:${TAG.slice(0, 2)}:${TAG.slice(2, 4)}:02", dataPorts: 1 }
policies: { leave: { action: keep } }
readiness: { consoleMarker: null }
`,
    );
    switches = new FakeSwitches();
    daemon = new Daemon({
      config: await loadConfig(cfg),
      controller: switches,
      watchLibvirtEvents: false,
      instanceId: `lab:${TAG}`,
    });
    server = new LiveServer({
      host: "127.0.0.1",
      port: 0,
      state: new LiveState({ gather: daemonInputs(daemon) }),
      metrics: daemon.metrics,
      token: TOKEN,
      pollMs: 1000,
    });
    const { port } = await server.start();
    unsubscribe = onDaemonChange(daemon, () => server.poke());
    // Opened as an operator opens it when the listener needs a token: the page passes it on to /events.
    url = `http://127.0.0.1:${port}/?token=${TOKEN}`;
    api = `http://127.0.0.1:${port}/api/state`;
    await daemon.start();
    await daemon.checkHosts();
    switches.join(A, [1, 2]);
    switches.join(B, [1]);
    await daemon.idle();
    await until(
      "both records running",
      async () => {
        const s = (await (await fetch(api, { headers: { authorization: `Bearer ${TOKEN}` } })).json()) as {
          datapaths: { state: string }[];
          rfconfig: unknown[];
        };
        return s.datapaths.every((d) => ["running", "ready"].includes(d.state)) && s.rfconfig.length === 3
          ? true
          : undefined;
      },
      30_000,
    );
  });

  afterAll(async () => {
    await browser?.close();
    unsubscribe?.();
    await server?.close();
    await daemon?.stop();
    if (host) await stopLibvirtHosts([host]);
    const mongo = await MongoClient.connect(MONGO_URI);
    await mongo
      .db(DB)
      .dropDatabase()
      .catch(() => undefined);
    await mongo.close();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it("chromium --dump-dom sees both datapaths, their VMs, the host, the rfconfig rows and the picture", async () => {
    const r = await execa("chromium", [...CHROMIUM_FLAGS, `--user-data-dir=${dir}/dump`, "--dump-dom", url], {
      reject: false,
      timeout: 60_000,
    });
    expect(r.exitCode, r.stderr.slice(-2000)).toBe(0);
    const dom = r.stdout;
    for (const d of [A, B])
      expect(dom).toMatch(new RegExp(`<code>${hex16(d)}</code></td><td><span class="sw connected">`));
    expect(dom).toContain(`rftest-a-${TAG}`);
    expect(dom).toContain("lab1");
    expect(dom).toContain(`rfboot:${BigInt(`0x021a00${TAG.slice(0, 4)}01`)}/1`);
    expect(dom).toMatch(/<svg id="topology"[^>]*>[\s\S]*dp0/);
    // The script ran: the pushed stream is open and the ages are rendered as ages, not ISO times.
    expect(dom).toMatch(/<time data-since="[^"]+" datetime="[^"]+">\d+s<\/time>/);
  });

  it("changes without a reload when a switch leaves (pushed on /events), and is saved as a screenshot", async () => {
    browser = Browser.launch(1280, 1100);
    const page: Page = await browser.open(url);
    const text = (sel: string) =>
      page.evaluate<string>(`document.querySelector(${JSON.stringify(sel)})?.textContent ?? ""`);
    await until(
      "the page and its stream",
      async () => ((await text("#conn")) === "live" ? true : undefined),
      20_000,
    );
    const rowOf = (d: bigint) =>
      page.evaluate<string>(
        `[...document.querySelectorAll("#datapaths tbody tr")].map(r => r.textContent).find(t => t.includes(${JSON.stringify(hex16(d))})) ?? ""`,
      );
    expect(await rowOf(B)).toMatch(/connected/);
    expect(await rowOf(B)).not.toMatch(/disconnected/);
    await page.evaluate("window.__sameDocument = true");
    const updates = Number(await page.evaluate<string>(`document.body.getAttribute("data-updates")`));
    const t0 = performance.now();
    switches.leave(B);
    await until(
      "B disconnected on the page",
      async () => ((await rowOf(B)).includes("disconnected") ? true : undefined),
      20_000,
    );
    // Pushed at once (the daemon's `left` event), not at the next poll.
    const pushedMs = performance.now() - t0;
    console.info(`live page: switch leave shown after ${pushedMs.toFixed(0)} ms`);
    expect(pushedMs).toBeLessThan(3000);
    expect(await rowOf(A)).toMatch(/connected/);
    expect(await rowOf(A)).not.toMatch(/disconnected/);
    expect(await page.evaluate<boolean>("window.__sameDocument === true")).toBe(true);
    expect(Number(await page.evaluate<string>(`document.body.getAttribute("data-updates")`))).toBeGreaterThan(
      updates,
    );
    expect(
      await page.evaluate<string>(
        `document.querySelector('#topology g[data-dpid="${hex16(B)}"]').getAttribute("class")`,
      ),
    ).toBe("node switch down");
    await until(
      "the leave in the event log",
      async () => ((await text("#events")).includes("leave") ? true : undefined),
      20_000,
    );
    writeFileSync(join(REPO, "docs", "live-page.png"), await page.screenshot());
  });
});
