import { strict as assert } from 'node:assert';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { parseToken, TokenStore } from '../../../collector/tokens';
import { PalisadeError } from '../../../common/errors';
import { TempDirs } from './helpers';

const A = { node: 'node-a', scopes: [] };

describe('collector: join token store', () => {
  const dirs = new TempDirs();
  let dir: string;
  let store: TokenStore;

  beforeEach(() => {
    dir = dirs.make();
    store = new TokenStore(dir);
  });
  afterEach(() => dirs.cleanup());

  describe('parseToken', () => {
    it('reads plt_<8 hex>.<32 base64url>', () => {
      assert.deepEqual(parseToken(`plt_0123abcd.${'a-_Z'.repeat(8)}`), { id: '0123abcd', secret: 'a-_Z'.repeat(8) });
    });
    for (const bad of ['', 'plt_0123abcd', `plt_0123ABCD.${'a'.repeat(32)}`, `plt_0123abc.${'a'.repeat(32)}`, `plt_0123abcd.${'a'.repeat(31)}`, `plt_0123abcd.${'a'.repeat(31)}=`, ` plt_0123abcd.${'a'.repeat(32)}`, `xyz_0123abcd.${'a'.repeat(32)}`]) {
      it(`refuses ${JSON.stringify(bad)}`, () => assert.equal(parseToken(bad), undefined));
    }
  });

  it('accepts a token once, then says it was used (persisted across instances)', () => {
    const { token, id } = store.create(A, 60_000);
    const binding = { node: 'node-a', scopes: ['*/*'] };
    assert.deepEqual(store.check(token), { ok: true, id, binding });
    assert.deepEqual(store.consume(token, 'node-a'), { ok: true, id, binding });
    assert.deepEqual(new TokenStore(dir).consume(token, 'node-b'), { ok: false, id, reason: 'token already used' });
    const stored = JSON.parse(fs.readFileSync(path.join(dir, 'tokens.json'), 'utf8')) as { tokens: Array<{ usedBy?: string }> };
    assert.equal(stored.tokens[0].usedBy, 'node-a');
  });

  it('binds a token to its node, range and scope: another node is refused and the token stays usable', () => {
    const { token, id } = store.create({ node: 'node-a', nodeCidr: '10.0.1.0/24', scopes: ['default/web'] }, 60_000);
    assert.deepEqual(store.consume(token, 'node-b'), { ok: false, id, reason: 'token is for node node-a, not node-b' });
    assert.deepEqual(store.consume(token, 'node-a'), { ok: true, id, binding: { node: 'node-a', nodeCidr: '10.0.1.0/24', scopes: ['default/web'] } });
  });

  it('refuses a token made before tokens were bound to nodes, saying how to make one', () => {
    const { token } = store.create(A, 60_000);
    const file = path.join(dir, 'tokens.json');
    const stored = JSON.parse(fs.readFileSync(file, 'utf8')) as { tokens: Array<Record<string, unknown>> };
    delete stored.tokens[0]!.node;
    delete stored.tokens[0]!.scopes;
    fs.writeFileSync(file, JSON.stringify(stored));
    assert.match(JSON.stringify(store.consume(token, 'node-a')), /token is not bound to a node: create a new one with palisade collector token create --node NAME/);
  });

  it('refuses an expired token and forgets it a week later', () => {
    const long = Date.now() - 8 * 86_400_000;
    const { token } = store.create(A, 1_000, new Date(long));
    assert.equal(store.check(token).ok, false);
    assert.match(JSON.stringify(store.check(token)), /token expired/);
    store.create(A, 60_000); // any write prunes
    assert.match(JSON.stringify(store.check(token)), /unknown token/);
  });

  it('keeps every token when creates race with consumes', () => {
    const made = Array.from({ length: 20 }, () => store.create(A, 60_000));
    for (const t of made.slice(0, 10)) assert.equal(new TokenStore(dir).consume(t.token, 'node-a').ok, true);
    for (const t of made.slice(10)) assert.equal(new TokenStore(dir).check(t.token).ok, true);
    assert.ok(!fs.existsSync(path.join(dir, 'tokens.json.lock')), 'the lock is released');
  });

  it('takes over a lock left by a crashed process', () => {
    const lock = path.join(dir, 'tokens.json.lock');
    fs.writeFileSync(lock, '');
    const old = new Date(Date.now() - 60_000);
    fs.utimesSync(lock, old, old);
    assert.equal(store.check(store.create(A, 60_000).token).ok, true);
  });

  it('reports a damaged tokens file in one line', () => {
    fs.writeFileSync(path.join(dir, 'tokens.json'), '{"version": 9}');
    assert.throws(
      () => store.check(`plt_0123abcd.${'a'.repeat(32)}`),
      (e: unknown) => e instanceof PalisadeError && e.code === 'PALISADE_ERR_DATA_DIR' && /is not a tokens file/.test(e.message),
    );
  });
});
