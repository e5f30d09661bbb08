import { openSync, closeSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { countOpenFiles, outOfFiles, readNofileLimits } from "../../../src/common/nofile.js";
import { Metrics } from "../../../src/provisioner/metrics.js";

/** sample reads one unlabelled or labelled sample's value from a scrape. */
function sample(text: string, name: string, labels = ""): number | undefined {
  const line = text.split("\n").find((l) => l.startsWith(`${name}${labels} `));
  return line === undefined ? undefined : Number(line.split(" ")[1]);
}

describe("open-files metrics", () => {
  it("rfboot_open_files follows the descriptors this process opens; the limit is the soft one", async () => {
    const m = new Metrics({ defaultMetrics: false });
    const before = sample(await m.registry.metrics(), "rfboot_open_files")!;
    expect(before).toBeGreaterThan(2);
    const held = Array.from({ length: 20 }, () => openSync("/dev/null", "r"));
    try {
      const during = sample(await m.registry.metrics(), "rfboot_open_files")!;
      // Other work of the test process may open or close a few meanwhile.
      expect(during - before).toBeGreaterThanOrEqual(18);
      expect(during).toBe(countOpenFiles());
    } finally {
      for (const fd of held) closeSync(fd);
    }
    expect(sample(await m.registry.metrics(), "rfboot_open_files_limit")).toBe(readNofileLimits().soft);
  });

  it("rfboot_out_of_files_total counts the process's reports by where, from the registry's first scrape", async () => {
    const m = new Metrics({ defaultMetrics: false });
    const start = sample(await m.registry.metrics(), "rfboot_out_of_files_total", '{where="spawn"}') ?? 0;
    outOfFiles.report("spawn", { code: "EMFILE" });
    outOfFiles.report("spawn", { code: "EMFILE" });
    outOfFiles.report("upstream", { code: "EMFILE" });
    const text = await m.registry.metrics();
    expect(sample(text, "rfboot_out_of_files_total", '{where="spawn"}')).toBe(start + 2);
    expect(sample(text, "rfboot_out_of_files_total", '{where="upstream"}')).toBeGreaterThanOrEqual(1);
    // A second scrape adds nothing new.
    expect(sample(await m.registry.metrics(), "rfboot_out_of_files_total", '{where="spawn"}')).toBe(
      start + 2,
    );
  });
});
