import { strict as assert } from 'node:assert';
import { parseAuthority, parseForwarded, sniFor, spiffeIdOfPeer } from '../../../../agent/proxy/hbone';

describe('hbone', function () {
  describe('parseAuthority', function () {
    const good: Array<[string, { ip: string; port: number }]> = [
      ['10.0.2.10:8080', { ip: '10.0.2.10', port: 8080 }],
      ['1.2.3.4:1', { ip: '1.2.3.4', port: 1 }],
      ['255.255.255.255:65535', { ip: '255.255.255.255', port: 65535 }],
    ];
    for (const [text, want] of good) it(`accepts ${text}`, () => assert.deepEqual(parseAuthority(text), want));
    for (const bad of [undefined, '', '10.0.2.10', '10.0.2.10:0', '10.0.2.10:65536', '10.0.2.256:80', 'web:80', '[::1]:80', '10.0.2.10:80 ', ' 10.0.2.10:80', '10.0.2.10:80/x']) {
      it(`rejects ${JSON.stringify(bad)}`, () => assert.equal(parseAuthority(bad), undefined));
    }
  });

  describe('parseForwarded', function () {
    it('reads for="ip"', () => assert.equal(parseForwarded('for="10.0.1.10"'), '10.0.1.10'));
    it('reads for=ip', () => assert.equal(parseForwarded('for=10.0.1.10'), '10.0.1.10'));
    for (const bad of [undefined, ['for="10.0.1.10"'], 'for="10.0.1.10", for="10.0.1.11"', 'for="10.0.1.10:80"', 'for=_hidden', 'by=10.0.1.1']) {
      it(`rejects ${JSON.stringify(bad)}`, () => assert.equal(parseForwarded(bad as string | undefined), undefined));
    }
  });

  describe('spiffeIdOfPeer', function () {
    const id = 'spiffe://cluster.local/ns/default/sa/web';
    it('returns the single SPIFFE URI', () => assert.equal(spiffeIdOfPeer({ subjectaltname: `URI:${id}` }), id));
    it('ignores DNS names beside it', () => assert.equal(spiffeIdOfPeer({ subjectaltname: `DNS:web, URI:${id}` }), id));
    it('refuses two URIs', () => assert.equal(spiffeIdOfPeer({ subjectaltname: `URI:${id}, URI:${id}x` }), undefined));
    it('refuses a non-SPIFFE URI', () => assert.equal(spiffeIdOfPeer({ subjectaltname: 'URI:https://evil/' }), undefined));
    it('refuses a SPIFFE URI of another shape', () => assert.equal(spiffeIdOfPeer({ subjectaltname: 'URI:spiffe://cluster.local/ns/default/sa/web/extra' }), undefined));
    it('refuses no SAN', () => assert.equal(spiffeIdOfPeer({ subjectaltname: '' }), undefined));
    it('refuses no certificate', () => assert.equal(spiffeIdOfPeer(undefined), undefined));
  });

  describe('sniFor', function () {
    it('is a stable DNS name per identity', function () {
      const a = sniFor('spiffe://cluster.local/ns/default/sa/web');
      assert.equal(a, sniFor('spiffe://cluster.local/ns/default/sa/web'));
      assert.notEqual(a, sniFor('spiffe://cluster.local/ns/default/sa/client'));
      assert.match(a, /^[a-z0-9-]{1,63}(\.[a-z0-9-]{1,63})+$/);
    });
  });
});
