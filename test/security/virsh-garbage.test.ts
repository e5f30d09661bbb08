/**
 * Unexpected virsh output: random and hostile stdout/stderr (binary garbage, localised messages,
 * truncated lines, huge text) fed to the parsers of lifecycle.ts and to the error classifier. Nothing may
 * throw anything but a typed RfbootError; unknown errors are classified `other` with the raw stderr kept
 * verbatim; messages stay bounded. Then the same garbage through a DomainManager with a scripted runner.
 */
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { RfbootError, VirshError } from "../../src/common/errors.js";
import { DomainManager } from "../../src/provisioner/libvirt/lifecycle.js";
import {
  parseDominfo,
  parseDomstate,
  parseDomstats,
  parseNameList,
  parseUuidNameList,
} from "../../src/provisioner/libvirt/parse.js";
import {
  VIRSH_ERROR_PATTERNS,
  classifyVirshStderr,
  makeVirshError,
} from "../../src/provisioner/libvirt/virsh.js";

/** Text a broken or foreign virsh could print: bytes decoded as latin1/UTF-8, known fragments cut short. */
const FRAGMENTS = [
  "error: ",
  "Domain: 'rfvmA'\n",
  "  state.state=1\n",
  "running",
  "shut off (saved)",
  "(",
  ")",
  "=",
  "\n",
  "\r\n",
  "\u0000",
  "Fehler: Domain konnte nicht gefunden werden",
  "erreur : échec de la connexion à l'hyperviseur",
  "エラー: ドメインが見つかりません",
  "0123e4567-e89b-12d3-a456-426614174000 rfvmA\n",
  "error: failed to get dom",
];
const garbage = fc.oneof(
  fc.string({ maxLength: 300 }),
  fc.uint8Array({ maxLength: 400 }).map((b) => Buffer.from(b).toString("latin1")),
  fc.uint8Array({ maxLength: 400 }).map((b) => Buffer.from(b).toString("utf8")),
  fc.array(fc.constantFrom(...FRAGMENTS), { maxLength: 20 }).map((a) => a.join("")),
);

/** True when `s` contains text one of the known patterns is meant to recognise. */
const knownText = (s: string) => VIRSH_ERROR_PATTERNS.some(([, re]) => re.test(s));

describe("virsh output parsers on garbage", () => {
  it("parseDomstate returns a known state or throws RfbootError, never anything else", () => {
    fc.assert(
      fc.property(garbage, (out) => {
        try {
          const r = parseDomstate(out);
          expect(typeof r.state).toBe("string");
        } catch (e) {
          expect(e).toBeInstanceOf(RfbootError);
          expect((e as Error).message.length).toBeLessThan(300);
        }
      }),
      { numRuns: 3000 },
    );
  });

  it("parseDominfo, parseDomstats, parseUuidNameList, parseNameList never throw", () => {
    fc.assert(
      fc.property(garbage, (out) => {
        expect(typeof parseDominfo(out)).toBe("object");
        for (const [name, stats] of parseDomstats(out)) {
          expect(typeof name).toBe("string");
          expect(typeof stats).toBe("object");
        }
        for (const r of parseUuidNameList(out)) expect(r.uuid).toMatch(/^[0-9a-f-]{36}$/);
        expect(parseNameList(out).every((n) => n.length > 0)).toBe(true);
      }),
      { numRuns: 3000 },
    );
  });

  it("a huge domstats output parses in linear time", () => {
    const big = Array.from(
      { length: 20_000 },
      (_, i) => `Domain: 'vm${i}'\n  state.state=1\n  state.reason=1\n`,
    ).join("");
    const t0 = Date.now();
    expect(parseDomstats(big).size).toBe(20_000);
    expect(Date.now() - t0).toBeLessThan(2000);
  });
});

describe("virsh errors on garbage", () => {
  it("unknown stderr is `other`, the raw text is kept, the message is bounded", () => {
    fc.assert(
      fc.property(garbage, fc.array(fc.string({ maxLength: 20 }), { maxLength: 5 }), (stderr, args) => {
        const kind = classifyVirshStderr(stderr);
        if (!knownText(stderr)) expect(kind).toBe("other");
        const err = makeVirshError("qemu:///system", args, stderr, 1);
        expect(err).toBeInstanceOf(VirshError);
        expect(err.kind).toBe(kind);
        expect(err.stderr).toBe(stderr);
        expect(err.message.length).toBeLessThan(1200 + args.join(" ").length);
      }),
      { numRuns: 3000 },
    );
  });

  it("localised and truncated messages are `other`", () => {
    for (const s of [
      "Fehler: Verbindung zum Hypervisor fehlgeschlagen\n",
      "erreur : Domaine introuvable\n",
      "error: failed to get dom",
      "error: Domain is alre",
      "\u0000\u0001\u0002\uFFFD",
      "",
    ]) {
      expect(classifyVirshStderr(s)).toBe("other");
    }
  });
});

describe("DomainManager with a virsh that prints garbage", () => {
  it("state() and list() reject with typed errors or return data, never crash", async () => {
    await fc.assert(
      fc.asyncProperty(garbage, garbage, fc.boolean(), async (stdout, stderr, fail) => {
        const run = (uri: string, args: string[]) =>
          fail ? Promise.reject(makeVirshError(uri, args, stderr, 1)) : Promise.resolve({ stdout, stderr });
        const m = new DomainManager({ host: { name: "h", uri: "test:///default" }, run });
        for (const call of [() => m.state("rfvmA"), () => m.list({ stats: true })]) {
          try {
            await call();
          } catch (e) {
            expect(e).toBeInstanceOf(RfbootError);
          }
        }
      }),
      { numRuns: 500 },
    );
  });
});
