/**
 * Aligned plain-text tables for command output. Cells often hold what came from the network or
 * the collector, so every cell is made printable here (control characters shown as \xNN).
 */
import { printable } from '../common/api-client';

export function formatTable(header: string[], rows: ReadonlyArray<ReadonlyArray<string | number>>): string {
  const cells = rows.map((r) => r.map((c) => printable(String(c))));
  const widths = header.map((h, i) => Math.max(h.length, ...cells.map((r) => (r[i] ?? '').length)));
  const line = (row: string[]): string => row.map((c, i) => (i === row.length - 1 ? c : c.padEnd(widths[i]!))).join('  ');
  return `${[line(header), ...cells.map(line)].join('\n')}\n`;
}
