/**
 * A protobuf writer for the few wire types OTLP log records use: varints, fixed64, doubles,
 * strings, bytes and length-delimited messages, into one growing buffer. A message's length is
 * written where it began once its end is known (one byte reserved; the content moves only when
 * the length needs more). Field numbers and layouts are otlp-logs.ts's; the golden test checks
 * the bytes against the official OTLP definitions and the OpenTelemetry JS serializer.
 */
export const WIRE_VARINT = 0;
export const WIRE_FIXED64 = 1;
export const WIRE_LEN = 2;
export const WIRE_FIXED32 = 5;

/** How many bytes varint(v) writes. */
export function varintLength(v: number): number {
  let n = 1;
  while (v > 127) {
    v = Math.floor(v / 128);
    n++;
  }
  return n;
}

/** varint(v) at b[p] (room checked by the caller); returns where it ends. */
function putVarint(b: Buffer, p: number, v: number): number {
  while (v > 127) {
    b[p++] = (v & 127) | 128;
    v = Math.floor(v / 128);
  }
  b[p++] = v;
  return p;
}

export class ProtoWriter {
  private buf = Buffer.allocUnsafe(64 * 1024);
  pos = 0;

  reset(): void {
    this.pos = 0;
  }

  ensure(n: number): void {
    if (this.pos + n <= this.buf.length) return;
    let size = this.buf.length * 2;
    while (size < this.pos + n) size *= 2;
    const next = Buffer.allocUnsafe(size);
    this.buf.copy(next, 0, 0, this.pos);
    this.buf = next;
  }

  tag(field: number, wire: number): void {
    this.varint(field * 8 + wire);
  }

  /** A non-negative integer up to 2^53. */
  varint(v: number): void {
    this.ensure(10);
    const b = this.buf;
    let p = this.pos;
    while (v > 127) {
      b[p++] = (v & 127) | 128;
      v = Math.floor(v / 128);
    }
    b[p++] = v;
    this.pos = p;
  }

  /** An int64 field's value: negative numbers take ten bytes (two's complement). */
  int64(v: number): void {
    if (v >= 0) return this.varint(v);
    let x = BigInt.asUintN(64, BigInt(v));
    this.ensure(10);
    while (x > 127n) {
      this.buf[this.pos++] = Number(x & 127n) | 128;
      x >>= 7n;
    }
    this.buf[this.pos++] = Number(x);
  }

  fixed64(v: bigint): void {
    this.ensure(8);
    this.buf.writeBigUInt64LE(v, this.pos);
    this.pos += 8;
  }

  /** A fixed64 of `ms` milliseconds in nanoseconds, without a BigInt (exact for whole ms up to 2^44). */
  fixed64Ms(ms: number): void {
    this.ensure(8);
    const hiMs = Math.floor(ms / 4294967296);
    const loNs = (ms - hiMs * 4294967296) * 1e6; // < 2^52: exact
    const carry = Math.floor(loNs / 4294967296);
    this.buf.writeUInt32LE(loNs - carry * 4294967296, this.pos);
    this.buf.writeUInt32LE(hiMs * 1e6 + carry, this.pos + 4);
    this.pos += 8;
  }

  fixed32(v: number): void {
    this.ensure(4);
    this.buf.writeUInt32LE(v >>> 0, this.pos);
    this.pos += 4;
  }

  double(v: number): void {
    this.ensure(8);
    this.buf.writeDoubleLE(v, this.pos);
    this.pos += 8;
  }

  /** A string field (UTF-8). */
  string(field: number, s: string): void {
    this.tag(field, WIRE_LEN);
    if (s.length < 128) {
      // ASCII is copied byte by byte (cheaper than a Buffer.write call for short strings)
      this.ensure(1 + s.length * 3);
      const b = this.buf;
      const start = this.pos + 1;
      let i = 0;
      for (; i < s.length; i++) {
        const c = s.charCodeAt(i);
        if (c > 127) break;
        b[start + i] = c;
      }
      if (i === s.length) {
        b[this.pos] = i;
        this.pos = start + i;
        return;
      }
      if (s.length <= 42) {
        // at most 126 bytes of UTF-8: the length is one byte
        const n = b.write(s, start, 'utf8');
        b[this.pos] = n;
        this.pos = start + n;
        return;
      }
    }
    const n = Buffer.byteLength(s, 'utf8');
    this.varint(n);
    this.ensure(n);
    this.pos += this.buf.write(s, this.pos, 'utf8');
  }

  /** UTF-8 text with no tag or length: part of a string field begun with begin(). */
  text(s: string): void {
    this.ensure(s.length * 3);
    const b = this.buf;
    let p = this.pos;
    for (let i = 0; i < s.length; i++) {
      const c = s.charCodeAt(i);
      if (c > 127) {
        this.pos = p + b.write(s.slice(i), p, 'utf8');
        return;
      }
      b[p++] = c;
    }
    this.pos = p;
  }

  /** Raw bytes as they are (a field's tag, length and content written before). */
  raw(b: Uint8Array): void {
    const n = b.length;
    this.ensure(n);
    if (n < 48) {
      // byte by byte: cheaper than a native copy for the short fields written most
      const buf = this.buf;
      let p = this.pos;
      for (let i = 0; i < n; i++) buf[p++] = b[i]!;
    } else this.buf.set(b, this.pos);
    this.pos += n;
  }

  /**
   * A KeyValue field (`field`) whose key field is `key` (tag, length, name: keyField) and whose
   * value is an AnyValue string_value of bytes start…end of `src`: all lengths known before, so
   * nothing is moved.
   */
  stringKeyValue(field: number, key: Uint8Array, src: Buffer, start: number, end: number): void {
    const n = end - start;
    const any = 1 + varintLength(n) + n;
    const b = this.keyValueHead(field, key, any);
    let p = this.pos;
    b[p++] = 0x0a; // AnyValue.string_value, LEN
    p = putVarint(b, p, n);
    if (n < 48) for (let i = start; i < end; i++) b[p++] = src[i]!;
    else p += src.copy(b, p, start, end);
    this.pos = p;
  }

  /**
   * A KeyValue field's tag and length, its key field and its value's tag and length (an AnyValue
   * of `any` bytes), with room for that AnyValue; pos is then where the AnyValue goes.
   */
  private keyValueHead(field: number, key: Uint8Array, any: number): Buffer {
    const kv = key.length + 1 + varintLength(any) + any;
    this.ensure(kv + 11);
    const b = this.buf;
    let p = putVarint(b, this.pos, field * 8 + WIRE_LEN);
    p = putVarint(b, p, kv);
    for (let i = 0; i < key.length; i++) b[p++] = key[i]!;
    b[p++] = 0x12; // KeyValue.value, LEN
    this.pos = putVarint(b, p, any);
    return b;
  }

  /** A KeyValue field whose value is an AnyValue int_value (wire 3) or bool_value (wire 2): `kind` is that field's number. */
  numberKeyValue(field: number, key: Uint8Array, kind: 2 | 3, x: number): void {
    const any = 1 + varintLength(x);
    const b = this.keyValueHead(field, key, any);
    let p = this.pos;
    b[p++] = kind * 8 + WIRE_VARINT;
    this.pos = putVarint(b, p, x);
  }

  /** Bytes start…end of `src` as they are (short ones copied byte by byte: cheaper than a native copy). */
  rawRange(src: Buffer, start: number, end: number): void {
    const n = end - start;
    this.ensure(n);
    if (n < 48) {
      const b = this.buf;
      let p = this.pos;
      for (let i = start; i < end; i++) b[p++] = src[i]!;
    } else src.copy(this.buf, this.pos, start, end);
    this.pos += n;
  }

  bytes(field: number, b: Uint8Array): void {
    this.tag(field, WIRE_LEN);
    this.varint(b.length);
    this.raw(b);
  }

  /** Start a message field: returns where its length goes, for end(). */
  begin(field: number): number {
    this.tag(field, WIRE_LEN);
    this.ensure(1);
    return this.pos++;
  }

  end(at: number): void {
    const len = this.pos - at - 1;
    if (len < 128) {
      this.buf[at] = len;
      return;
    }
    let size = 1;
    for (let v = len; v > 127; v = Math.floor(v / 128)) size++;
    this.ensure(size - 1);
    this.buf.copyWithin(at + size, at + 1, this.pos);
    this.pos += size - 1;
    let v = len;
    let p = at;
    while (v > 127) {
      this.buf[p++] = (v & 127) | 128;
      v = Math.floor(v / 128);
    }
    this.buf[p] = v;
  }

  /** Bytes start…end written, not copied: valid until written over (reset) or detach(). */
  view(start: number, end: number): Buffer {
    return this.buf.subarray(start, end);
  }

  /** Leave what was written to whoever holds a view of it: write on in a new buffer. */
  detach(): void {
    this.buf = Buffer.allocUnsafe(this.buf.length);
    this.pos = 0;
  }

  /** What was written, copied out. */
  finish(): Uint8Array {
    // allocUnsafe and copy: a sliced Uint8Array is zero-filled first (measured ~2 us per flow's
    // worth of bytes), a Buffer slice goes through Buffer's species constructor
    const out = Buffer.allocUnsafe(this.pos);
    this.buf.copy(out, 0, 0, this.pos);
    return out;
  }
}
