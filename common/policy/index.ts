/**
 * The policy model shared by agent, collector and CLI: parse and validate policy files once
 * (`compilePolicyFiles`), index them per workload (`PolicyIndex`), decide with pure functions
 * (`authorize`, `authorizeEgress`).
 */
export { authorize } from './authorize';
export { authorizeDnsName, authorizeEgress } from './egress';
export { PolicyInvalidError } from './errors';
export { METADATA_ADDRESSES } from './ip';
export { compilePolicyFiles, parseManifest, parsePolicies, type ParseOptions, type ParseResult } from './parse';
export { PolicyIndex, selectsWorkload, type WorkloadPolicies } from './policy-index';
export type { AuthzRequest, AuthzStage, AuthzVerdict, DnsNameRequest, DnsNameVerdict, EgressReason, EgressRequest, EgressVerdict, PolicyWorkload } from './requests';
export {
  allOf,
  AUTHZ_API_VERSIONS,
  DEFAULT_NAMESPACE,
  DEFAULT_ROOT_NAMESPACE,
  EGRESS_API_VERSION,
  type AuthzAction,
  type CompiledAuthorizationPolicy,
  type CompiledAuthzRule,
  type CompiledEgressPolicy,
  type CompiledEgressRule,
  type CompiledPolicy,
  type EgressDnsMode,
  type Condition,
  type PolicySet,
} from './types';
