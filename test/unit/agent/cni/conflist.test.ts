import { strict as assert } from 'node:assert';
import { chooseNetworkConfig, palisadeEntryOf, withoutPalisade, withPalisade, type PalisadeCniEntry } from '../../../../agent/cni/conflist';

const ENTRY: PalisadeCniEntry = { type: 'palisade-cni', agentSocket: '/run/palisade/cni.sock', timeoutMs: 3000, excludeNamespaces: ['kube-system'] };
const bridge = { type: 'bridge', bridge: 'cni0', ipam: { type: 'host-local', subnet: '10.1.0.0/24' } };
const list = (...plugins: object[]): string => JSON.stringify({ cniVersion: '1.0.0', name: 'k8s-pod-network', plugins });

describe('chooseNetworkConfig', function () {
  const cases: Array<[string[], string | undefined]> = [
    [['10-calico.conflist', '99-loopback.conf'], '10-calico.conflist'],
    [['05-cilium.conf', '10-flannel.conflist'], '05-cilium.conf'],
    [['87-podman.json', 'README', 'calico-kubeconfig'], '87-podman.json'],
    [['.10-x.conflist.tmp', '.hidden.conf'], undefined],
    [['10-x.conflist.1234.ab.tmp', '20-y.conflist'], '20-y.conflist'],
    [[], undefined],
  ];
  for (const [names, want] of cases) it(`${JSON.stringify(names)} → ${want}`, () => assert.equal(chooseNetworkConfig(names), want));
});

describe('withPalisade', function () {
  it('appends palisade-cni last in a plugin list, keeping everything else', function () {
    const e = withPalisade({ name: '10-calico.conflist', text: list(bridge, { type: 'portmap', capabilities: { portMappings: true } }) }, ENTRY);
    assert.equal(e.changed, true);
    assert.equal(e.name, '10-calico.conflist');
    const conf = JSON.parse(e.text) as { cniVersion: string; name: string; plugins: Array<{ type: string }> };
    assert.deepEqual(conf.plugins.map((p) => p.type), ['bridge', 'portmap', 'palisade-cni']);
    assert.deepEqual(conf.plugins[2], ENTRY);
    assert.deepEqual([conf.cniVersion, conf.name], ['1.0.0', 'k8s-pod-network']);
  });

  it('is idempotent: a second install changes nothing; an old entry is replaced, still last and once', function () {
    const once = withPalisade({ name: 'a.conflist', text: list(bridge) }, ENTRY);
    assert.equal(withPalisade({ name: 'a.conflist', text: once.text }, ENTRY).changed, false);
    const old = list({ ...ENTRY, timeoutMs: 1000 }, bridge);
    const again = JSON.parse(withPalisade({ name: 'a.conflist', text: old }, ENTRY).text) as { plugins: object[] };
    assert.deepEqual(again.plugins, [bridge, ENTRY]);
  });

  it('turns a single-plugin .conf into a .conflist of it and palisade-cni', function () {
    const e = withPalisade({ name: '10-bridge.conf', text: JSON.stringify({ cniVersion: '0.3.1', name: 'bridge-net', ...bridge }) }, ENTRY);
    assert.equal(e.name, '10-bridge.conflist');
    assert.equal(e.replaces, '10-bridge.conf');
    assert.deepEqual(JSON.parse(e.text), { cniVersion: '0.3.1', name: 'bridge-net', plugins: [bridge, ENTRY] });
  });

  const bad: Array<[string, string, RegExp]> = [
    ['not JSON', '{"cniVersion": ', /^10-x\.conflist: not valid JSON/],
    ['an array', '[]', /^10-x\.conflist: not a JSON object$/],
    ['no name', JSON.stringify({ cniVersion: '1.0.0', plugins: [] }), /^10-x\.conflist: has no "cniVersion" or "name"$/],
    ['plugins not a list of objects', JSON.stringify({ cniVersion: '1.0.0', name: 'n', plugins: ['bridge'] }), /^10-x\.conflist: "plugins" must be a list of objects$/],
    ['neither list nor plugin', JSON.stringify({ cniVersion: '1.0.0', name: 'n' }), /^10-x\.conflist: neither a plugin list/],
  ];
  for (const [what, text, message] of bad) {
    it(`refuses ${what} in one line`, () => assert.throws(() => withPalisade({ name: '10-x.conflist', text }, ENTRY), (err: Error & { code?: string }) => message.test(err.message) && !err.message.includes('\n') && err.code === 'PALISADE_ERR_CONFIG_INVALID'));
  }
});

describe('withoutPalisade', function () {
  it('takes palisade-cni out and leaves the rest as it was', function () {
    const installed = withPalisade({ name: 'a.conflist', text: list(bridge) }, ENTRY).text;
    const e = withoutPalisade({ name: 'a.conflist', text: installed });
    assert.equal(e.changed, true);
    assert.deepEqual(JSON.parse(e.text), JSON.parse(list(bridge)));
  });

  it('changes nothing in a configuration without it (or a single plugin)', function () {
    assert.equal(withoutPalisade({ name: 'a.conflist', text: list(bridge) }).changed, false);
    assert.equal(withoutPalisade({ name: 'a.conf', text: JSON.stringify({ cniVersion: '1.0.0', name: 'n', ...bridge }) }).changed, false);
  });
});

describe('palisadeEntryOf', function () {
  const cases: Array<[string, string, PalisadeCniEntry | undefined]> = [
    ['a list with it', list(bridge, ENTRY), ENTRY],
    ['a list without it', list(bridge), undefined],
    ['a single plugin', JSON.stringify({ cniVersion: '1.0.0', name: 'n', ...bridge }), undefined],
    ['not JSON', '{', undefined],
  ];
  for (const [what, text, want] of cases) it(what, () => assert.deepEqual(palisadeEntryOf({ name: 'a.conflist', text }), want));
});
