/** `::ffff:10.0.0.1`, as a dual-stack socket reports an IPv4 peer, → `10.0.0.1`; anything else unchanged. */
export function stripMapped(ip: string): string {
  return ip.startsWith('::ffff:') ? ip.slice(7) : ip;
}
