/**
 * The request being authorized, as compiled conditions read it: the peer identity once, the
 * addresses parsed lazily into reused buffers. One context per evaluator, reset per request.
 */
import { IpAddr, parseIpInto } from './ip';
import type { AuthzRequest } from './requests';

const UNPARSED = 0;
const VALID = 1;
const INVALID = 2;

export class EvalContext {
  req!: AuthzRequest;
  /** The peer's SPIFFE ID, undefined without mTLS. */
  principal: string | undefined;
  /** The peer's namespace; only with a principal (Istio derives it from the certificate). */
  namespace: string | undefined;
  private readonly src = new IpAddr();
  private readonly dst = new IpAddr();
  private srcState = UNPARSED;
  private dstState = UNPARSED;
  /** The text last parsed into `src` / `dst`: requests of one connection repeat it, so it is parsed once. */
  private srcText: string | undefined;
  private dstText: string | undefined;

  reset(req: AuthzRequest): this {
    this.req = req;
    const principal = req.source.principal;
    this.principal = principal === '' ? undefined : principal;
    this.namespace = this.principal === undefined || req.source.namespace === '' ? undefined : req.source.namespace;
    if (req.source.ip !== this.srcText) this.srcState = UNPARSED;
    if (req.destination.ip !== this.dstText) this.dstState = UNPARSED;
    return this;
  }

  /** The source address, or undefined if it does not parse (then it matches no block). */
  sourceIp(): IpAddr | undefined {
    if (this.srcState === UNPARSED) {
      this.srcText = this.req.source.ip;
      this.srcState = parseIpInto(this.srcText, this.src, true) ? VALID : INVALID;
    }
    return this.srcState === VALID ? this.src : undefined;
  }

  destinationIp(): IpAddr | undefined {
    if (this.dstState === UNPARSED) {
      this.dstText = this.req.destination.ip;
      this.dstState = parseIpInto(this.dstText, this.dst, true) ? VALID : INVALID;
    }
    return this.dstState === VALID ? this.dst : undefined;
  }
}
