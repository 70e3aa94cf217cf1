/**
 * Dashboard logins: a single-use ticket (made for the admin by `palisade dashboard`, valid a
 * minute) is exchanged once for a session, whose id travels only in an HttpOnly, Secure,
 * SameSite=Strict cookie. Sessions end after an idle time and an absolute lifetime, and on
 * logout. Only SHA-256 digests of tickets and session ids are kept, in memory: a collector
 * restart ends every session. Both maps are bounded.
 */
import { createHash, randomBytes } from 'node:crypto';

export const DEFAULT_TICKET_TTL_MS = 60_000;
export const DEFAULT_SESSION_IDLE_MS = 30 * 60_000;
export const DEFAULT_SESSION_MAX_MS = 12 * 3_600_000;
const MAX_TICKETS = 100;
const MAX_SESSIONS = 1000;
const SECRET_RE = /^[A-Za-z0-9_-]{43}$/;

export interface SessionOptions {
  ticketTtlMs?: number;
  idleMs?: number;
  maxMs?: number;
  now?: () => number;
}

export interface Session {
  /** first 8 hex digits of the id's digest: names the session in logs, never the id */
  name: string;
  /** the admin token's name (auth.ts) of who made the ticket: the session's rights */
  owner: string;
  created: number;
  lastUsed: number;
  expires: number;
}

const digest = (s: string): string => createHash('sha256').update(s).digest('hex');

export class DashboardSessions {
  private readonly tickets = new Map<string, { owner: string; expires: number }>();
  private readonly sessions = new Map<string, Session>();
  private readonly now: () => number;
  readonly ticketTtlMs: number;
  readonly idleMs: number;
  readonly maxMs: number;

  constructor(opts: SessionOptions = {}) {
    this.now = opts.now ?? Date.now;
    this.ticketTtlMs = opts.ticketTtlMs ?? DEFAULT_TICKET_TTL_MS;
    this.idleMs = opts.idleMs ?? DEFAULT_SESSION_IDLE_MS;
    this.maxMs = opts.maxMs ?? DEFAULT_SESSION_MAX_MS;
  }

  /** A new login ticket for `owner` (the oldest outstanding one goes when there are too many). */
  ticket(owner: string): string {
    this.sweep();
    if (this.tickets.size >= MAX_TICKETS) this.tickets.delete(this.tickets.keys().next().value!);
    const ticket = randomBytes(32).toString('base64url');
    this.tickets.set(digest(ticket), { owner, expires: this.now() + this.ticketTtlMs });
    return ticket;
  }

  /** Exchange a ticket (once) for a session: its id (for the cookie) and the session; undefined if the ticket is unknown, used or expired. */
  redeem(ticket: string): { id: string; session: Session } | undefined {
    if (!SECRET_RE.test(ticket)) return undefined;
    const key = digest(ticket);
    const t = this.tickets.get(key);
    this.tickets.delete(key);
    if (!t || t.expires <= this.now()) return undefined;
    this.sweep();
    if (this.sessions.size >= MAX_SESSIONS) this.sessions.delete(this.sessions.keys().next().value!);
    const id = randomBytes(32).toString('base64url');
    const now = this.now();
    const d = digest(id);
    const session: Session = { name: d.slice(0, 8), owner: t.owner, created: now, lastUsed: now, expires: Math.min(now + this.idleMs, now + this.maxMs) };
    this.sessions.set(d, session);
    return { id, session };
  }

  /** The live session of a cookie value (its idle time restarts), or why not. */
  check(id: string | undefined): { ok: true; session: Session } | { ok: false; reason: string } {
    if (id === undefined) return { ok: false, reason: 'no session cookie' };
    if (!SECRET_RE.test(id)) return { ok: false, reason: 'malformed session cookie' };
    const key = digest(id);
    const s = this.sessions.get(key);
    if (!s) return { ok: false, reason: 'unknown or ended session' };
    const now = this.now();
    if (s.expires <= now) {
      this.sessions.delete(key);
      return { ok: false, reason: 'session expired' };
    }
    s.lastUsed = now;
    s.expires = Math.min(now + this.idleMs, s.created + this.maxMs);
    return { ok: true, session: s };
  }

  /** End the session of this cookie value (logout). */
  end(id: string): boolean {
    return SECRET_RE.test(id) && this.sessions.delete(digest(id));
  }

  get size(): number {
    return this.sessions.size;
  }

  private sweep(): void {
    const now = this.now();
    for (const [k, t] of this.tickets) if (t.expires <= now) this.tickets.delete(k);
    for (const [k, s] of this.sessions) if (s.expires <= now) this.sessions.delete(k);
  }
}

/** The value of cookie `name` in a Cookie header (the first one), or undefined. */
export function cookieValue(header: string | undefined, name: string): string | undefined {
  if (header === undefined) return undefined;
  for (const part of header.split(';')) {
    const eq = part.indexOf('=');
    if (eq < 0) continue;
    if (part.slice(0, eq).trim() === name) return part.slice(eq + 1).trim();
  }
  return undefined;
}
