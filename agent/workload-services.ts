/**
 * The `services:` section of the agent's workloads file, for hosts without Kubernetes: services
 * with virtual IPs and ports whose endpoints are the mesh's workloads its selector picks (the
 * collector resolves them across nodes). Checked once, here; every problem is one line
 * `<file>:<line>: service "<name>": <what>`.
 *
 *   services:
 *     - name: web
 *       namespace: default
 *       vips: [10.96.0.10]
 *       ports:
 *         - {name: http, port: 80, targetPort: 8080}
 *       selector: {app: web}
 */
import { isMap, isScalar, type Document } from 'yaml';
import { isDnsLabel } from '../common/identity';
import { isLabelKey, isLabelValue, LABEL_NAME_RULE } from '../common/labels';
import { MAX_SERVICE_PORTS, MAX_SERVICE_VIPS, type ServiceRegistration } from '../common/mesh-protocol';
import { describeValue, keyName, NodeReader, quote, type Field, type Problems } from '../common/yaml-reader';

const SERVICE_FIELDS = ['name', 'namespace', 'vips', 'ports', 'selector'];
const PORT_FIELDS = ['name', 'port', 'targetPort'];
const PORT_NAME_RE = /^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/;
const IPV4_RE = /^(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)(\.(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)){3}$/;

export function parseServices(problems: Problems, doc: Document, node: unknown, line: number): ServiceRegistration[] {
  const reader = new NodeReader(problems, doc, 'services');
  const list = reader.list({ key: 'services', node, keyLine: line, line: problems.lineOf(node, line) }, '', '[{name: web, namespace: default, vips: [10.96.0.10], ports: [{port: 80, targetPort: 8080}], selector: {app: web}}]');
  if (!list) return [];
  const out: ServiceRegistration[] = [];
  const names = new Map<string, number>();
  const addresses = new Map<string, string>();
  list.forEach((item, i) => {
    const before = problems.found.length;
    const nameNode = isMap(item.value) ? reader.deref(item.value.items.find((p) => keyName(p) === 'name')?.value) : undefined;
    const nameValue = isScalar(nameNode) && typeof nameNode.value === 'string' ? nameNode.value : undefined;
    reader.label = nameValue ? `service ${quote(nameValue)}` : `service #${i + 1}`;
    const fields = reader.fields(item.value, '', SERVICE_FIELDS, item.line);
    if (!fields) return;
    for (const f of ['name', 'namespace', 'vips', 'ports', 'selector']) if (!fields.has(f)) reader.fail(item.line, '', `missing required field "${f}"`);
    const name = label(reader, fields.get('name'), 'name');
    const namespace = label(reader, fields.get('namespace'), 'namespace');
    const vips = addressesOf(reader, fields.get('vips'));
    const ports = portsOf(reader, fields.get('ports'));
    const selector = selectorOf(reader, fields.get('selector'));
    if (problems.found.length > before || !name || !namespace || !vips || !ports || !selector) return;
    const id = `${namespace}/${name}`;
    const earlier = names.get(id);
    if (earlier !== undefined) return reader.fail(item.line, '', `duplicate service ${id}, already defined at line ${earlier}`);
    names.set(id, item.line);
    for (const vip of vips) for (const p of ports) {
      const owner = addresses.get(`${vip}:${p.port}`);
      if (owner !== undefined) return reader.fail(item.line, '', `${vip}:${p.port} is already the address of service ${owner}`);
    }
    for (const vip of vips) for (const p of ports) addresses.set(`${vip}:${p.port}`, id);
    out.push({ namespace, name, vips, ports, selector });
  });
  return out;
}

function label(reader: NodeReader, field: Field | undefined, what: string): string | undefined {
  if (!field) return undefined;
  const v = reader.string(field, what);
  if (v === undefined) return undefined;
  if (isDnsLabel(v)) return v;
  reader.fail(field.line, what, `must be a DNS-1123 label (lowercase letters, digits and '-', at most 63), got ${quote(v)}`);
  return undefined;
}

function addressesOf(reader: NodeReader, field: Field | undefined): string[] | undefined {
  if (!field) return undefined;
  const items = reader.strings(field, 'vips');
  if (!items) return undefined;
  if (items.length === 0 || items.length > MAX_SERVICE_VIPS) {
    reader.fail(field.line, 'vips', `must list 1 or ${MAX_SERVICE_VIPS} IPv4 addresses, got ${items.length}`);
    return undefined;
  }
  let ok = true;
  for (const { value, line } of items) {
    if (!IPV4_RE.test(value) || value === '0.0.0.0' || value.startsWith('127.') || Number(value.split('.')[0]) >= 224) {
      reader.fail(line, 'vips', `${quote(value)} is not a unicast IPv4 address like 10.96.0.10`);
      ok = false;
    }
  }
  return ok ? items.map((i) => i.value) : undefined;
}

function portsOf(reader: NodeReader, field: Field | undefined): ServiceRegistration['ports'] | undefined {
  if (!field) return undefined;
  const list = reader.list(field, 'ports', '[{port: 80, targetPort: 8080}]');
  if (!list) return undefined;
  if (list.length === 0 || list.length > MAX_SERVICE_PORTS) {
    reader.fail(field.line, 'ports', `must list 1 to ${MAX_SERVICE_PORTS} ports, got ${list.length}`);
    return undefined;
  }
  const out: ServiceRegistration['ports'] = [];
  let ok = true;
  const seen = new Set<string>();
  list.forEach((item, i) => {
    const at = `ports[${i}]`;
    const f = reader.fields(item.value, at, PORT_FIELDS, item.line);
    if (!f) return void (ok = false);
    const port = number(reader, f.get('port'), `${at}.port`, item.line);
    const targetPort = number(reader, f.get('targetPort'), `${at}.targetPort`, item.line);
    let name = '';
    const nameField = f.get('name');
    if (nameField) {
      const n = reader.string(nameField, `${at}.name`);
      if (n !== undefined && !PORT_NAME_RE.test(n)) reader.fail(nameField.line, `${at}.name`, `must be lowercase letters, digits and '-', at most 63, got ${quote(n)}`);
      else if (n !== undefined) name = n;
      else ok = false;
    }
    if (port === undefined || targetPort === undefined) return void (ok = false);
    for (const key of [`port ${port}`, `name ${name}`]) {
      if (seen.has(key)) {
        reader.fail(item.line, at, key.startsWith('port') ? `port ${port} is listed twice` : list.length > 1 && name === '' ? 'every port needs a name when there are several' : `name ${quote(name)} is listed twice`);
        ok = false;
      }
      seen.add(key);
    }
    out.push({ name, port, targetPort });
  });
  return ok ? out : undefined;
}

function number(reader: NodeReader, field: Field | undefined, path: string, line: number): number | undefined {
  if (!field) {
    reader.fail(line, path, 'is missing');
    return undefined;
  }
  const node = field.node;
  if (isScalar(node) && typeof node.value === 'number' && Number.isInteger(node.value) && node.value >= 1 && node.value <= 65535) return node.value;
  reader.fail(field.line, path, `must be a port number (1-65535), got ${describeValue(node)}`);
  return undefined;
}

function selectorOf(reader: NodeReader, field: Field | undefined): Record<string, string> | undefined {
  if (!field) return undefined;
  if (!isMap(field.node) || field.node.items.length === 0) {
    reader.fail(field.line, 'selector', `must be a mapping of at least one label, like {app: web}, got ${describeValue(field.node)}`);
    return undefined;
  }
  const out: Record<string, string> = {};
  let ok = true;
  for (const pair of field.node.items) {
    const key = keyName(pair);
    const value = reader.deref(pair.value);
    const text = isScalar(value) && typeof value.value === 'string' ? value.value : undefined;
    if (key === undefined || !isLabelKey(key) || text === undefined || !isLabelValue(text)) {
      reader.fail(reader.line(pair.key, field.line), 'selector', `${quote(String(key))}: ${describeValue(value)} is not a label (${LABEL_NAME_RULE})`);
      ok = false;
      continue;
    }
    out[key] = text;
  }
  return ok ? out : undefined;
}
