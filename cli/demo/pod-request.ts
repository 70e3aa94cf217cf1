/**
 * `palisade demo pod add`'s input, checked before anything is touched: a pure function of the
 * flags and what the demo has (table-tested). Every problem is one line naming the flag.
 */
import { invalidArgument } from '../../common/errors';
import { isDnsLabel } from '../../common/identity';
import { isLabelKey, isLabelValue, LABEL_NAME_RULE, WORKLOAD_LABEL } from '../../common/labels';
import type { DemoPodSpec } from './demo-kube';

/** A demo pod's name names its network namespace and cgroup too (test/harness/topology.ts: ≤ 32). */
export const MAX_POD_NAME = 32;

/** Every demo pod's labels: `app` names it, and its flows are access-logged. */
export function demoPodLabels(app: string): Record<string, string> {
  return { app, 'palisade.dev/access-log': 'on' };
}

export interface PodAddFlags {
  name: string;
  node: string;
  /** `--label k=v`, repeatable */
  labels: string[];
  serviceAccount: string;
  /** only the node proxy may open connections to it */
  strict?: boolean;
  /** run the demo's web app in it (HTTP on the web port) */
  web?: boolean;
}

export interface DemoInventory {
  nodes: string[];
  /** Pods and hosts the demo has (a name may not be taken twice). */
  names: string[];
}

/** The pod to add, with the demo's default labels (`app` = its name, access-logged) under the given ones. */
export function podAddRequest(flags: PodAddFlags, demo: DemoInventory, defaults: (app: string) => Record<string, string>): DemoPodSpec {
  const { name, node, serviceAccount } = flags;
  if (!isDnsLabel(name) || name.length > MAX_POD_NAME) {
    throw invalidArgument(`pod name ${JSON.stringify(name)}: lowercase letters, digits and '-', starting and ending with a letter or digit, at most ${MAX_POD_NAME}`);
  }
  if (demo.names.includes(name)) throw invalidArgument(`the demo already has a pod or host named ${name}`);
  if (!demo.nodes.includes(node)) throw invalidArgument(`--node ${JSON.stringify(node)}: the demo's nodes are ${demo.nodes.join(', ')}`);
  if (!isDnsLabel(serviceAccount)) {
    throw invalidArgument(`--service-account ${JSON.stringify(serviceAccount)}: a DNS-1123 label (lowercase letters, digits and '-'; part of the pod's SPIFFE identity)`);
  }
  const given: Record<string, string> = {};
  for (const l of flags.labels) {
    const eq = l.indexOf('=');
    if (eq <= 0) throw invalidArgument(`--label ${JSON.stringify(l)}: want KEY=VALUE`);
    const [k, v] = [l.slice(0, eq), l.slice(eq + 1)];
    if (!isLabelKey(k)) throw invalidArgument(`--label ${JSON.stringify(l)}: the key is not a label key ([prefix/]name, the name ${LABEL_NAME_RULE})`);
    if (!isLabelValue(v)) throw invalidArgument(`--label ${JSON.stringify(l)}: the value is not a label value (empty, or ${LABEL_NAME_RULE})`);
    if (k === WORKLOAD_LABEL) throw invalidArgument(`--label ${JSON.stringify(l)}: ${WORKLOAD_LABEL} is the mesh's own (the pod's name)`);
    if (k in given && given[k] !== v) throw invalidArgument(`--label ${k} is given twice with different values`);
    given[k] = v;
  }
  return { name, node, serviceAccount, strict: flags.strict === true, labels: { ...defaults(given.app ?? name), ...given }, ...(flags.web ? { app: 'web' as const } : {}) };
}
