/**
 * IP addresses and CIDR blocks for policy matching. Requests are parsed into a caller-owned
 * `IpAddr` (no allocation per match); an IPv4-mapped IPv6 address (`::ffff:a.b.c.d`) is the IPv4
 * address everywhere. Policy text is validated here too, with the canonical form for hints.
 */

/** A parsed address. Reused: `parseIpInto` overwrites every field. */
export class IpAddr {
  /** IPv6 (false for IPv4, including IPv4-mapped IPv6). */
  v6 = false;
  /** IPv4: the address as an unsigned 32-bit number. */
  v4 = 0;
  /** The address as IPv6, four 32-bit words, most significant first (`::ffff:a.b.c.d` for IPv4). */
  readonly w = new Uint32Array(4);
  /** Written in IPv6 notation although it is an IPv4(-mapped) address. */
  mapped = false;
}

/** A CIDR block (a bare address is a /32 or /128). */
export interface Cidr {
  readonly v6: boolean;
  readonly bits: number;
  /** IPv4 network, unsigned. */
  readonly v4: number;
  /** IPv6 network words. */
  readonly w: Uint32Array;
  /** Canonical text, e.g. `10.0.0.0/8`, `2001:db8::/32`. */
  readonly text: string;
}

const groups = new Uint16Array(8); // scratch for parseIpInto (single-threaded, never re-entered)

/** Parse `s` into `out`; false if it is not an IPv4 or IPv6 address. `%zone` is ignored when `zoneOk`. */
export function parseIpInto(s: string, out: IpAddr, zoneOk = false): boolean {
  let end = s.length;
  const pct = s.indexOf('%');
  if (pct !== -1) {
    if (!zoneOk || pct === 0) return false;
    end = pct;
  }
  out.mapped = false;
  if (s.indexOf(':') === -1) {
    const v4 = parseV4(s, 0, end);
    if (v4 < 0) return false;
    setV4(out, v4);
    return true;
  }
  if (!parseV6(s, end)) return false;
  const w = out.w;
  for (let i = 0; i < 4; i++) w[i] = (groups[2 * i]! * 0x10000 + groups[2 * i + 1]!) >>> 0;
  if (w[0] === 0 && w[1] === 0 && w[2] === 0xffff) {
    out.v6 = false;
    out.v4 = w[3]!;
    out.mapped = true;
  } else {
    out.v6 = true;
    out.v4 = 0;
  }
  return true;
}

function setV4(out: IpAddr, v4: number): void {
  out.v6 = false;
  out.v4 = v4;
  out.w[0] = 0;
  out.w[1] = 0;
  out.w[2] = 0xffff;
  out.w[3] = v4;
}

/** Dotted quad in s[start, end) without leading zeros, as an unsigned number; -1 if invalid. */
function parseV4(s: string, start: number, end: number): number {
  let value = 0;
  let part = 0;
  let digits = 0;
  let dots = 0;
  for (let i = start; i < end; i++) {
    const c = s.charCodeAt(i);
    if (c >= 48 && c <= 57) {
      if (digits === 1 && part === 0) return -1; // leading zero ("010" is octal to some parsers)
      part = part * 10 + (c - 48);
      if (++digits > 3 || part > 255) return -1;
    } else if (c === 46 && digits > 0 && dots < 3) {
      value = value * 256 + part;
      part = 0;
      digits = 0;
      dots++;
    } else {
      return -1;
    }
  }
  if (digits === 0 || dots !== 3) return -1;
  return value * 256 + part;
}

function hexValue(c: number): number {
  if (c >= 48 && c <= 57) return c - 48;
  if (c >= 97 && c <= 102) return c - 87;
  if (c >= 65 && c <= 70) return c - 55;
  return -1;
}

/** RFC 4291 text form in s[0, end) into `groups`; false if invalid. */
function parseV6(s: string, end: number): boolean {
  let head = 0; // groups before "::"
  let tail = 0; // groups after "::"
  let gap = false;
  let i = 0;
  if (s.startsWith('::')) {
    gap = true;
    i = 2;
  } else if (s.charCodeAt(0) === 58) {
    return false;
  }
  while (i < end) {
    let value = 0;
    let j = i;
    while (j < end && j - i < 5) {
      const h = hexValue(s.charCodeAt(j));
      if (h < 0) break;
      value = value * 16 + h;
      j++;
    }
    if (j < end && s.charCodeAt(j) === 46) {
      // Embedded IPv4 in the last two groups.
      const v4 = parseV4(s, i, end);
      if (v4 < 0 || head + tail > 6) return false;
      const hi = Math.floor(v4 / 0x10000);
      if (gap) {
        groups[head + tail] = hi;
        groups[head + tail + 1] = v4 & 0xffff;
        tail += 2;
      } else {
        groups[head] = hi;
        groups[head + 1] = v4 & 0xffff;
        head += 2;
      }
      i = end;
      break;
    }
    if (j === i || j - i > 4 || head + tail >= 8) return false;
    groups[head + tail] = value;
    if (gap) tail++;
    else head++;
    if (j === end) break;
    if (s.charCodeAt(j) !== 58) return false;
    j++;
    if (j < end && s.charCodeAt(j) === 58) {
      if (gap) return false;
      gap = true;
      j++;
    } else if (j === end) {
      return false; // a single trailing ':'
    }
    i = j;
  }
  const total = head + tail;
  if (gap ? total > 7 : total !== 8) return false;
  if (gap) {
    // Move the tail groups to the end and zero the gap.
    for (let k = tail - 1; k >= 0; k--) groups[8 - tail + k] = groups[head + k]!;
    for (let k = head; k < 8 - tail; k++) groups[k] = 0;
  }
  return true;
}

/** True if `ip` (parsed) is inside `cidr`. Families must agree; mapped addresses are IPv4. */
export function cidrContains(cidr: Cidr, ip: IpAddr): boolean {
  if (cidr.v6 !== ip.v6) return false;
  if (!cidr.v6) {
    if (cidr.bits === 0) return true;
    const mask = cidr.bits === 32 ? 0xffffffff : (0xffffffff << (32 - cidr.bits)) >>> 0;
    return ((ip.v4 ^ cidr.v4) & mask) >>> 0 === 0;
  }
  let bits = cidr.bits;
  for (let i = 0; i < 4 && bits > 0; i++, bits -= 32) {
    const mask = bits >= 32 ? 0xffffffff : (0xffffffff << (32 - bits)) >>> 0;
    if (((ip.w[i]! ^ cidr.w[i]!) & mask) >>> 0 !== 0) return false;
  }
  return true;
}

/** True if both parsed addresses are the same address. */
export function sameAddress(a: IpAddr, b: IpAddr): boolean {
  if (a.v6 !== b.v6) return false;
  if (!a.v6) return a.v4 === b.v4;
  return a.w[0] === b.w[0] && a.w[1] === b.w[1] && a.w[2] === b.w[2] && a.w[3] === b.w[3];
}

export function formatV4(v4: number): string {
  return `${v4 >>> 24}.${(v4 >>> 16) & 255}.${(v4 >>> 8) & 255}.${v4 & 255}`;
}

/** RFC 5952 text: lowercase, no leading zeros, the longest run (≥2) of zero groups as "::". */
export function formatV6(w: Uint32Array): string {
  const g: number[] = [];
  for (let i = 0; i < 4; i++) g.push(w[i]! >>> 16, w[i]! & 0xffff);
  let bestStart = -1;
  let bestLen = 1;
  for (let i = 0; i < 8; ) {
    if (g[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && g[j] === 0) j++;
    if (j - i > bestLen) [bestStart, bestLen] = [i, j - i];
    i = j;
  }
  const hex = (from: number, to: number): string => g.slice(from, to).map((x) => x.toString(16)).join(':');
  if (bestStart === -1) return hex(0, 8);
  return `${hex(0, bestStart)}::${hex(bestStart + bestLen, 8)}`;
}

export function formatIp(ip: IpAddr): string {
  return ip.v6 ? formatV6(ip.w) : formatV4(ip.v4);
}

/** A CIDR or bare address from policy text, or the reason it is not one (a phrase for a problem line). */
export function parseCidr(text: string): { cidr: Cidr } | { problem: string } {
  const slash = text.indexOf('/');
  const addrText = slash === -1 ? text : text.slice(0, slash);
  const ip = new IpAddr();
  if (!parseIpInto(addrText, ip)) {
    let hint = 'an address like 10.0.0.1 or 2001:db8::1, or a CIDR like 10.0.0.0/8';
    if (/^[0-9.]+$/.test(addrText) && /(^|\.)0[0-9]/.test(addrText)) hint = 'write each part of the address without leading zeros';
    else if (addrText.includes('%')) hint = 'remove the "%zone" part';
    return { problem: `is not an IP address or CIDR (${hint})` };
  }
  let bits = ip.v6 || ip.mapped ? 128 : 32;
  const max = bits;
  if (slash !== -1) {
    const len = text.slice(slash + 1);
    if (!/^(0|[1-9][0-9]{0,2})$/.test(len) || Number(len) > max) {
      return { problem: `has an invalid prefix length "/${len}" (use /0 to /${max})` };
    }
    bits = Number(len);
  }
  let v6 = ip.v6;
  if (ip.mapped) {
    if (bits >= 96) bits -= 96; // ::ffff:10.0.0.0/104 is 10.0.0.0/8
    else v6 = true; // wider than the mapped range: an IPv6 block
  }
  const w = new Uint32Array(4);
  let v4 = 0;
  if (v6) {
    let rest = bits;
    for (let i = 0; i < 4; i++, rest -= 32) {
      const mask = rest >= 32 ? 0xffffffff : rest <= 0 ? 0 : (0xffffffff << (32 - rest)) >>> 0;
      w[i] = (ip.w[i]! & mask) >>> 0;
    }
  } else {
    const mask = bits === 0 ? 0 : bits === 32 ? 0xffffffff : (0xffffffff << (32 - bits)) >>> 0;
    v4 = (ip.v4 & mask) >>> 0;
  }
  const canonical = `${v6 ? formatV6(w) : formatV4(v4)}/${bits}`;
  const hostBitsSet = v6 ? w.some((x, i) => x !== ip.w[i]) : v4 !== ip.v4;
  if (hostBitsSet) return { problem: `has host bits set (did you mean ${canonical}?)` };
  return { cidr: { v6, bits, v4, w, text: canonical } };
}

/** Cloud metadata services: denied to egress unless a CIDR names exactly the address. */
export const METADATA_ADDRESSES: readonly string[] = ['169.254.169.254', '169.254.170.2', '100.100.100.200', 'fd00:ec2::254'];

const METADATA: readonly IpAddr[] = METADATA_ADDRESSES.map((text) => {
  const ip = new IpAddr();
  parseIpInto(text, ip);
  return ip;
});

/** True if `ip` is one of `METADATA_ADDRESSES`. */
export function isMetadataAddress(ip: IpAddr): boolean {
  for (const m of METADATA) if (sameAddress(m, ip)) return true;
  return false;
}

/** True if the block is exactly one address (a /32 or /128). */
export function isSingleAddress(cidr: Cidr): boolean {
  return cidr.bits === (cidr.v6 ? 128 : 32);
}
