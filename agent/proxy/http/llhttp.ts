/**
 * Node's own HTTP/1.1 parser (llhttp, in C), the one its http.Server and ClientRequest run,
 * used without them. It is reached through `_http_common`, the module Node's http code shares
 * (`HTTPParser`, from the internal `http_parser` binding): not a documented API, so this file
 * pins it. The project runs on exactly the Node in .node-version; on first use the binding is
 * checked for every method, slot and constant used here and made to parse a known set of
 * messages (pipelined, chunked with trailers, split headers, an upgrade, a smuggling attempt),
 * and the method table is built from what it reports. Anything different and the agent stops
 * with PALISADE_ERR_INTERNAL naming the Node version, rather than parse HTTP it does not
 * understand. Why not llhttp compiled into our addon: the same C code, but every callback would
 * cross N-API and build its own JS arrays, where the binding already hands a request's header
 * lines over in one call; and Node's copy is the one its security releases patch.
 *
 * Strict parsing (no lenient flags): bare CR or LF, obs-fold, spaces before a colon, invalid
 * characters in names and values, Content-Length lists and CL with TE are parse errors.
 */
import * as http from 'node:http';
import { PalisadeError } from '../../../common/errors';

/**
 * What the parser calls, with `this` the parser (whose `owner` is the connection it serves):
 * module-level functions, so nothing is bound per connection. Slots are the binding's kOn* numbers.
 */
export interface ParserHandlers<T> {
  /** First byte of a message. */
  onMessageBegin(this: BoundParser<T>): void;
  /** Header lines (and target pieces) when a head spans several reads or has many lines; trailers too. */
  onHeaders(this: BoundParser<T>, headers: string[], url: string): void;
  /**
   * The head is complete. `headers`/`url` are undefined when they came through onHeaders.
   * Return 0, 1 (no body: a response to HEAD) or 2 (upgrade: stop after the head).
   */
  onHeadersComplete(
    this: BoundParser<T>,
    versionMajor: number,
    versionMinor: number,
    headers: string[] | undefined,
    method: number | undefined,
    url: string | undefined,
    statusCode: number | undefined,
    statusMessage: string | undefined,
    upgrade: boolean,
    shouldKeepAlive: boolean,
  ): number;
  /** A piece of the body (a copy: it may be kept). */
  onBody(this: BoundParser<T>, chunk: Buffer): void;
  onMessageComplete(this: BoundParser<T>): void;
}

/** A parse error as execute()/finish() return it. */
export interface ParseError extends Error {
  code: string;
  reason?: string;
  bytesParsed?: number;
}

/** The binding's parser as handlers see it (`this`). */
export interface BoundParser<T> {
  /** what the handlers serve */
  owner: T;
}

interface Binding {
  new (): BindingParser;
  REQUEST: number;
  RESPONSE: number;
  kOnMessageBegin: number;
  kOnHeaders: number;
  kOnHeadersComplete: number;
  kOnBody: number;
  kOnMessageComplete: number;
  kOnExecute: number;
  kLenientNone: number;
}

interface BindingParser {
  [slot: number]: unknown;
  owner: unknown;
  initialize(type: number, resource: object, maxHeaderSize: number, lenient: number): void;
  execute(data: Buffer): number | ParseError;
  finish(): ParseError | undefined;
  close(): void;
}

export type ParserType = 'request' | 'response';

interface Pinned {
  Binding: Binding;
  /** method number → name, from parsing each of http.METHODS */
  methods: string[];
}

let pinned: Pinned | undefined;

function mismatch(what: string): PalisadeError {
  return new PalisadeError(
    'PALISADE_ERR_INTERNAL',
    `Node ${process.version}'s HTTP parser binding is not the one Palisade pins (${what}); run the Node in .node-version`,
  );
}

function load(): Pinned {
  let Binding: Binding;
  try {
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    Binding = (require('_http_common') as { HTTPParser: Binding }).HTTPParser;
  } catch (err) {
    throw mismatch(`_http_common: ${(err as Error).message}`);
  }
  if (typeof Binding !== 'function') throw mismatch('no HTTPParser');
  for (const k of ['REQUEST', 'RESPONSE', 'kOnMessageBegin', 'kOnHeaders', 'kOnHeadersComplete', 'kOnBody', 'kOnMessageComplete', 'kOnExecute', 'kLenientNone'] as const) {
    if (typeof Binding[k] !== 'number') throw mismatch(`no ${k}`);
  }
  for (const m of ['initialize', 'execute', 'finish', 'close'] as const) {
    if (typeof (Binding.prototype as unknown as Record<string, unknown>)[m] !== 'function') throw mismatch(`no ${m}()`);
  }
  const p: Pinned = { Binding, methods: [] };
  for (const name of http.METHODS) {
    const seen = selfParse(p, 'request', `${name} / HTTP/1.1\r\nHost: a\r\n\r\n`);
    if (seen.error !== undefined || seen.heads.length !== 1) continue; // not a method llhttp takes for HTTP
    const m = seen.heads[0]!.method;
    if (typeof m !== 'number' || (p.methods[m] !== undefined && p.methods[m] !== name)) throw mismatch(`method ${name} reported as ${String(m)}`);
    p.methods[m] = name;
  }
  if (p.methods.filter(Boolean).length < 30) throw mismatch('fewer than 30 methods');
  selfTest(p);
  return p;
}

interface Seen {
  heads: Array<{ version: string; headers: string[]; method: number | undefined; url: string; status: number | undefined; upgrade: boolean; keepAlive: boolean }>;
  bodies: string[];
  complete: number;
  ret: number;
  error: string | undefined;
}

/** Parse `text` with handlers that record what they are told (the self-test's view). */
interface SelfState {
  seen: Seen;
  headers: string[];
  url: string;
  /** between a message's first byte and the end of its head (later onHeaders calls are trailers) */
  inHead: boolean;
  upgradeReturn: number;
}

const selfHandlers: ParserHandlers<SelfState> = {
  onMessageBegin() {
    this.owner.inHead = true;
    this.owner.headers = [];
    this.owner.url = '';
  },
  onHeaders(h, u) {
    if (!this.owner.inHead) return;
    this.owner.headers = this.owner.headers.concat(h);
    this.owner.url += u;
  },
  onHeadersComplete(major, minor, headers, method, url, status, _message, upgrade, keepAlive) {
    const s = this.owner;
    s.seen.heads.push({ version: `${major}.${minor}`, headers: headers ?? s.headers, method, url: url ?? s.url, status, upgrade, keepAlive });
    s.inHead = false;
    return upgrade ? s.upgradeReturn : 0;
  },
  onBody(b) {
    this.owner.seen.bodies.push(b.toString('latin1'));
  },
  onMessageComplete() {
    this.owner.seen.complete += 1;
  },
};

/** Parse `text` with handlers that record what they are told (the self-test's view). */
function selfParse(p: Pinned, type: ParserType, text: string, upgradeReturn = 2): Seen {
  const seen: Seen = { heads: [], bodies: [], complete: 0, ret: 0, error: undefined };
  const parser = newBindingParser(p, type, 16384, { seen, headers: [], url: '', inHead: false, upgradeReturn }, selfHandlers);
  try {
    let at = 0;
    // Fed in two pieces, split inside the first head: the slow path is checked too.
    for (const piece of [text.slice(0, 7), text.slice(7)]) {
      const r = parser.execute(Buffer.from(piece, 'latin1'));
      if (typeof r !== 'number') {
        seen.error = r.code;
        break;
      }
      at += r;
      if (r < piece.length) break;
    }
    seen.ret = at;
  } finally {
    parser.close();
  }
  return seen;
}

function expect(cond: boolean, what: string): void {
  if (!cond) throw mismatch(what);
}

function selfTest(p: Pinned): void {
  const get = p.methods.indexOf('GET');
  const post = p.methods.indexOf('POST');
  expect(get >= 0 && post >= 0, 'GET/POST unknown');
  const a = selfParse(p, 'request', 'POST /a?b HTTP/1.1\r\nHost: x\r\nX-A: 1\r\nX-A: 2\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\nT: 1\r\n\r\nGET /c HTTP/1.0\r\nHost: y\r\n\r\n');
  expect(a.error === undefined && a.complete === 2 && a.heads.length === 2, 'pipelined chunked request');
  const [h0, h1] = a.heads;
  expect(h0!.method === post && h0!.url === '/a?b' && h0!.version === '1.1' && h0!.keepAlive && !h0!.upgrade, 'request line');
  expect(h0!.headers.join('|') === 'Host|x|X-A|1|X-A|2|Transfer-Encoding|chunked', 'header lines');
  expect(a.bodies.join('') === 'abc', 'chunked body');
  expect(h1!.method === get && h1!.url === '/c' && h1!.version === '1.0' && !h1!.keepAlive, 'HTTP/1.0 request');
  const u = selfParse(p, 'request', 'GET /ws HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\nping');
  expect(u.heads.length === 1 && u.heads[0]!.upgrade && u.ret === 70, 'upgrade stops after the head');
  const bad = selfParse(p, 'request', 'POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n');
  expect(bad.error === 'HPE_INVALID_TRANSFER_ENCODING' || bad.error === 'HPE_UNEXPECTED_CONTENT_LENGTH', `CL with TE gave ${String(bad.error)}`);
  const fold = selfParse(p, 'request', 'GET / HTTP/1.1\r\nHost: x\r\nX: a\r\n b\r\n\r\n');
  expect(fold.error !== undefined && fold.heads.length === 0, 'obs-fold accepted');
  const r = selfParse(p, 'response', 'HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nabc');
  expect(r.error === undefined && r.heads[0]!.status === 200 && r.bodies.join('') === 'abc' && r.complete === 1, 'response');
}

function pin(): Pinned {
  return (pinned ??= load());
}

/** The method name for the number the parser reports; undefined for one it never reported in the self-test. */
export function methodName(n: number | undefined): string | undefined {
  return n === undefined ? undefined : pin().methods[n];
}

/** Check the binding now (the agent does this at start, so a mismatch stops it before it serves). */
export function checkParserBinding(): void {
  pin();
}

function newBindingParser<T>(p: Pinned, type: ParserType, maxHeaderBytes: number, owner: T, h: ParserHandlers<T>): BoundParser<T> & BindingParser {
  const B = p.Binding;
  const parser = new B() as BoundParser<T> & BindingParser;
  parser.owner = owner;
  parser[B.kOnMessageBegin] = h.onMessageBegin;
  parser[B.kOnHeaders] = h.onHeaders;
  parser[B.kOnHeadersComplete] = h.onHeadersComplete;
  parser[B.kOnBody] = h.onBody;
  parser[B.kOnMessageComplete] = h.onMessageComplete;
  parser[B.kOnExecute] = null;
  parser.initialize(type === 'request' ? B.REQUEST : B.RESPONSE, {}, maxHeaderBytes, B.kLenientNone);
  return parser;
}

/**
 * A strict parser of requests or responses whose callbacks are `h`, serving `owner`. It may be
 * closed from inside a callback: the C++ side is released once the parser has returned.
 */
export class Parser<T> {
  private readonly p: BoundParser<T> & BindingParser;
  /** inside execute() or finish(): a callback is running */
  busy = false;
  private closeWanted = false;
  private closed = false;

  constructor(type: ParserType, maxHeaderBytes: number, owner: T, h: ParserHandlers<T>) {
    this.p = newBindingParser(pin(), type, maxHeaderBytes, owner, h);
  }

  /** Bytes parsed, or the error (the parser then stays failed). */
  execute(data: Buffer): number | ParseError {
    this.busy = true;
    try {
      return this.p.execute(data);
    } finally {
      this.returned();
    }
  }

  /** End of input: an error when a message was cut short; completes a body read to EOF. */
  finish(): ParseError | undefined {
    this.busy = true;
    try {
      return this.p.finish();
    } finally {
      this.returned();
    }
  }

  close(): void {
    if (this.closed) return;
    if (this.busy) {
      this.closeWanted = true;
      return;
    }
    this.closed = true;
    this.p.close();
  }

  private returned(): void {
    this.busy = false;
    if (this.closeWanted) this.close();
  }
}
