/** Plain-text tables for the CLI (no colours: the output is meant for terminals and for grep alike). */

/** renderTable pads each column to its widest cell; `headers` come first, then a rule, then the rows. */
export function renderTable(headers: readonly string[], rows: readonly (readonly string[])[]): string {
  const widths = headers.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? "").length)));
  const line = (cells: readonly string[]) =>
    cells
      .map((c, i) => (i === cells.length - 1 ? c : c.padEnd(widths[i] ?? 0)))
      .join("  ")
      .trimEnd();
  return [line(headers), line(widths.map((w) => "-".repeat(w))), ...rows.map(line)].join("\n") + "\n";
}

/** age renders the time since `d` compactly (`3s`, `5m`, `2h`, `4d`), or `-`. */
export function age(d: Date | string | undefined, now = Date.now()): string {
  if (d === undefined) return "-";
  const ms = now - new Date(d).getTime();
  if (!Number.isFinite(ms)) return "-";
  const s = Math.max(0, Math.round(ms / 1000));
  if (s < 120) return `${s}s`;
  if (s < 7200) return `${Math.round(s / 60)}m`;
  if (s < 172800) return `${Math.round(s / 3600)}h`;
  return `${Math.round(s / 86400)}d`;
}
