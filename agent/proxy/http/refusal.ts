/**
 * Why the front refuses a request before authz, the one table from reason to status, and
 * the fixed responses it sends. Bodies are generic: they name no internals.
 */
import { STATUS_CODES } from 'node:http';

/** Istio's denial body. */
export const DENIED_BODY = 'RBAC: access denied';
export const DENIED_HEADERS = ['content-type', 'text/plain', 'content-length', String(DENIED_BODY.length)];

const STATUS_BY_REASON: Readonly<Record<string, number>> = {
  // request target and path
  'invalid-request-target': 400,
  'invalid-path-character': 400,
  'invalid-percent-encoding': 400,
  'invalid-query': 400,
  'path-parameter': 400,
  'nul-byte': 400,
  'control-character': 400,
  'double-encoding': 400,
  'absolute-form-host-mismatch': 400,
  'absolute-form-userinfo': 400,
  'absolute-form-scheme': 400,
  'asterisk-form-not-options': 400,
  'connect-method': 405,
  'invalid-method': 400,
  'unsupported-http-version': 505,
  'http2-preface': 505,
  'malformed-request': 400,
  // headers
  'missing-host': 400,
  'duplicate-host': 400,
  'invalid-host': 400,
  'invalid-header': 400,
  'obs-fold': 400,
  'too-many-headers': 431,
  'headers-too-large': 431,
  'unsupported-expectation': 417,
  'upgrade-not-supported': 501,
  'upgrade-with-body': 400,
  // framing
  'content-length-with-transfer-encoding': 400,
  'duplicate-content-length': 400,
  'invalid-content-length': 400,
  'invalid-transfer-encoding': 400,
  'transfer-encoding-in-http10': 400,
  'invalid-chunked-body': 400,
  'chunk-extensions-too-large': 413,
  // time
  'headers-timeout': 408,
  'request-timeout': 408,
};

export function statusOf(reason: string): number {
  return STATUS_BY_REASON[reason] ?? 400;
}

/** llhttp error (code, reason) → our refusal reason. */
export function parserErrorReason(err: { code?: string; reason?: string }): string {
  const why = err.reason ?? '';
  switch (err.code) {
    case 'HPE_HEADER_OVERFLOW':
      return 'headers-too-large';
    case 'HPE_CHUNK_EXTENSIONS_OVERFLOW':
      return 'chunk-extensions-too-large';
    case 'HPE_INVALID_METHOD':
      return 'invalid-method';
    case 'HPE_INVALID_VERSION':
      return why === 'Invalid HTTP version' ? 'unsupported-http-version' : 'malformed-request';
    case 'HPE_PAUSED_H2_UPGRADE':
      return 'http2-preface';
    case 'HPE_INVALID_TRANSFER_ENCODING':
    case 'HPE_INVALID_CONTENT_LENGTH':
      if (why.includes("can't be present with")) return 'content-length-with-transfer-encoding';
      return err.code === 'HPE_INVALID_TRANSFER_ENCODING' ? 'invalid-transfer-encoding' : 'invalid-content-length';
    case 'HPE_UNEXPECTED_CONTENT_LENGTH':
      return 'duplicate-content-length';
    case 'HPE_INVALID_CHUNK_SIZE':
      return 'invalid-chunked-body';
    case 'HPE_INVALID_HEADER_TOKEN':
      return why.startsWith('Unexpected whitespace after header value') ? 'obs-fold' : 'invalid-header';
    case 'HPE_UNEXPECTED_SPACE':
      return 'obs-fold';
    case 'HPE_INVALID_URL':
      return 'invalid-request-target';
    case 'HPE_STRICT':
      return why.includes('chunk') ? 'invalid-chunked-body' : 'malformed-request';
    default:
      return 'malformed-request';
  }
}

const rawResponses = new Map<number, Buffer>();

/**
 * A complete `Connection: close` response, for when there is no ServerResponse (after a
 * parse error, on a detached upgrade). The body defaults to the generic status text.
 */
export function rawResponse(status: number, body?: string): Buffer {
  let buf = body === undefined ? rawResponses.get(status) : undefined;
  if (buf === undefined) {
    const text = STATUS_CODES[status] ?? 'Error';
    const b = body ?? text;
    buf = Buffer.from(
      `HTTP/1.1 ${status} ${text}\r\ncontent-type: text/plain\r\ncontent-length: ${Buffer.byteLength(b)}\r\nconnection: close\r\n\r\n${b}`,
      'latin1',
    );
    if (body === undefined) rawResponses.set(status, buf);
  }
  return buf;
}

export function bodyOf(status: number): string {
  return STATUS_CODES[status] ?? 'Error';
}

/** The denial on a raw connection (a refused WebSocket upgrade). */
export const DENIED_RAW = rawResponse(403, DENIED_BODY);
