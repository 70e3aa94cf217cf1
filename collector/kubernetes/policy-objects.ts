/**
 * Policy objects of the Kubernetes API as policy files (pure, table-tested): an Istio
 * AuthorizationPolicy (security.istio.io v1 or v1beta1), a Palisade EgressPolicy or FaultInjection
 * (palisade.dev/v1), a Gateway API HTTPRoute or GRPCRoute (gateway.networking.k8s.io/v1), or an Istio DestinationRule (networking.istio.io v1 or v1beta1) becomes the YAML document a user would have applied — apiVersion, kind, name, namespace, labels,
 * annotations (but kubectl's last-applied copy), spec — named `<Kind> <namespace>/<name>`, so the
 * policy parser checks it exactly as it checks a file and every problem reads
 * `AuthorizationPolicy shop/deny-admin:<line>: <what>`.
 *
 * A route is the mesh's only where it is attached to a Service (GAMMA): one whose parentRefs name
 * only Gateways belongs to the cluster's gateway controller and is left alone (`meshRouteOf`), not
 * refused; of a route attached to both, only its Service parents are read.
 */
import { stringify } from 'yaml';
import type { PolicyFile } from '../../common/policy-files';

export interface PolicyResource {
  kind: 'AuthorizationPolicy' | 'EgressPolicy' | 'HTTPRoute' | 'GRPCRoute' | 'FaultInjection' | 'DestinationRule';
  group: string;
  /** Versions to watch, in order of preference: the first one the API serves is watched. */
  versions: readonly string[];
  plural: string;
}

export const POLICY_RESOURCES: readonly PolicyResource[] = [
  { kind: 'AuthorizationPolicy', group: 'security.istio.io', versions: ['v1', 'v1beta1'], plural: 'authorizationpolicies' },
  { kind: 'EgressPolicy', group: 'palisade.dev', versions: ['v1'], plural: 'egresspolicies' },
  // Traffic (issue #18): the Gateway API's CRDs are the cluster's own; FaultInjection is ours.
  { kind: 'HTTPRoute', group: 'gateway.networking.k8s.io', versions: ['v1'], plural: 'httproutes' },
  { kind: 'GRPCRoute', group: 'gateway.networking.k8s.io', versions: ['v1'], plural: 'grpcroutes' },
  { kind: 'FaultInjection', group: 'palisade.dev', versions: ['v1'], plural: 'faultinjections' },
  // Istio's, its trafficPolicy only (common/routes/parse-destination-rule.ts)
  { kind: 'DestinationRule', group: 'networking.istio.io', versions: ['v1', 'v1beta1'], plural: 'destinationrules' },
];

/** Our own kinds: the collector writes their status (Accepted condition); others' status is their controllers'. */
export function ownsStatus(resource: PolicyResource): boolean {
  return resource.group === 'palisade.dev';
}

/** What the API gives for a custom object (the fields read here). */
export interface PolicyObject {
  apiVersion?: string;
  kind?: string;
  metadata?: { name?: string; namespace?: string; uid?: string; generation?: number; resourceVersion?: string; labels?: Record<string, string>; annotations?: Record<string, string> };
  spec?: unknown;
}

/** A parentRef naming a Service (kind Service, group "" or core): the mesh's. */
function isServiceParent(p: unknown): boolean {
  if (typeof p !== 'object' || p === null) return false;
  const { kind, group } = p as { kind?: unknown; group?: unknown };
  return kind === 'Service' && (group === undefined || group === '' || group === 'core');
}

/**
 * What the mesh reads of an object: a policy kind as it is; a route with only its Service
 * parentRefs, or undefined when it has none (a gateway's route: not the mesh's, so not refused).
 * parentRefs that are not a list are left for the policy parser to refuse.
 */
export function meshRouteOf(o: PolicyObject, resource: PolicyResource): PolicyObject | undefined {
  if (!isRoute(resource)) return o;
  const spec = o.spec as { parentRefs?: unknown } | undefined;
  const refs = spec?.parentRefs;
  if (refs !== undefined && !Array.isArray(refs)) return o;
  const services = (refs ?? []).filter(isServiceParent);
  if (services.length === 0) return undefined;
  return services.length === refs!.length ? o : { ...o, spec: { ...spec, parentRefs: services } };
}

const LAST_APPLIED = 'kubectl.kubernetes.io/last-applied-configuration';
/**
 * On an object a collector wrote (`policy apply`, `egress allow|deny` in Kubernetes mode): who
 * applied it, through which replica. It marks the object as the collector API's (changed and
 * deleted through any replica); not part of the policy (left out of its file, like kubectl's copy).
 */
export const APPLIED_BY = 'palisade.dev/applied-by';
const NOT_POLICY = new Set([LAST_APPLIED, APPLIED_BY]);

/** `<Kind> <namespace>/<name>`: the object's name in problems and in the policy store. */
export function policySourceOf(kind: string, namespace: string, name: string): string {
  return `${kind} ${namespace}/${name}`;
}

/** The object as a policy file, or undefined when it lacks a name or namespace (never from a real API). */
export function policyFileOf(o: PolicyObject, resource: PolicyResource): PolicyFile | undefined {
  const m = o.metadata;
  if (!m?.name || !m.namespace) return undefined;
  const annotations = Object.fromEntries(Object.entries(m.annotations ?? {}).filter(([k]) => !NOT_POLICY.has(k)));
  const doc = {
    apiVersion: o.apiVersion ?? `${resource.group}/${resource.versions[0]}`,
    kind: o.kind ?? resource.kind,
    metadata: {
      name: m.name,
      namespace: m.namespace,
      ...(m.labels && Object.keys(m.labels).length > 0 ? { labels: m.labels } : {}),
      ...(Object.keys(annotations).length > 0 ? { annotations } : {}),
    },
    ...(o.spec === undefined ? {} : { spec: o.spec }),
  };
  return { source: policySourceOf(resource.kind, m.namespace, m.name), text: stringify(doc, { lineWidth: 0 }) };
}

/** Whether the object was written through a collector's API (it carries APPLIED_BY). */
export function appliedThroughCollector(o: PolicyObject | undefined): boolean {
  return typeof o?.metadata?.annotations?.[APPLIED_BY] === 'string';
}

/**
 * The inverse of `policyFileOf`: a policy as the parser keeps it (its manifest: apiVersion, kind,
 * metadata, spec) as the object to write at `apiVersion` (the version the cluster serves; both
 * versions of a kind share one schema), marked APPLIED_BY `appliedBy`. With `existing` (the object
 * as the API has it: an update) its metadata stays — the resourceVersion the update is made at,
 * uid, finalizers, kubectl's last-applied copy — but labels and annotations are the policy's; a
 * route keeps the parentRefs naming no Service (a gateway's, which the mesh never read).
 * policyFileOf(policyObjectOf(m)) reads back as m, but for apiVersion (tested).
 */
export function policyObjectOf(
  manifest: Readonly<Record<string, unknown>>,
  resource: PolicyResource,
  apiVersion: string,
  appliedBy: string,
  existing?: PolicyObject,
): PolicyObject & Record<string, unknown> {
  const m = (manifest.metadata ?? {}) as Record<string, unknown> & { annotations?: Record<string, string> };
  const kept = existing?.metadata?.annotations?.[LAST_APPLIED];
  const annotations = { ...(m.annotations ?? {}), ...(kept === undefined ? {} : { [LAST_APPLIED]: kept }), [APPLIED_BY]: appliedBy };
  const { labels: _l, annotations: _a, ...existingMeta } = existing?.metadata ?? {};
  const { status: _s, ...rest } = manifest as Record<string, unknown>;
  const object: PolicyObject & Record<string, unknown> = { ...rest, apiVersion, kind: resource.kind, metadata: { ...existingMeta, ...m, annotations } };
  const before = existing && isRoute(resource) ? (existing.spec as { parentRefs?: unknown } | undefined)?.parentRefs : undefined;
  const gatewayParents = Array.isArray(before) ? before.filter((p) => !isServiceParent(p)) : [];
  if (gatewayParents.length > 0) {
    const spec = (object.spec ?? {}) as { parentRefs?: unknown[] };
    object.spec = { ...spec, parentRefs: [...(spec.parentRefs ?? []), ...gatewayParents] };
  }
  return object;
}

const isRoute = (r: PolicyResource): boolean => r.kind === 'HTTPRoute' || r.kind === 'GRPCRoute';
