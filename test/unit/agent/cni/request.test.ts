import { strict as assert } from 'node:assert';
import { CniErrorCode, MAX_REQUEST_BYTES } from '../../../../agent/cni/protocol';
import { parseCniRequest } from '../../../../agent/cni/request';
import { BRIDGE_RESULT } from '../../../harness/cni-endpoint';

const UID = '1b4e28ba-2fa1-11d2-883f-0016d3cca427';

function base(): Record<string, unknown> {
  return {
    palisadeCni: 1,
    command: 'ADD',
    cniVersion: '1.0.0',
    network: 'k8s-pod-network',
    containerId: 'f3a9c1d2e4b5',
    netns: '/var/run/netns/cni-test',
    ifName: 'eth0',
    pod: { namespace: 'shop', name: 'web-7d9f8-abcde', uid: UID },
    prevResult: structuredClone(BRIDGE_RESULT),
  };
}

/** base() with `path` (dotted, array indexes allowed) set to `value`; undefined deletes it. */
function withField(path: string, value: unknown): Record<string, unknown> {
  const req = base();
  const keys = path.split('.');
  let node = req as Record<string, unknown>;
  for (const k of keys.slice(0, -1)) node = node[k] as Record<string, unknown>;
  const last = keys[keys.length - 1]!;
  if (value === undefined) delete node[last];
  else node[last] = value;
  return req;
}

function bytes(value: unknown): Buffer {
  return Buffer.from(typeof value === 'string' ? value : JSON.stringify(value));
}

describe('CNI request (parseCniRequest)', () => {
  it('accepts an ADD and keeps only the addresses inside the pod, canonical', () => {
    const r = parseCniRequest(bytes(base()));
    assert.ok(r.ok, !r.ok ? r.reason : '');
    assert.deepEqual(r.request, {
      command: 'ADD',
      sandbox: {
        containerId: 'f3a9c1d2e4b5',
        netns: '/var/run/netns/cni-test',
        ifName: 'eth0',
        network: 'k8s-pod-network',
        cniVersion: '1.0.0',
        pod: { namespace: 'shop', name: 'web-7d9f8-abcde', uid: UID },
        ips: [{ family: 4, address: '10.22.0.5', prefixLength: 16, gateway: '10.22.0.1', interface: 'eth0' }],
        interfaces: [
          { name: 'cni0', mac: '4a:5c:1e:0b:2a:01', sandbox: undefined },
          { name: 'veth1a2b3c4d', mac: '26:9f:4e:33:10:aa', sandbox: undefined },
          { name: 'eth0', mac: '7e:12:9a:0c:55:02', sandbox: '/var/run/netns/cni-test' },
        ],
      },
    });
  });

  const accepted: [string, Record<string, unknown>, (r: ReturnType<typeof parseCniRequest>) => void][] = [
    [
      'an IPv6 address in RFC 5952 form and an address with no interface index',
      withField('prevResult.ips', [{ address: 'FD00:0:0::0005/64', gateway: 'fd00::1' }]),
      (r) => assert.deepEqual(r.ok && r.request.sandbox.ips, [{ family: 6, address: 'fd00::5', prefixLength: 64, gateway: 'fd00::1', interface: undefined }]),
    ],
    [
      'a pod without a UID (older runtimes)',
      withField('pod.uid', ''),
      (r) => assert.equal(r.ok && r.request.sandbox.pod?.uid, undefined),
    ],
    ['an upper-case UID, lowered', withField('pod.uid', UID.toUpperCase()), (r) => assert.equal(r.ok && r.request.sandbox.pod?.uid, UID)],
    [
      'DEL without netns, pod or prevResult (the runtime may omit them)',
      { ...withField('prevResult', undefined), command: 'DEL', netns: '', pod: { namespace: '', name: '', uid: '' } },
      (r) => {
        assert.ok(r.ok);
        assert.equal(r.request.sandbox.pod, undefined);
        assert.equal(r.request.sandbox.netns, '');
        assert.deepEqual(r.request.sandbox.ips, []);
      },
    ],
    ['CHECK with its prevResult', { ...base(), command: 'CHECK' }, (r) => assert.equal(r.ok && r.request.command, 'CHECK')],
    ['a 0.3.1 configuration (older conflists)', { ...base(), cniVersion: '0.3.1' }, (r) => assert.equal(r.ok && r.request.sandbox.cniVersion, '0.3.1')],
  ];
  for (const [what, req, check] of accepted) {
    it(`accepts ${what}`, () => {
      const r = parseCniRequest(bytes(req));
      assert.ok(r.ok, !r.ok ? r.reason : '');
      check(r);
    });
  }

  const P = CniErrorCode.PROTOCOL;
  const ENV = CniErrorCode.INVALID_ENVIRONMENT;
  const CONF = CniErrorCode.INVALID_CONFIG;
  const refused: [string, unknown, number, RegExp][] = [
    ['bytes that are not UTF-8', Buffer.from([0x7b, 0xff, 0x7d]), CniErrorCode.DECODE_FAILED, /not UTF-8/],
    ['text that is not JSON', '{"palisadeCni":1,', CniErrorCode.DECODE_FAILED, /not JSON/],
    ['a JSON array', '[1]', P, /must be a JSON object/],
    ['a newer protocol version', { ...base(), palisadeCni: 2 }, P, /protocol version 2 is not supported \(this agent speaks 1\)/],
    ['no protocol version', withField('palisadeCni', undefined), P, /protocol version undefined/],
    ['an unknown field', { ...base(), debug: true }, P, /unknown request field "debug"/],
    ['an unknown command', { ...base(), command: 'GC' }, P, /command must be one of ADD, DEL, CHECK, got "GC"/],
    ['an unsupported cniVersion', { ...base(), cniVersion: '0.2.0' }, CniErrorCode.INCOMPATIBLE_VERSION, /cniVersion "0.2.0" is not supported/],
    ['an empty network name', { ...base(), network: '' }, CONF, /network name .* is missing/],
    ['a network name with a slash', { ...base(), network: 'a/b' }, CONF, /network name .* "a\/b" is invalid/],
    ['no container id', { ...base(), containerId: '' }, ENV, /CNI_CONTAINERID is missing/],
    ['a container id with a path', { ...base(), containerId: '../etc' }, ENV, /CNI_CONTAINERID "..\/etc" is invalid/],
    ['a container id of 300 characters', { ...base(), containerId: 'a'.repeat(300) }, ENV, /CNI_CONTAINERID "a+\.\.\. is invalid/],
    ['ADD without a netns', { ...base(), netns: '' }, ENV, /CNI_NETNS is missing \(ADD needs/],
    ['CHECK without a netns', { ...base(), command: 'CHECK', netns: '' }, ENV, /CNI_NETNS is missing \(CHECK needs/],
    ['a relative netns', { ...base(), netns: 'netns/x' }, ENV, /CNI_NETNS "netns\/x" is not a normalized absolute path/],
    ['a netns with ..', { ...base(), netns: '/var/run/netns/../../etc/passwd' }, ENV, /not a normalized absolute path/],
    ['a netns with a newline', { ...base(), netns: '/var/run/netns/x\ny' }, ENV, /not a normalized absolute path/],
    ['a netns that is not a string', { ...base(), netns: 7 }, P, /netns must be a string/],
    ['no interface name', { ...base(), ifName: '' }, ENV, /CNI_IFNAME is missing/],
    ['an interface name of 16 characters', { ...base(), ifName: 'eth0123456789abc' }, ENV, /CNI_IFNAME .* is not an interface name/],
    ['an interface name with a slash', { ...base(), ifName: 'eth/0' }, ENV, /is not an interface name/],
    ['an interface name with a space', { ...base(), ifName: 'eth 0' }, ENV, /is not an interface name/],
    ['an interface name of ..', { ...base(), ifName: '..' }, ENV, /is not an interface name/],
    ['ADD with no pod namespace', withField('pod.namespace', ''), ENV, /K8S_POD_NAMESPACE missing \(palisade-cni serves Kubernetes pods only\)/],
    ['a namespace that is not a DNS label', withField('pod.namespace', 'Shop_1'), ENV, /K8S_POD_NAMESPACE "Shop_1" is not a namespace name/],
    ['ADD with no pod name', withField('pod.name', ''), ENV, /K8S_POD_NAME missing/],
    ['a pod name in capitals', withField('pod.name', 'WEB'), ENV, /K8S_POD_NAME "WEB" is not a pod name/],
    ['a UID that is not one', withField('pod.uid', 'abc'), ENV, /K8S_POD_UID "abc" is not a UID/],
    ['a pod that is not an object', { ...base(), pod: 'shop/web' }, P, /pod must be an object/],
    ['a pod with an extra field', withField('pod.labels', {}), P, /unknown pod field "labels"/],
    ['a pod UID that is not a string', withField('pod.uid', 5), P, /must be strings/],
    ['ADD without prevResult', withField('prevResult', undefined), CONF, /ADD needs prevResult: palisade-cni is a chained plugin/],
    ['CHECK without prevResult', { ...withField('prevResult', undefined), command: 'CHECK' }, CONF, /CHECK needs prevResult/],
    ['a prevResult that is a string', { ...base(), prevResult: '{}' }, CONF, /prevResult must be an object/],
    ['prevResult ips that are not a list', withField('prevResult.ips', {}), CONF, /prevResult.ips must be a list/],
    ['prevResult without ips', withField('prevResult.ips', undefined), CONF, /gives the pod no address/],
    ['prevResult whose only address is on the host side', withField('prevResult.ips.0.interface', 1), CONF, /gives the pod no address/],
    ['an address without a prefix length', withField('prevResult.ips.0.address', '10.22.0.5'), CONF, /prevResult.ips\[0\].address "10.22.0.5" is not an address with a prefix length/],
    ['an address out of range', withField('prevResult.ips.0.address', '10.22.0.256/16'), CONF, /is not an address with a prefix length/],
    ['a prefix length of 33', withField('prevResult.ips.0.address', '10.22.0.5/33'), CONF, /is not an address with a prefix length/],
    ['an IPv4-mapped IPv6 address', withField('prevResult.ips.0.address', '::ffff:10.22.0.5/112'), CONF, /is not an address with a prefix length/],
    ['an address with a zone', withField('prevResult.ips.0.address', 'fe80::1%eth0/64'), CONF, /is not an address with a prefix length/],
    ['a gateway of the other family', withField('prevResult.ips.0.gateway', 'fd00::1'), CONF, /gateway "fd00::1" is not an IPv4 address/],
    ['an interface index past the list', withField('prevResult.ips.0.interface', 3), CONF, /interface 3 is not an index into prevResult.interfaces \(0-2\)/],
    ['a negative interface index', withField('prevResult.ips.0.interface', -1), CONF, /is not an index/],
    ['a fractional interface index', withField('prevResult.ips.0.interface', 1.5), CONF, /is not an index/],
    ['an interface without a name', withField('prevResult.interfaces.2.name', undefined), CONF, /prevResult.interfaces\[2\].name is missing/],
    ['a MAC address that is not one', withField('prevResult.interfaces.0.mac', 'zz:zz'), CONF, /prevResult.interfaces\[0\].mac "zz:zz" is not a MAC address/],
    ['a sandbox that is not a string', withField('prevResult.interfaces.2.sandbox', true), CONF, /sandbox must be a string/],
    ['65 addresses', withField('prevResult.ips', Array(65).fill({ address: '10.0.0.1/8' })), CONF, /prevResult.ips has 65 entries \(at most 64\)/],
    ['a request over the size limit', 'x'.repeat(MAX_REQUEST_BYTES + 1), P, /request larger than/],
  ];
  for (const [what, req, code, reason] of refused) {
    it(`refuses ${what} with code ${code}, in one line`, () => {
      const r = parseCniRequest(Buffer.isBuffer(req) ? req : bytes(req));
      assert.ok(!r.ok, 'expected a refusal');
      assert.equal(r.code, code, r.reason);
      assert.match(r.reason, reason);
      assert.ok(!r.reason.includes('\n'), `reason is one line: ${r.reason}`);
    });
  }
});
