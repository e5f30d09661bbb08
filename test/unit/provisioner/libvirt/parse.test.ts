/** The virsh output parsers on real virsh output (libvirt 9.0, C locale). */
import { describe, expect, it } from "vitest";
import {
  DOMAIN_STATE_CODES,
  parseDominfo,
  parseDomstate,
  parseDomstats,
  parseNodeinfo,
  parseNodememstats,
  parseNameList,
  parseUuidNameList,
} from "../../../../src/provisioner/libvirt/parse.js";

const UUID = "11111111-2222-3333-4444-555555555555";

describe("parsers (real virsh output)", () => {
  it("domstate", () => {
    expect(parseDomstate("shut off (saved)\n\n")).toEqual({ state: "shutoff", reason: "saved" });
    expect(parseDomstate("running (booted)\n")).toEqual({ state: "running", reason: "booted" });
    expect(parseDomstate("in shutdown\n")).toEqual({ state: "shutdown", reason: "" });
    expect(() => parseDomstate("läuft\n")).toThrow(/unexpected virsh domstate output/);
  });
  it("list --uuid --name", () => {
    expect(
      parseUuidNameList(
        "6695eb01-f6a4-8304-79aa-97f2502e193f test\n11111111-2222-3333-4444-555555555555 rfbtv-probe\n\n",
      ),
    ).toEqual([
      { uuid: "6695eb01-f6a4-8304-79aa-97f2502e193f", name: "test" },
      { uuid: UUID, name: "rfbtv-probe" },
    ]);
  });
  it("domstats and dominfo", () => {
    const s = parseDomstats(
      "Domain: 'rfbtv-q1'\n  state.state=1\n  state.reason=1\n  cpu.time=453378000\n  balloon.current=32768\n\nDomain: 'test'\n  state.state=5\n",
    );
    expect(s.get("rfbtv-q1")).toMatchObject({
      "state.state": "1",
      "cpu.time": "453378000",
      "balloon.current": "32768",
    });
    expect(s.get("test")).toEqual({ "state.state": "5" });
    const i = parseDominfo(
      "Id:             -\nName:           rfbtv-q1\nManaged save:   yes\nSecurity DOI:   \n",
    );
    expect(i).toMatchObject({ Id: "-", Name: "rfbtv-q1", "Managed save": "yes", "Security DOI": "" });
  });
  it("list --name", () => {
    expect(parseNameList("vm1\n\n  test  \n")).toEqual(["vm1", "test"]);
    expect(parseNameList("")).toEqual([]);
  });
  it("an Object.prototype name in garbled domstate output is not a state", () => {
    expect(() => parseDomstate("toString\n")).toThrow(/unexpected virsh domstate output/);
    expect(() => parseDomstate("constructor (x)\n")).toThrow(/unexpected virsh domstate output/);
  });
  it("domstats state numbers are virDomainState", () => {
    expect(DOMAIN_STATE_CODES[1]).toBe("running");
    expect(DOMAIN_STATE_CODES[5]).toBe("shutoff");
    expect(DOMAIN_STATE_CODES[7]).toBe("pmsuspended");
  });
});

describe("host figures (libvirt 9.0, C locale)", () => {
  it("nodeinfo: CPUs and memory size", () => {
    const out =
      "CPU model:           x86_64\nCPU(s):              2\nCPU frequency:       2445 MHz\nCPU socket(s):       1\n" +
      "Core(s) per socket:  2\nThread(s) per core:  1\nNUMA cell(s):        1\nMemory size:         7300856 KiB\n\n";
    expect(parseNodeinfo(out)).toEqual({ cpus: 2, memoryKiB: 7300856 });
    expect(parseNodeinfo("CPU(s): 2\n")).toBeUndefined();
    expect(parseNodeinfo("")).toBeUndefined();
  });
  it("nodememstats: total, free, buffers, cached", () => {
    const out =
      "total  :              4194304 KiB\nfree   :               102400 KiB\nbuffers:                20480 KiB\n" +
      "cached :                61440 KiB\n\n";
    expect(parseNodememstats(out)).toEqual({
      totalKiB: 4194304,
      freeKiB: 102400,
      buffersKiB: 20480,
      cachedKiB: 61440,
    });
    expect(parseNodememstats("total  : 1 KiB\nfree   : 1 KiB\n")).toBeUndefined();
  });
});
