/** Writing API answers: JSON bodies, `{"error":{code,message}}` errors, refused upgrades. */
import { STATUS_CODES, type ServerResponse } from 'node:http';
import type { Duplex } from 'node:stream';
import { setImmediate as yieldToLoop } from 'node:timers/promises';
import type { ErrorResponse } from '../../common/flows-api';
import { Slice } from '../../common/slice';

export function errorBody(code: string, message: string): ErrorResponse {
  return { error: { code, message: message.split('\n')[0].slice(0, 1024) } };
}

export function sendText(res: ServerResponse, status: number, contentType: string, body: string, extra: Record<string, string> = {}): void {
  res.writeHead(status, {
    'content-type': contentType,
    'content-length': Buffer.byteLength(body),
    'cache-control': 'no-store',
    ...extra,
  });
  res.end(res.req.method === 'HEAD' ? undefined : body);
}

export function sendJson(res: ServerResponse, status: number, body: unknown, extra: Record<string, string> = {}): void {
  sendText(res, status, 'application/json', `${typeof body === 'string' ? body : JSON.stringify(body)}\n`, extra);
}

/**
 * `JSON.stringify(body)` of a plain-data answer (a string is taken as JSON already, as sendJson
 * takes it), the items of its top-level lists encoded in slices of about `sliceMs` between which
 * the event loop runs: a large policy change answers with every policy's diff, megabytes of JSON.
 * The same text JSON.stringify makes.
 */
export async function jsonSliced(body: unknown, sliceMs: number): Promise<string> {
  if (typeof body === 'string') return body; // already JSON, as sendJson takes it
  if (!isPlainObject(body)) return JSON.stringify(body);
  const parts: string[] = [];
  await objectJsonSliced(body, new Slice(sliceMs), (text) => parts.push(text));
  return parts.join('');
}

const isPlainObject = (body: unknown): body is object => body !== null && typeof body === 'object' && !Array.isArray(body);

/**
 * `JSON.stringify(body)` of a plain object handed to `emit` in parts, the items of its top-level
 * lists one by one with `slice` passed after each (the event loop runs between slices): what
 * `jsonSliced` joins and `sendJsonSliced` writes in pieces.
 */
async function objectJsonSliced(body: object, slice: Slice, emit: (text: string) => void): Promise<void> {
  emit('{');
  let first = true;
  for (const [key, value] of Object.entries(body)) {
    const text = Array.isArray(value) ? '' : JSON.stringify(value);
    if (text === undefined) continue;
    emit(`${first ? '' : ','}${JSON.stringify(key)}:${text}`);
    first = false;
    if (!Array.isArray(value)) continue;
    emit('[');
    for (let i = 0; i < value.length; i++) {
      emit(`${i === 0 ? '' : ','}${JSON.stringify(value[i]) ?? 'null'}`);
      await slice.pass();
    }
    emit(']');
  }
  emit('}');
}

/** `JSON.stringify(items)`, the items encoded between event-loop turns (`slice`: a slice's length in ms, or one already begun). */
export async function jsonArraySliced(items: readonly unknown[], slice: number | Slice): Promise<string> {
  const clock = typeof slice === 'number' ? new Slice(slice) : slice;
  const texts: string[] = [];
  for (const item of items) {
    texts.push(JSON.stringify(item) ?? 'null');
    await clock.pass();
  }
  return `[${texts.join(',')}]`;
}

/** What `sendJsonSliced` encodes to bytes and writes at once (UTF-16 code units, about). */
const PIECE_CHARS = 64 * 1024;

/**
 * `sendJson(res, status, body)` of a large answer (a policy change's: megabytes of diffs), made and
 * written between event-loop turns: the text is made item by item as `jsonSliced` makes it, but
 * gathered into pieces of about 64 KiB, each encoded to bytes on its own — no megabyte string is
 * joined, copied or encoded at once — then written a piece per turn (each write encrypts it).
 * The same status, headers and bytes as `sendJson`; resolves once all is handed to the socket (or
 * the request went away).
 */
export async function sendJsonSliced(res: ServerResponse, status: number, body: unknown, sliceMs: number): Promise<void> {
  const pieces = await jsonPieces(body, new Slice(sliceMs));
  const length = pieces.reduce((n, b) => n + b.length, 0);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': length, 'cache-control': 'no-store' });
  if (res.req.method === 'HEAD') return void res.end();
  for (const piece of pieces) {
    if (res.destroyed) return;
    res.write(piece);
    if (piece !== pieces.at(-1)) await yieldToLoop();
  }
  res.end();
}

/** `${JSON.stringify(body)}\n` (a string: taken as JSON already) as bytes, in pieces of about PIECE_CHARS. */
async function jsonPieces(body: unknown, slice: Slice): Promise<Buffer[]> {
  const out = new PieceWriter();
  if (isPlainObject(body)) await objectJsonSliced(body, slice, (text) => out.add(text));
  else out.addSplit(typeof body === 'string' ? body : JSON.stringify(body));
  out.add('\n');
  return out.done();
}

/** Texts gathered into pieces of about PIECE_CHARS, each encoded to bytes once full. */
class PieceWriter {
  private parts: string[] = [];
  private chars = 0;
  private readonly pieces: Buffer[] = [];

  add(text: string): void {
    this.parts.push(text);
    this.chars += text.length;
    if (this.chars >= PIECE_CHARS) this.flush();
  }

  /** A long text cut into pieces (never between the two halves of a surrogate pair). */
  addSplit(text: string): void {
    for (let at = 0; at < text.length; ) {
      const end = pieceEnd(text, at);
      this.add(text.slice(at, end));
      at = end;
    }
  }

  done(): Buffer[] {
    this.flush();
    return this.pieces;
  }

  private flush(): void {
    if (this.parts.length === 0) return;
    this.pieces.push(Buffer.from(this.parts.join('')));
    this.parts = [];
    this.chars = 0;
  }
}

/** Where the piece of `text` from `at` ends: about PIECE_CHARS on, never between the two halves of a surrogate pair. */
function pieceEnd(text: string, at: number): number {
  const end = Math.min(text.length, at + PIECE_CHARS);
  const code = text.charCodeAt(end - 1);
  return end < text.length && code >= 0xd800 && code <= 0xdbff ? end - 1 : end;
}

/** `Buffer.from(text)` encoded a piece at a time (about PIECE_CHARS), yielding as `slice` says. */
export async function bytesSliced(text: string, slice: Slice): Promise<Buffer> {
  const out = Buffer.allocUnsafe(Buffer.byteLength(text));
  let offset = 0;
  for (let at = 0; at < text.length; ) {
    const end = pieceEnd(text, at);
    offset += out.write(text.slice(at, end), offset);
    at = end;
    await slice.pass();
  }
  return out;
}

/** Answer an upgrade request with a plain HTTP error and close the connection. */
export function refuseUpgrade(socket: Duplex, status: number, body: ErrorResponse): void {
  const text = `${JSON.stringify(body)}\n`;
  socket.end(
    `HTTP/1.1 ${status} ${STATUS_CODES[status] ?? 'Error'}\r\nConnection: close\r\nContent-Type: application/json\r\n` +
      `Content-Length: ${Buffer.byteLength(text)}\r\n\r\n${text}`,
  );
}
