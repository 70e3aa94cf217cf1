/**
 * The dashboard's API as its three ends see it: the collector (collector/dashboard/), the page
 * (collector/dashboard/web/, type imports only) and `palisade dashboard` (the login ticket).
 * Routes, sessions and what each answer means: docs/architecture.md "The dashboard".
 */

export const DASHBOARD_BASE = '/dashboard/';

export const DASHBOARD_API = {
  /** POST, admin token only: a single-use login ticket for `palisade dashboard`. */
  ticket: '/dashboard/api/ticket',
  /** POST {ticket}: the ticket for a session cookie. DELETE-like POST to log out: logout. */
  session: '/dashboard/api/session',
  logout: '/dashboard/api/logout',
  graph: '/dashboard/api/graph',
  flows: '/dashboard/api/flows',
  workload: '/dashboard/api/workload',
  draft: '/dashboard/api/draft',
  /** GET: the page's settings (ConfigResponse). */
  config: '/dashboard/api/config',
  /** The control API (common/control-api.ts) for the session: `/dashboard/api/v1/…` → `/v1/…`. */
  control: '/dashboard/api/v1/',
} as const;

/** The session cookie: `__Host-` so it is Secure, host-only and Path=/. */
export const SESSION_COOKIE = '__Host-palisade-session';
/** The page finds its login ticket in the URL fragment (never sent to a server): `#ticket=…`. */
export const TICKET_FRAGMENT = 'ticket';

export interface TicketResponse {
  /** single use, valid for `expiresInMs` */
  ticket: string;
  expiresInMs: number;
  /** the path to open with `#ticket=<ticket>` appended */
  path: string;
}

export interface SessionResponse {
  expiresAt: string;
}

/** What the page is configured with, from the collector's options. */
export interface ConfigResponse {
  /** `--trace-url`: a URL template with `{traceId}` (common/trace-link.ts); absent: trace ids are shown unlinked */
  traceUrl?: string;
}

export type Lock = 'full' | 'partial' | 'none';

export interface GraphNode {
  /** `w:<ns>/<name>` (a workload), `ip:<address>`, `host:<name>` */
  id: string;
  /** workload: in the mesh; external: a destination outside it; address: a source the mesh does not know */
  kind: 'workload' | 'external' | 'address';
  namespace?: string;
  name: string;
  flowsIn: number;
  flowsOut: number;
  /** flows to it that were denied */
  denied: number;
}

export interface GraphEdge {
  /** `<source>-><target>`, `#denied` appended for the denied traffic of that pair */
  id: string;
  source: string;
  target: string;
  denied: boolean;
  /** to a destination outside the mesh */
  egress: boolean;
  protocols: string[];
  flows: number;
  /** HTTP requests among the flows */
  requests: number;
  /** 5xx answers and errors */
  errors: number;
  bytes: number;
  /** per second over the window */
  rps: number;
  fps?: number;
  bps: number;
  /** errors / requests (or / flows without HTTP) */
  errorRate: number;
  /** HTTP request duration, ms */
  p95Ms?: number;
  /** mTLS between nodes or node-local (never on the network, identity from the kernel) for every flow, some, none */
  lock: Lock;
  mtls: number;
  local: number;
  /** the policies that denied (denied edges) */
  policies: string[];
}

export interface GraphResponse {
  window: { since: number; until: number };
  nodes: GraphNode[];
  edges: GraphEdge[];
  /** every namespace with traffic in the window (for the filter) */
  namespaces: string[];
  /** what the cap left out: filter to see more */
  hidden: { edges: number; nodes: number };
}

/** GET graph / flows parameters (query string). */
export interface GraphParams {
  since: number;
  until: number;
  /** comma-separated */
  namespaces?: string;
  verdicts?: string;
  protocols?: string;
  workload?: string;
  limit?: number;
}

export interface WorkloadResponse {
  workload: { namespace: string; name: string; node?: string; identity?: string; labels: Record<string, string> } | null;
  /** authorization policies selecting it, in evaluation order */
  policies: Array<{ kind: string; namespace: string; name: string; action?: string }>;
  egress: import('./control-api').EgressRuleView[];
}

export interface DraftRequest {
  /** edge ids of the graph */
  edges: string[];
  since: number;
  until: number;
}

export interface DraftResponse {
  /** YAML documents, ready for policy test / apply */
  yaml: string;
  /** one line per policy drafted */
  summary: string[];
}
