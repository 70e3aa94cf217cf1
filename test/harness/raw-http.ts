/** test/fixtures/http-raw-client.js (a client that writes exact bytes) with its types. */
import { fixturePath } from './fixtures';

/** What to write: bytes, or a pause. */
export type RawPart = string | Buffer | { delayMs: number };

export interface RawResponse {
  status: number;
  headers: Record<string, string>;
  body: string;
}

export interface RawResult {
  responses: RawResponse[];
  raw: string;
  closed: boolean;
  error?: string;
}

interface RawClient {
  rawExchange(o: { port: number; parts: RawPart[]; expect?: number; quietMs?: number; timeoutMs?: number }): Promise<RawResult>;
  parseResponses(raw: string): RawResponse[];
}

// eslint-disable-next-line @typescript-eslint/no-require-imports
export const { rawExchange, parseResponses } = require(fixturePath('http-raw-client.js')) as RawClient;
