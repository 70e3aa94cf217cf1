import { strict as assert } from 'node:assert';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { IdentityManager, type CertificateSource } from '../../../../agent/identity/manager';
import { silentLogger } from '../../../../common/log';
import { CertificateAuthority } from '../../../../collector/mesh-ca';

const ID = 'spiffe://cluster.local/ns/default/sa/web';
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** A real CA behind a switch: while `failing`, every request is refused. */
class SwitchableSource implements CertificateSource {
  failing = false;
  requests = 0;
  constructor(
    private readonly ca: CertificateAuthority,
    private readonly ttlSeconds: number,
  ) {}
  async requestCertificate(identity: string, csrPem: string): Promise<{ certPem: string; caPem: string }> {
    this.requests += 1;
    if (this.failing) throw new Error('collector unavailable');
    return { certPem: this.ca.signCsr(csrPem, { uri: identity, ttlSeconds: this.ttlSeconds, usage: 'workload' }), caPem: this.ca.certPem };
  }
}

describe('IdentityManager', function () {
  this.timeout(30_000);
  let dir: string;
  let ca: CertificateAuthority;

  before(function () {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'palisade-identity-'));
    ca = CertificateAuthority.loadOrCreate(dir, 'cluster.local');
  });
  after(() => fs.rmSync(dir, { recursive: true, force: true }));

  describe('ready', function () {
    it('obtains a certificate naming the identity, with a TLS context', async function () {
      const m = new IdentityManager({ source: new SwitchableSource(ca, 600), log: silentLogger() });
      try {
        m.retain([ID]);
        const c = await m.ready(ID);
        assert.equal(c.identity, ID);
        assert.match(c.certPem, /BEGIN CERTIFICATE/);
        assert.ok(c.context);
        assert.ok(c.notAfter.getTime() > Date.now() + 500_000);
      } finally {
        m.close();
      }
    });
  });

  describe('renewal', function () {
    it('renews at about half life with a fresh key', async function () {
      const source = new SwitchableSource(ca, 4);
      const m = new IdentityManager({ source, log: silentLogger(), jitter: 0 });
      try {
        m.retain([ID]);
        const first = await m.ready(ID);
        // Renewed before the first one expires (X.509 times have one-second precision).
        const deadline = first.notAfter.getTime() - 100;
        while (m.get(ID) === first && Date.now() < deadline) await sleep(50);
        const second = m.get(ID);
        assert.ok(second && second !== first, 'renewed before the first certificate expired');
        assert.notEqual(second.keyPem, first.keyPem);
      } finally {
        m.close();
      }
    });

    it('keeps the old certificate while renewal fails, and never uses it after expiry', async function () {
      const source = new SwitchableSource(ca, 6);
      const m = new IdentityManager({ source, log: silentLogger(), jitter: 0 });
      try {
        m.retain([ID]);
        const first = await m.ready(ID);
        source.failing = true;
        // Wait past half life (renewal attempts fail) but stay clear of expiry.
        const life = first.notAfter.getTime() - first.receivedAt;
        await sleep(Math.max(0, first.receivedAt + life * 0.75 - Date.now()));
        assert.ok(first.notAfter.getTime() - Date.now() > 500, 'the test checks before expiry');
        assert.ok(source.requests >= 2, 'it tried to renew');
        assert.equal(m.get(ID), first, 'still serving the old, valid certificate');
        await sleep(Math.max(0, first.notAfter.getTime() - Date.now()) + 300);
        assert.equal(m.get(ID), undefined, 'expired: not handed out any more');
        source.failing = false;
        const again = await m.ready(ID, 10_000);
        assert.notEqual(again, first, 'recovers once the collector answers');
      } finally {
        m.close();
      }
    });
  });

  describe('retain', function () {
    it('forgets identities no longer wanted', async function () {
      const m = new IdentityManager({ source: new SwitchableSource(ca, 600), log: silentLogger() });
      try {
        m.retain([ID]);
        await m.ready(ID);
        m.retain([]);
        assert.equal(m.get(ID), undefined);
        assert.deepEqual(m.identities(), []);
      } finally {
        m.close();
      }
    });
  });
});
