import { strict as assert } from 'node:assert';
import { parseWorkloads, WorkloadsInvalidError } from '../../../agent/workloads';

const HEAD = 'workloads: []\nservices:\n';
const GOOD = `${HEAD}  - name: web
    namespace: default
    vips: [10.96.0.10]
    ports:
      - {name: http, port: 80, targetPort: 8080}
      - {name: admin, port: 9000, targetPort: 9090}
    selector: {app: web}
`;

function problems(text: string): string[] {
  try {
    parseWorkloads(text, 'w.yaml');
  } catch (err) {
    assert.ok(err instanceof WorkloadsInvalidError);
    return [...err.problems];
  }
  assert.fail('expected problems');
}

describe('workloads file: services', function () {
  it('reads a service: virtual IPs, ports with target ports, selector', function () {
    assert.deepEqual(parseWorkloads(GOOD, 'w.yaml').services, [
      {
        namespace: 'default',
        name: 'web',
        vips: ['10.96.0.10'],
        ports: [
          { name: 'http', port: 80, targetPort: 8080 },
          { name: 'admin', port: 9000, targetPort: 9090 },
        ],
        selector: { app: 'web' },
      },
    ]);
    assert.deepEqual(parseWorkloads('workloads: []\n', 'w.yaml').services, []);
  });

  const one = (fields: string): string => `${HEAD}  - ${fields}\n`;
  const cases: Array<[string, string, RegExp]> = [
    ['a missing selector', one('{name: web, namespace: default, vips: [10.96.0.10], ports: [{port: 80, targetPort: 8080}]}'), /^w\.yaml:3: service "web": missing required field "selector"$/],
    ['a bad name', one('{name: Web, namespace: default, vips: [10.96.0.10], ports: [{port: 80, targetPort: 8080}], selector: {app: web}}'), /^w\.yaml:3: service "Web": name: must be a DNS-1123 label/],
    ['a virtual IP that is not one', one('{name: web, namespace: default, vips: [10.96.0.300], ports: [{port: 80, targetPort: 8080}], selector: {app: web}}'), /vips: "10\.96\.0\.300" is not a unicast IPv4 address/],
    ['a port out of range', one('{name: web, namespace: default, vips: [10.96.0.10], ports: [{port: 80, targetPort: 70000}], selector: {app: web}}'), /ports\[0\]\.targetPort: must be a port number \(1-65535\), got 70000/],
    ['two unnamed ports', one('{name: web, namespace: default, vips: [10.96.0.10], ports: [{port: 80, targetPort: 8080}, {port: 81, targetPort: 8081}], selector: {app: web}}'), /every port needs a name when there are several/],
    ['an empty selector', one('{name: web, namespace: default, vips: [10.96.0.10], ports: [{port: 80, targetPort: 8080}], selector: {}}'), /selector: must be a mapping of at least one label/],
    ['an unknown field', one('{name: web, namespace: default, vip: 10.96.0.10, vips: [10.96.0.10], ports: [{port: 80, targetPort: 8080}], selector: {app: web}}'), /unknown field "vip" \(did you mean "vips"\?\)/],
    ['a service twice', `${GOOD}${GOOD.slice(HEAD.length)}`, /duplicate service default\/web, already defined at line 3/],
  ];
  for (const [what, text, problem] of cases) {
    it(`refuses ${what} with one line naming file and line`, function () {
      const found = problems(text);
      assert.match(found[0]!, problem);
      assert.ok(found.every((p) => !p.includes('\n')));
    });
  }
});
