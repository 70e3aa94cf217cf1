import { strict as assert } from 'node:assert';
import { ANY_SCOPE, describeScopes, inNodeRange, parseNodeCidr, parseScope, parseScopes, scopeAllows } from '../../../../collector/nodes/node-binding';
import { PalisadeError } from '../../../../common/errors';

const invalid = (re: RegExp) => (e: unknown) => e instanceof PalisadeError && e.code === 'PALISADE_ERR_INVALID_ARGUMENT' && re.test(e.message) && !e.message.includes('\n');

describe('node binding', () => {
  describe('parseScope', () => {
    for (const ok of ['default/web', 'default/*', '*/*', 'kube-system/coredns']) {
      it(`accepts ${ok}`, () => assert.equal(parseScope(ok), ok));
    }
    for (const bad of ['default', '*/web', 'default/', '/web', 'Default/web', 'default/web/x', 'default/w*', '*', '']) {
      it(`refuses ${JSON.stringify(bad)} in one line`, () => assert.throws(() => parseScope(bad), invalid(/^invalid --scope .*: use namespace\/serviceaccount or namespace\/\*/)));
    }
  });

  describe('parseScopes', () => {
    const table: Array<[string[], string[]]> = [
      [[], [ANY_SCOPE]],
      [['prod/api', 'default/*', 'prod/api'], ['default/*', 'prod/api']],
      [['default/web', '*/*'], [ANY_SCOPE]],
    ];
    for (const [given, want] of table) it(`${JSON.stringify(given)} → ${JSON.stringify(want)}`, () => assert.deepEqual(parseScopes(given), want));
  });

  describe('parseNodeCidr', () => {
    const table: Array<[string, string | RegExp]> = [
      ['10.0.1.0/24', '10.0.1.0/24'],
      ['10.0.1.7', '10.0.1.7/32'],
      ['10.0.1.1/24', /host bits set \(did you mean 10\.0\.1\.0\/24\?\)/],
      ['fd00::/64', /pod addresses are IPv4/],
      ['0.0.0.0/0', /wider than any node's pods/],
      ['ten', /is not an IP address or CIDR/],
    ];
    for (const [text, want] of table) {
      it(`${text} → ${String(want)}`, () => {
        if (typeof want === 'string') assert.equal(parseNodeCidr(text), want);
        else assert.throws(() => parseNodeCidr(text), invalid(want));
      });
    }
  });

  describe('scopeAllows', () => {
    const table: Array<[string[], string, string, boolean]> = [
      [[ANY_SCOPE], 'kube-system', 'anything', true],
      [['default/*'], 'default', 'client', true],
      [['default/*'], 'prod', 'client', false],
      [['default/web'], 'default', 'web', true],
      [['default/web'], 'default', 'client', false],
      [['default/web', 'prod/*'], 'prod', 'db', true],
      [[], 'default', 'web', false],
    ];
    for (const [scopes, ns, sa, want] of table) it(`${JSON.stringify(scopes)} ${ns}/${sa} → ${want}`, () => assert.equal(scopeAllows(scopes, ns, sa), want));
  });

  describe('inNodeRange', () => {
    const table: Array<[string | undefined, string, boolean]> = [
      [undefined, '8.8.8.8', true],
      ['10.0.1.0/24', '10.0.1.200', true],
      ['10.0.1.0/24', '10.0.2.1', false],
      ['10.0.1.0/24', '8.8.8.8', false],
      ['10.0.1.7/32', '10.0.1.7', true],
    ];
    for (const [cidr, ip, want] of table) it(`${cidr ?? 'no range'} ∋ ${ip} → ${want}`, () => assert.equal(inNodeRange(cidr, ip), want));
  });

  it('describeScopes says "any namespace" for */*', () => {
    assert.equal(describeScopes([ANY_SCOPE]), 'any namespace');
    assert.equal(describeScopes(['default/*', 'prod/api']), 'default/*, prod/api');
  });
});
