import type { FlowVerdict } from '../../common/flow';

/**
 * The proxy itself ended a live connection — a policy change now denies it, or the drain deadline
 * of a stopping agent came — and the connection's flow record says so: streams are destroyed with
 * this error, and whoever records the flow takes its outcome (see endOutcome in proxy-flow.ts).
 */
export class ProxyClosure extends Error {
  /** errorCode() of it: the reason */
  readonly code: string;
  constructor(readonly outcome: { verdict: FlowVerdict; reason: string; policy?: string; rule?: number }) {
    super(`closed by the proxy: ${outcome.reason}`);
    this.code = outcome.reason;
  }
}
