import { strict as assert } from 'node:assert';
import { PalisadeError } from '../../../common/errors';
import { isDnsLabel, isObjectName, isObjectRef, isTrustDomain, parseSpiffeId, spiffeId } from '../../../common/identity';

describe('identity', () => {
  describe('spiffeId', () => {
    it('builds spiffe://<td>/ns/<ns>/sa/<sa>', () => {
      assert.equal(spiffeId('cluster.local', 'default', 'web'), 'spiffe://cluster.local/ns/default/sa/web');
      assert.equal(spiffeId('prod_1.example-org', 'ns-1', 'a'), 'spiffe://prod_1.example-org/ns/ns-1/sa/a');
    });

    const bad: [string, string, string][] = [
      ['Cluster.local', 'default', 'web'],
      ['', 'default', 'web'],
      ['cluster.local/x', 'default', 'web'],
      ['cluster.local', 'de/fault', 'web'],
      ['cluster.local', 'default', '..'],
      ['cluster.local', 'default', ''],
      ['cluster.local', 'Default', 'web'],
      ['cluster.local', 'default', 'web?x=1'],
    ];
    for (const [td, ns, sa] of bad) {
      it(`refuses to build from ${JSON.stringify([td, ns, sa])}`, () => {
        assert.throws(
          () => spiffeId(td, ns, sa),
          (err: unknown) => err instanceof PalisadeError && err.code === 'PALISADE_ERR_INVALID_ARGUMENT',
        );
      });
    }
  });

  describe('parseSpiffeId', () => {
    const good: [string, { trustDomain: string; namespace: string; serviceAccount: string }][] = [
      ['spiffe://cluster.local/ns/default/sa/web', { trustDomain: 'cluster.local', namespace: 'default', serviceAccount: 'web' }],
      ['spiffe://a/ns/b/sa/c', { trustDomain: 'a', namespace: 'b', serviceAccount: 'c' }],
      ['spiffe://x_y-z.1/ns/0/sa/a-0', { trustDomain: 'x_y-z.1', namespace: '0', serviceAccount: 'a-0' }],
      [`spiffe://td/ns/${'a'.repeat(63)}/sa/b`, { trustDomain: 'td', namespace: 'a'.repeat(63), serviceAccount: 'b' }],
    ];
    for (const [uri, parts] of good) {
      it(`parses ${uri.length > 60 ? `${uri.slice(0, 57)}...` : uri}`, () => assert.deepEqual(parseSpiffeId(uri), parts));
    }

    it('round-trips what spiffeId builds', () => {
      assert.deepEqual(parseSpiffeId(spiffeId('example.org', 'prod', 'api')), {
        trustDomain: 'example.org',
        namespace: 'prod',
        serviceAccount: 'api',
      });
    });

    const hostile: [string, string][] = [
      ['empty', ''],
      ['scheme only', 'spiffe://'],
      ['uppercase scheme', 'SPIFFE://cluster.local/ns/default/sa/web'],
      ['other scheme', 'https://cluster.local/ns/default/sa/web'],
      ['single slash', 'spiffe:/cluster.local/ns/default/sa/web'],
      ['no authority', 'spiffe:///ns/default/sa/web'],
      ['leading space', ' spiffe://cluster.local/ns/default/sa/web'],
      ['trailing space', 'spiffe://cluster.local/ns/default/sa/web '],
      ['trailing newline', 'spiffe://cluster.local/ns/default/sa/web\n'],
      ['embedded NUL', 'spiffe://cluster.local/ns/default/sa/web\0'],
      ['port', 'spiffe://cluster.local:443/ns/default/sa/web'],
      ['userinfo', 'spiffe://user@cluster.local/ns/default/sa/web'],
      ['userinfo with password', 'spiffe://user:pw@cluster.local/ns/default/sa/web'],
      ['IPv6 literal', 'spiffe://[::1]/ns/default/sa/web'],
      ['uppercase trust domain', 'spiffe://Cluster.local/ns/default/sa/web'],
      ['percent-encoded trust domain', 'spiffe://cluster%2elocal/ns/default/sa/web'],
      ['query', 'spiffe://cluster.local/ns/default/sa/web?x=1'],
      ['empty query', 'spiffe://cluster.local/ns/default/sa/web?'],
      ['fragment', 'spiffe://cluster.local/ns/default/sa/web#frag'],
      ['query in trust domain', 'spiffe://cluster.local?/ns/default/sa/web'],
      ['trailing slash', 'spiffe://cluster.local/ns/default/sa/web/'],
      ['extra segment', 'spiffe://cluster.local/ns/default/sa/web/extra'],
      ['missing sa', 'spiffe://cluster.local/ns/default'],
      ['missing path', 'spiffe://cluster.local'],
      ['root path', 'spiffe://cluster.local/'],
      ['swapped keywords', 'spiffe://cluster.local/sa/web/ns/default'],
      ['uppercase keyword', 'spiffe://cluster.local/NS/default/sa/web'],
      ['empty namespace', 'spiffe://cluster.local/ns//sa/web'],
      ['empty service account', 'spiffe://cluster.local/ns/default/sa/'],
      ['double slash', 'spiffe://cluster.local//ns/default/sa/web'],
      ['dot segment', 'spiffe://cluster.local/ns/./sa/web'],
      ['dot-dot segment', 'spiffe://cluster.local/ns/../sa/web'],
      ['dot-dot traversal', 'spiffe://cluster.local/ns/default/sa/web/../../ns/kube-system/sa/admin'],
      ['percent-encoded slash', 'spiffe://cluster.local/ns/default%2Fsa/sa/web'],
      ['percent-encoded letter', 'spiffe://cluster.local/ns/%64efault/sa/web'],
      ['backslash', 'spiffe://cluster.local/ns/default\\sa/sa/web'],
      ['semicolon params', 'spiffe://cluster.local/ns/default;x=1/sa/web'],
      ['uppercase namespace', 'spiffe://cluster.local/ns/Default/sa/web'],
      ['underscore service account', 'spiffe://cluster.local/ns/default/sa/my_sa'],
      ['dotted service account', 'spiffe://cluster.local/ns/default/sa/web.x'],
      ['namespace ending in dash', 'spiffe://cluster.local/ns/default-/sa/web'],
      ['64-character namespace', `spiffe://cluster.local/ns/${'a'.repeat(64)}/sa/web`],
      ['256-character trust domain', `spiffe://${'a'.repeat(256)}/ns/default/sa/web`],
      ['over 2048 characters', `spiffe://${'a'.repeat(2040)}/ns/a/sa/b`],
      ['unicode lookalike', 'spiffe://cluster.local/ns/dеfault/sa/web'], // Cyrillic 'е'
      ['fullwidth slash', 'spiffe://cluster.local/ns/default／sa/web'],
      ['tab', 'spiffe://cluster.local/ns/default/sa/we\tb'],
    ];
    for (const [name, uri] of hostile) {
      it(`rejects ${name}`, () => assert.equal(parseSpiffeId(uri), undefined));
    }

    it('rejects non-strings without throwing', () => {
      for (const value of [undefined, null, 42, {}, ['spiffe://a/ns/b/sa/c']]) {
        assert.equal(parseSpiffeId(value as unknown as string), undefined);
      }
    });
  });

  describe('isTrustDomain / isDnsLabel', () => {
    const cases: [string, boolean, boolean][] = [
      // value, trust domain?, DNS label?
      ['cluster.local', true, false],
      ['web-1', true, true],
      ['a_b', true, false],
      ['-a', true, false],
      ['A', false, false],
      ['', false, false],
      ['a b', false, false],
      ['a'.repeat(63), true, true],
      ['a'.repeat(64), true, false],
      ['a'.repeat(256), false, false],
    ];
    for (const [value, td, label] of cases) {
      it(`${JSON.stringify(value.length > 20 ? `${value.slice(0, 5)}…(${value.length})` : value)}: trust domain ${td}, DNS label ${label}`, () => {
        assert.equal(isTrustDomain(value), td);
        assert.equal(isDnsLabel(value), label);
      });
    }
  });

  describe('isObjectName / isObjectRef', () => {
    const cases: [string, boolean, boolean, boolean][] = [
      // value, object name?, NS/NAME ref?, ref with a bare name allowed?
      ['web-1', true, false, true],
      ['web.v1', true, false, true],
      ['shop/web-canary', false, true, true],
      ['shop/web.v1', false, true, true],
      ['sh.op/web', false, false, false],
      ['shop/', false, false, false],
      ['/web', false, false, false],
      ['a/b/c', false, false, false],
      ['Web', false, false, false],
      ['web-', false, false, false],
      ['', false, false, false],
      ['a'.repeat(253), true, false, true],
      ['a'.repeat(254), false, false, false],
      [`shop/${'a'.repeat(253)}`, false, true, true],
      [`${'a'.repeat(64)}/web`, false, false, false],
    ];
    for (const [value, name, ref, refOrName] of cases) {
      it(`${JSON.stringify(value.length > 20 ? `${value.slice(0, 5)}…(${value.length})` : value)}: name ${name}, ref ${ref}, ref or name ${refOrName}`, () => {
        assert.equal(isObjectName(value), name);
        assert.equal(isObjectRef(value, { bare: false }), ref);
        assert.equal(isObjectRef(value, { bare: true }), refOrName);
      });
    }
  });
});
