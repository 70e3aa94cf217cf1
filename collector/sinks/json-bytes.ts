/**
 * A cursor over JSON text as UTF-8 bytes, for readers that take what they need from a document
 * without JSON.parse (frame-flows.ts): whitespace, strings with no escape (their bytes), whole
 * non-negative numbers, booleans, and any value skipped over, checked as JSON.parse would (but
 * for the UTF-8 inside skipped strings). Every method answers false (or -1) where its fast path
 * ends; the reader then falls back to JSON.parse.
 */
import { isUtf8 } from 'node:buffer';

export const QUOTE = 0x22;
export const BACKSLASH = 0x5c;
export const COLON = 0x3a;
export const COMMA = 0x2c;
export const OPEN = 0x7b;
export const CLOSE = 0x7d;
export const OPEN_ARRAY = 0x5b;
export const CLOSE_ARRAY = 0x5d;
/** Nesting a skipped value may have (deeper: the slow path). */
const MAX_DEPTH = 64;

/** Whether bytes start…end of `b` are `a`. */
export function same(a: Uint8Array, b: Uint8Array, start: number, end: number): boolean {
  if (a.length !== end - start) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[start + i]) return false;
  return true;
}

export class JsonBytes {
  protected b: Buffer = Buffer.alloc(0);
  protected p = 0;
  protected end = 0;
  /** the last string read by str(): its bytes [ss, se) */
  protected ss = 0;
  protected se = 0;

  protected start(b: Buffer): void {
    this.b = b;
    this.p = 0;
    this.end = b.length;
  }

  protected ws(): void {
    const b = this.b;
    let p = this.p;
    while (p < this.end) {
      const c = b[p];
      if (c !== 0x20 && c !== 0x0a && c !== 0x0d && c !== 0x09) break;
      p++;
    }
    this.p = p;
  }

  /** `:` between whitespace. */
  protected colon(): boolean {
    this.ws();
    if (this.b[this.p] !== COLON) return false;
    this.p++;
    this.ws();
    return true;
  }

  /** A string with no escape: its bytes at [ss, se), checked UTF-8. */
  protected str(): boolean {
    const b = this.b;
    const end = this.end;
    let p = this.p;
    if (b[p] !== QUOTE) return false;
    const start = ++p;
    let high = false;
    for (;;) {
      if (p >= end) return false;
      const c = b[p]!;
      if (c === QUOTE) break;
      if (c === BACKSLASH || c < 0x20) return false;
      if (c > 0x7f) high = true;
      p++;
    }
    if (high && !isUtf8(b.subarray(start, p))) return false;
    this.ss = start;
    this.se = p;
    this.p = p + 1;
    return true;
  }

  /** A whole number from 0 to 2^53 - 1 written in digits only, or -1. */
  protected num(): number {
    const b = this.b;
    const start = this.p;
    let p = start;
    let x = 0;
    while (p < this.end) {
      const c = b[p]!;
      if (c < 0x30 || c > 0x39) break;
      x = x * 10 + (c - 0x30);
      p++;
    }
    const c = b[p];
    if (p === start || (b[start] === 0x30 && p - start > 1) || c === 0x2e || c === 0x65 || c === 0x45 || x > Number.MAX_SAFE_INTEGER) return -1;
    this.p = p;
    return x;
  }

  /** true → 1, false → 0, else -1. */
  protected bool(): number {
    if (this.literal(TRUE)) return 1;
    if (this.literal(FALSE)) return 0;
    return -1;
  }

  protected literal(word: Uint8Array): boolean {
    if (!same(word, this.b, this.p, Math.min(this.end, this.p + word.length))) return false;
    this.p += word.length;
    return true;
  }

  /** Past any JSON value (checked as JSON.parse would, but for the UTF-8 of strings). */
  protected skip(depth: number): boolean {
    const b = this.b;
    const c = b[this.p];
    if (c === QUOTE) return this.skipString();
    if (c === OPEN || c === OPEN_ARRAY) {
      if (depth >= MAX_DEPTH) return false;
      const object = c === OPEN;
      this.p++;
      this.ws();
      if (b[this.p] === (object ? CLOSE : CLOSE_ARRAY)) {
        this.p++;
        return true;
      }
      for (;;) {
        if (object && !(this.skipString() && this.colon())) return false;
        if (!this.skip(depth + 1)) return false;
        this.ws();
        const d = b[this.p++];
        if (d === COMMA) this.ws();
        else return d === (object ? CLOSE : CLOSE_ARRAY);
      }
    }
    if (c === 0x74) return this.literal(TRUE);
    if (c === 0x66) return this.literal(FALSE);
    if (c === 0x6e) return this.literal(NULL);
    return this.skipNumber();
  }

  protected skipString(): boolean {
    const b = this.b;
    let p = this.p;
    if (b[p++] !== QUOTE) return false;
    for (;;) {
      if (p >= this.end) return false;
      const c = b[p++]!;
      if (c === QUOTE) break;
      if (c < 0x20) return false;
      if (c === BACKSLASH) {
        const e = b[p++];
        if (e === 0x75) {
          for (let i = 0; i < 4; i++, p++) if (!isHex(b[p])) return false;
        } else if (e === undefined || !ESCAPES.has(e)) return false;
      }
    }
    this.p = p;
    return true;
  }

  /** -?(0|[1-9][0-9]*)(.[0-9]+)?([eE][+-]?[0-9]+)? */
  protected skipNumber(): boolean {
    const b = this.b;
    let p = this.p;
    if (b[p] === 0x2d) p++;
    if (b[p] === 0x30) p++;
    else if (isDigit(b[p])) while (isDigit(b[p])) p++;
    else return false;
    if (b[p] === 0x2e) {
      p++;
      if (!isDigit(b[p])) return false;
      while (isDigit(b[p])) p++;
    }
    if (b[p] === 0x65 || b[p] === 0x45) {
      p++;
      if (b[p] === 0x2b || b[p] === 0x2d) p++;
      if (!isDigit(b[p])) return false;
      while (isDigit(b[p])) p++;
    }
    this.p = p;
    return true;
  }
}

const TRUE = Buffer.from('true', 'latin1');
const FALSE = Buffer.from('false', 'latin1');
const NULL = Buffer.from('null', 'latin1');
/** after a backslash: " \ / b f n r t */
const ESCAPES: ReadonlySet<number> = new Set([0x22, 0x5c, 0x2f, 0x62, 0x66, 0x6e, 0x72, 0x74]);
const isDigit = (c: number | undefined): boolean => c !== undefined && c >= 0x30 && c <= 0x39;
const isHex = (c: number | undefined): boolean => c !== undefined && ((c >= 0x30 && c <= 0x39) || (c >= 0x61 && c <= 0x66) || (c >= 0x41 && c <= 0x46));
