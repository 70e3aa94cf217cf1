/** Kubernetes label and object-name syntax, checked the same way by every reader (workloads file, policies, mesh protocol). */
const LABEL_NAME_RE = /^[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$/;
const DNS_SUBDOMAIN_RE = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;

/**
 * The label every workload carries, set by the agent to the workload's name (a workloads file may
 * only repeat that value): a policy selector `{matchLabels: {palisade.dev/workload: web}}`
 * selects workload `web` of the policy's namespace, and nothing else.
 */
export const WORKLOAD_LABEL = 'palisade.dev/workload';

export const LABEL_NAME_RULE = "at most 63 letters, digits, '-', '_' or '.', starting and ending with a letter or digit";

/** Label key: `[prefix/]name`, prefix a DNS subdomain ≤253, name ≤63. */
export function isLabelKey(key: string): boolean {
  const slash = key.indexOf('/');
  const name = slash === -1 ? key : key.slice(slash + 1);
  if (slash !== -1 && !isDnsSubdomain(key.slice(0, slash))) return false;
  return name.length <= 63 && LABEL_NAME_RE.test(name);
}

/** Label value: empty, or a label name. */
export function isLabelValue(value: string): boolean {
  return value === '' || (value.length <= 63 && LABEL_NAME_RE.test(value));
}

/** DNS-1123 subdomain (object names, label-key prefixes): lowercase alphanumerics, '-' and '.', ≤253. */
export function isDnsSubdomain(value: string): boolean {
  return value.length <= 253 && DNS_SUBDOMAIN_RE.test(value);
}
