/**
 * Join tokens: `plt_<id>.<secret>`, id 8 hex, secret 32 base64url characters (192 random bits).
 * `tokens.json` in the data directory keeps only the SHA-256 of each secret; it is rewritten
 * atomically (temp file + rename, mode 0600) under a lock file, so the offline
 * `palisade collector token create` and a running collector can both change it. Tokens are
 * single use: a successful join marks the token used, persistently.
 */
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import { closeSync, mkdirSync, openSync, readFileSync, statSync, unlinkSync } from 'node:fs';
import * as path from 'node:path';
import { writeFileAtomic } from '../common/atomic-file';
import { errorCode, invalidArgument, PalisadeError } from '../common/errors';

export const TOKENS_FILE = 'tokens.json';
const TOKEN_RE = /^plt_([0-9a-f]{8})\.([A-Za-z0-9_-]{32})$/;
const LOCK_WAIT_MS = 2_000;
const LOCK_STALE_MS = 10_000;
/** Used or expired tokens are forgotten this long after they stop being usable. */
const FORGET_AFTER_MS = 7 * 86_400_000;

interface StoredToken {
  id: string;
  secretSha256: string;
  createdAt: string;
  expiresAt: string;
  usedAt?: string;
  usedBy?: string;
}

interface TokensFile {
  version: 1;
  tokens: StoredToken[];
}

export interface CreatedToken {
  token: string;
  id: string;
  expiresAt: Date;
}

/** Why a token is not accepted; `reason` is safe to log and to send back (no secret in it). */
export type TokenVerdict = { ok: true; id: string } | { ok: false; id?: string; reason: string };

export function parseToken(token: string): { id: string; secret: string } | undefined {
  const m = typeof token === 'string' ? TOKEN_RE.exec(token) : null;
  return m ? { id: m[1], secret: m[2] } : undefined;
}

const sha256 = (s: string): Buffer => createHash('sha256').update(s).digest();

export class TokenStore {
  private readonly file: string;
  private readonly lockFile: string;

  constructor(private readonly dataDir: string) {
    this.file = path.join(dataDir, TOKENS_FILE);
    this.lockFile = `${this.file}.lock`;
  }

  /** A new single-use token valid for `ttlMs`; the secret is returned here and never again. */
  create(ttlMs: number, now = new Date()): CreatedToken {
    if (!Number.isSafeInteger(ttlMs) || ttlMs <= 0) throw invalidArgument('token ttl must be positive');
    const id = randomBytes(4).toString('hex');
    const secret = randomBytes(24).toString('base64url');
    const expiresAt = new Date(now.getTime() + ttlMs);
    this.update((file) => {
      if (file.tokens.some((t) => t.id === id)) throw new PalisadeError('PALISADE_ERR_INTERNAL', 'token id collision, try again');
      file.tokens.push({ id, secretSha256: sha256(secret).toString('hex'), createdAt: now.toISOString(), expiresAt: expiresAt.toISOString() });
    }, now);
    return { token: `plt_${id}.${secret}`, id, expiresAt };
  }

  /** Would `token` be accepted now? Changes nothing. */
  check(token: string, now = new Date()): TokenVerdict {
    if (!parseToken(token)) return { ok: false, reason: 'malformed token' };
    return verdict(this.read(), token, now);
  }

  /** Accept `token` for `node` and mark it used, atomically with respect to other consumers. */
  consume(token: string, node: string, now = new Date()): TokenVerdict {
    let result: TokenVerdict = { ok: false, reason: 'unknown token' };
    this.update((file) => {
      result = verdict(file, token, now);
      if (!result.ok) return false;
      const stored = file.tokens.find((t) => t.id === result.id);
      if (stored) {
        stored.usedAt = now.toISOString();
        stored.usedBy = node;
      }
      return true;
    }, now);
    return result;
  }

  private read(): TokensFile {
    let text: string;
    try {
      text = readFileSync(this.file, 'utf8');
    } catch (err) {
      if (errorCode(err) === 'ENOENT') return { version: 1, tokens: [] };
      throw new PalisadeError('PALISADE_ERR_DATA_DIR', `cannot read ${this.file}: ${(err as Error).message}`, { cause: err });
    }
    try {
      const parsed = JSON.parse(text) as TokensFile;
      if (parsed?.version !== 1 || !Array.isArray(parsed.tokens)) throw new Error('unexpected shape');
      return parsed;
    } catch (err) {
      throw new PalisadeError('PALISADE_ERR_DATA_DIR', `${this.file} is not a tokens file: ${(err as Error).message}`, { cause: err });
    }
  }

  /** Read-modify-write under the lock; `change` returning false skips the write. */
  private update(change: (file: TokensFile) => boolean | void, now: Date): void {
    mkdirSync(this.dataDir, { recursive: true, mode: 0o700 });
    this.lock();
    try {
      const file = this.read();
      if (change(file) === false) return;
      file.tokens = file.tokens.filter((t) => !forgettable(t, now));
      writeFileAtomic(this.file, `${JSON.stringify(file, null, 2)}\n`, 0o600);
    } finally {
      this.unlock();
    }
  }

  private lock(): void {
    const deadline = Date.now() + LOCK_WAIT_MS;
    for (;;) {
      try {
        closeSync(openSync(this.lockFile, 'wx', 0o600));
        return;
      } catch (err) {
        if (errorCode(err) !== 'EEXIST') {
          throw new PalisadeError('PALISADE_ERR_DATA_DIR', `cannot lock ${this.file}: ${(err as Error).message}`, { cause: err });
        }
      }
      if (this.lockIsStale()) {
        this.unlock();
        continue;
      }
      if (Date.now() >= deadline) throw new PalisadeError('PALISADE_ERR_DATA_DIR', `${this.lockFile} is held by another process`);
      Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 10);
    }
  }

  private lockIsStale(): boolean {
    try {
      return Date.now() - statSync(this.lockFile).mtimeMs > LOCK_STALE_MS;
    } catch {
      return false;
    }
  }

  private unlock(): void {
    try {
      unlinkSync(this.lockFile);
    } catch {
      // gone already
    }
  }
}

function verdict(file: TokensFile, token: string, now: Date): TokenVerdict {
  const parsed = parseToken(token);
  if (!parsed) return { ok: false, reason: 'malformed token' };
  const stored = file.tokens.find((t) => t.id === parsed.id);
  if (!stored) return { ok: false, id: parsed.id, reason: 'unknown token' };
  const want = Buffer.from(stored.secretSha256, 'hex');
  const got = sha256(parsed.secret);
  if (want.length !== got.length || !timingSafeEqual(want, got)) return { ok: false, id: parsed.id, reason: 'wrong token secret' };
  if (stored.usedAt) return { ok: false, id: parsed.id, reason: 'token already used' };
  if (now.getTime() >= Date.parse(stored.expiresAt)) return { ok: false, id: parsed.id, reason: 'token expired' };
  return { ok: true, id: parsed.id };
}

function forgettable(t: StoredToken, now: Date): boolean {
  const endedAt = Math.min(Date.parse(t.expiresAt), t.usedAt ? Date.parse(t.usedAt) : Infinity);
  return now.getTime() - endedAt > FORGET_AFTER_MS;
}
