/**
 * The demo's Services: `web` (every version), `web-v1` and `web-v2`, each with a virtual IP, declared
 * in both agents' workloads files (`services:`, agent/workload-services.ts; the collector resolves
 * their endpoints across nodes by selector, collector/services.ts). `demo status` lists them with
 * the demo's pods their selectors pick (pure: serviceStatus).
 */

export interface DemoService {
  name: string;
  namespace: string;
  ips: string[];
  ports: Array<{ name: string; port: number; targetPort: number }>;
  selector: Record<string, string>;
}

export interface ServiceEndpoint {
  pod: string;
  node: string;
  ip: string;
}

export interface DemoServiceStatus extends DemoService {
  endpoints: ServiceEndpoint[];
}

const HTTP = (targetPort: number): DemoService['ports'] => [{ name: 'http', port: 80, targetPort }];

/** The Services, for the web app on `webPort`. */
export function demoServices(webPort: number): DemoService[] {
  return [
    { name: 'web', namespace: 'default', ips: ['10.96.0.10'], ports: HTTP(webPort), selector: { app: 'web' } },
    { name: 'web-v1', namespace: 'default', ips: ['10.96.0.11'], ports: HTTP(webPort), selector: { app: 'web', version: 'v1' } },
    { name: 'web-v2', namespace: 'default', ips: ['10.96.0.12'], ports: HTTP(webPort), selector: { app: 'web', version: 'v2' } },
  ];
}

/** The workloads file's `services:` section declaring them. */
export function servicesYaml(services: DemoService[]): string {
  const flow = (o: Record<string, string | number>): string => `{${Object.entries(o).map(([k, v]) => `${k}: ${v}`).join(', ')}}`;
  const lines = services.map(
    (s) => `  - {name: ${s.name}, namespace: ${s.namespace}, vips: [${s.ips.join(', ')}], ports: [${s.ports.map((p) => flow(p)).join(', ')}], selector: ${flow(s.selector)}}`,
  );
  return `services:\n${lines.join('\n')}\n`;
}

/** Each service with the pods of its namespace that carry every label of its selector, by address. */
export function serviceStatus(
  services: DemoService[],
  pods: Array<{ name: string; node: string; ip: string; namespace: string; labels: Record<string, string> }>,
): DemoServiceStatus[] {
  const n = (ip: string): number => ip.split('.').reduce((acc, o) => acc * 256 + Number(o), 0);
  return services.map((s) => ({
    ...s,
    endpoints: pods
      .filter((p) => p.namespace === s.namespace && Object.entries(s.selector).every(([k, v]) => p.labels[k] === v))
      .map((p) => ({ pod: p.name, node: p.node, ip: p.ip }))
      .sort((a, b) => n(a.ip) - n(b.ip)),
  }));
}
