/**
 * Simulated: what the agent holds for a node with 1,000 pods and a mesh of 100,000 workloads, as
 * heap after a full GC (run with node --expose-gc). Not the agent process: the structures it keeps,
 * built from realistic inputs — the Pod objects its informer caches (shaped as a kubelet-created
 * pod of a Deployment, managedFields included, ~5 KB of JSON each) plus the agent's own view of
 * each pod, and the mesh registry (MeshRegistry) of 100,000 workloads and 2,000 services (50
 * endpoints each) from the collector's registry frame, whose JSON size and parse peak are printed too.
 *   node --expose-gc dist/test/bench/kubernetes-memory.js
 */
import { MeshRegistry } from '../../agent/mesh/mesh-registry';
import { NodePods } from '../../agent/workload-sources/kubernetes/node-pods';
import { podView, type PodObject } from '../../agent/workload-sources/kubernetes/pod-workload';
import type { RegistryService, RegistrySnapshot, RegistryWorkload } from '../../common/mesh-protocol';

const gc = (globalThis as { gc?: () => void }).gc;
if (!gc) throw new Error('run with node --expose-gc');

function heap(): number {
  gc!();
  gc!();
  return process.memoryUsage().heapUsed;
}

const mb = (n: number): string => `${(n / 2 ** 20).toFixed(1)} MiB`;
const ip = (i: number): string => `10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}`;

function pod(i: number): PodObject & Record<string, unknown> {
  const app = `app-${i % 50}`;
  const hash = (i * 2654435761).toString(16).slice(0, 10);
  return JSON.parse(
    JSON.stringify({
      apiVersion: 'v1',
      kind: 'Pod',
      metadata: {
        name: `${app}-${hash}-${i.toString(36).padStart(5, 'x')}`,
        generateName: `${app}-${hash}-`,
        namespace: `team-${i % 20}`,
        uid: `6f1c2a3b-4d5e-4f60-8a7b-${i.toString(16).padStart(12, '0')}`,
        resourceVersion: String(100000 + i),
        creationTimestamp: '2026-12-07T04:00:00Z',
        labels: { app, 'pod-template-hash': hash, version: 'v1', 'app.kubernetes.io/part-of': 'shop' },
        annotations: { 'kubectl.kubernetes.io/restartedAt': '2026-12-07T03:00:00Z', 'prometheus.io/scrape': 'true' },
        ownerReferences: [{ apiVersion: 'apps/v1', kind: 'ReplicaSet', name: `${app}-${hash}`, uid: 'aaaa-bbbb', controller: true, blockOwnerDeletion: true }],
        managedFields: [
          { manager: 'kube-controller-manager', operation: 'Update', apiVersion: 'v1', time: '2026-12-07T04:00:00Z', fieldsType: 'FieldsV1', fieldsV1: { 'f:metadata': { 'f:generateName': {}, 'f:labels': { '.': {}, 'f:app': {}, 'f:pod-template-hash': {} }, 'f:ownerReferences': {} }, 'f:spec': { 'f:containers': { 'k:{"name":"app"}': { '.': {}, 'f:image': {}, 'f:name': {}, 'f:ports': {}, 'f:resources': {} } } } } },
          { manager: 'kubelet', operation: 'Update', apiVersion: 'v1', time: '2026-12-07T04:00:05Z', fieldsType: 'FieldsV1', subresource: 'status', fieldsV1: { 'f:status': { 'f:conditions': {}, 'f:containerStatuses': {}, 'f:hostIP': {}, 'f:phase': {}, 'f:podIP': {}, 'f:podIPs': {}, 'f:startTime': {} } } },
        ],
      },
      spec: {
        nodeName: 'node-1',
        serviceAccountName: `${app}`,
        containers: [
          {
            name: 'app',
            image: `registry.example.com/${app}:1.2.3`,
            ports: [{ containerPort: 8080, protocol: 'TCP' }],
            env: [{ name: 'LOG_LEVEL', value: 'info' }],
            resources: { requests: { cpu: '100m', memory: '128Mi' }, limits: { memory: '256Mi' } },
            volumeMounts: [{ name: 'kube-api-access', mountPath: '/var/run/secrets/kubernetes.io/serviceaccount', readOnly: true }],
            terminationMessagePath: '/dev/termination-log',
            imagePullPolicy: 'IfNotPresent',
          },
        ],
        volumes: [{ name: 'kube-api-access', projected: { sources: [{ serviceAccountToken: { expirationSeconds: 3607, path: 'token' } }, { configMap: { name: 'kube-root-ca.crt', items: [{ key: 'ca.crt', path: 'ca.crt' }] } }] } }],
        restartPolicy: 'Always',
        dnsPolicy: 'ClusterFirst',
        schedulerName: 'default-scheduler',
        tolerations: [{ key: 'node.kubernetes.io/not-ready', operator: 'Exists', effect: 'NoExecute', tolerationSeconds: 300 }],
      },
      status: {
        phase: 'Running',
        hostIP: '192.168.1.10',
        podIP: ip(i),
        podIPs: [{ ip: ip(i) }],
        startTime: '2026-12-07T04:00:01Z',
        conditions: ['Initialized', 'Ready', 'ContainersReady', 'PodScheduled'].map((type) => ({ type, status: 'True', lastTransitionTime: '2026-12-07T04:00:05Z' })),
        containerStatuses: [{ name: 'app', ready: true, restartCount: 0, image: `registry.example.com/${app}:1.2.3`, imageID: `sha256:${'ab'.repeat(32)}`, containerID: `containerd://${'cd'.repeat(32)}`, started: true, state: { running: { startedAt: '2026-12-07T04:00:04Z' } } }],
      },
    }),
  ) as PodObject & Record<string, unknown>;
}

function main(): void {
  const h0 = heap();
  const cache = new Map<string, PodObject>();
  const pods = new NodePods();
  let podJson = 0;
  for (let i = 0; i < 1000; i++) {
    const o = pod(i);
    podJson += JSON.stringify(o).length;
    cache.set(o.metadata!.uid!, o);
    pods.setPod(podView(o)!);
  }
  const h1 = heap();
  console.log(`1,000 pods on the node: ${mb(h1 - h0)} (informer cache of full Pod objects, ${(podJson / 1000 / 1024).toFixed(1)} KiB of JSON each, + the agent's pod views)`);

  const workloads: RegistryWorkload[] = [];
  for (let i = 0; i < 100_000; i++) {
    const app = `app-${i % 500}`;
    workloads.push({ node: `node-${i % 1000}`, nodeAddress: `192.168.${(i % 1000) >> 8}.${i % 256}`, name: `${app}-${i.toString(36)}`, namespace: `team-${i % 20}`, serviceAccount: app, identity: `spiffe://cluster.local/ns/team-${i % 20}/sa/${app}`, ip: ip(i), labels: { app, version: 'v1', 'palisade.dev/workload': `${app}-${i.toString(36)}` } });
  }
  const services: RegistryService[] = [];
  for (let s = 0; s < 2000; s++) {
    services.push({ namespace: `team-${s % 20}`, name: `svc-${s}`, vips: [`10.96.${s >> 8}.${s & 255}`], ports: [{ name: 'http', port: 80 }], endpoints: Array.from({ length: 50 }, (_, e) => ({ ip: ip((s * 50 + e) % 100_000), ready: e % 10 !== 0, targetPorts: [8080] })) });
  }
  const frame = JSON.stringify({ type: 'registry', version: 1, epoch: 'e1', workloads, nodes: [], services });
  workloads.length = 0;
  services.length = 0;
  const h2 = heap();
  const parsed = JSON.parse(frame) as RegistrySnapshot;
  const peak = process.memoryUsage().heapUsed;
  const registry = new MeshRegistry();
  registry.replace(parsed);
  const h3 = heap();
  console.log(`registry frame of 100,000 workloads and 2,000 services: ${mb(frame.length)} of JSON; parsing it peaks at +${mb(peak - h2)}`);
  console.log(`the mesh registry held: ${mb(h3 - h2)} (${registry.byIp(ip(99_999)) ? 'indexed' : 'missing'})`);
  console.log(`total heap ${mb(h3)}, rss ${mb(process.memoryUsage().rss)} (this process, frame text included)`);
  if (cache.size !== 1000) throw new Error('unreachable');
}

main();
