/** A JSON object (not null, not an array): the first check on every decoded body or frame. */
export function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}
