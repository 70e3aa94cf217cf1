/**
 * Admission: what happens to a new connection to a local pod, decided before anything is
 * accepted. A pure function over plain data (the request and the compiled policies in force),
 * table-tested; DestinationAuthz acts on it the same way for the outbound (same node) and the
 * inbound (HBONE) listener.
 */
import { authorize, type AuthzRequest, type AuthzVerdict, type PolicyIndex } from '../../common/policy';

export type Admission =
  /** refused now: nothing reaches the pod */
  | { kind: 'deny'; verdict: AuthzVerdict }
  /** allowed at L4: connect to the pod and splice */
  | { kind: 'tcp'; verdict: AuthzVerdict }
  /** a policy needs HTTP attributes: accept, look at the bytes, decide per request */
  | { kind: 'http' };

export function admission(request: AuthzRequest, policies: PolicyIndex): Admission {
  if (policies.needsHttp(request.destination.workload)) return { kind: 'http' };
  const verdict = authorize(request, policies, 'tcp');
  return verdict.allowed ? { kind: 'tcp', verdict } : { kind: 'deny', verdict };
}
