import { strict as assert } from 'node:assert';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import {
  configFilePath,
  DEFAULT_COLLECTOR_URL,
  demoConfigText,
  parseCollectorApiUrl,
  readConfigFile,
  removeDemoConfig,
  resolveApiConfig,
  writeDemoConfig,
} from '../../../cli/config';
import { isPalisadeError, type PalisadeError } from '../../../common/errors';
import { CertificateAuthority } from '../../../collector/mesh-ca';

function thrown(fn: () => unknown): PalisadeError {
  try {
    fn();
  } catch (err) {
    assert.ok(isPalisadeError(err), `not a PalisadeError: ${String(err)}`);
    return err;
  }
  assert.fail('did not throw');
}

describe('cli config', () => {
  let root = '';
  /** Two different CA files (the PEM tells which one was picked). */
  let caA = '';
  let caB = '';
  let caC = '';
  let tmp = '';

  before(() => {
    root = fs.mkdtempSync(path.join(os.tmpdir(), 'palisade-config-'));
    const ca = CertificateAuthority.loadOrCreate(path.join(root, 'ca'), 'cluster.local');
    for (const name of ['a', 'b', 'c']) fs.writeFileSync(path.join(root, `${name}.crt`), `# ${name}\n${ca.certPem}`);
    [caA, caB, caC] = ['a', 'b', 'c'].map((n) => path.join(root, `${n}.crt`)) as [string, string, string];
  });
  after(() => fs.rmSync(root, { recursive: true, force: true }));
  beforeEach(() => {
    tmp = fs.mkdtempSync(path.join(root, 't-'));
  });

  /** An env whose config file lives in this test's directory. */
  const envWith = (extra: Record<string, string> = {}): Record<string, string> => ({ XDG_CONFIG_HOME: path.join(tmp, 'xdg'), HOME: path.join(tmp, 'home'), ...extra });
  const writeConfig = (env: Record<string, string>, text: string): string => {
    const file = configFilePath(env);
    fs.mkdirSync(path.dirname(file), { recursive: true });
    fs.writeFileSync(file, text);
    return file;
  };
  const tokenFile = (name: string, token: string): string => {
    const f = path.join(tmp, name);
    fs.writeFileSync(f, `${token}\n`);
    return f;
  };
  const which = (pem: string): string => /^# (\w)/.exec(pem)?.[1] ?? '?';

  describe('configFilePath', () => {
    it('honours $XDG_CONFIG_HOME', () => {
      assert.equal(configFilePath({ XDG_CONFIG_HOME: '/x/cfg', HOME: '/home/u' }), '/x/cfg/palisade/config.yaml');
    });
    it('falls back to ~/.config, also for a relative XDG_CONFIG_HOME (invalid per the spec)', () => {
      assert.equal(configFilePath({ HOME: '/home/u' }), '/home/u/.config/palisade/config.yaml');
      assert.equal(configFilePath({ HOME: '/home/u', XDG_CONFIG_HOME: 'rel' }), '/home/u/.config/palisade/config.yaml');
    });
  });

  describe('resolveApiConfig', () => {
    it('takes each setting from the flag over the env over the file', () => {
      const env = envWith({ PALISADE_COLLECTOR: 'https://127.0.0.2:2', PALISADE_TOKEN: 'env-token', PALISADE_CA: caB });
      writeConfig(env, `collector: https://127.0.0.3:3\ntoken: file-token\nca: ${caC}\n`);
      const flags = resolveApiConfig({ collector: 'https://127.0.0.1:1', token: 'flag-token', ca: caA }, env);
      assert.deepEqual([flags.url, flags.token, which(flags.caPem), flags.caFile], ['https://127.0.0.1:1', 'flag-token', 'a', caA]);
      const fromEnv = resolveApiConfig({}, env);
      assert.deepEqual([fromEnv.url, fromEnv.token, which(fromEnv.caPem)], ['https://127.0.0.2:2', 'env-token', 'b']);
      const fromFile = resolveApiConfig({}, envWith());
      assert.deepEqual([fromFile.url, fromFile.token, which(fromFile.caPem)], ['https://127.0.0.3:3', 'file-token', 'c']);
    });

    it('decides per setting: a flag for one, the env for another, the file for the rest', () => {
      const env = envWith({ PALISADE_TOKEN: 'env-token' });
      writeConfig(env, `collector: https://127.0.0.3:3\ntoken: file-token\nca: ${caC}\n`);
      const c = resolveApiConfig({ ca: caA }, env);
      assert.deepEqual([c.url, c.token, which(c.caPem)], ['https://127.0.0.3:3', 'env-token', 'a']);
    });

    it('reads --token-file and the file\'s tokenFile (relative to the config file), trimmed', () => {
      const env = envWith();
      const file = writeConfig(env, `tokenFile: ../../tok\nca: ${caA}\n`);
      fs.writeFileSync(path.resolve(path.dirname(file), '../../tok'), 'file-token\n');
      assert.equal(resolveApiConfig({}, env).token, 'file-token');
      assert.equal(resolveApiConfig({ tokenFile: tokenFile('t', 'flag-token') }, env).token, 'flag-token');
    });

    it('resolves a relative ca in the file against the file\'s directory', () => {
      const env = envWith({ PALISADE_TOKEN: 't' });
      const file = writeConfig(env, 'ca: mesh-ca.crt\n');
      fs.copyFileSync(caB, path.join(path.dirname(file), 'mesh-ca.crt'));
      assert.equal(resolveApiConfig({}, env).caFile, path.join(path.dirname(file), 'mesh-ca.crt'));
    });

    it('defaults the URL to the collector\'s default listen address', () => {
      assert.equal(resolveApiConfig({ token: 't', ca: caA }, envWith()).url, DEFAULT_COLLECTOR_URL);
    });

    it('never reads the file when flags and env give everything (a broken file does not hide them)', () => {
      const env = envWith({ PALISADE_TOKEN: 't', PALISADE_CA: caA, PALISADE_COLLECTOR: '127.0.0.1:9' });
      writeConfig(env, 'collector: [unclosed\n');
      assert.equal(resolveApiConfig({}, env).url, 'https://127.0.0.1:9');
    });

    const failures: [string, () => void, RegExp][] = [
      ['no token anywhere', () => resolveApiConfig({ ca: caA }, envWith()), /^no collector token: pass --token-file FILE .*PALISADE_TOKEN.*config\.yaml$/],
      ['no CA anywhere', () => resolveApiConfig({ token: 't' }, envWith()), /^no mesh CA: pass --ca FILE .*PALISADE_CA.*config\.yaml$/],
      ['--token and --token-file', () => resolveApiConfig({ token: 't', tokenFile: '/x', ca: caA }, envWith()), /^give --token or --token-file, not both$/],
      ['a missing token file', () => resolveApiConfig({ tokenFile: '/nonexistent/tok', ca: caA }, envWith()), /^cannot read token file \/nonexistent\/tok \(--token-file\): ENOENT$/],
      ['an empty token file', () => resolveApiConfig({ tokenFile: tokenFile('empty', ''), ca: caA }, envWith()), /is empty$/],
      ['a token with a line break', () => resolveApiConfig({ token: 'a\r\nX-Evil: 1', ca: caA }, envWith()), /^invalid token from --token: not a token$/],
      ['a missing CA file', () => resolveApiConfig({ token: 't', ca: '/nonexistent/ca.crt' }, envWith()), /^cannot read CA file \/nonexistent\/ca\.crt \(--ca\): ENOENT$/],
      ['a CA file that is not a certificate', () => resolveApiConfig({ token: 't', ca: tokenFile('notpem', 'hello') }, envWith()), /holds no valid PEM certificate$/],
      ['an http:// collector', () => resolveApiConfig({ collector: 'http://127.0.0.1:15012', token: 't', ca: caA }, envWith()), /^invalid --collector "http:\/\/127\.0\.0\.1:15012": the collector API is HTTPS only/],
      ['a bad PALISADE_COLLECTOR', () => resolveApiConfig({ token: 't', ca: caA }, envWith({ PALISADE_COLLECTOR: 'https://h:1/v1' })), /^invalid PALISADE_COLLECTOR "https:\/\/h:1\/v1": expected https:\/\/HOST:PORT/],
    ];
    for (const [what, fn, message] of failures) {
      it(`is one line for ${what}`, () => {
        const err = thrown(fn);
        assert.match(err.message, message);
        assert.ok(!err.message.includes('\n'));
        assert.equal(err.exitCode, 2);
      });
    }
  });

  describe('readConfigFile', () => {
    it('is undefined when there is no file, and {} for an empty one', () => {
      assert.equal(readConfigFile(path.join(tmp, 'none.yaml')), undefined);
      fs.writeFileSync(path.join(tmp, 'empty.yaml'), '# nothing yet\n');
      assert.deepEqual(readConfigFile(path.join(tmp, 'empty.yaml')), {});
    });

    const malformed: [string, string, RegExp][] = [
      ['a YAML syntax error', 'collector: [unclosed\n', /^invalid config file \S+config\.yaml:2: .+/],
      ['a duplicate key', 'token: a\ntoken: b\n', /^invalid config file \S+config\.yaml:2: Map keys must be unique$/],
      ['a list instead of a mapping', '- a\n- b\n', /^invalid config file \S+config\.yaml: expected a mapping of collector, token, tokenFile, ca$/],
      ['an unknown key (a typo)', 'colector: https://x:1\n', /^invalid config file \S+config\.yaml: unknown key "colector" \(known: collector, token, tokenFile, ca\)$/],
      ['a number where a string belongs', 'token: 12345\n', /^invalid config file \S+config\.yaml: token must be a non-empty string$/],
      ['both token and tokenFile', 'token: a\ntokenFile: /b\n', /^invalid config file \S+config\.yaml: give token or tokenFile, not both$/],
    ];
    for (const [what, text, message] of malformed) {
      it(`names the file in one line for ${what}`, () => {
        const env = envWith();
        const file = writeConfig(env, text);
        const err = thrown(() => readConfigFile(file));
        assert.match(err.message, message);
        assert.ok(err.message.includes(file), err.message);
        assert.ok(!err.message.includes('\n'), JSON.stringify(err.message));
        assert.equal(err.code, 'PALISADE_ERR_CONFIG_INVALID');
        // and the same line when a command needs the file
        assert.equal(thrown(() => resolveApiConfig({}, env)).message, err.message);
      });
    }
  });

  describe('parseCollectorApiUrl', () => {
    const good: [string, string][] = [
      ['https://127.0.0.1:15012', 'https://127.0.0.1:15012'],
      ['https://127.0.0.1:15012/', 'https://127.0.0.1:15012'],
      ['127.0.0.1:15012', 'https://127.0.0.1:15012'],
      ['https://[::1]:15012', 'https://[::1]:15012'],
      ['https://collector.example:443', 'https://collector.example'],
    ];
    for (const [text, url] of good) it(`accepts ${text}`, () => assert.equal(parseCollectorApiUrl(text, '--collector'), url));
    for (const text of ['wss://127.0.0.1:15012', 'https://u:p@h:1', 'https://h:1/path', 'https://h:1?x=1', 'https://', 'not a url']) {
      it(`refuses ${JSON.stringify(text)}`, () => assert.match(thrown(() => parseCollectorApiUrl(text, '--collector')).message, /^invalid --collector /));
    }
  });

  describe('writeDemoConfig / removeDemoConfig', () => {
    const demo = (env: Record<string, string>): { collectorDir: string; listen: string; env: Record<string, string> } => ({
      collectorDir: path.join(tmp, 'demo', 'collector'),
      listen: '127.0.0.1:15012',
      env,
    });

    it('writes a 0600 file that points observe at the demo collector, and removes it on down', () => {
      const env = envWith();
      const opts = demo(env);
      fs.mkdirSync(opts.collectorDir, { recursive: true });
      fs.writeFileSync(path.join(opts.collectorDir, 'admin.token'), 'demo-admin\n');
      fs.copyFileSync(caA, path.join(opts.collectorDir, 'ca.crt'));
      assert.equal(writeDemoConfig(opts), true);
      const file = configFilePath(env);
      assert.equal(fs.statSync(file).mode & 0o777, 0o600);
      assert.deepEqual(readConfigFile(file), {
        collector: 'https://127.0.0.1:15012',
        tokenFile: path.join(opts.collectorDir, 'admin.token'),
        ca: path.join(opts.collectorDir, 'ca.crt'),
      });
      const c = resolveApiConfig({}, env);
      assert.deepEqual([c.url, c.token, c.caFile], ['https://127.0.0.1:15012', 'demo-admin', path.join(opts.collectorDir, 'ca.crt')]);
      assert.equal(removeDemoConfig(opts), true);
      assert.ok(!fs.existsSync(file));
      assert.equal(removeDemoConfig(opts), false, 'nothing left to remove');
    });

    it('leaves a user\'s own config alone on up and on down', () => {
      const env = envWith();
      const mine = 'collector: https://10.0.0.1:15012\ntokenFile: /etc/palisade/admin.token\nca: /etc/palisade/ca.crt\n';
      const file = writeConfig(env, mine);
      assert.equal(writeDemoConfig(demo(env)), false);
      assert.equal(fs.readFileSync(file, 'utf8'), mine);
      assert.equal(removeDemoConfig(demo(env)), false);
      assert.equal(fs.readFileSync(file, 'utf8'), mine);
    });

    it('keeps a demo config the user edited since (it is theirs now)', () => {
      const env = envWith();
      assert.equal(writeDemoConfig(demo(env)), true);
      const file = configFilePath(env);
      fs.appendFileSync(file, '# mine now\n');
      assert.equal(removeDemoConfig(demo(env)), false);
      assert.ok(fs.existsSync(file));
    });

    it('replaces the config of an earlier demo, and never throws when it cannot write', () => {
      const env = envWith();
      writeConfig(env, demoConfigText('/run/elsewhere/collector', '127.0.0.1:15012'));
      assert.equal(writeDemoConfig(demo(env)), true);
      assert.equal(fs.readFileSync(configFilePath(env), 'utf8'), demoConfigText(demo(env).collectorDir, '127.0.0.1:15012'));
      fs.writeFileSync(path.join(tmp, 'file'), '');
      assert.equal(writeDemoConfig(demo({ XDG_CONFIG_HOME: path.join(tmp, 'file') })), false);
    });
  });
});
