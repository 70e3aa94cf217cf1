/** Writing API answers: JSON bodies, `{"error":{code,message}}` errors, refused upgrades. */
import { STATUS_CODES, type ServerResponse } from 'node:http';
import type { Duplex } from 'node:stream';
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

/** Answer an upgrade request with a plain HTTP error and close the connection. */
export function refuseUpgrade(socket: Duplex, status: number, body: ErrorResponse): void {
  const text = `${JSON.stringify(body)}\n`;
  socket.end(
    `HTTP/1.1 ${status} ${STATUS_CODES[status] ?? 'Error'}\r\nConnection: close\r\nContent-Type: application/json\r\n` +
      `Content-Length: ${Buffer.byteLength(text)}\r\n\r\n${text}`,
  );
}
