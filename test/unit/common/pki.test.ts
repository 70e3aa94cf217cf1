import { strict as assert } from 'node:assert';
import forge from 'node-forge';
import { PalisadeError } from '../../../common/errors';
import {
  createCsr,
  generateKeyPair,
  nodeSpiffeId,
  parseNodeSpiffeId,
  parseSubjectAltName,
  readCsr,
  spiffeIdOfCert,
  type KeyPair,
} from '../../../common/pki';

const TD = 'cluster.local';
const WEB = 'spiffe://cluster.local/ns/default/sa/web';

/** A certificate with whatever URI SANs a test needs, self-signed by forge (not by our CA). */
function certWithUris(key: KeyPair, uris: string[]): string {
  const cert = forge.pki.createCertificate();
  cert.publicKey = forge.pki.publicKeyFromPem(key.publicKeyPem);
  cert.serialNumber = '01';
  cert.validity.notBefore = new Date(Date.now() - 60_000);
  cert.validity.notAfter = new Date(Date.now() + 3_600_000);
  cert.setSubject([{ name: 'commonName', value: 'x' }]);
  cert.setIssuer([{ name: 'commonName', value: 'x' }]);
  cert.setExtensions([{ name: 'subjectAltName', altNames: uris.map((value) => ({ type: 6, value })) }]);
  cert.sign(forge.pki.privateKeyFromPem(key.privateKeyPem), forge.md.sha256.create());
  return forge.pki.certificateToPem(cert);
}

const refusedWith = (code: string, re: RegExp) => (err: unknown) =>
  err instanceof PalisadeError && err.code === code && re.test(err.message) && !err.message.includes('\n');

describe('pki', () => {
  let key: KeyPair;

  before(async () => {
    key = await generateKeyPair();
  });

  describe('generateKeyPair', () => {
    it('makes an RSA-2048 key pair in PEM', () => {
      assert.match(key.privateKeyPem, /^-----BEGIN PRIVATE KEY-----/);
      assert.match(key.publicKeyPem, /^-----BEGIN PUBLIC KEY-----/);
      assert.equal(forge.pki.publicKeyFromPem(key.publicKeyPem).n.bitLength(), 2048);
    });
  });

  describe('createCsr / readCsr', () => {
    it('round-trips CN and URI SAN and verifies the signature', () => {
      const info = readCsr(createCsr(key, { commonName: 'web', uri: WEB }));
      assert.equal(info.commonName, 'web');
      assert.deepEqual(info.uris, [WEB]);
      assert.equal(info.publicKeyPem.replace(/\r/g, ''), key.publicKeyPem);
    });

    it('refuses a CSR whose signature does not verify', () => {
      const pem = createCsr(key, { commonName: 'web', uri: WEB });
      const der = Buffer.from(pem.replace(/-----[A-Z ]+-----|\s/g, ''), 'base64');
      der[der.length - 1] ^= 0x01; // the last byte of the signature
      const tampered = `-----BEGIN CERTIFICATE REQUEST-----\n${der.toString('base64')}\n-----END CERTIFICATE REQUEST-----\n`;
      assert.throws(() => readCsr(tampered), refusedWith('PALISADE_ERR_CSR_REFUSED', /signature/));
    });

    for (const [what, text] of [
      ['garbage', 'hello'],
      ['a certificate instead of a CSR', '-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n'],
      ['a truncated CSR', '-----BEGIN CERTIFICATE REQUEST-----\nMIIB\n-----END CERTIFICATE REQUEST-----\n'],
    ]) {
      it(`refuses ${what}`, () => assert.throws(() => readCsr(text), refusedWith('PALISADE_ERR_CSR_REFUSED', /CSR/)));
    }
  });

  describe('spiffeIdOfCert', () => {
    it('reads a workload or node ID in the one URI SAN', () => {
      assert.equal(spiffeIdOfCert(certWithUris(key, [WEB])), WEB);
      assert.equal(spiffeIdOfCert(certWithUris(key, ['spiffe://td/palisade/node/n1'])), 'spiffe://td/palisade/node/n1');
    });
    const cases: [string, string[]][] = [
      ['two URI SANs', [WEB, 'spiffe://cluster.local/ns/default/sa/other']],
      ['no URI SAN', []],
      ['a non-SPIFFE URI', ['https://cluster.local/ns/default/sa/web']],
      ['a SPIFFE ID of another shape', ['spiffe://cluster.local/ns/default']],
      ['a URI with a comma trick', ['spiffe://cluster.local/ns/a/sa/b, URI:spiffe://x/ns/y/sa/z']],
    ];
    for (const [what, uris] of cases) {
      it(`is undefined for ${what}`, () => assert.equal(spiffeIdOfCert(certWithUris(key, uris)), undefined));
    }
    it('is undefined for something that is not a certificate', () => assert.equal(spiffeIdOfCert('nope'), undefined));
  });

  describe('parseSubjectAltName', () => {
    it('reads quoted and plain values exactly', () => {
      assert.deepEqual(parseSubjectAltName('URI:"spiffe://a/ns/b\\u002cURI:x/sa/c", DNS:a.b, IP Address:127.0.0.1'), [
        { type: 'URI', value: 'spiffe://a/ns/b,URI:x/sa/c' },
        { type: 'DNS', value: 'a.b' },
        { type: 'IP Address', value: '127.0.0.1' },
      ]);
      assert.deepEqual(parseSubjectAltName(''), []);
    });
  });

  describe('nodeSpiffeId / parseNodeSpiffeId', () => {
    it('round-trips', () => {
      assert.equal(nodeSpiffeId('cluster.local', 'node-a'), 'spiffe://cluster.local/palisade/node/node-a');
      assert.deepEqual(parseNodeSpiffeId('spiffe://cluster.local/palisade/node/node-a'), { trustDomain: 'cluster.local', node: 'node-a' });
    });
    for (const bad of [
      'spiffe://cluster.local/palisade/node/',
      'spiffe://cluster.local/palisade/node/a/b',
      'spiffe://cluster.local/palisade/node/Node',
      'spiffe://cluster.local/palisade/nodes/a',
      'spiffe://Cluster/palisade/node/a',
      'spiffe://cluster.local/ns/default/sa/web',
      'spiffe://cluster.local/palisade/node/a?x',
      'SPIFFE://cluster.local/palisade/node/a',
    ]) {
      it(`parseNodeSpiffeId refuses ${bad}`, () => assert.equal(parseNodeSpiffeId(bad), undefined));
    }
    it('nodeSpiffeId refuses a bad node name', () => assert.throws(() => nodeSpiffeId(TD, 'a/b'), PalisadeError));
  });
});
