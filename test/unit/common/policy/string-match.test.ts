import { strict as assert } from 'node:assert';
import {
  hostMatcher,
  hostPortStart,
  parseWildcard,
  pathMatcher,
  pathProblem,
  principalMatcher,
  stringMatcher,
  wildcardProblem,
} from '../../../../common/policy/string-match';

const matcher = (values: string[]): ((v: string) => boolean) => stringMatcher(values.map(parseWildcard));

describe('policy string matching', () => {
  describe('wildcardProblem', () => {
    for (const v of ['abc', '*', 'abc*', '*abc', '/info*', '*/info', '*.example.com']) {
      it(`accepts ${JSON.stringify(v)}`, () => assert.equal(wildcardProblem(v), undefined));
    }
    for (const v of ['a*b', '**', '*a*', 'a**', '*ab*', 'a*b*']) {
      it(`rejects ${JSON.stringify(v)}`, () => assert.match(wildcardProblem(v) ?? '', /^bad wildcard/));
    }
  });

  describe('stringMatcher (Istio Rule: exact, prefix, suffix, presence)', () => {
    const rows: [string[], string, boolean][] = [
      [['abc'], 'abc', true],
      [['abc'], 'abcd', false],
      [['abc*'], 'abc', true],
      [['abc*'], 'abcd', true],
      [['abc*'], 'xabc', false],
      [['*abc'], 'abc', true],
      [['*abc'], 'xabc', true],
      [['*abc'], 'abcx', false],
      [['*'], 'x', true],
      [['*'], '', false],
      [['a', 'b', 'c', 'd', 'e', 'f'], 'f', true],
      [['a', 'b', 'c', 'd', 'e', 'f'], 'g', false],
      [['x', 'p*', '*s'], 'pq', true],
    ];
    for (const [values, value, expected] of rows) {
      it(`${JSON.stringify(values)} ${expected ? 'matches' : 'does not match'} ${JSON.stringify(value)}`, () => {
        assert.equal(matcher(values)(value), expected);
      });
    }
  });

  describe('principalMatcher (values without spiffe://, matched against the SPIFFE ID)', () => {
    const rows: [string, string, boolean][] = [
      ['cluster.local/ns/a/sa/b', 'spiffe://cluster.local/ns/a/sa/b', true],
      ['cluster.local/ns/a/sa/b', 'cluster.local/ns/a/sa/b', false],
      ['cluster.local/ns/a/*', 'spiffe://cluster.local/ns/a/sa/b', true],
      ['*/sa/b', 'spiffe://cluster.local/ns/a/sa/b', true],
      ['*', 'spiffe://x', true],
      ['*', '', false],
    ];
    for (const [value, id, expected] of rows) {
      it(`${value} ${expected ? 'matches' : 'does not match'} ${JSON.stringify(id)}`, () => {
        assert.equal(principalMatcher([parseWildcard(value)])(id), expected);
      });
    }
  });

  describe('hostPortStart', () => {
    const rows: [string, number][] = [
      ['example.com', 11],
      ['example.com:8080', 11],
      ['example.com:', 12],
      ['[::1]:80', 5],
      ['[::1]', 5],
      ['::1', 3],
      ['example.com:abc', 15],
    ];
    for (const [host, at] of rows) it(`finds the port of ${host} at ${at}`, () => assert.equal(hostPortStart(host), at));
  });

  describe('hostMatcher (case-insensitive, port-agnostic)', () => {
    const rows: [string, string, boolean][] = [
      ['example.com', 'example.com', true],
      ['example.com', 'example.com:443', true],
      ['Example.COM', 'example.com', true],
      ['example.com', 'example.com.evil:443', false],
      ['example.com:443', 'example.com:443', true],
      ['example.com:443', 'example.com', false],
      ['example.com:*', 'example.com:8443', true],
      ['*.example.com', 'a.example.com:443', true],
      ['*.example.com', 'example.com', false],
      ['*:443', 'a.example.com:443', true],
      ['example.*', 'example.org:80', true],
    ];
    for (const [value, host, expected] of rows) {
      it(`${value} ${expected ? 'matches' : 'does not match'} ${host}`, () => assert.equal(hostMatcher([parseWildcard(value)])(host), expected));
    }
  });

  describe('pathProblem (Istio pkg/config/security TestCheckValidPathTemplate)', () => {
    const valid = ['/{*}/foo', '/{*}/foo/', '/foo/{**}/bar', '/foo/bar/{**}', '/{**}', '/a/{*}/{*}/b/{**}', '/x=y/{*}', '/exact', '/prefix/*', '*/suffix', '*'];
    for (const p of valid) it(`accepts ${p}`, () => assert.equal(pathProblem(p), undefined));
    const invalid = [
      '/foo/{**}buzz/bar',
      '/{*}/foo/{}/bar',
      '/foo/{*}/bar/*',
      '/foo/{*}/bar/**/buzz',
      '/foo/{buzz}/bar',
      '/{buzz}',
      '/foo/{buzz}/bar/{**}',
      '/foo/{buzz=*}/bar/{**}',
      '/{*}/foo/{buzz=**}/bar',
      '/{*}/foo/{**}bar',
      '/{*}/foo/{*}.txt',
      '/{*}/foo/{temp',
      '/{*}/foo/temp}/bar',
      '/{*}/foo/temp}/*',
      '/{**}/foo/temp/{*}/bar',
      '/{**}/{**}',
      '/{**}/foo/temp/{**}/bar',
      '/{*}/foo/?abc',
    ];
    for (const p of invalid) it(`rejects ${p}`, () => assert.notEqual(pathProblem(p), undefined));
  });

  describe('path templates (Operation.paths reference examples)', () => {
    const rows: [string, string, boolean][] = [
      ['/foo/{*}', '/foo/bar', true],
      ['/foo/{*}', '/foo/bar/baz', false],
      ['/foo/{*}', '/foo/', false],
      ['/foo/{**}/', '/foo/bar/', true],
      ['/foo/{**}/', '/foo//', true],
      ['/foo/{**}/', '/foo/bar', false],
      // The reference says this matches; Envoy's uri_template regex (/foo/[...]*/) requires the trailing "/": it does not.
      ['/foo/{**}/', '/foo/bar/baz.txt', false],
      ['/foo/{*}/bar/{**}', '/foo/buzz/bar/', true],
      ['/foo/{*}/bar/{**}', '/foo/buzz/bar/baz', true],
      ['/{**}', '/', true],
      ['/a.b/{*}', '/aXb/c', false],
      ['/admin/{**}', '/admin/a=b', true],
    ];
    for (const [template, path, expected] of rows) {
      it(`${template} ${expected ? 'matches' : 'does not match'} ${path}`, () => assert.equal(pathMatcher([template])(path), expected));
    }
  });
});
