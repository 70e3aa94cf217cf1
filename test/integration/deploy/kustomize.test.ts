/**
 * `kubectl kustomize deploy/kubernetes` renders (the real kubectl: Debian's kubernetes-client on a
 * fresh machine, `make deps-test` installs it when no kubectl is on PATH), and what it renders is
 * what `kubectl apply -k` would create: every object, the agent DaemonSet joining the collector
 * with the CNI install init container, RBAC of least privilege. Asserts on the parsed output.
 */
import { strict as assert } from 'node:assert';
import { execFileSync, spawnSync } from 'node:child_process';
import * as path from 'node:path';
import { parseAllDocuments } from 'yaml';

const REPO = path.resolve(__dirname, '../../../..');

interface Rule {
  apiGroups: string[];
  resources: string[];
  verbs: string[];
  resourceNames?: string[];
}
interface Container {
  name: string;
  command?: string[];
  args?: string[];
  securityContext?: { privileged?: boolean };
}
interface Obj {
  apiVersion: string;
  kind: string;
  metadata: { name: string; namespace?: string };
  rules?: Rule[];
  roleRef?: { apiGroup?: string; kind: string; name: string };
  subjects?: Array<{ kind: string; name: string; namespace?: string }>;
  spec?: { template?: { spec: { serviceAccountName?: string; initContainers?: Container[]; containers: Container[] } } };
}

/** The flag's value in a command line (`--flag value`). */
function flag(argv: string[], name: string): string | undefined {
  const i = argv.indexOf(name);
  return i === -1 ? undefined : argv[i + 1];
}

describe('kubectl kustomize deploy/kubernetes (the real kubectl)', function () {
  this.timeout(60_000);
  let objs: Obj[];
  const find = (kind: string, name: string): Obj => {
    const o = objs.find((x) => x.kind === kind && x.metadata.name === name);
    assert.ok(o, `${kind}/${name} is rendered`);
    return o;
  };

  before(() => {
    const which = spawnSync('sh', ['-c', 'command -v kubectl'], { encoding: 'utf8' });
    assert.equal(which.status, 0, 'kubectl is not on PATH: `make deps-test` installs Debian\'s kubernetes-client');
    const out = execFileSync('kubectl', ['kustomize', path.join(REPO, 'deploy', 'kubernetes')], { encoding: 'utf8', env: { ...process.env, KUBECONFIG: '/dev/null' } });
    objs = parseAllDocuments(out).map((d) => d.toJS() as Obj).filter((o) => o !== null);
  });

  it('renders exactly the objects kubectl apply -k creates', () => {
    const got = objs.map((o) => `${o.kind}/${o.metadata.namespace ? `${o.metadata.namespace}/` : ''}${o.metadata.name}`).sort();
    assert.deepEqual(got, [
      'ClusterRole/palisade-agent',
      'ClusterRole/palisade-collector',
      'ClusterRoleBinding/palisade-agent',
      'ClusterRoleBinding/palisade-collector',
      'CustomResourceDefinition/egresspolicies.palisade.dev',
      'CustomResourceDefinition/faultinjections.palisade.dev',
      'CustomResourceDefinition/palisadejointokens.palisade.dev',
      'CustomResourceDefinition/palisadenodes.palisade.dev',
      'CustomResourceDefinition/palisaderegistrations.palisade.dev',
      'DaemonSet/palisade-system/palisade-agent',
      'Deployment/palisade-system/palisade-collector',
      'Namespace/palisade-system',
      'PersistentVolumeClaim/palisade-system/palisade-collector-data',
      'Role/palisade-system/palisade-collector',
      'RoleBinding/palisade-system/palisade-collector',
      'Service/palisade-system/palisade-collector',
      'ServiceAccount/palisade-system/palisade-agent',
      'ServiceAccount/palisade-system/palisade-collector',
    ]);
  });

  it('the agent DaemonSet enrolls from the API and joins the collector\'s Service (--collector wss://…svc:15012)', () => {
    const ds = find('DaemonSet', 'palisade-agent');
    const agent = ds.spec!.template!.spec.containers.find((c) => c.name === 'agent');
    assert.ok(agent?.command, 'the agent container');
    assert.deepEqual(agent.command.slice(0, 2), ['palisade', 'agent']);
    assert.equal(flag(agent.command, '--collector'), 'wss://palisade-collector.palisade-system.svc:15012');
    const svc = find('Service', 'palisade-collector');
    assert.equal(svc.metadata.namespace, 'palisade-system', 'the Service the URL names');
    assert.ok(agent.command.includes('--kubernetes'));
    assert.equal(ds.spec!.template!.spec.serviceAccountName, 'palisade-agent');
  });

  it('the DaemonSet installs palisade-cni with an init container, into the CNI directories the agent keeps', () => {
    const spec = find('DaemonSet', 'palisade-agent').spec!.template!.spec;
    const init = spec.initContainers?.find((c) => c.command?.slice(0, 3).join(' ') === 'palisade cni install');
    assert.ok(init, `an init container runs palisade cni install (init containers: ${spec.initContainers?.map((c) => c.name).join(', ')})`);
    assert.notEqual(init.securityContext?.privileged, true, 'not privileged');
    const agent = spec.containers.find((c) => c.name === 'agent')!;
    assert.equal(flag(agent.command!, '--cni-conf-dir'), flag(init.command!, '--cni-conf-dir'), 'the agent keeps the chain the init container wrote');
    assert.ok(flag(init.command!, '--cni-bin-dir'));
  });

  it('RBAC: the agent only reads pods and namespaces', () => {
    assert.deepEqual(find('ClusterRole', 'palisade-agent').rules, [{ apiGroups: [''], resources: ['pods', 'namespaces'], verbs: ['get', 'list', 'watch'] }]);
  });

  it('RBAC: the collector reads pods, services, endpoint slices, policy, route and destination rule objects, and writes only the policy and route objects (changes through its own API), Events, the status of our own kinds and the nodes\' join records, join tokens and registrations', () => {
    const rules = find('ClusterRole', 'palisade-collector').rules!;
    const grants = rules.flatMap((r) => r.apiGroups.flatMap((g) => r.resources.flatMap((res) => r.verbs.map((v) => `${v} ${g || 'core'}/${res}`)))).sort();
    assert.deepEqual(grants, [
      'create core/events',
      'create gateway.networking.k8s.io/grpcroutes',
      'create gateway.networking.k8s.io/httproutes',
      'create networking.istio.io/destinationrules',
      'create palisade.dev/egresspolicies',
      'create palisade.dev/faultinjections',
      'create palisade.dev/palisadejointokens',
      'create palisade.dev/palisadenodes',
      'create palisade.dev/palisaderegistrations',
      'create security.istio.io/authorizationpolicies',
      'delete gateway.networking.k8s.io/grpcroutes',
      'delete gateway.networking.k8s.io/httproutes',
      'delete networking.istio.io/destinationrules',
      'delete palisade.dev/egresspolicies',
      'delete palisade.dev/faultinjections',
      'delete palisade.dev/palisadejointokens',
      'delete palisade.dev/palisaderegistrations',
      'delete security.istio.io/authorizationpolicies',
      'get gateway.networking.k8s.io/grpcroutes',
      'get gateway.networking.k8s.io/httproutes',
      'get palisade.dev/faultinjections',
      'list core/pods',
      'list core/services',
      'list discovery.k8s.io/endpointslices',
      'list gateway.networking.k8s.io/grpcroutes',
      'list gateway.networking.k8s.io/httproutes',
      'list networking.istio.io/destinationrules',
      'list palisade.dev/egresspolicies',
      'list palisade.dev/faultinjections',
      'list palisade.dev/palisadejointokens',
      'list palisade.dev/palisadenodes',
      'list palisade.dev/palisaderegistrations',
      'list security.istio.io/authorizationpolicies',
      'patch palisade.dev/egresspolicies/status',
      'patch palisade.dev/faultinjections/status',
      'update gateway.networking.k8s.io/grpcroutes',
      'update gateway.networking.k8s.io/httproutes',
      'update networking.istio.io/destinationrules',
      'update palisade.dev/egresspolicies',
      'update palisade.dev/faultinjections',
      'update palisade.dev/palisadejointokens',
      'update palisade.dev/palisadenodes',
      'update palisade.dev/palisaderegistrations',
      'update security.istio.io/authorizationpolicies',
      'watch core/pods',
      'watch core/services',
      'watch discovery.k8s.io/endpointslices',
      'watch gateway.networking.k8s.io/grpcroutes',
      'watch gateway.networking.k8s.io/httproutes',
      'watch networking.istio.io/destinationrules',
      'watch palisade.dev/egresspolicies',
      'watch palisade.dev/faultinjections',
      'watch palisade.dev/palisadejointokens',
      'watch palisade.dev/palisadenodes',
      'watch palisade.dev/palisaderegistrations',
      'watch security.istio.io/authorizationpolicies',
    ]);
  });

  it('RBAC: the collector may get the mesh CA Secret (--ca-secret palisade-system/palisade-ca) by name, and keep replica Leases, in palisade-system only', () => {
    const role = find('Role', 'palisade-collector');
    assert.equal(role.metadata.namespace, 'palisade-system');
    assert.deepEqual(role.rules, [
      { apiGroups: [''], resources: ['secrets'], resourceNames: ['palisade-ca'], verbs: ['get'] },
      { apiGroups: ['coordination.k8s.io'], resources: ['leases'], verbs: ['get', 'list', 'watch', 'create', 'update', 'delete'] },
    ]);
    const binding = find('RoleBinding', 'palisade-collector');
    assert.equal(binding.metadata.namespace, 'palisade-system', 'bound where the Secret is');
    assert.deepEqual(binding.roleRef, { apiGroup: 'rbac.authorization.k8s.io', kind: 'Role', name: 'palisade-collector' });
    assert.deepEqual(binding.subjects, [{ kind: 'ServiceAccount', name: 'palisade-collector', namespace: 'palisade-system' }]);
  });

  it('RBAC: no wildcard, no secret but by name, no Role beyond the three; each role bound to its own service account only', () => {
    const roles = objs.filter((o) => o.kind === 'ClusterRole' || o.kind === 'Role');
    for (const r of roles) {
      for (const rule of r.rules ?? []) {
        for (const field of [rule.apiGroups, rule.resources, rule.verbs]) assert.ok(!field.includes('*'), `${r.metadata.name}: a wildcard in ${JSON.stringify(rule)}`);
        if (rule.resources.includes('secrets')) {
          assert.ok(rule.resourceNames?.length, `${r.metadata.name}: secrets only by name (resourceNames), never all of them`);
          assert.deepEqual(rule.verbs.filter((v) => v !== 'get'), [], `${r.metadata.name}: only get on secrets`);
        }
      }
    }
    assert.deepEqual(roles.map((r) => `${r.kind}/${r.metadata.name}`).sort(), ['ClusterRole/palisade-agent', 'ClusterRole/palisade-collector', 'Role/palisade-collector']);
    const bindings = objs.filter((o) => o.kind === 'ClusterRoleBinding' || o.kind === 'RoleBinding');
    for (const b of bindings) {
      assert.equal(b.roleRef!.name, b.metadata.name);
      assert.equal(`${b.roleRef!.kind}Binding`, b.kind, 'a ClusterRoleBinding binds a ClusterRole, a RoleBinding a Role');
      assert.deepEqual(b.subjects, [{ kind: 'ServiceAccount', name: b.metadata.name, namespace: 'palisade-system' }]);
    }
  });
});
