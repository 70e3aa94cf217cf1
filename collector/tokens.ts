/**
 * Join tokens: `plt_<id>.<secret>`, id 8 hex, secret 32 base64url characters (192 random bits).
 * Each token is bound at creation to one node name, and optionally the node's pod range and a
 * scope of namespaces / service accounts (nodes/node-binding.ts): only that node can join with
 * it, and the node keeps the binding. `tokens.json` in the data directory keeps only the SHA-256
 * of each secret; it is changed under a lock (locked-json-file.ts), so the offline
 * `palisade collector token create` and a running collector can both change it. Tokens are
 * single use: a successful join marks the token used, persistently.
 */
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import { invalidArgument, PalisadeError } from '../common/errors';
import { isNodeName } from '../common/pki';
import { isRecord } from '../common/record';
import { LockedJsonFile } from './locked-json-file';
import { ANY_SCOPE, type NodeBinding } from './nodes/node-binding';

export const TOKENS_FILE = 'tokens.json';
const TOKEN_RE = /^plt_([0-9a-f]{8})\.([A-Za-z0-9_-]{32})$/;
/** Used or expired tokens are forgotten this long after they stop being usable. */
const FORGET_AFTER_MS = 7 * 86_400_000;

export interface StoredToken {
  id: string;
  secretSha256: string;
  createdAt: string;
  expiresAt: string;
  /** The node this token joins (tokens made before binding have none and are refused). */
  node?: string;
  nodeCidr?: string;
  scopes?: string[];
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
  binding: NodeBinding;
}

/** Why a token is not accepted; `reason` is safe to log and to send back (no secret in it). */
/** `unknown`: no token of that id is known here (another replica may have published it: JoinTokens.lookUp). */
export type TokenVerdict = { ok: true; id: string; binding: NodeBinding } | { ok: false; id?: string; reason: string; unknown?: true };

/** Where join tokens are checked (at upgrade) and spent (at the join): tokens.json, or the API in Kubernetes mode. */
export interface JoinTokens {
  /** Would `token` be accepted now? Changes nothing. */
  check(token: string): TokenVerdict;
  /** Spend `token` for `node`, atomically with respect to other consumers, inside the node records' join. */
  consume?(token: string, node: string): TokenVerdict;
  /** Spend it asynchronously (through the API), before the join is recorded; throws when it cannot tell. */
  spend?(token: string, node: string): Promise<TokenVerdict>;
  /** Look an unknown token up where other replicas publish theirs, so `check` knows it: whether it was found; never throws. */
  lookUp?(token: string): Promise<boolean>;
}

export function parseToken(token: string): { id: string; secret: string } | undefined {
  const m = typeof token === 'string' ? TOKEN_RE.exec(token) : null;
  return m ? { id: m[1], secret: m[2] } : undefined;
}

const sha256 = (s: string): Buffer => createHash('sha256').update(s).digest();

function checkFile(parsed: unknown): TokensFile {
  if (!isRecord(parsed) || parsed.version !== 1 || !Array.isArray(parsed.tokens)) throw new Error('unexpected shape');
  return parsed as unknown as TokensFile;
}

export class TokenStore implements JoinTokens {
  private readonly file: LockedJsonFile<TokensFile>;

  constructor(dataDir: string) {
    this.file = new LockedJsonFile(dataDir, TOKENS_FILE, { empty: () => ({ version: 1, tokens: [] }), check: checkFile, what: 'tokens' });
  }

  /**
   * A new single-use token for `binding.node`, valid for `ttlMs`; the secret is returned here
   * and never again. `binding` comes checked (node-binding.ts parses the flags).
   */
  create(binding: NodeBinding, ttlMs: number, now = new Date()): CreatedToken {
    if (!Number.isSafeInteger(ttlMs) || ttlMs <= 0) throw invalidArgument('token ttl must be positive');
    if (!isNodeName(binding.node)) throw invalidArgument(`invalid node name ${JSON.stringify(binding.node)}`);
    const scopes = binding.scopes.length === 0 ? [ANY_SCOPE] : [...binding.scopes];
    const id = randomBytes(4).toString('hex');
    const secret = randomBytes(24).toString('base64url');
    const expiresAt = new Date(now.getTime() + ttlMs);
    this.update((file) => {
      if (file.tokens.some((t) => t.id === id)) throw new PalisadeError('PALISADE_ERR_INTERNAL', 'token id collision, try again');
      file.tokens.push({
        id,
        secretSha256: sha256(secret).toString('hex'),
        createdAt: now.toISOString(),
        expiresAt: expiresAt.toISOString(),
        node: binding.node,
        ...(binding.nodeCidr === undefined ? {} : { nodeCidr: binding.nodeCidr }),
        scopes,
      });
    }, now);
    return { token: `plt_${id}.${secret}`, id, expiresAt, binding: { ...binding, scopes } };
  }

  /** Would `token` be accepted now (for its own node)? Changes nothing. */
  check(token: string, now = new Date()): TokenVerdict {
    if (!parseToken(token)) return { ok: false, reason: 'malformed token' };
    return verdict(this.file.read(), token, undefined, now);
  }

  /** Accept `token` for `node` and mark it used, atomically with respect to other consumers. */
  consume(token: string, node: string, now = new Date()): TokenVerdict {
    let result: TokenVerdict = { ok: false, reason: 'unknown token', unknown: true };
    this.update((file) => {
      result = verdict(file, token, node, now);
      if (!result.ok) return false;
      const stored = file.tokens.find((t) => t.id === (result as { id: string }).id);
      if (stored) {
        stored.usedAt = now.toISOString();
        stored.usedBy = node;
      }
      return true;
    }, now);
    return result;
  }

  /** The stored tokens (hashes, never secrets). */
  list(): StoredToken[] {
    return this.file.read().tokens;
  }

  /** Mark token `id` used (another replica spent it); false when it is not here or already marked. */
  markUsed(id: string, usedAt: string, usedBy: string, now = new Date()): boolean {
    let marked = false;
    this.update((file) => {
      const stored = file.tokens.find((t) => t.id === id);
      if (!stored || stored.usedAt) return false;
      Object.assign(stored, { usedAt, usedBy });
      marked = true;
      return true;
    }, now);
    return marked;
  }

  /** Call `onChange` (at most once a second) whenever tokens.json changes, whoever changed it. */
  watch(onChange: () => void): () => void {
    return this.file.watch(onChange);
  }

  /** Read-modify-write; used and expired tokens are forgotten a week later. */
  private update(change: (file: TokensFile) => boolean | void, now: Date): void {
    this.file.update((file) => {
      if (change(file) === false) return false;
      file.tokens = file.tokens.filter((t) => !forgettable(t, now));
      return true;
    });
  }
}

/** The token's verdict; with `node`, it must be the node the token was made for. */
function verdict(file: TokensFile, token: string, node: string | undefined, now: Date): TokenVerdict {
  const parsed = parseToken(token);
  return tokenVerdict(parsed && file.tokens.find((t) => t.id === parsed.id), token, node, now);
}

/** `token`'s verdict against `stored` (the token of its id, if any); with `node`, it must be the node the token was made for. */
export function tokenVerdict(stored: StoredToken | undefined, token: string, node: string | undefined, now: Date): TokenVerdict {
  const parsed = parseToken(token);
  if (!parsed) return { ok: false, reason: 'malformed token' };
  if (!stored || stored.id !== parsed.id) return { ok: false, id: parsed.id, reason: 'unknown token', unknown: true };
  const want = Buffer.from(stored.secretSha256, 'hex');
  const got = sha256(parsed.secret);
  if (want.length !== got.length || !timingSafeEqual(want, got)) return { ok: false, id: parsed.id, reason: 'wrong token secret' };
  if (stored.usedAt) return { ok: false, id: parsed.id, reason: 'token already used' };
  if (now.getTime() >= Date.parse(stored.expiresAt)) return { ok: false, id: parsed.id, reason: 'token expired' };
  if (stored.node === undefined) {
    return { ok: false, id: parsed.id, reason: 'token is not bound to a node: create a new one with palisade collector token create --node NAME' };
  }
  if (node !== undefined && node !== stored.node) return { ok: false, id: parsed.id, reason: `token is for node ${stored.node}, not ${node}` };
  const binding: NodeBinding = {
    node: stored.node,
    ...(stored.nodeCidr === undefined ? {} : { nodeCidr: stored.nodeCidr }),
    scopes: stored.scopes && stored.scopes.length > 0 ? stored.scopes : [ANY_SCOPE],
  };
  return { ok: true, id: parsed.id, binding };
}

export function forgettable(t: StoredToken, now: Date): boolean {
  const endedAt = Math.min(Date.parse(t.expiresAt), t.usedAt ? Date.parse(t.usedAt) : Infinity);
  return now.getTime() - endedAt > FORGET_AFTER_MS;
}
