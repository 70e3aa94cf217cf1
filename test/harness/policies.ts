/** Policy documents the privileged suites write into policy directories. */

/** A DENY AuthorizationPolicy on `app=<app>` for calls from one service account (optionally to some ports only). */
export function denyFromYaml(o: { name: string; app: string; serviceAccount: string; ports?: number[] }): string {
  const to = o.ports ? `\n      to:\n        - operation:\n            ports: [${o.ports.map((p) => `"${p}"`).join(', ')}]` : '';
  return `apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata:
  name: ${o.name}
  namespace: default
spec:
  selector:
    matchLabels:
      app: ${o.app}
  action: DENY
  rules:
    - from:
        - source:
            principals: ["cluster.local/ns/default/sa/${o.serviceAccount}"]${to}
`;
}
