/**
 * The agent keeps palisade-cni in the node's CNI chain: when the network plugin rewrites its
 * configuration without it (real files, real inotify), the entry `palisade cni install` wrote is put
 * back within the debounce; a new configuration that the runtime would now use gets it too; a chain
 * that never had it, or a file that does not parse, is reported once and left alone.
 */
import { strict as assert } from 'node:assert';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { CniChainKeeper } from '../../../../agent/cni/chain-keeper';
import { withPalisade, type PalisadeCniEntry } from '../../../../agent/cni/conflist';
import { waitFor } from '../../../harness/wait';
import { LogCapture } from '../../collector/helpers';

const ENTRY: PalisadeCniEntry = { type: 'palisade-cni', agentSocket: '/run/palisade/cni.sock', timeoutMs: 3000, excludeNamespaces: ['kube-system'] };
const network = (name: string): string => `${JSON.stringify({ cniVersion: '1.0.0', name, plugins: [{ type: 'bridge', bridge: 'cni0' }, { type: 'portmap' }] }, null, 2)}\n`;
const types = (file: string): string[] => (JSON.parse(fs.readFileSync(file, 'utf8')) as { plugins: Array<{ type: string }> }).plugins.map((p) => p.type);

describe('CniChainKeeper (real files, inotify)', function () {
  let dir: string;
  let keeper: CniChainKeeper | undefined;
  let logs: LogCapture;
  beforeEach(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'chain-keeper-'));
    logs = new LogCapture();
  });
  afterEach(() => {
    keeper?.stop();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  const install = (name: string): void => fs.writeFileSync(path.join(dir, name), withPalisade({ name, text: network('pods') }, ENTRY).text);

  it('puts palisade-cni back when the network plugin rewrites its file, and into a file that now comes first', async function () {
    install('10-calico.conflist');
    keeper = new CniChainKeeper({ confDir: dir, log: logs.logger, debounceMs: 20 });
    const file = path.join(dir, '10-calico.conflist');
    fs.writeFileSync(file, network('pods')); // the plugin's upgrade rewrites it
    await waitFor(() => types(file).includes('palisade-cni'), 3000, { what: 'entry put back' });
    assert.deepEqual(types(file), ['bridge', 'portmap', 'palisade-cni']);
    assert.deepEqual((JSON.parse(fs.readFileSync(file, 'utf8')) as { plugins: unknown[] }).plugins[2], ENTRY, 'the entry install wrote, unchanged');
    assert.ok(logs.lines.some((l) => l.event === 'cni-chain-restored'));

    fs.writeFileSync(path.join(dir, '05-cilium.conflist'), network('cilium')); // sorts first: the runtime now uses it
    await waitFor(() => types(path.join(dir, '05-cilium.conflist')).includes('palisade-cni'), 3000, { what: 'entry in the new first file' });
    assert.equal(keeper.restored, 2);
    assert.deepEqual(fs.readdirSync(dir).sort(), ['05-cilium.conflist', '10-calico.conflist'], 'no temp file left');
  });

  it('never invents an entry: a chain without one, or a file that does not parse, is reported once and left as it is', async function () {
    fs.writeFileSync(path.join(dir, '10-pods.conflist'), network('pods'));
    keeper = new CniChainKeeper({ confDir: dir, log: logs.logger, debounceMs: 20 });
    fs.appendFileSync(path.join(dir, '10-pods.conflist'), '\n');
    await new Promise((r) => setTimeout(r, 300));
    assert.deepEqual(types(path.join(dir, '10-pods.conflist')), ['bridge', 'portmap']);
    const notInChain = logs.lines.filter((l) => typeof l.msg === 'string' && l.msg.startsWith('palisade-cni is not in '));
    assert.equal(notInChain.length, 1, 'said once');
    keeper.stop();

    install('10-pods.conflist');
    keeper = new CniChainKeeper({ confDir: dir, log: logs.logger, debounceMs: 20 });
    fs.writeFileSync(path.join(dir, '10-pods.conflist'), '{"cniVersion": ');
    await waitFor(() => logs.lines.some((l) => typeof l.msg === 'string' && l.msg.includes('not valid JSON')), 3000, { what: 'the bad file reported' });
    assert.equal(fs.readFileSync(path.join(dir, '10-pods.conflist'), 'utf8'), '{"cniVersion": ', 'left alone');
    assert.equal(keeper.restored, 0);
  });
});
