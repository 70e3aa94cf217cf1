import { strict as assert } from 'node:assert';
import { jsonPatch, mergePatch, PatchError } from '../../harness/kube-api-double/patch';
import { matchesFields, matchesLabels, parseFieldSelector, parseLabelSelector, SelectorError } from '../../harness/kube-api-double/selectors';

describe('Kubernetes API double: selectors and patches', () => {
  describe('label selectors', () => {
    const labels = { app: 'web', tier: 'front', 'palisade.dev/mesh': 'enabled' };
    const cases: [string, boolean][] = [
      ['', true],
      ['app=web', true],
      ['app==web', true],
      ['app=db', false],
      ['app!=db', true],
      ['app!=web', false],
      ['missing!=x', true],
      ['app in (web,db)', true],
      ['app in (db, cache)', false],
      ['app notin (db,cache)', true],
      ['missing notin (a)', true],
      ['app notin (web)', false],
      ['palisade.dev/mesh', true],
      ['missing', false],
      ['!missing', true],
      ['!app', false],
      ['app=web,tier in (front,back),!canary', true],
      ['app=web,tier=back', false],
      ['app = web', true],
      ['app=', false],
    ];
    for (const [selector, expected] of cases) {
      it(`"${selector}" ${expected ? 'selects' : 'does not select'} ${JSON.stringify(labels)}`, () => {
        assert.equal(matchesLabels(parseLabelSelector(selector), labels), expected);
      });
    }
    it('an empty value selects an empty label', () => assert.equal(matchesLabels(parseLabelSelector('app='), { app: '' }), true));
    for (const bad of ['app in web', 'app=web,,tier=x', 'Bad Key=x', 'app=not valid', 'app=a/b', '-x=y']) {
      it(`refuses "${bad}"`, () => assert.throws(() => parseLabelSelector(bad), SelectorError));
    }
  });

  describe('field selectors', () => {
    const pod = { metadata: { name: 'web-1', namespace: 'shop' }, spec: { nodeName: 'node-1', hostNetwork: false }, status: { phase: 'Running' } };
    const fields = ['metadata.name', 'metadata.namespace', 'spec.nodeName', 'spec.hostNetwork', 'status.phase'];
    const cases: [string, boolean][] = [
      ['spec.nodeName=node-1', true],
      ['spec.nodeName==node-1', true],
      ['spec.nodeName=node-2', false],
      ['spec.nodeName!=node-2', true],
      ['metadata.name=web-1,metadata.namespace=shop', true],
      ['metadata.namespace=other', false],
      ['spec.hostNetwork=false', true],
      ['status.phase!=Succeeded,status.phase!=Failed', true],
    ];
    for (const [selector, expected] of cases) {
      it(`"${selector}" ${expected ? 'selects' : 'does not select'} the pod`, () => assert.equal(matchesFields(parseFieldSelector(selector, fields), pod), expected));
    }
    it('a field the object does not set is ""', () => {
      assert.equal(matchesFields(parseFieldSelector('spec.nodeName=', fields), { metadata: { name: 'x' } }), true);
    });
    it('refuses a field the resource does not support, as the API does', () => {
      assert.throws(() => parseFieldSelector('spec.containers=x', fields), /field label not supported: spec.containers/);
      assert.throws(() => parseFieldSelector('nodeName', fields), SelectorError);
    });
  });

  describe('merge patch (RFC 7386)', () => {
    it('merges objects, replaces lists and scalars, deletes on null', () => {
      const target = { a: 'b', c: { d: 'e', f: 'g' }, list: [1, 2] };
      assert.deepEqual(mergePatch(target, { a: 'z', c: { f: null, h: 1 }, list: [3] }), { a: 'z', c: { d: 'e', h: 1 }, list: [3] });
      assert.deepEqual(target, { a: 'b', c: { d: 'e', f: 'g' }, list: [1, 2] }, 'target untouched');
    });
  });

  describe('JSON patch (RFC 6902)', () => {
    const doc = { metadata: { labels: { app: 'web' } }, spec: { ports: [80, 443] } };
    const cases: [string, unknown[], unknown][] = [
      ['add a member', [{ op: 'add', path: '/metadata/labels/tier', value: 'front' }], { metadata: { labels: { app: 'web', tier: 'front' } }, spec: { ports: [80, 443] } }],
      ['add to a list end', [{ op: 'add', path: '/spec/ports/-', value: 8080 }], { ...doc, spec: { ports: [80, 443, 8080] } }],
      ['insert in a list', [{ op: 'add', path: '/spec/ports/0', value: 22 }], { ...doc, spec: { ports: [22, 80, 443] } }],
      ['remove', [{ op: 'remove', path: '/metadata/labels/app' }], { metadata: { labels: {} }, spec: { ports: [80, 443] } }],
      ['replace', [{ op: 'replace', path: '/spec/ports/1', value: 8443 }], { ...doc, spec: { ports: [80, 8443] } }],
      ['a ~1-escaped key', [{ op: 'add', path: '/metadata/labels/palisade.dev~1mesh', value: 'enabled' }], { metadata: { labels: { app: 'web', 'palisade.dev/mesh': 'enabled' } }, spec: { ports: [80, 443] } }],
      ['move', [{ op: 'move', from: '/metadata/labels/app', path: '/metadata/labels/name' }], { metadata: { labels: { name: 'web' } }, spec: { ports: [80, 443] } }],
      ['copy', [{ op: 'copy', from: '/spec/ports/0', path: '/spec/ports/-' }], { ...doc, spec: { ports: [80, 443, 80] } }],
      ['a passing test', [{ op: 'test', path: '/metadata/labels', value: { app: 'web' } }], doc],
    ];
    for (const [what, ops, expected] of cases) {
      it(what, () => assert.deepEqual(jsonPatch(doc, ops), expected));
    }
    const failing: [string, unknown][] = [
      ['a failing test', [{ op: 'test', path: '/metadata/labels/app', value: 'db' }]],
      ['removing what is not there', [{ op: 'remove', path: '/metadata/annotations' }]],
      ['a path through nothing', [{ op: 'add', path: '/status/phase/x', value: 1 }]],
      ['an index out of range', [{ op: 'replace', path: '/spec/ports/5', value: 1 }]],
      ['an unknown operation', [{ op: 'merge', path: '/spec', value: {} }]],
      ['a patch that is not a list', { op: 'add' }],
    ];
    for (const [what, ops] of failing) {
      it(`fails whole on ${what}`, () => assert.throws(() => jsonPatch(doc, ops), PatchError));
    }
  });
});
