/** The hardened HTTP/1.1 front of the node proxy. */
export { HttpFront } from './front';
export { DEFAULT_HTTP_LIMITS, type HttpLimits } from './limits';
export { normalizeHost, normalizeTarget, type TargetResult } from './normalize';
export type { AttemptOutcome, AttemptRefusal, Dispatch, H2cRequest, HttpDecision, HttpFrontOptions, HttpRecord, HttpSession, NormalizedRequest, UpstreamReuse, UpstreamTarget } from './types';
