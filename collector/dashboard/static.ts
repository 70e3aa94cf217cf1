/**
 * The dashboard's page: the files `make build` bundled with Vite into
 * dist/collector/dashboard/web/ (from collector/dashboard/web/), read once at start and served
 * from memory under /dashboard/ with a strict Content-Security-Policy: everything the page
 * loads comes from the collector, nothing from a CDN.
 */
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import type { ServerResponse } from 'node:http';
import * as path from 'node:path';

const TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
  '.ico': 'image/x-icon',
  '.json': 'application/json',
  '.woff2': 'font/woff2',
};

/** Headers on every dashboard answer, page or API. */
export const SECURITY_HEADERS: Readonly<Record<string, string>> = {
  'content-security-policy':
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; font-src 'self'; " +
    "base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
  'x-content-type-options': 'nosniff',
  'x-frame-options': 'DENY',
  'referrer-policy': 'no-referrer',
  'cross-origin-opener-policy': 'same-origin',
  'cross-origin-resource-policy': 'same-origin',
};

/** Where the bundle is: next to the compiled dashboard module. */
export const DEFAULT_WEB_ROOT = path.join(__dirname, 'web');
const MAX_FILES = 200;

interface StaticFile {
  body: Buffer;
  type: string;
  /** content-hashed asset names never change: cache them; index.html never */
  immutable: boolean;
}

export class StaticFiles {
  private readonly files = new Map<string, StaticFile>();

  /** Read every file under `root` (none when it does not exist: `built` says so). */
  constructor(root: string = DEFAULT_WEB_ROOT) {
    if (!existsSync(root)) return;
    const walk = (dir: string): void => {
      for (const name of readdirSync(dir)) {
        const full = path.join(dir, name);
        if (statSync(full).isDirectory()) walk(full);
        else if (this.files.size < MAX_FILES) {
          const rel = path.relative(root, full).split(path.sep).join('/');
          this.files.set(rel, { body: readFileSync(full), type: TYPES[path.extname(name)] ?? 'application/octet-stream', immutable: rel.startsWith('assets/') });
        }
      }
    };
    walk(root);
  }

  get built(): boolean {
    return this.files.has('index.html');
  }

  /** Answer `rel` (a path under /dashboard/, '' for the page); false when there is no such file. */
  serve(rel: string, res: ServerResponse): boolean {
    const f = this.files.get(rel === '' ? 'index.html' : rel);
    if (!f) return false;
    res.writeHead(200, {
      ...SECURITY_HEADERS,
      'content-type': f.type,
      'content-length': f.body.length,
      'cache-control': f.immutable ? 'public, max-age=31536000, immutable' : 'no-store',
    });
    res.end(res.req.method === 'HEAD' ? undefined : f.body);
    return true;
  }
}
