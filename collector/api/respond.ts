/** Writing API answers: JSON bodies, `{"error":{code,message}}` errors, refused upgrades. */
import { STATUS_CODES, type ServerResponse } from 'node:http';
import type { Duplex } from 'node:stream';
import { setImmediate as yieldToLoop } from 'node:timers/promises';
import type { ErrorResponse } from '../../common/flows-api';

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
  if (body === null || typeof body !== 'object' || Array.isArray(body)) return JSON.stringify(body);
  const fields: string[] = [];
  let sliceStart = performance.now();
  for (const [key, value] of Object.entries(body)) {
    if (!Array.isArray(value)) {
      const text = JSON.stringify(value);
      if (text !== undefined) fields.push(`${JSON.stringify(key)}:${text}`);
      continue;
    }
    const items: string[] = [];
    for (const item of value) {
      items.push(JSON.stringify(item) ?? 'null');
      if (performance.now() - sliceStart < sliceMs) continue;
      await yieldToLoop();
      sliceStart = performance.now();
    }
    fields.push(`${JSON.stringify(key)}:[${items.join(',')}]`);
  }
  return `{${fields.join(',')}}`;
}

/** Answer an upgrade request with a plain HTTP error and close the connection. */
export function refuseUpgrade(socket: Duplex, status: number, body: ErrorResponse): void {
  const text = `${JSON.stringify(body)}\n`;
  socket.end(
    `HTTP/1.1 ${status} ${STATUS_CODES[status] ?? 'Error'}\r\nConnection: close\r\nContent-Type: application/json\r\n` +
      `Content-Length: ${Buffer.byteLength(text)}\r\n\r\n${text}`,
  );
}
