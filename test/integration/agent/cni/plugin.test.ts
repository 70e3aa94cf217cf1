/**
 * The real palisade-cni binary, run the way a container runtime runs it (CNI_* environment, the
 * network configuration on stdin), against the real CNI endpoint with a fake enroller.
 */
import { strict as assert } from 'node:assert';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as path from 'node:path';
import { CniErrorCode, DEFAULT_PLUGIN_TIMEOUT_MS } from '../../../../agent/cni/protocol';
import { tempDir } from '../../../harness/agent';
import { palisadeCniPath, runPlugin, type CniSandboxSpec, type PluginRun } from '../../../harness/cni-runtime';
import { BRIDGE_RESULT, POD_UID, startEndpoint, type TestEndpoint } from '../../../harness/cni-endpoint';

const PREV_RESULT = BRIDGE_RESULT;

const SANDBOX: CniSandboxSpec = {
  containerId: 'c0ffee01',
  netns: '/var/run/netns/cni-test',
  ifName: 'eth0',
  args: { IgnoreUnknown: '1', K8S_POD_NAMESPACE: 'shop', K8S_POD_NAME: 'web-1', K8S_POD_INFRA_CONTAINER_ID: 'c0ffee01', K8S_POD_UID: POD_UID },
};

function config(socket: string, extra: Record<string, unknown> = {}): Record<string, unknown> {
  return { cniVersion: '1.0.0', name: 'palisade-test', type: 'palisade-cni', agentSocket: socket, prevResult: PREV_RESULT, ...extra };
}

function plugin(command: string, stdin: unknown, sandbox: CniSandboxSpec = SANDBOX, env: Record<string, string | undefined> = {}): Promise<PluginRun> {
  return runPlugin(palisadeCniPath(), command, sandbox, typeof stdin === 'string' ? stdin : JSON.stringify(stdin), { env });
}

/** The run failed with exactly one line: a CNI error with `code`, whose msg matches. */
function assertCniError(run: PluginRun, code: number, msg: RegExp): void {
  assert.equal(run.code, 1, `exit status 1 (stdout ${run.stdout}, stderr ${run.stderr})`);
  assert.ok(run.stdout.endsWith('\n') && !run.stdout.slice(0, -1).includes('\n'), `one line: ${JSON.stringify(run.stdout)}`);
  const err = run.json as { cniVersion?: unknown; code?: unknown; msg?: unknown };
  assert.deepEqual(Object.keys(err), ['cniVersion', 'code', 'msg']);
  assert.equal(err.code, code, String(err.msg));
  assert.match(String(err.msg), msg);
}

function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;
}

describe('palisade-cni (the plugin binary)', function () {
  this.timeout(60_000);
  let ep: TestEndpoint;
  beforeEach(async () => {
    ep = await startEndpoint();
  });
  afterEach(async () => ep.close());

  it('VERSION declares the CNI versions it speaks', async () => {
    const run = await plugin('VERSION', { cniVersion: '1.0.0' });
    assert.equal(run.code, 0);
    assert.deepEqual(run.json, { cniVersion: '1.0.0', supportedVersions: ['0.3.0', '0.3.1', '0.4.0', '1.0.0'] });
  });

  describe('with the agent up', () => {
    it('ADD: the agent gets the pod, its netns, IPs and interface; prevResult comes back unchanged', async () => {
      const run = await plugin('ADD', config(ep.socket));
      assert.equal(run.code, 0, run.stdout + run.stderr);
      assert.deepEqual(run.json, PREV_RESULT);
      assert.equal(run.stderr, '');
      const [sandbox, ...more] = ep.enroller.of('enroll');
      assert.equal(more.length, 0);
      assert.deepEqual(sandbox, {
        containerId: 'c0ffee01',
        netns: '/var/run/netns/cni-test',
        ifName: 'eth0',
        network: 'palisade-test',
        cniVersion: '1.0.0',
        pod: { namespace: 'shop', name: 'web-1', uid: POD_UID },
        ips: [{ family: 4, address: '10.22.0.5', prefixLength: 16, gateway: '10.22.0.1', interface: 'eth0' }],
        interfaces: PREV_RESULT.interfaces.map((i) => ({ sandbox: undefined, ...i })),
      });
    });

    it('ADD returns only after the agent enrolled the pod', async () => {
      ep.enroller.delayMs = 400;
      const run = await plugin('ADD', config(ep.socket));
      assert.equal(run.code, 0);
      const call = ep.enroller.calls[0]!;
      assert.ok(run.ms >= 400, `the plugin waited for enroll() (${run.ms.toFixed(0)} ms)`);
      assert.ok(call.settled !== undefined);
    });

    it('ADD passes prevResult through byte for byte (whitespace, escapes, unknown fields)', async () => {
      const prev = '{ "cniVersion" : "1.0.0",\n\t"ips": [ {"address":"10.22.0.5/16"} ],\n "x-vendor": {"note": "caf\\u00e9 \u00e9\\n"} }';
      const stdin = `{"cniVersion":"1.0.0","name":"palisade-test","type":"palisade-cni","agentSocket":${JSON.stringify(ep.socket)},"prevResult":${prev}}`;
      const run = await plugin('ADD', stdin);
      assert.equal(run.code, 0, run.stdout);
      assert.equal(run.stdout, `${prev}\n`);
    });

    it('CHECK asks the agent: ok once enrolled, code 101 when not', async () => {
      assertCniError(await plugin('CHECK', config(ep.socket)), CniErrorCode.NOT_ENROLLED, /sandbox c0ffee01 is not enrolled/);
      await plugin('ADD', config(ep.socket));
      const run = await plugin('CHECK', config(ep.socket));
      assert.equal(run.code, 0);
      assert.equal(run.stdout, '');
    });

    it('DEL asks the agent to unenroll and prints nothing', async () => {
      await plugin('ADD', config(ep.socket));
      const run = await plugin('DEL', config(ep.socket));
      assert.equal(run.code, 0);
      assert.equal(run.stdout, '');
      assert.equal(ep.enroller.of('unenroll')[0]?.containerId, 'c0ffee01');
      assert.equal(ep.enroller.enrolled.size, 0);
    });

    it('DEL without CNI_NETNS and prevResult (a runtime cleaning up) still reaches the agent', async () => {
      const { prevResult: _drop, ...bare } = config(ep.socket);
      const run = await plugin('DEL', bare, { ...SANDBOX, netns: undefined });
      assert.equal(run.code, 0, run.stderr);
      assert.equal(ep.enroller.of('unenroll')[0]?.netns, '');
    });

    it('an agent refusal is the CNI error, with the agent\'s code and reason', async () => {
      ep.enroller.failure = { ops: ['enroll'], error: new Error('pod shop/web-1 has no service account yet') };
      assertCniError(await plugin('ADD', config(ep.socket)), CniErrorCode.ENROLL_FAILED, /^pod shop\/web-1 has no service account yet$/);
    });

    it('an agent refusal in other scripts keeps its characters, cut at 512', async () => {
      ep.enroller.failure = { ops: ['enroll'], error: new Error(`pod ${'é'.repeat(300)} ${'名'.repeat(300)}`) };
      const run = await plugin('ADD', config(ep.socket));
      assertCniError(run, CniErrorCode.ENROLL_FAILED, /^pod é{300} 名{206}…$/);
    });

    it('what only the agent checks is refused by it in one line (relative netns, a host-side-only address)', async () => {
      assertCniError(await plugin('ADD', config(ep.socket), { ...SANDBOX, netns: 'netns/x' }), CniErrorCode.INVALID_ENVIRONMENT, /CNI_NETNS "netns\/x" is not a normalized absolute path/);
      const hostOnly = { ...PREV_RESULT, ips: [{ interface: 1, address: '10.22.0.1/16' }] };
      assertCniError(await plugin('ADD', config(ep.socket, { prevResult: hostOnly })), CniErrorCode.INVALID_CONFIG, /gives the pod no address/);
      assertCniError(await plugin('ADD', config(ep.socket), { ...SANDBOX, args: { K8S_POD_NAMESPACE: 'Shop', K8S_POD_NAME: 'web-1' } }), CniErrorCode.INVALID_ENVIRONMENT, /K8S_POD_NAMESPACE "Shop"/);
      assert.equal(ep.enroller.calls.length, 0);
    });

    it('errors use the configuration\'s CNI version', async () => {
      const run = await plugin('ADD', config(ep.socket, { cniVersion: '0.4.0', prevResult: undefined }));
      assert.equal((run.json as { cniVersion: string }).cniVersion, '0.4.0');
    });

    it('ADD round trip (plugin start to exit, agent answering at once)', async () => {
      const times: number[] = [];
      for (let i = 0; i < 200; i++) {
        const run = await plugin('ADD', config(ep.socket), { ...SANDBOX, containerId: `c${i}` });
        assert.equal(run.code, 0);
        times.push(run.ms);
      }
      times.sort((a, b) => a - b);
      const [p50, p99] = [percentile(times, 50), percentile(times, 99)];
      console.log(`      palisade-cni ADD round trip over ${times.length} runs: p50 ${p50.toFixed(2)} ms, p99 ${p99.toFixed(2)} ms, max ${times[times.length - 1]!.toFixed(2)} ms`);
      assert.ok(p50 < 100, `p50 ${p50} ms`);
    });
  });

  describe('with the agent down or misbehaving', () => {
    it('agent down: ADD and CHECK fail with code 11 in one line, DEL succeeds', async () => {
      await ep.server.close();
      assertCniError(await plugin('ADD', config(ep.socket)), CniErrorCode.TRY_AGAIN_LATER, /the palisade agent is not running: nothing listens on .*cni\.sock/);
      assertCniError(await plugin('CHECK', config(ep.socket)), CniErrorCode.TRY_AGAIN_LATER, /not running/);
      const del = await plugin('DEL', config(ep.socket));
      assert.equal(del.code, 0);
      assert.equal(del.stdout, '');
      assert.match(del.stderr, /^palisade-cni: DEL: the palisade agent is not running.*\(DEL succeeds anyway; the agent reconciles\)\n$/);
    });

    it(`an agent that does not answer: ADD fails after timeoutMs (default ${DEFAULT_PLUGIN_TIMEOUT_MS} ms)`, async () => {
      const dir = tempDir('cni-hung');
      const socket = path.join(dir, 'cni.sock');
      const held: net.Socket[] = [];
      const hung = net.createServer((c) => void held.push(c));
      await new Promise<void>((r) => hung.listen(socket, r));
      try {
        const run = await plugin('ADD', config(socket, { timeoutMs: 300 }));
        assertCniError(run, CniErrorCode.TRY_AGAIN_LATER, /the palisade agent did not answer within 300 ms/);
        assert.ok(run.ms >= 300 && run.ms < 1500, `gave up after ${run.ms.toFixed(0)} ms`);
        const del = await plugin('DEL', config(socket, { timeoutMs: 300 }));
        assert.equal(del.code, 0);
        const dflt = await plugin('ADD', config(socket));
        assert.ok(dflt.ms >= DEFAULT_PLUGIN_TIMEOUT_MS && dflt.ms < DEFAULT_PLUGIN_TIMEOUT_MS + 1500, `default wait ${dflt.ms.toFixed(0)} ms`);
      } finally {
        for (const c of held) c.destroy();
        hung.close();
        fs.rmSync(dir, { recursive: true, force: true });
      }
    });

    const answers: [string, string, RegExp][] = [
      ['garbage', 'not json', /answer is not a JSON object/],
      ['an answer without ok', '{"palisadeCni":1}', /answer is malformed/],
      ['a refusal with code 0', '{"palisadeCni":1,"ok":false,"code":0,"msg":"x"}', /answer is malformed/],
      ['a refusal without msg', '{"palisadeCni":1,"ok":false,"code":100}', /answer is malformed/],
      ['an answer over 4 KiB', `{"palisadeCni":1,"ok":false,"code":100,"msg":"${'x'.repeat(5000)}"}`, /answer is too large/],
    ];
    for (const [what, answer, msg] of answers) {
      it(`an agent that answers ${what}: ADD fails with code 102`, async () => {
        const dir = tempDir('cni-odd');
        const socket = path.join(dir, 'cni.sock');
        const odd = net.createServer({ allowHalfOpen: true }, (c) => {
          c.on('error', () => undefined);
          c.resume();
          c.on('end', () => c.end(answer));
        });
        await new Promise<void>((r) => odd.listen(socket, r));
        try {
          assertCniError(await plugin('ADD', config(socket)), CniErrorCode.PROTOCOL, msg);
        } finally {
          odd.close();
          fs.rmSync(dir, { recursive: true, force: true });
        }
      });
    }
  });

  describe('excluded namespaces', () => {
    it('pass without asking the agent, even when it is down', async () => {
      await ep.server.close();
      const sandbox = { ...SANDBOX, args: { K8S_POD_NAMESPACE: 'palisade-system', K8S_POD_NAME: 'palisade-agent-x7k2p' } };
      const conf = config(ep.socket, { excludeNamespaces: ['kube-system', 'palisade-system'] });
      const add = await plugin('ADD', conf, sandbox);
      assert.equal(add.code, 0, add.stdout);
      assert.deepEqual(add.json, PREV_RESULT);
      assert.equal((await plugin('CHECK', conf, sandbox)).code, 0);
      assert.equal((await plugin('DEL', conf, sandbox)).code, 0);
      assert.equal(ep.enroller.calls.length, 0);
    });

    it('do not exclude a namespace that only starts the same', async () => {
      const sandbox = { ...SANDBOX, args: { K8S_POD_NAMESPACE: 'kube', K8S_POD_NAME: 'web-1' } };
      const run = await plugin('ADD', config(ep.socket, { excludeNamespaces: ['kube-system'] }), sandbox);
      assert.equal(run.code, 0);
      assert.equal(ep.enroller.of('enroll').length, 1);
    });
  });

  describe('malformed input: one CNI error line, the agent never asked', () => {
    const E = CniErrorCode;
    const cases: [string, (socket: string) => { command?: string; stdin: unknown; sandbox?: CniSandboxSpec; env?: Record<string, string | undefined> }, number, RegExp][] = [
      ['no CNI_COMMAND', (s) => ({ stdin: config(s), env: { CNI_COMMAND: undefined } }), E.INVALID_ENVIRONMENT, /CNI_COMMAND is not set/],
      ['an unknown CNI_COMMAND', (s) => ({ command: 'GC', stdin: config(s) }), E.INVALID_ENVIRONMENT, /CNI_COMMAND "GC" is not supported/],
      ['ADD without CNI_NETNS', (s) => ({ stdin: config(s), sandbox: { ...SANDBOX, netns: undefined } }), E.INVALID_ENVIRONMENT, /CNI_NETNS is not set/],
      ['ADD without CNI_CONTAINERID', (s) => ({ stdin: config(s), env: { CNI_CONTAINERID: undefined } }), E.INVALID_ENVIRONMENT, /CNI_CONTAINERID is not set/],
      ['ADD without CNI_IFNAME', (s) => ({ stdin: config(s), env: { CNI_IFNAME: '' } }), E.INVALID_ENVIRONMENT, /CNI_IFNAME is not set/],
      ['an interface name of 16 bytes', (s) => ({ stdin: config(s), sandbox: { ...SANDBOX, ifName: 'a'.repeat(16) } }), E.INVALID_ENVIRONMENT, /CNI_IFNAME is longer than 15 bytes/],
      ['no CNI_ARGS', (s) => ({ stdin: config(s), sandbox: { ...SANDBOX, args: '' } }), E.INVALID_ENVIRONMENT, /CNI_ARGS has no K8S_POD_NAMESPACE and K8S_POD_NAME: palisade-cni serves Kubernetes pods only/],
      ['CNI_ARGS with a pair that is not KEY=VALUE', (s) => ({ stdin: config(s), sandbox: { ...SANDBOX, args: 'K8S_POD_NAMESPACE=shop;oops' } }), E.INVALID_ENVIRONMENT, /CNI_ARGS: "oops" is not KEY=VALUE/],
      ['CNI_ARGS ending in ;', (s) => ({ stdin: config(s), sandbox: { ...SANDBOX, args: 'K8S_POD_NAMESPACE=shop;K8S_POD_NAME=web;' } }), E.INVALID_ENVIRONMENT, /CNI_ARGS: "" is not KEY=VALUE/],
      ['CNI_ARGS naming the pod twice', (s) => ({ stdin: config(s), sandbox: { ...SANDBOX, args: 'K8S_POD_NAMESPACE=shop;K8S_POD_NAME=a;K8S_POD_NAME=b' } }), E.INVALID_ENVIRONMENT, /K8S_POD_NAME is given twice/],
      ['a pod name of 254 characters', (s) => ({ stdin: config(s), sandbox: { ...SANDBOX, args: `K8S_POD_NAMESPACE=shop;K8S_POD_NAME=${'a'.repeat(254)}` } }), E.INVALID_ENVIRONMENT, /K8S_POD_NAME is longer than 253 characters/],
      ['an empty stdin', () => ({ stdin: '' }), E.DECODE_FAILED, /no network configuration on stdin/],
      ['stdin that is not JSON', () => ({ stdin: '{"cniVersion":"1.0.0",' }), E.DECODE_FAILED, /not valid JSON \(at byte 22\)/],
      ['stdin with trailing garbage', (s) => ({ stdin: `${JSON.stringify(config(s))} x` }), E.DECODE_FAILED, /not valid JSON/],
      ['stdin with invalid UTF-8 in a string', () => ({ stdin: Buffer.from('{"cniVersion":"1.0.0","name":"\xff"}', 'latin1') }), E.DECODE_FAILED, /not valid JSON/],
      ['stdin nested 100 deep', () => ({ stdin: `${'['.repeat(100)}${']'.repeat(100)}` }), E.DECODE_FAILED, /not valid JSON/],
      ['stdin over 64 KiB', (s) => ({ stdin: config(s, { pad: 'x'.repeat(70_000) }) }), E.DECODE_FAILED, /larger than 65536 bytes/],
      ['a configuration that is a list', () => ({ stdin: '[]' }), E.INVALID_CONFIG, /must be a JSON object/],
      ['no cniVersion', (s) => ({ stdin: config(s, { cniVersion: undefined }) }), E.INVALID_CONFIG, /has no "cniVersion"/],
      ['an unsupported cniVersion', (s) => ({ stdin: config(s, { cniVersion: '0.2.0' }) }), E.INCOMPATIBLE_VERSION, /cniVersion "0.2.0" is not supported/],
      ['a cniVersion that is a number', (s) => ({ stdin: config(s, { cniVersion: 1 }) }), E.INVALID_CONFIG, /"cniVersion" must be a string/],
      ['no name', (s) => ({ stdin: config(s, { name: undefined }) }), E.INVALID_CONFIG, /has no "name"/],
      ['a relative agentSocket', (s) => ({ stdin: config(s, { agentSocket: 'cni.sock' }) }), E.INVALID_CONFIG, /"agentSocket" must be an absolute path shorter than 108 bytes/],
      ['an agentSocket too long for a Unix socket', (s) => ({ stdin: config(s, { agentSocket: `/${'a'.repeat(120)}` }) }), E.INVALID_CONFIG, /"agentSocket" must be an absolute path/],
      ['timeoutMs 0', (s) => ({ stdin: config(s, { timeoutMs: 0 }) }), E.INVALID_CONFIG, /"timeoutMs" must be a whole number of milliseconds from 1 to 60000/],
      ['timeoutMs as a string', (s) => ({ stdin: config(s, { timeoutMs: '1000' }) }), E.INVALID_CONFIG, /"timeoutMs" must be a number/],
      ['a fractional timeoutMs', (s) => ({ stdin: config(s, { timeoutMs: 1.5 }) }), E.INVALID_CONFIG, /"timeoutMs" must be a whole number/],
      ['timeoutMs over a minute', (s) => ({ stdin: config(s, { timeoutMs: 60001 }) }), E.INVALID_CONFIG, /"timeoutMs" must be a whole number/],
      ['excludeNamespaces that is a string', (s) => ({ stdin: config(s, { excludeNamespaces: 'kube-system' }) }), E.INVALID_CONFIG, /"excludeNamespaces" must be a list/],
      ['excludeNamespaces with a number', (s) => ({ stdin: config(s, { excludeNamespaces: ['kube-system', 7] }) }), E.INVALID_CONFIG, /"excludeNamespaces" must be a list of at most 256 namespace names/],
      ['prevResult given twice', (s) => ({ stdin: JSON.stringify(config(s)).replace(/}$/, ',"prevResult":{}}') }), E.INVALID_CONFIG, /"prevResult" is given twice/],
      ['ADD without prevResult', (s) => ({ stdin: config(s, { prevResult: undefined }) }), E.INVALID_CONFIG, /no prevResult: palisade-cni is a chained plugin/],
      ['a prevResult that is a list', (s) => ({ stdin: config(s, { prevResult: [] }) }), E.INVALID_CONFIG, /"prevResult" must be an object/],
      ['a prevResult without ips', (s) => ({ stdin: config(s, { prevResult: { cniVersion: '1.0.0' } }) }), E.INVALID_CONFIG, /prevResult has no "ips"/],
      ['a prevResult with an empty ips list', (s) => ({ stdin: config(s, { prevResult: { cniVersion: '1.0.0', ips: [] } }) }), E.INVALID_CONFIG, /prevResult has no "ips"/],
      ['CHECK without prevResult', (s) => ({ command: 'CHECK', stdin: config(s, { prevResult: undefined }) }), E.INVALID_CONFIG, /no prevResult/],
    ];
    for (const [what, make, code, msg] of cases) {
      it(`${what} → code ${code}`, async () => {
        const c = make(ep.socket);
        const stdin = Buffer.isBuffer(c.stdin) ? c.stdin : typeof c.stdin === 'string' ? c.stdin : JSON.stringify(c.stdin);
        const run = await runPlugin(palisadeCniPath(), c.command ?? 'ADD', c.sandbox ?? SANDBOX, stdin, { env: c.env ?? {} });
        assertCniError(run, code, msg);
        assert.equal(ep.enroller.calls.length, 0, 'the agent was not asked');
      });
    }

    it('DEL with a malformed configuration still succeeds, saying why on stderr', async () => {
      const run = await plugin('DEL', '{"cniVersion":');
      assert.equal(run.code, 0);
      assert.equal(run.stdout, '');
      assert.match(run.stderr, /^palisade-cni: DEL: network configuration on stdin is not valid JSON \(at byte 14\) \(DEL succeeds anyway/);
    });
  });
});
