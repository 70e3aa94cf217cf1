import { strict as assert } from 'node:assert';
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { Command } from 'commander';
import { parseAllDocuments } from 'yaml';
import { parseCollectorUrl } from '../../../agent/mesh/transport';
import { createProgram } from '../../../cli/program';
import { silentLogger } from '../../../common/log';

const REPO = path.resolve(__dirname, '../../../..');
const MANIFESTS = path.join(REPO, 'deploy/kubernetes');
const CONTAINERFILE = path.join(REPO, 'deploy/Containerfile');
const NODE_VERSION = fs.readFileSync(path.join(REPO, '.node-version'), 'utf8').trim();
const NAMESPACE = 'palisade-system';

/* Just enough of the Kubernetes object shapes for these checks. */
interface Meta {
  name?: string;
  namespace?: string;
  labels?: Record<string, string>;
}
interface EnvVar {
  name: string;
  value?: string;
  valueFrom?: { fieldRef?: { fieldPath: string } };
}
interface VolumeMount {
  name: string;
  mountPath: string;
  readOnly?: boolean;
  mountPropagation?: string;
}
interface Container {
  name: string;
  command?: string[];
  args?: string[];
  env?: EnvVar[];
  ports?: { name?: string; containerPort: number }[];
  readinessProbe?: { httpGet?: { path: string; port: number | string } };
  resources?: { requests?: Record<string, string>; limits?: Record<string, string> };
  securityContext?: {
    privileged?: boolean;
    allowPrivilegeEscalation?: boolean;
    capabilities?: { add?: string[]; drop?: string[] };
  };
  volumeMounts?: VolumeMount[];
}
interface PodSpec {
  serviceAccountName?: string;
  hostNetwork?: boolean;
  hostPID?: boolean;
  initContainers?: Container[];
  containers: Container[];
  volumes?: { name: string; hostPath?: { path: string } }[];
}
interface K8sObject {
  apiVersion?: string;
  kind?: string;
  metadata?: Meta;
  spec?: {
    /** `matchLabels` for workloads, plain labels for a Service. */
    selector?: Record<string, unknown>;
    template?: { metadata?: Meta; spec: PodSpec };
    ports?: { name: string; port: number; targetPort?: number | string }[];
  };
  rules?: { apiGroups: string[]; resources: string[]; verbs: string[] }[];
  roleRef?: { kind: string; name: string };
  subjects?: { kind: string; name: string; namespace?: string }[];
}

const CLUSTER_SCOPED = new Set(['Namespace', 'ClusterRole', 'ClusterRoleBinding', 'CustomResourceDefinition']);

interface Doc {
  file: string;
  obj: K8sObject;
}

/** The files `kubectl apply -k deploy/kubernetes` applies, from its kustomization.yaml. */
function kustomized(): string[] {
  const k = parseAllDocuments(fs.readFileSync(path.join(MANIFESTS, 'kustomization.yaml'), 'utf8'))[0]!.toJS() as { resources: string[] };
  return k.resources;
}

function loadManifests(): Doc[] {
  const docs: Doc[] = [];
  for (const file of kustomized()) {
    for (const doc of parseAllDocuments(fs.readFileSync(path.join(MANIFESTS, file), 'utf8'))) {
      if (!('errors' in doc)) throw new Error(`${file}: not a YAML stream`);
      if (doc.errors.length) throw new Error(`${file}: ${doc.errors.map((e) => e.message).join('; ')}`);
      const obj = doc.toJS() as K8sObject | null;
      if (obj !== null) docs.push({ file, obj });
    }
  }
  return docs;
}

function find(docs: Doc[], kind: string, name: string): K8sObject {
  const hit = docs.find((d) => d.obj.kind === kind && d.obj.metadata?.name === name);
  if (!hit) throw new Error(`no ${kind}/${name} in ${MANIFESTS}`);
  return hit.obj;
}

function podSpec(obj: K8sObject): PodSpec {
  const spec = obj.spec?.template?.spec;
  if (!spec) throw new Error(`${obj.kind}/${obj.metadata?.name} has no pod template`);
  return spec;
}

function container(spec: PodSpec, name: string): Container {
  const c = spec.containers.find((x) => x.name === name);
  if (!c) throw new Error(`no container ${name}`);
  return c;
}

function mountAt(c: Container, mountPath: string): VolumeMount {
  const m = c.volumeMounts?.find((x) => x.mountPath === mountPath);
  if (!m) throw new Error(`container ${c.name} mounts nothing at ${mountPath}`);
  return m;
}

function hostPathOf(spec: PodSpec, volume: string): string | undefined {
  return spec.volumes?.find((v) => v.name === volume)?.hostPath?.path;
}

/** Long option names of a (sub)command, as the real CLI registers them. */
function flagsOf(...names: string[]): Set<string> {
  let cmd: Command = createProgram({
    stdout: () => undefined,
    stderr: () => undefined,
    logger: () => silentLogger(),
    waitForStop: () => new Promise<string>(() => undefined),
  });
  for (const name of names) {
    const next = cmd.commands.find((c) => c.name() === name);
    if (!next) throw new Error(`palisade has no command ${names.join(' ')}`);
    cmd = next;
  }
  return new Set(cmd.options.map((o) => o.long).filter((l): l is string => l !== undefined));
}

/** The value following `flag` in an argv. */
function flagValue(argv: string[], flag: string): string | undefined {
  const i = argv.indexOf(flag);
  return i < 0 ? undefined : argv[i + 1];
}

describe('deploy manifests', () => {
  const docs = loadManifests();

  describe('every document', () => {
    it('exists (the directory is not empty)', () => assert.ok(docs.length >= 6, `only ${docs.length} documents`));

    it('kustomization.yaml applies every manifest of the directory and crds/ (istio-crd/ only by hand)', () => {
      const files = [
        ...fs.readdirSync(MANIFESTS).filter((f) => /\.ya?ml$/.test(f) && f !== 'kustomization.yaml'),
        ...fs.readdirSync(path.join(MANIFESTS, 'crds')).map((f) => `crds/${f}`),
      ];
      assert.deepEqual([...kustomized()].sort(), files.sort());
    });

    for (const { file, obj } of docs) {
      const label = `${file}: ${obj.kind ?? '?'}/${obj.metadata?.name ?? '?'}`;
      it(`${label} has apiVersion, kind and metadata.name`, () => {
        assert.equal(typeof obj.apiVersion, 'string');
        assert.equal(typeof obj.kind, 'string');
        assert.equal(typeof obj.metadata?.name, 'string');
      });

      it(`${label} is ${CLUSTER_SCOPED.has(obj.kind ?? '') ? 'cluster-scoped' : `in ${NAMESPACE}`}`, () => {
        assert.equal(obj.metadata?.namespace, CLUSTER_SCOPED.has(obj.kind ?? '') ? undefined : NAMESPACE);
      });
    }

    it(`declares the ${NAMESPACE} namespace`, () => assert.ok(find(docs, 'Namespace', NAMESPACE)));

    for (const { file, obj } of docs.filter((d) => d.obj.spec?.template)) {
      it(`${file}: ${obj.kind}/${obj.metadata?.name} selects its own pod template`, () => {
        const labels = obj.spec?.template?.metadata?.labels ?? {};
        const matchLabels = (obj.spec?.selector?.matchLabels ?? {}) as Record<string, string>;
        assert.ok(Object.keys(matchLabels).length > 0, 'selector.matchLabels is set');
        for (const [k, v] of Object.entries(matchLabels)) assert.equal(labels[k], v, k);
      });

      it(`${file}: ${obj.kind}/${obj.metadata?.name} mounts only volumes it declares`, () => {
        const spec = podSpec(obj);
        const declared = new Set((spec.volumes ?? []).map((v) => v.name));
        for (const c of [...(spec.initContainers ?? []), ...spec.containers]) {
          for (const m of c.volumeMounts ?? []) assert.ok(declared.has(m.name), `${c.name} mounts undeclared volume ${m.name}`);
        }
      });

      // Rules the API server enforces (breaking them makes `kubectl apply` fail), the second one
      // also where the API lets the `SYS_ADMIN` spelling through.
      it(`${file}: ${obj.kind}/${obj.metadata?.name} uses Bidirectional propagation only in privileged containers`, () => {
        const spec = podSpec(obj);
        for (const c of [...(spec.initContainers ?? []), ...spec.containers]) {
          const bidi = (c.volumeMounts ?? []).some((m) => m.mountPropagation === 'Bidirectional');
          if (bidi) assert.equal(c.securityContext?.privileged, true, `${c.name}: Bidirectional needs privileged`);
        }
      });

      it(`${file}: ${obj.kind}/${obj.metadata?.name} does not combine allowPrivilegeEscalation: false with SYS_ADMIN`, () => {
        const spec = podSpec(obj);
        for (const c of [...(spec.initContainers ?? []), ...spec.containers]) {
          const sc = c.securityContext;
          const adds = sc?.capabilities?.add ?? [];
          const escalates = sc?.privileged === true || adds.includes('SYS_ADMIN') || adds.includes('CAP_SYS_ADMIN');
          if (escalates) assert.notEqual(sc?.allowPrivilegeEscalation, false, c.name);
        }
      });
    }
  });

  describe('agent DaemonSet', () => {
    const ds = find(docs, 'DaemonSet', 'palisade-agent');
    const spec = podSpec(ds);
    const agent = container(spec, 'agent');
    const argv = [...(agent.command ?? []), ...(agent.args ?? [])];

    it('runs on the host network but not in the host PID namespace', () => {
      assert.equal(spec.hostNetwork, true);
      assert.ok(!spec.hostPID);
    });

    it('does not make the agent container privileged', () => {
      assert.notEqual(agent.securityContext?.privileged, true);
    });

    it('makes no container privileged except the bpffs mount init container', () => {
      const privileged = [...(spec.initContainers ?? []), ...spec.containers]
        .filter((c) => c.securityContext?.privileged === true)
        .map((c) => c.name);
      assert.deepEqual(privileged, ['mount-bpffs']);
      assert.ok(spec.initContainers?.some((c) => c.name === 'mount-bpffs'), 'it is an init container');
    });

    it('drops every capability and adds exactly BPF, NET_ADMIN and SYS_ADMIN', () => {
      assert.deepEqual(agent.securityContext?.capabilities?.drop, ['ALL']);
      assert.deepEqual([...(agent.securityContext?.capabilities?.add ?? [])].sort(), ['BPF', 'NET_ADMIN', 'SYS_ADMIN']);
    });

    const mounts: [string, string, { readOnly: boolean; propagation?: string }][] = [
      ['/sys/fs/bpf', '/sys/fs/bpf', { readOnly: false, propagation: 'HostToContainer' }],
      ['/host/sys/fs/cgroup', '/sys/fs/cgroup', { readOnly: true }],
      ['/var/run/netns', '/var/run/netns', { readOnly: true, propagation: 'HostToContainer' }],
      ['/host/proc', '/proc', { readOnly: true }],
      ['/run/palisade', '/run/palisade', { readOnly: false }],
    ];
    for (const [at, hostPath, { readOnly, propagation }] of mounts) {
      it(`mounts host ${hostPath} at ${at}${readOnly ? ' read-only' : ''}`, () => {
        const m = mountAt(agent, at);
        assert.equal(hostPathOf(spec, m.name), hostPath);
        assert.equal(m.readOnly === true, readOnly);
        if (propagation) assert.equal(m.mountPropagation, propagation);
      });
    }

    it('mounts the host /sys/fs/bpf Bidirectional in the bpffs init container', () => {
      const init = spec.initContainers?.find((c) => c.name === 'mount-bpffs');
      assert.ok(init);
      const m = mountAt(init, '/sys/fs/bpf');
      assert.equal(hostPathOf(spec, m.name), '/sys/fs/bpf');
      assert.equal(m.mountPropagation, 'Bidirectional');
    });

    it('runs `palisade agent` with flags the CLI has', () => {
      assert.deepEqual(argv.slice(0, 2), ['palisade', 'agent']);
      const known = flagsOf('agent', 'run');
      const used = argv.slice(2).filter((a) => a.startsWith('-'));
      assert.ok(used.length > 0);
      for (const flag of used) assert.ok(known.has(flag), `palisade agent has no ${flag} (has ${[...known].join(', ')})`);
    });

    it('passes --node from spec.nodeName and --proxy-address from status.podIP', () => {
      const env = new Map((agent.env ?? []).map((e) => [e.name, e.valueFrom?.fieldRef?.fieldPath]));
      assert.equal(flagValue(argv, '--node'), '$(PALISADE_NODE)');
      assert.equal(env.get('PALISADE_NODE'), 'spec.nodeName');
      assert.equal(flagValue(argv, '--proxy-address'), '$(POD_IP)');
      assert.equal(env.get('POD_IP'), 'status.podIP');
    });

    it('defines every $(VAR) its command uses', () => {
      const defined = new Set((agent.env ?? []).map((e) => e.name));
      for (const [, name] of argv.join(' ').matchAll(/\$\((\w+)\)/g)) assert.ok(defined.has(name!), `$(${name}) is not in env`);
    });

    it('attaches at the host cgroup it mounts', () => {
      const cgroup = flagValue(argv, '--cgroup');
      assert.ok(cgroup, '--cgroup is set');
      assert.ok(cgroup === '/host/sys/fs/cgroup' || cgroup.startsWith('/host/sys/fs/cgroup/'), cgroup);
    });

    it('probes readiness on :15020/healthz', () => {
      assert.deepEqual(agent.readinessProbe?.httpGet, { path: '/healthz', port: 15020 });
    });

    it('requests 100m CPU and 64Mi memory, limited to 128Mi', () => {
      assert.deepEqual(agent.resources, { requests: { cpu: '100m', memory: '64Mi' }, limits: { memory: '128Mi' } });
    });

    it('runs as the palisade-agent service account', () => assert.equal(spec.serviceAccountName, 'palisade-agent'));

    it('upgrades with a surge pod per node (the new agent takes over, the old drains) and declares no ports', () => {
      const d = ds as K8sObject & { spec: { updateStrategy?: { type: string; rollingUpdate?: { maxSurge?: number; maxUnavailable?: number } } } };
      assert.deepEqual(d.spec.updateStrategy, { type: 'RollingUpdate', rollingUpdate: { maxSurge: 1, maxUnavailable: 0 } });
      for (const c of [...(spec.initContainers ?? []), ...spec.containers]) assert.equal(c.ports, undefined, `${c.name} declares ports (host ports with hostNetwork)`);
    });

    it('gives the agent longer than its 30 s drain to exit', () => {
      const grace = (spec as PodSpec & { terminationGracePeriodSeconds?: number }).terminationGracePeriodSeconds;
      assert.ok(grace !== undefined && grace > 30, `terminationGracePeriodSeconds ${grace}`);
    });

    it('keeps palisade-cni in the chain install-cni wrote (--cni-conf-dir on the same host directory)', () => {
      const init = spec.initContainers!.find((c) => c.name === 'install-cni')!;
      const at = flagValue(argv, '--cni-conf-dir')!;
      assert.equal(hostPathOf(spec, mountAt(agent, at).name), hostPathOf(spec, mountAt(init, flagValue(init.command ?? [], '--cni-conf-dir')!).name));
    });

    it('enrolls pods from the API and joins the collector through its Service, with the CA certificate only', () => {
      assert.ok(argv.includes('--kubernetes'));
      assert.equal(flagValue(argv, '--collector'), 'wss://palisade-collector.palisade-system.svc:15012');
      assert.deepEqual(parseCollectorUrl(flagValue(argv, '--collector')!), { kind: 'tcp', hostPort: 'palisade-collector.palisade-system.svc:15012' });
      const ca = flagValue(argv, '--collector-ca')!;
      const m = mountAt(agent, path.dirname(ca));
      const vol = (spec.volumes ?? []).find((v) => v.name === m.name) as { secret?: { secretName: string; items?: Array<{ key: string }> } };
      assert.equal(vol.secret?.secretName, 'palisade-ca');
      assert.deepEqual(vol.secret?.items?.map((i) => i.key), ['ca.crt'], 'never the CA key');
      assert.equal(flagValue(argv, '--node-address'), '$(HOST_IP)');
    });

    it('installs palisade-cni with an init container running `palisade cni install` with flags the CLI has, into the host CNI directories', () => {
      const init = spec.initContainers?.find((c) => c.name === 'install-cni');
      assert.ok(init);
      const cmd = init.command ?? [];
      assert.deepEqual(cmd.slice(0, 3), ['palisade', 'cni', 'install']);
      const known = flagsOf('cni', 'install');
      for (const flag of cmd.slice(3).filter((a) => a.startsWith('-'))) assert.ok(known.has(flag), `palisade cni install has no ${flag}`);
      assert.equal(hostPathOf(spec, mountAt(init, flagValue(cmd, '--cni-bin-dir')!).name), '/opt/cni/bin');
      assert.equal(hostPathOf(spec, mountAt(init, flagValue(cmd, '--cni-conf-dir')!).name), '/etc/cni/net.d');
      assert.equal(path.dirname(flagValue(cmd, '--agent-socket')!), '/run/palisade', 'the agent\'s run dir, as the host sees it');
      assert.notEqual(init.securityContext?.privileged, true);
      assert.deepEqual(init.securityContext?.capabilities?.drop, ['ALL']);
    });
  });

  describe('RBAC', () => {
    it('lets the agent only get/list/watch pods and namespaces', () => {
      assert.deepEqual(find(docs, 'ClusterRole', 'palisade-agent').rules, [
        { apiGroups: [''], resources: ['pods', 'namespaces'], verbs: ['get', 'list', 'watch'] },
      ]);
    });

    it('lets the collector read services, endpoint slices, pods and policy objects, and write only the policy objects (changes through its API), Events, our kinds\' status and the nodes\' join records, join tokens and registrations', () => {
      const rules = find(docs, 'ClusterRole', 'palisade-collector').rules ?? [];
      const writes = rules.filter((r) => r.verbs.some((v) => !['get', 'list', 'watch'].includes(v)));
      assert.deepEqual(
        writes.map((r) => `${r.apiGroups.join(',')}/${r.resources.join(',')}:${r.verbs.join(',')}`),
        [
          'security.istio.io/authorizationpolicies:list,watch,create,update,delete',
          'palisade.dev/egresspolicies:list,watch,create,update,delete',
          'gateway.networking.k8s.io/httproutes,grpcroutes:get,list,watch,create,update,delete',
          'palisade.dev/faultinjections:get,list,watch,create,update,delete',
          'networking.istio.io/destinationrules:list,watch,create,update,delete',
          'palisade.dev/egresspolicies/status,faultinjections/status:patch', '/events:create', 'palisade.dev/palisadenodes:list,watch,create,update', 'palisade.dev/palisadejointokens:list,watch,create,update,delete', 'palisade.dev/palisaderegistrations:list,watch,create,update,delete'],
      );
      const reads = new Set(rules.flatMap((r) => r.resources.map((res) => `${r.apiGroups[0]}/${res}`)));
      for (const r of ['/services', '/pods', 'discovery.k8s.io/endpointslices', 'security.istio.io/authorizationpolicies', 'palisade.dev/egresspolicies', 'gateway.networking.k8s.io/httproutes', 'gateway.networking.k8s.io/grpcroutes', 'palisade.dev/faultinjections', 'networking.istio.io/destinationrules']) assert.ok(reads.has(r), r);
      assert.ok(!reads.has('/secrets'), 'no secrets');
    });

    it('binds that role to the agent service account', () => {
      const binding = find(docs, 'ClusterRoleBinding', 'palisade-agent');
      assert.deepEqual(binding.roleRef, { apiGroup: 'rbac.authorization.k8s.io', kind: 'ClusterRole', name: 'palisade-agent' });
      assert.deepEqual(binding.subjects, [{ kind: 'ServiceAccount', name: 'palisade-agent', namespace: NAMESPACE }]);
      assert.ok(find(docs, 'ServiceAccount', 'palisade-agent'));
    });

    for (const { obj } of docs.filter((d) => d.obj.spec?.template)) {
      const sa = podSpec(obj).serviceAccountName;
      it(`${obj.kind}/${obj.metadata?.name} uses a service account that exists (${sa})`, () => {
        assert.ok(sa && find(docs, 'ServiceAccount', sa));
      });
    }
  });

  describe('collector', () => {
    const deployment = find(docs, 'Deployment', 'palisade-collector');
    const service = find(docs, 'Service', 'palisade-collector');
    const collector = container(podSpec(deployment), 'collector');

    it('exposes 15012 for agents and 8080 for the API', () => {
      assert.deepEqual(
        (service.spec?.ports ?? []).map((p) => [p.name, p.port]),
        [
          ['agents', 15012],
          ['api', 8080],
        ],
      );
    });

    it('routes every service port to a container port', () => {
      const byName = new Map((collector.ports ?? []).map((p) => [p.name, p.containerPort]));
      for (const p of service.spec?.ports ?? []) {
        const target = typeof p.targetPort === 'string' ? byName.get(p.targetPort) : (p.targetPort ?? p.port);
        assert.equal(target, p.port, `service port ${p.name}`);
      }
    });

    it('selects the collector pods', () => {
      const labels = deployment.spec?.template?.metadata?.labels ?? {};
      const selector = (service.spec?.selector ?? {}) as Record<string, string>;
      assert.ok(Object.keys(selector).length > 0);
      for (const [k, v] of Object.entries(selector)) assert.equal(labels[k], v, k);
    });

    it('runs `palisade collector` with flags the CLI has', () => {
      assert.deepEqual(collector.command, undefined, 'keeps the image ENTRYPOINT');
      const argv = collector.args ?? [];
      assert.equal(argv[0], 'collector');
      const known = flagsOf('collector', 'run');
      for (const flag of argv.filter((a) => a.startsWith('-'))) assert.ok(known.has(flag), `palisade collector has no ${flag}`);
    });

    it('listens for agents on all addresses at the agents port', () => {
      assert.equal(flagValue(collector.args ?? [], '--listen'), '0.0.0.0:15012');
    });

    it('keeps --data on a PersistentVolumeClaim and watches the Kubernetes API', () => {
      const m = mountAt(collector, flagValue(collector.args ?? [], '--data') ?? '');
      const vol = (podSpec(deployment).volumes ?? []).find((v) => v.name === m.name) as { persistentVolumeClaim?: { claimName: string } };
      assert.ok(find(docs, 'PersistentVolumeClaim', vol.persistentVolumeClaim?.claimName ?? '?'));
      assert.ok((collector.args ?? []).includes('--kubernetes'));
      assert.equal((deployment.spec as { replicas?: number }).replicas, 1);
    });

    it('takes its CA from the Secret palisade-ca', () => {
      const vols = (podSpec(deployment).volumes ?? []) as Array<{ name: string; secret?: { secretName: string } }>;
      assert.ok(vols.some((v) => v.secret?.secretName === 'palisade-ca'));
    });

    it('is not privileged and adds no capability', () => {
      assert.notEqual(collector.securityContext?.privileged, true);
      assert.deepEqual(collector.securityContext?.capabilities?.add ?? [], []);
    });
  });

  describe('node cleanup (uninstall/, applied by hand)', () => {
    const cleanup = parseAllDocuments(fs.readFileSync(path.join(MANIFESTS, 'uninstall/node-cleanup.yaml'), 'utf8'))[0]!.toJS() as K8sObject;
    const spec = podSpec(cleanup);
    const script = (container(spec, 'cleanup').command ?? []).join('\n');

    it('runs palisade commands with flags the CLI has, the CNI uninstall after the node\'s (a running agent keeps palisade-cni in the chain)', () => {
      const calls = [...script.matchAll(/palisade (cni|agent) uninstall([^;\n]*)/g)];
      assert.deepEqual(calls.map((m) => m[1]), ['agent', 'cni']);
      for (const [, group, rest] of calls) {
        const known = flagsOf(group!, 'uninstall');
        for (const flag of rest!.split(/\s+/).filter((a) => a.startsWith('--'))) assert.ok(known.has(flag), `palisade ${group} uninstall has no ${flag}`);
      }
    });

    it('reaches the same host paths as the agent and install-cni', () => {
      const c = container(spec, 'cleanup');
      for (const [at, host] of [['/sys/fs/bpf', '/sys/fs/bpf'], ['/run/palisade', '/run/palisade'], ['/host/opt/cni/bin', '/opt/cni/bin'], ['/host/etc/cni/net.d', '/etc/cni/net.d']]) {
        assert.equal(hostPathOf(spec, mountAt(c, at!).name), host);
      }
    });
  });

  describe('Containerfile', () => {
    const text = fs.readFileSync(CONTAINERFILE, 'utf8');

    it('starts the CLI from /opt/palisade', () => {
      assert.match(text, /^ENTRYPOINT \["node", ?"\/opt\/palisade\/dist\/cli\/main\.js"\]$/m);
    });

    // The runtime layout must be the one the code looks in (defaultBpfDir, the addon loader,
    // the version read from package.json next to dist/).
    const copies: [string, RegExp][] = [
      ['the eBPF objects to bpf/', /^COPY --from=build \/src\/bpf\/\*\.bpf\.o \.\/bpf\/$/m],
      ['the addon to native/build/Release/', /^COPY --from=build \/src\/native\/build\/Release\/\*\.node \.\/native\/build\/Release\/$/m],
      ['dist/', /^COPY --from=build \/src\/dist \.\/dist$/m],
      ['package.json', /^COPY --from=build \/src\/package\.json \.\/package\.json$/m],
      ['production node_modules', /^COPY --from=prod-deps \/src\/node_modules \.\/node_modules$/m],
    ];
    for (const [what, line] of copies) {
      it(`copies ${what}`, () => assert.match(text, line));
    }

    it('installs production dependencies only in the prod-deps stage', () => {
      assert.match(text, new RegExp(`FROM node:${NODE_VERSION}-bookworm AS prod-deps[\\s\\S]*npm ci --omit=dev`));
    });

    it('builds on and runs on the Node pinned in .node-version (bookworm, slim at run time) with the addon\'s libraries', () => {
      const froms = [...text.matchAll(/^FROM (\S+)/gm)].map((m) => m[1]);
      assert.equal(froms[0], `node:${NODE_VERSION}-bookworm`);
      assert.equal(froms[froms.length - 1], `node:${NODE_VERSION}-bookworm-slim`);
      assert.match(text, /install -y --no-install-recommends libbpf1 libelf1 zlib1g/);
    });
  });
});
