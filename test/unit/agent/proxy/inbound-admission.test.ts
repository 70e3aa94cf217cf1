import { strict as assert } from 'node:assert';
import { streamAdmission, type StreamAdmission, type StreamRequest } from '../../../../agent/proxy/inbound-admission';
import type { MeshWorkload } from '../../../../agent/mesh/mesh-registry';
import type { Workload } from '../../../../agent/workloads';

const CLIENT = 'spiffe://cluster.local/ns/default/sa/client';
const NOW = 1_700_000_000_000;
const web: Workload = { name: 'web', namespace: 'default', serviceAccount: 'web', netns: '/var/run/netns/web', ip: '10.0.2.10', strict: true, labels: { app: 'web' }, identity: 'spiffe://cluster.local/ns/default/sa/web' };
const client = { ip: '10.0.1.10', name: 'client', namespace: 'default', identity: CLIENT, nodeAddress: '172.31.0.1' } as MeshWorkload;
const registries = {
  local: { byIp: (ip: string) => (ip === web.ip ? web : undefined) },
  mesh: { byIp: (ip: string) => (ip === client.ip ? client : undefined) },
};

/** A stream from the client's node, as HBONE sends it; `over` changes one thing. */
function stream(over: Partial<StreamRequest> = {}): StreamRequest {
  return { method: 'CONNECT', authority: '10.0.2.10:8080', forwarded: 'for="10.0.1.10"', peerAddress: '::ffff:172.31.0.1', peer: { identity: CLIENT, validTo: NOW + 60_000 }, now: NOW, ...over };
}

describe('streamAdmission', function () {
  it('admits a CONNECT from the node of the source it names, whose certificate is that source\'s', function () {
    const a = streamAdmission(stream(), registries);
    assert.ok(a.ok);
    assert.deepEqual({ destination: a.destination, source: a.source.name, peer: a.peerIdentity }, { destination: { ip: '10.0.2.10', port: 8080, workload: web }, source: 'client', peer: CLIENT });
  });

  const refused: Array<[string, Partial<StreamRequest>, number, string]> = [
    ['a method other than CONNECT', { method: 'GET' }, 405, 'not-connect'],
    ['no verified peer', { peer: undefined }, 401, 'no-peer-identity'],
    ['a peer certificate that has expired since the session began', { peer: { identity: CLIENT, validTo: NOW } }, 401, 'peer-certificate-expired'],
    ['an authority that is not IPv4:port', { authority: 'web:8080' }, 400, 'bad-authority'],
    ['port 0', { authority: '10.0.2.10:0' }, 400, 'bad-authority'],
    ['no authority', { authority: undefined }, 400, 'bad-authority'],
    ['a destination that is no local workload', { authority: '10.0.2.99:8080' }, 404, 'not-a-local-workload'],
    ['no Forwarded source', { forwarded: undefined }, 403, 'unknown-source'],
    ['a Forwarded source the registry does not know', { forwarded: 'for="10.0.1.99"' }, 403, 'unknown-source'],
    ['two Forwarded headers', { forwarded: ['for="10.0.1.10"', 'for="10.0.1.10"'] }, 403, 'unknown-source'],
    ['a peer whose identity is not the source\'s', { peer: { identity: 'spiffe://cluster.local/ns/default/sa/other', validTo: NOW + 1 } }, 403, 'identity-mismatch'],
    ['the right identity from another node', { peerAddress: '172.31.0.9' }, 403, 'wrong-source-node'],
  ];
  for (const [what, over, status, reason] of refused) {
    it(`refuses ${what}: ${status} ${reason}`, function () {
      const a: StreamAdmission = streamAdmission(stream(over), registries);
      assert.equal(a.ok, false);
      assert.deepEqual(!a.ok && [a.status, a.reason], [status, reason]);
    });
  }
});
