/** The CRDs of deploy/kubernetes, installed into the Kubernetes API double as a cluster would have them. */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { parseAllDocuments } from 'yaml';
import { fixturePath } from './fixtures';
import type { KubeApiDouble } from './kube-api-double';

function deployDir(): string {
  for (let dir = __dirname; ; dir = path.dirname(dir)) {
    const candidate = path.join(dir, 'deploy', 'kubernetes');
    if (fs.existsSync(path.join(candidate, 'crds'))) return candidate;
    if (path.dirname(dir) === dir) throw new Error(`deploy/kubernetes not found above ${__dirname}`);
  }
}

/**
 * Create the CRDs of deploy/kubernetes/crds (EgressPolicy, FaultInjection) and, with `istio`, Istio's
 * AuthorizationPolicy CRD (or only its `versions`); with `gatewayApi`, the Gateway API's HTTPRoute
 * and GRPCRoute as a cluster would serve them, with `destinationRules` Istio's DestinationRule
 * (test/fixtures/kubernetes: Palisade does not ship them).
 */
export function installCrds(api: KubeApiDouble, opts: { istio?: boolean | { versions: string[] }; gatewayApi?: boolean; destinationRules?: boolean } = {}): void {
  const yamls = (dir: string): string[] => fs.readdirSync(dir).filter((f) => f.endsWith('.yaml')).sort().map((f) => path.join(dir, f));
  const files = [
    ...yamls(path.join(deployDir(), 'crds')),
    ...(opts.istio ? yamls(path.join(deployDir(), 'istio-crd')) : []),
    ...(opts.gatewayApi ? [fixturePath('kubernetes/gateway-api-routes.yaml')] : []),
    ...(opts.destinationRules ? [fixturePath('kubernetes/istio-destinationrules.yaml')] : []),
  ];
  for (const file of files) {
    for (const doc of parseAllDocuments(fs.readFileSync(file, 'utf8'))) {
      const crd = doc.toJS() as { spec: { group: string; versions: Array<{ name: string; storage: boolean }> } };
      const only = typeof opts.istio === 'object' && crd.spec.group === 'security.istio.io' ? opts.istio.versions : undefined;
      if (only) {
        crd.spec.versions = crd.spec.versions.filter((v) => only.includes(v.name));
        crd.spec.versions.forEach((v, i) => (v.storage = i === 0));
      }
      api.create('apiextensions.k8s.io/v1/customresourcedefinitions', crd as unknown as Record<string, unknown>);
    }
  }
}
