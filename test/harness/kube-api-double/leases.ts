/**
 * Part of the Kubernetes API double (./index.ts): coordination.k8s.io/v1 Leases, with the rules
 * of the API server that lease holders rely on (pkg/apis/coordination/validation and the lease
 * strategy): an update must carry the resourceVersion it read (Leases allow no unconditional
 * update: 422 without one, 409 with a stale one), `spec.leaseDurationSeconds` is positive,
 * `spec.leaseTransitions` not negative, and `acquireTime` / `renewTime` are MicroTimes — RFC 3339
 * with exactly six fractional digits, else the body cannot be decoded (400).
 */
import type { ResourceType } from './resources';
import { ApiError } from './store';

export const LEASE_TYPE: ResourceType = {
  group: 'coordination.k8s.io',
  versions: ['v1'],
  resource: 'leases',
  kind: 'Lease',
  namespaced: true,
  status: false,
  fields: [],
  custom: false,
  requireResourceVersion: true,
  check: checkLease,
};

const MICRO_TIME = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{6}(Z|[+-]\d{2}:\d{2})$/;

function checkLease(obj: Record<string, unknown>): void {
  const spec = obj.spec;
  if (spec === undefined) return;
  if (typeof spec !== 'object' || spec === null || Array.isArray(spec)) throw new ApiError(400, 'BadRequest', 'Lease in version "v1" cannot be handled as a Lease: spec must be an object');
  const s = spec as Record<string, unknown>;
  for (const field of ['acquireTime', 'renewTime']) {
    const v = s[field];
    if (v === undefined || v === null) continue;
    if (typeof v !== 'string' || !MICRO_TIME.test(v) || Number.isNaN(Date.parse(v))) {
      throw new ApiError(400, 'BadRequest', `Lease in version "v1" cannot be handled as a Lease: parsing time ${JSON.stringify(v)} as "2006-01-02T15:04:05.000000Z07:00": cannot parse`);
    }
  }
  const name = String((obj.metadata as { name?: unknown } | undefined)?.name ?? '');
  const duration = s.leaseDurationSeconds;
  if (duration !== undefined && duration !== null && (!Number.isInteger(duration) || (duration as number) <= 0)) {
    throw new ApiError(422, 'Invalid', `Lease.coordination.k8s.io "${name}" is invalid: spec.leaseDurationSeconds: Invalid value: ${JSON.stringify(duration)}: must be greater than 0`);
  }
  const transitions = s.leaseTransitions;
  if (transitions !== undefined && transitions !== null && (!Number.isInteger(transitions) || (transitions as number) < 0)) {
    throw new ApiError(422, 'Invalid', `Lease.coordination.k8s.io "${name}" is invalid: spec.leaseTransitions: Invalid value: ${JSON.stringify(transitions)}: must be greater than or equal to 0`);
  }
  if (s.holderIdentity !== undefined && s.holderIdentity !== null && typeof s.holderIdentity !== 'string') {
    throw new ApiError(400, 'BadRequest', 'Lease in version "v1" cannot be handled as a Lease: spec.holderIdentity must be a string');
  }
}
