/**
 * An agent's `flows` frame read straight from its JSON bytes, without JSON.parse, a string or an
 * object per flow: each flow's fields as their place in the frame (strings with no escape, ASCII
 * or checked UTF-8: the bytes a protobuf string field takes as they are) or their value (whole
 * non-negative numbers, booleans, the time in ms). The OTLP sink's worker writes log records from
 * them (otlp-frame.ts). A flow off this path — an escape, a number with a sign, fraction or
 * exponent, an unknown or missing field, a wrong type, a key given twice for an object — is handed
 * back as its JSON's range (the caller parses that flow alone); a frame whose level above the
 * flows is unusual (a second `flows`, a key with an escape, malformed JSON) makes `read` answer
 * false (the caller parses the whole frame). The frame was parsed and checked (in the flow
 * store's writer thread) before it was stored, so these are rare. docs/architecture.md "Flow sinks".
 */
import { CLOSE, CLOSE_ARRAY, COMMA, JsonBytes, OPEN, OPEN_ARRAY, same } from './json-bytes';

/** String fields: bytes view.s[2i] … view.s[2i+1] (end excluded) of the frame; start -1 when absent. */
export const S = {
  time: 0, node: 1, direction: 2, protocol: 3, verdict: 4, reason: 5, policy: 6, traceId: 7,
  srcIp: 8, srcWorkload: 9, srcNamespace: 10, srcIdentity: 11, srcHost: 12,
  dstIp: 13, dstWorkload: 14, dstNamespace: 15, dstIdentity: 16, dstHost: 17,
  httpMethod: 18, httpPath: 19, dnsType: 20, dnsRcode: 21, auditPolicy: 22, route: 23, backend: 24,
} as const;
const S_COUNT = 25;

/** Number and boolean fields (booleans as 0 and 1): view.n[i], -1 when absent. */
export const N = {
  rule: 0, mtls: 1, bytesSent: 2, bytesReceived: 3, durationMs: 4, count: 5, srcPort: 6, dstPort: 7,
  httpStatus: 8, grpcStatus: 9, auditRule: 10, routeRule: 11, attempts: 12,
} as const;
const N_COUNT = 13;

/** The objects a flow holds: bits of view.objects. */
export const O = { source: 1, destination: 2, http: 4, dns: 8, audit: 16, traffic: 32, answers: 64 } as const;

/** The verdicts, in the order view.verdict gives them. */
export const VERDICTS = ['allowed', 'denied', 'audit', 'error'] as const;

/** One flow of the frame being read (reused from flow to flow). */
export class FlowView {
  readonly s = new Int32Array(S_COUNT * 2);
  readonly n = new Float64Array(N_COUNT);
  objects = 0;
  /** dns.answers: start and end of each */
  answers = new Int32Array(32);
  answerCount = 0;
  /** `time` in ms since the epoch (Date.parse) */
  timeMs = 0;
  /** index in VERDICTS */
  verdict = 0;

  reset(): void {
    this.s.fill(-1);
    this.n.fill(-1);
    this.objects = 0;
    this.answerCount = 0;
  }

  has(slot: number): boolean {
    return this.s[2 * slot]! >= 0;
  }
}

const STR = 1;
const NUM = 2;
const BOOL = 3;
const OBJ = 4;
const ANSWERS = 5;

interface Key {
  bytes: Uint8Array;
  kind: number;
  slot: number;
  /** OBJ: the object's bit and its keys (0 and undefined for the other kinds) */
  flag: number;
  keys: Keys | undefined;
}

/** An object's keys; `last[i]`, the key the previous object of this kind had at place i, is tried first. */
class Keys {
  readonly list: Key[];
  readonly last: Array<Key | undefined> = [];

  constructor(entries: ReadonlyArray<[string, number, number, number?, Keys?]>) {
    // every key of one shape (an object's fields always present): the reader's loads stay monomorphic
    this.list = entries.map(([name, kind, slot, flag, keys]) => ({ bytes: Buffer.from(name, 'latin1'), kind, slot, flag: flag ?? 0, keys }));
  }

  find(b: Buffer, start: number, end: number, place: number): Key | undefined {
    const guess = this.last[place];
    if (guess !== undefined && same(guess.bytes, b, start, end)) return guess;
    for (const k of this.list) {
      if (same(k.bytes, b, start, end)) {
        if (place < 32) this.last[place] = k;
        return k;
      }
    }
    return undefined;
  }
}

const endpoint = (ip: number, port: number): Keys =>
  new Keys([['ip', STR, ip], ['port', NUM, port], ['workload', STR, ip + 1], ['namespace', STR, ip + 2], ['identity', STR, ip + 3], ['host', STR, ip + 4]]);

const FLOW = new Keys([
  ['time', STR, S.time],
  ['node', STR, S.node],
  ['direction', STR, S.direction],
  ['source', OBJ, 0, O.source, endpoint(S.srcIp, N.srcPort)],
  ['destination', OBJ, 0, O.destination, endpoint(S.dstIp, N.dstPort)],
  ['protocol', STR, S.protocol],
  ['http', OBJ, 0, O.http, new Keys([['method', STR, S.httpMethod], ['path', STR, S.httpPath], ['status', NUM, N.httpStatus], ['grpcStatus', NUM, N.grpcStatus]])],
  ['dns', OBJ, 0, O.dns, new Keys([['type', STR, S.dnsType], ['rcode', STR, S.dnsRcode], ['answers', ANSWERS, 0]])],
  ['verdict', STR, S.verdict],
  ['reason', STR, S.reason],
  ['policy', STR, S.policy],
  ['rule', NUM, N.rule],
  ['audit', OBJ, 0, O.audit, new Keys([['policy', STR, S.auditPolicy], ['rule', NUM, N.auditRule]])],
  ['mtls', BOOL, N.mtls],
  ['bytesSent', NUM, N.bytesSent],
  ['bytesReceived', NUM, N.bytesReceived],
  ['durationMs', NUM, N.durationMs],
  ['count', NUM, N.count],
  ['traceId', STR, S.traceId],
  ['traffic', OBJ, 0, O.traffic, new Keys([['route', STR, S.route], ['rule', NUM, N.routeRule], ['backend', STR, S.backend], ['attempts', NUM, N.attempts]])],
]);

const FLOWS_KEY = Buffer.from('flows', 'latin1');
const VERDICT_BYTES = VERDICTS.map((v) => Buffer.from(v, 'latin1'));

/** Each flow read: its fields in `view`, or undefined (off the fast path) with its JSON at [start, end). */
export type FlowVisitor = (view: FlowView | undefined, start: number, end: number) => void;

export class FrameFlowReader extends JsonBytes {
  readonly view = new FlowView();
  /** the last time whose second was parsed: its first 20 bytes (up to the '.') and ms */
  private readonly timePrefix = Buffer.alloc(20);
  private timeBase = Number.NaN;

  /**
   * Flows skip … skip + count - 1 of the frame's `flows` array, in order, to `visit`. False: the
   * frame needs JSON.parse (what was visited before is to be thrown away).
   */
  read(frame: Buffer, skip: number, count: number, visit: FlowVisitor): boolean {
    this.start(frame);
    const b = frame;
    let found = false;
    this.ws();
    if (b[this.p] !== OPEN) return false;
    this.p++;
    this.ws();
    for (;;) {
      if (!this.str()) return false;
      const isFlows = same(FLOWS_KEY, b, this.ss, this.se);
      if (!this.colon()) return false;
      if (isFlows) {
        if (found || !this.flows(skip, count, visit)) return false;
        found = true;
      } else if (!this.skip(0)) return false;
      this.ws();
      const c = b[this.p++];
      if (c === COMMA) this.ws();
      else if (c === CLOSE) break;
      else return false;
    }
    this.ws();
    return found && this.p === this.end;
  }

  private flows(skip: number, count: number, visit: FlowVisitor): boolean {
    const b = this.b;
    if (b[this.p] !== OPEN_ARRAY) return false;
    this.p++;
    this.ws();
    let i = 0;
    if (b[this.p] === CLOSE_ARRAY) this.p++;
    else {
      for (;; i++) {
        const start = this.p;
        if (i < skip || i >= skip + count) {
          if (!this.skip(0)) return false;
        } else if (this.flow()) visit(this.view, start, this.p);
        else {
          this.p = start;
          if (!this.skip(0)) return false;
          visit(undefined, start, this.p);
        }
        this.ws();
        const c = b[this.p++];
        if (c === COMMA) this.ws();
        else if (c === CLOSE_ARRAY) break;
        else return false;
      }
      i++;
    }
    return i >= skip + count;
  }

  /** One flow into the view; false when it is off the fast path. */
  private flow(): boolean {
    const v = this.view;
    v.reset();
    if (!this.object(FLOW)) return false;
    const { s, n } = v;
    const O_NEEDED = O.source | O.destination;
    if ((v.objects & O_NEEDED) !== O_NEEDED || s[2 * S.srcIp]! < 0 || s[2 * S.dstIp]! < 0) return false;
    if (s[2 * S.time]! < 0 || s[2 * S.node]! < 0 || s[2 * S.direction]! < 0 || s[2 * S.protocol]! < 0 || s[2 * S.reason]! < 0) return false;
    if (n[N.mtls]! < 0 || n[N.bytesSent]! < 0 || n[N.bytesReceived]! < 0 || n[N.durationMs]! < 0) return false;
    if (v.objects & O.http && (s[2 * S.httpMethod]! < 0 || s[2 * S.httpPath]! < 0 || n[N.httpStatus]! < 0)) return false;
    if (v.objects & O.dns && (s[2 * S.dnsType]! < 0 || s[2 * S.dnsRcode]! < 0 || !(v.objects & O.answers))) return false;
    if (v.objects & O.audit && (s[2 * S.auditPolicy]! < 0 || n[N.auditRule]! < 0)) return false;
    if (v.objects & O.traffic && (s[2 * S.route]! < 0 || n[N.routeRule]! < 0 || s[2 * S.backend]! < 0 || n[N.attempts]! < 0)) return false;
    v.verdict = -1;
    for (let i = 0; i < VERDICT_BYTES.length; i++) if (same(VERDICT_BYTES[i]!, this.b, s[2 * S.verdict]!, s[2 * S.verdict + 1]!)) v.verdict = i;
    if (v.verdict < 0) return false;
    if (s[2 * S.traceId]! >= 0 && !this.traceIdOk(s[2 * S.traceId]!, s[2 * S.traceId + 1]!)) return false;
    v.timeMs = this.time(s[2 * S.time]!, s[2 * S.time + 1]!);
    return true;
  }

  /** 32 lowercase hex digits (what FlowRecord.traceId holds; anything else goes the slow way). */
  private traceIdOk(start: number, end: number): boolean {
    if (end - start !== 32) return false;
    for (let i = start; i < end; i++) {
      const c = this.b[i]!;
      if (!((c >= 0x30 && c <= 0x39) || (c >= 0x61 && c <= 0x66))) return false;
    }
    return true;
  }

  /** Date.parse of the time's text; `2026-12-07T05:00:00.123Z` (what agents write) from its second, parsed once. */
  private time(start: number, end: number): number {
    const b = this.b;
    if (end - start === 24 && b[start + 19] === 0x2e && b[start + 23] === 0x5a) {
      const d0 = b[start + 20]! - 0x30;
      const d1 = b[start + 21]! - 0x30;
      const d2 = b[start + 22]! - 0x30;
      if (d0 >= 0 && d0 <= 9 && d1 >= 0 && d1 <= 9 && d2 >= 0 && d2 <= 9) {
        if (!same(this.timePrefix, b, start, start + 20)) {
          b.copy(this.timePrefix, 0, start, start + 20);
          this.timeBase = Date.parse(`${b.toString('latin1', start, start + 20)}000Z`);
        }
        if (!Number.isNaN(this.timeBase)) return this.timeBase + d0 * 100 + d1 * 10 + d2;
      }
    }
    return Date.parse(b.toString('utf8', start, end));
  }

  private object(keys: Keys): boolean {
    const b = this.b;
    const v = this.view;
    if (b[this.p] !== OPEN) return false;
    this.p++;
    this.ws();
    if (b[this.p] === CLOSE) {
      this.p++;
      return true;
    }
    for (let place = 0; ; place++) {
      if (!this.str()) return false;
      const k = keys.find(b, this.ss, this.se, place);
      if (k === undefined || !this.colon()) return false;
      switch (k.kind) {
        case STR:
          if (!this.str()) return false;
          v.s[2 * k.slot] = this.ss;
          v.s[2 * k.slot + 1] = this.se;
          break;
        case NUM: {
          const x = this.num();
          if (x < 0) return false;
          v.n[k.slot] = x;
          break;
        }
        case BOOL: {
          const x = this.bool();
          if (x < 0) return false;
          v.n[k.slot] = x;
          break;
        }
        case OBJ:
          // the same object twice: JSON.parse keeps only the second (the slow path does that)
          if (v.objects & k.flag! || !this.object(k.keys!)) return false;
          v.objects |= k.flag!;
          break;
        default:
          if (!this.answers()) return false;
      }
      this.ws();
      const c = b[this.p++];
      if (c === COMMA) this.ws();
      else if (c === CLOSE) return true;
      else return false;
    }
  }

  private answers(): boolean {
    const b = this.b;
    const v = this.view;
    if (b[this.p] !== OPEN_ARRAY) return false;
    this.p++;
    this.ws();
    v.answerCount = 0;
    v.objects |= O.answers;
    if (b[this.p] === CLOSE_ARRAY) {
      this.p++;
      return true;
    }
    for (;;) {
      if (!this.str()) return false;
      if (2 * v.answerCount + 2 > v.answers.length) {
        const more = new Int32Array(v.answers.length * 2);
        more.set(v.answers);
        v.answers = more;
      }
      v.answers[2 * v.answerCount] = this.ss;
      v.answers[2 * v.answerCount + 1] = this.se;
      v.answerCount++;
      this.ws();
      const c = b[this.p++];
      if (c === COMMA) this.ws();
      else if (c === CLOSE_ARRAY) return true;
      else return false;
    }
  }
}
