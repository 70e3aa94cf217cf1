/**
 * Workload certificates of this node's identities: a key and CSR per identity,
 * signed by the collector, renewed at half life (with jitter), the old certificate
 * kept while renewal fails, never used after it expires. One SecureContext per
 * identity, rebuilt only when its certificate changes.
 */
import { createPrivateKey, X509Certificate } from 'node:crypto';
import * as tls from 'node:tls';
import { PalisadeError, describeCause } from '../../common/errors';
import type { Logger } from '../../common/log';
import { createCsr, generateKeyPair, type KeyPair } from '../../common/pki';

/** Who signs our CSRs (the collector client). */
export interface CertificateSource {
  requestCertificate(identity: string, csrPem: string, timeoutMs?: number): Promise<{ certPem: string; caPem: string }>;
}

export interface IdentityCert {
  identity: string;
  certPem: string;
  keyPem: string;
  caPem: string;
  notBefore: Date;
  notAfter: Date;
  /** When we received it: lifetimes count from here (notBefore is backdated for clock skew). */
  receivedAt: number;
  /** TLS 1.3, this identity's key and cert, the mesh CA as the only trust anchor. */
  context: tls.SecureContext;
}

export interface IdentityManagerOptions {
  source: CertificateSource;
  log: Logger;
  /** Renew at this fraction of the lifetime (default 0.5), ± jitter. */
  renewAt?: number;
  /** Jitter as a fraction of the lifetime (default 0.1). */
  jitter?: number;
  now?: () => number;
}

interface Managed {
  identity: string;
  key: KeyPair | undefined;
  current: IdentityCert | undefined;
  timer: NodeJS.Timeout | undefined;
  failures: number;
  /** Failures since the last valid certificate expired: the backoff grows with these only. */
  failuresWithout: number;
  waiters: Array<(c: IdentityCert) => void>;
  inFlight: boolean;
}

const MIN_RETRY_MS = 500;
const MAX_RETRY_MS = 30_000;

export class IdentityManager {
  private readonly managed = new Map<string, Managed>();
  private readonly opts: Required<Omit<IdentityManagerOptions, 'log' | 'source'>> & Pick<IdentityManagerOptions, 'log' | 'source'>;
  private readonly log: Logger;
  private closed = false;
  /** Certificates issued so far (renewals included), for metrics and tests. */
  issued = 0;

  constructor(opts: IdentityManagerOptions) {
    this.opts = { renewAt: 0.5, jitter: 0.1, now: Date.now, ...opts };
    this.log = opts.log.child({ component: 'identity' });
  }

  /** Manage exactly these identities (start new ones now, forget the rest). */
  retain(identities: Iterable<string>): void {
    const want = new Set(identities);
    for (const [id, m] of this.managed) {
      if (!want.has(id)) {
        if (m.timer) clearTimeout(m.timer);
        this.managed.delete(id);
      }
    }
    for (const id of want) {
      if (this.managed.has(id)) continue;
      const m: Managed = { identity: id, key: undefined, current: undefined, timer: undefined, failures: 0, failuresWithout: 0, waiters: [], inFlight: false };
      this.managed.set(id, m);
      void this.refresh(m);
    }
  }

  /** The identity's certificate if it is valid right now; never an expired one. */
  get(identity: string): IdentityCert | undefined {
    const c = this.managed.get(identity)?.current;
    if (!c) return undefined;
    const now = this.opts.now();
    return now >= c.notBefore.getTime() - 60_000 && now < c.notAfter.getTime() ? c : undefined;
  }

  /** Resolves with a valid certificate (waiting for the first one if needed). */
  ready(identity: string, timeoutMs = 15_000): Promise<IdentityCert> {
    const m = this.managed.get(identity);
    if (!m) return Promise.reject(new PalisadeError('PALISADE_ERR_NOT_FOUND', `identity ${identity} is not managed`));
    const have = this.get(identity);
    if (have) return Promise.resolve(have);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(
        () => reject(new PalisadeError('PALISADE_ERR_IDENTITY', `no certificate for ${identity} after ${timeoutMs} ms`)),
        timeoutMs,
      );
      m.waiters.push((c) => {
        clearTimeout(timer);
        resolve(c);
      });
    });
  }

  identities(): Array<{ identity: string; notAfter: Date | undefined; valid: boolean }> {
    return [...this.managed.values()].map((m) => ({
      identity: m.identity,
      notAfter: m.current?.notAfter,
      valid: this.get(m.identity) !== undefined,
    }));
  }

  close(): void {
    this.closed = true;
    for (const m of this.managed.values()) if (m.timer) clearTimeout(m.timer);
    this.managed.clear();
  }

  private async refresh(m: Managed): Promise<void> {
    if (this.closed || m.inFlight || this.managed.get(m.identity) !== m) return;
    m.inFlight = true;
    m.timer = undefined;
    try {
      // A fresh key per certificate: a renewal never reuses the old key.
      const key = await generateKeyPair();
      const csr = createCsr(key, { commonName: m.identity, uri: m.identity });
      const { certPem, caPem } = await this.opts.source.requestCertificate(m.identity, csr);
      const x = new X509Certificate(certPem);
      if (!x.checkPrivateKey(createPrivateKey(key.privateKeyPem))) {
        throw new PalisadeError('PALISADE_ERR_IDENTITY', 'issued certificate does not match our key');
      }
      if (!(x.subjectAltName ?? '').split(', ').includes(`URI:${m.identity}`)) {
        throw new PalisadeError('PALISADE_ERR_IDENTITY', `issued certificate does not name ${m.identity}`);
      }
      const cert: IdentityCert = {
        identity: m.identity,
        certPem,
        keyPem: key.privateKeyPem,
        caPem,
        notBefore: new Date(x.validFrom),
        notAfter: new Date(x.validTo),
        receivedAt: this.opts.now(),
        context: tls.createSecureContext({ key: key.privateKeyPem, cert: certPem, ca: caPem, minVersion: 'TLSv1.3' }),
      };
      if (this.closed || this.managed.get(m.identity) !== m) return;
      m.key = key;
      m.current = cert;
      m.failures = 0;
      m.failuresWithout = 0;
      this.issued += 1;
      this.log.info({ identity: m.identity, notAfter: cert.notAfter.toISOString() }, 'workload certificate issued');
      for (const w of m.waiters.splice(0)) w(cert);
      this.schedule(m, this.renewDelay(cert));
    } catch (err) {
      m.failures += 1;
      const valid = this.get(m.identity);
      const remaining = valid ? valid.notAfter.getTime() - this.opts.now() : 0;
      // While the old certificate is valid, retry at a quarter of what is left; once it has
      // expired, back off from the minimum again (retries made in time must not delay the
      // first attempts without a certificate, when every second counts).
      if (!valid) m.failuresWithout += 1;
      const delay = valid
        ? Math.max(MIN_RETRY_MS, Math.min(MAX_RETRY_MS, remaining / 4))
        : Math.min(MAX_RETRY_MS, MIN_RETRY_MS * 2 ** Math.min(m.failuresWithout - 1, 10));
      this.log.warn(
        { identity: m.identity, failures: m.failures, retryMs: Math.round(delay), keepingOld: valid !== undefined, reason: describeCause(err) },
        'certificate request failed',
      );
      this.schedule(m, delay);
    } finally {
      m.inFlight = false;
    }
  }

  private renewDelay(c: IdentityCert): number {
    const start = Math.max(c.notBefore.getTime(), c.receivedAt);
    const life = c.notAfter.getTime() - start;
    const jitter = (Math.random() * 2 - 1) * this.opts.jitter * life;
    const at = start + life * this.opts.renewAt + jitter;
    return Math.max(MIN_RETRY_MS, at - this.opts.now());
  }

  private schedule(m: Managed, delayMs: number): void {
    if (this.closed) return;
    m.timer = setTimeout(() => void this.refresh(m), delayMs);
    m.timer.unref();
  }
}
