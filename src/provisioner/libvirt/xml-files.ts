/**
 * Transient XML documents for virsh (`define FILE`, `attach-device DOMAIN FILE`): each is written 0600 into
 * one private directory (0700, made on first use under the OS tmpdir unless one is given), handed to the
 * call, and removed when the call settles. Domain XML names paths and MACs: no other user reads it.
 */
import { randomBytes } from "node:crypto";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";

/** XmlFiles owns one private directory of transient XML files. */
export class XmlFiles {
  private made: Promise<string> | undefined;

  /** prefix names the private directory (`rfboot-xml-`); `dir`, when given, is used instead (not removed). */
  constructor(
    private readonly prefix: string,
    private readonly dir?: string,
  ) {}

  /**
   * withFile writes `xml` to `<stem>-<random>.xml` (the stem reduced to safe characters), runs `use` with
   * its path and removes the file however `use` ends.
   */
  async withFile<T>(stem: string, xml: string, use: (file: string) => Promise<T>): Promise<T> {
    const file = join(
      await this.directory(),
      `${stem.replace(/[^A-Za-z0-9_.-]/g, "_")}-${randomBytes(4).toString("hex")}.xml`,
    );
    await writeFile(file, xml, { mode: 0o600 });
    try {
      return await use(file);
    } finally {
      await rm(file, { force: true });
    }
  }

  private directory(): Promise<string> {
    if (this.dir) return Promise.resolve(this.dir);
    this.made ??= mkdtemp(join(tmpdir(), this.prefix));
    return this.made;
  }

  /** dispose removes the private directory it made (files are removed after each call already). */
  async dispose(): Promise<void> {
    if (this.made) await rm(await this.made, { recursive: true, force: true });
    this.made = undefined;
  }
}
