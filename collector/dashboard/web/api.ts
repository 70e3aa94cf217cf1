/**
 * The page's calls to the collector: same origin, the session cookie sent by the browser, JSON
 * both ways. A 401 means the session ended: the page then says so (the login link is single use).
 */
import { DASHBOARD_API, TICKET_FRAGMENT } from '../../../common/dashboard-api';

export class SessionEnded extends Error {}

export class ApiError extends Error {
  constructor(
    readonly status: number,
    message: string,
    readonly problems: string[] = [],
  ) {
    super(message);
  }
}

async function answer<T>(res: Response): Promise<T> {
  if (res.status === 401) throw new SessionEnded('the dashboard session ended: run palisade dashboard for a new link');
  const text = await res.text();
  let body: unknown;
  try {
    body = text === '' ? undefined : JSON.parse(text);
  } catch {
    throw new ApiError(res.status, `unexpected answer (${res.status})`);
  }
  if (!res.ok) {
    const e = (body as { error?: { message?: string }; problems?: string[] } | undefined) ?? {};
    throw new ApiError(res.status, e.error?.message ?? `request failed (${res.status})`, e.problems ?? []);
  }
  return body as T;
}

export async function get<T>(path: string, params: Record<string, string | number | undefined> = {}): Promise<T> {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) if (v !== undefined && v !== '') q.set(k, String(v));
  const qs = q.toString();
  return answer<T>(await fetch(qs ? `${path}?${qs}` : path, { credentials: 'same-origin', cache: 'no-store' }));
}

export async function post<T>(path: string, body: unknown): Promise<T> {
  return answer<T>(await fetch(path, { method: 'POST', credentials: 'same-origin', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) }));
}

/** `/v1/…` of the control API, through the dashboard's session. */
export const control = (route: string): string => `${DASHBOARD_API.control}${route.replace(/^\/v1\//, '')}`;

/**
 * Log in with the ticket in the URL fragment, if there is one, and take it out of the address
 * bar and history. Resolves once the session cookie is set (or at once without a ticket).
 */
export async function loginFromFragment(): Promise<void> {
  const m = new RegExp(`(?:^#|&)${TICKET_FRAGMENT}=([A-Za-z0-9_-]+)`).exec(location.hash);
  if (!m) return;
  history.replaceState(null, '', location.pathname);
  await post(DASHBOARD_API.session, { ticket: m[1] });
}

export async function logout(): Promise<void> {
  await post(DASHBOARD_API.logout, {});
}
