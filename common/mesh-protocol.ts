/**
 * The agent ⇄ collector protocol on `wss://…/v1/agent`: JSON text frames, each an object with
 * a `type`. Defined once here for both sides. `parseMessage` is the boundary: it turns a frame
 * into one of these types or refuses it (unknown type or field, wrong shape, oversized) with a
 * one-line PALISADE_ERR_PROTOCOL error. Semantic checks (trust domain, who owns an IP, which
 * identities a node may ask for) belong to the collector. The sessions, every message and the
 * close codes: docs/architecture.md "The mesh protocol".
 */
import * as zlib from 'node:zlib';
import { PalisadeError, type PalisadeErrorCode } from './errors';
import { flowProblem, type FlowRecord } from './flow';
import { isLabelKey, isLabelValue } from './labels';
import { isDnsLabel } from './identity';
import { isNodeName } from './pki';
import { isRecord } from './record';

export const AGENT_PATH = '/v1/agent';
/** The DNS name in the collector's serving certificate; agents always verify against it. */
export const COLLECTOR_SERVERNAME = 'palisade-collector';
/** Largest frame an agent may send (and the collector's ws maxPayload). */
export const MAX_FRAME_BYTES = 1024 * 1024;
/** Largest frame the collector may send: registry snapshots grow with the mesh. */
export const MAX_COLLECTOR_FRAME_BYTES = 64 * 1024 * 1024;

export const CloseCode = {
  NORMAL: 1000,
  GOING_AWAY: 1001,
  /** Join token refused. */
  JOIN_REFUSED: 4001,
  /** A frame failed `parseMessage`. */
  PROTOCOL: 4400,
  /** The session tried to act as another node. */
  FORBIDDEN: 4403,
  /** Another session for the same node took over. */
  REPLACED: 4409,
} as const;

/** Error codes that may travel in an `error` message. */
export const WIRE_ERROR_CODES = [
  'PALISADE_ERR_CSR_REFUSED',
  'PALISADE_ERR_JOIN_REFUSED',
  'PALISADE_ERR_REGISTRATION_REFUSED',
  'PALISADE_ERR_UNAUTHENTICATED',
  'PALISADE_ERR_PROTOCOL',
  'PALISADE_ERR_INTERNAL',
] as const satisfies readonly PalisadeErrorCode[];
export type WireErrorCode = (typeof WIRE_ERROR_CODES)[number];

export interface WorkloadRegistration {
  name: string;
  namespace: string;
  serviceAccount: string;
  /** IPv4, canonical dotted quad. */
  ip: string;
  labels: Record<string, string>;
  /** Optional: when given, the collector refuses it unless it is spiffe://<its td>/ns/<ns>/sa/<sa>. */
  identity?: string;
}

export interface RegistryWorkload {
  node: string;
  nodeAddress: string;
  name: string;
  namespace: string;
  serviceAccount: string;
  identity: string;
  ip: string;
  labels: Record<string, string>;
}

/** A port of a service (TCP). `name` is '' for a service's one unnamed port. */
export interface ServicePort {
  name: string;
  port: number;
}

/** One endpoint of a service: where each of the service's ports goes (`targetPorts[i]` for `ports[i]`). */
export interface RegistryEndpoint {
  ip: string;
  /** Only ready endpoints get new connections. */
  ready: boolean;
  targetPorts: number[];
}

/** A service of the mesh: virtual IPs and ports, carried to its endpoints (Kubernetes Services + EndpointSlices, or declared by a node). */
export interface RegistryService {
  namespace: string;
  name: string;
  /** Virtual IPs (IPv4), the cluster IPs. */
  vips: string[];
  ports: ServicePort[];
  endpoints: RegistryEndpoint[];
}

/** A service a node declares (its workloads file's `services:`): endpoints are the mesh's workloads its selector picks. */
export interface ServiceRegistration {
  namespace: string;
  name: string;
  vips: string[];
  ports: Array<ServicePort & { targetPort: number }>;
  /** Workloads of the namespace with all these labels are its endpoints. */
  selector: Record<string, string>;
}

export interface RegistryNode {
  node: string;
  nodeAddress: string;
  online: boolean;
  /** ISO 8601: when the node's session last ended (or now, while online). */
  lastSeen: string;
}

/**
 * `version` counts changes within one collector process; a restarted collector starts again
 * with a new `epoch` (a random id), so a version is only meaningful with its epoch.
 */
export interface RegistrySnapshot {
  version: number;
  epoch: string;
  workloads: RegistryWorkload[];
  nodes: RegistryNode[];
  /** Optional on the wire: a collector before services sends none. */
  services?: RegistryService[];
}

/**
 * One registry change. Entries are keyed (a workload by IP, a node by name): `set-*` adds or
 * replaces the entry, `remove-*` deletes it. A new kind of entry adds its own `set-`/`remove-` pair.
 * A service is keyed by namespace and name: `set-service` carries it whole (with its endpoints),
 * so one EndpointSlice change costs that one service, not the mesh's services.
 */
export type RegistryChange =
  | { op: 'set-workload'; workload: RegistryWorkload }
  | { op: 'remove-workload'; ip: string }
  | { op: 'set-node'; node: RegistryNode }
  | { op: 'remove-node'; node: string }
  | { op: 'set-service'; service: RegistryService }
  | { op: 'remove-service'; namespace: string; name: string };

/** What turns the registry at `fromVersion` (same epoch) into the registry at `toVersion`. */
export interface RegistryDelta {
  epoch: string;
  fromVersion: number;
  toVersion: number;
  changes: RegistryChange[];
}

/** Where an agent's registry stands: it wants what changed since (or a snapshot). */
export interface RegistryPosition {
  epoch: string;
  version: number;
}

export interface JoinMessage { type: 'join'; node: string; csr: string }
export interface JoinedMessage { type: 'joined'; cert: string; ca: string }
/** `since`: the registry the agent already holds (a reconnect); it is sent what it missed, or a snapshot. */
/**
 * `accepts`: what the agent can take besides the JSON text frames, by name; a collector sends
 * what it knows of them and ignores the rest. `registry-deflate`: registry snapshots and deltas
 * may come as binary WebSocket messages holding the frame's JSON deflated (raw DEFLATE, RFC
 * 1951; `inflateRegistryFrame`).
 */
export interface HelloMessage { type: 'hello'; node: string; nodeAddress: string; agentVersion: string; since?: RegistryPosition; accepts?: string[] }
/** Hello `accepts`: registry frames deflated, as binary messages. */
export const REGISTRY_DEFLATE = 'registry-deflate';
export interface RegisterMessage { type: 'register'; workloads: WorkloadRegistration[]; services?: ServiceRegistration[] }
export interface CsrMessage { type: 'csr'; id: string; identity: string; csr: string }
export interface CertMessage { type: 'cert'; id: string; cert: string; ca: string }
export interface ErrorMessage { type: 'error'; id?: string; code: WireErrorCode; message: string }
export interface RegistryMessage extends RegistrySnapshot { type: 'registry' }
export interface RegistryDeltaMessage extends RegistryDelta { type: 'registry-delta' }
/** The agent could not apply a delta (not at its fromVersion): it asks again from where it stands. */
export interface RegistrySyncMessage { type: 'registry-sync'; since?: RegistryPosition }
/**
 * A batch of flow records from an agent. `seq` numbers batches per agent process (`session`
 * identifies the process, so a restarted agent's seq 1 is not mistaken for a duplicate);
 * `lost` is the agent's running total of records it had to drop (buffer full) since it started.
 */
export interface FlowsMessage { type: 'flows'; session: string; seq: number; lost: number; flows: FlowRecord[] }
/** The collector stored batch `seq` (and every batch before it) of `session`. */
export interface FlowsAckMessage { type: 'flows-ack'; session: string; seq: number }
/** The collector's policy documents, all of them, at a version; agents compile and enforce them. */
export interface PoliciesMessage { type: 'policies'; version: number; files: Array<{ source: string; text: string }> }
/**
 * The agent enforces collector policy `version` (`ok`), or rejected it and keeps enforcing the
 * previous one (`problems`, at most MAX_POLICY_PROBLEMS lines). Sent after every `policies` frame.
 */
export interface PolicyStatusMessage {
  type: 'policy-status';
  version: number;
  ok: boolean;
  problems: string[];
  /** The node's UDP/ICMP kernel rules could not be written (why; failing closed); absent when current. */
  wireRules?: string;
}

export type MeshMessage =
  | JoinMessage
  | JoinedMessage
  | HelloMessage
  | RegisterMessage
  | CsrMessage
  | CertMessage
  | ErrorMessage
  | RegistryMessage
  | RegistryDeltaMessage
  | RegistrySyncMessage
  | PoliciesMessage
  | PolicyStatusMessage
  | FlowsMessage
  | FlowsAckMessage;
export type MessageType = MeshMessage['type'];
export type MessageOf<T extends MessageType> = Extract<MeshMessage, { type: T }>;

/** What each side may receive, by session kind. */
export const JOIN_REQUESTS = ['join'] as const;
export const JOIN_REPLIES = ['joined', 'error'] as const;
export const NODE_FIRST = ['hello'] as const;
export const NODE_REQUESTS = ['register', 'csr', 'flows', 'policy-status', 'registry-sync'] as const;
export const NODE_REPLIES = ['registry', 'registry-delta', 'policies', 'cert', 'flows-ack', 'error'] as const;
/** What a binary message from the collector may hold (deflated: hello `accepts` REGISTRY_DEFLATE). */
export const REGISTRY_FRAMES = ['registry', 'registry-delta'] as const;

// ---- field checks: each returns undefined when valid, else what is wrong -------------------

type Check = (v: unknown, at: string) => string | undefined;
interface Field { check: Check; optional?: boolean }
type Schema = Record<string, Field>;

const MAX_PEM = 16 * 1024;
const MAX_MESSAGE_TEXT = 1024;
const MAX_LABELS = 64;
/** Workloads one node may register (Kubernetes runs at most a few hundred pods per node). */
export const MAX_NODE_WORKLOADS = 1_000;
/** Workloads and nodes a registry snapshot may hold (the whole mesh). */
const MAX_REGISTRY_WORKLOADS = 100_000;
const MAX_NODES = 10_000;
/** Changes one delta may hold: one node's change touches at most its own workloads (all removed, all added), itself and the services (one change). */
export const MAX_DELTA_CHANGES = 4 * MAX_NODE_WORKLOADS;
const IPV4_RE = /^(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)(\.(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)){3}$/;
const ID_RE = /^[A-Za-z0-9._-]{1,64}$/;
const VERSION_TEXT_RE = /^[\x21-\x7e]{1,64}$/;
const ACCEPT_RE = /^[a-z0-9-]{1,32}$/;
const SPIFFE_MAX = 2048;

const isString = (v: unknown): v is string => typeof v === 'string';
const str =
  (ok: (s: string) => boolean, rule: string): Check =>
  (v, at) =>
    isString(v) && ok(v) ? undefined : `${at}: ${rule}`;

const nodeName = str(isNodeName, "must be a node name (lowercase letters, digits, '.', '-', '_', at most 63)");
const ipv4 = str((s) => IPV4_RE.test(s), 'must be an IPv4 address');
const dnsLabel = str(isDnsLabel, 'must be a DNS-1123 label');
const pem = (kind: string): Check => str((s) => s.length <= MAX_PEM && s.startsWith(`-----BEGIN ${kind}-----`), `must be a PEM ${kind}`);
const requestId = str((s) => ID_RE.test(s), "must be 1-64 letters, digits, '.', '_' or '-'");
const spiffe = str((s) => s.length <= SPIFFE_MAX && s.startsWith('spiffe://'), 'must be a spiffe:// URI');
const text = str((s) => s.length <= MAX_MESSAGE_TEXT, `must be a string of at most ${MAX_MESSAGE_TEXT} characters`);
const agentVersion = str((s) => VERSION_TEXT_RE.test(s), 'must be 1-64 printable characters');
const isoTime = str((s) => s.length <= 40 && !Number.isNaN(Date.parse(s)), 'must be an ISO 8601 time');
const wireCode = str((s) => (WIRE_ERROR_CODES as readonly string[]).includes(s), 'must be a known error code');
const bool: Check = (v, at) => (typeof v === 'boolean' ? undefined : `${at}: must be true or false`);
const version: Check = (v, at) => (Number.isSafeInteger(v) && (v as number) >= 0 ? undefined : `${at}: must be a non-negative integer`);

const labels: Check = (v, at) => {
  if (!isRecord(v)) return `${at}: must be an object of label names to strings`;
  const entries = Object.entries(v);
  if (entries.length > MAX_LABELS) return `${at}: at most ${MAX_LABELS} labels`;
  for (const [key, value] of entries) {
    if (!isLabelKey(key)) return `${at}: invalid label key`;
    if (!isString(value) || !isLabelValue(value)) return `${at}.${key}: invalid label value`;
  }
  return undefined;
};

const object =
  (schema: Schema): Check =>
  (v, at) =>
    checkObject(v, schema, at);

const arrayOf =
  (item: Check, max: number): Check =>
  (v, at) => {
    if (!Array.isArray(v)) return `${at}: must be an array`;
    if (v.length > max) return `${at}: at most ${max} entries`;
    for (let i = 0; i < v.length; i++) {
      const problem = item(v[i], `${at}[${i}]`);
      if (problem) return problem;
    }
    return undefined;
  };

const WORKLOAD_REGISTRATION: Schema = {
  name: { check: dnsLabel },
  namespace: { check: dnsLabel },
  serviceAccount: { check: dnsLabel },
  ip: { check: ipv4 },
  labels: { check: labels },
  identity: { check: spiffe, optional: true },
};

const REGISTRY_WORKLOAD: Schema = {
  node: { check: nodeName },
  nodeAddress: { check: ipv4 },
  name: { check: dnsLabel },
  namespace: { check: dnsLabel },
  serviceAccount: { check: dnsLabel },
  identity: { check: spiffe },
  ip: { check: ipv4 },
  labels: { check: labels },
};

export const MAX_SERVICE_PORTS = 100;
export const MAX_SERVICE_VIPS = 2;
export const MAX_SERVICE_ENDPOINTS = 5000;
const MAX_SERVICES = 10_000;
/** Services a registry snapshot may hold (the whole mesh's). */
const MAX_REGISTRY_SERVICES = MAX_SERVICES * 10;
const PORT_NAME_RE = /^([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)?$/;
const portNumber: Check = (v, at) => (Number.isInteger(v) && (v as number) >= 1 && (v as number) <= 65535 ? undefined : `${at}: must be a port (1-65535)`);
const portName = str((s) => PORT_NAME_RE.test(s), "must be '' or a port name (lowercase letters, digits and '-', at most 63)");
const SERVICE_PORT: Schema = { name: { check: portName }, port: { check: portNumber } };
const REGISTRY_SERVICE: Schema = {
  namespace: { check: dnsLabel },
  name: { check: dnsLabel },
  vips: { check: arrayOf(ipv4, MAX_SERVICE_VIPS) },
  ports: { check: arrayOf(object(SERVICE_PORT), MAX_SERVICE_PORTS) },
  endpoints: {
    check: arrayOf(object({ ip: { check: ipv4 }, ready: { check: bool }, targetPorts: { check: arrayOf(portNumber, MAX_SERVICE_PORTS) } }), MAX_SERVICE_ENDPOINTS),
  },
};
const SERVICE_REGISTRATION: Schema = {
  namespace: { check: dnsLabel },
  name: { check: dnsLabel },
  vips: { check: arrayOf(ipv4, MAX_SERVICE_VIPS) },
  ports: { check: arrayOf(object({ ...SERVICE_PORT, targetPort: { check: portNumber } }), MAX_SERVICE_PORTS) },
  selector: { check: labels },
};

const MAX_POLICY_FILES = 1000;
export const MAX_POLICY_PROBLEMS = 50;
export const MAX_FLOWS_PER_BATCH = 1000;
const MAX_POLICY_TEXT = 1024 * 1024;
const POLICY_FILE: Schema = {
  source: { check: (v, at) => (isString(v) && v.length > 0 && v.length <= 1024 ? undefined : `${at}: must be a file name`) },
  text: { check: (v, at) => (isString(v) && v.length <= MAX_POLICY_TEXT ? undefined : `${at}: must be text of at most ${MAX_POLICY_TEXT} characters`) },
};

const REGISTRY_NODE: Schema = {
  node: { check: nodeName },
  nodeAddress: { check: ipv4 },
  online: { check: bool },
  lastSeen: { check: isoTime },
};

const POSITION: Schema = { epoch: { check: requestId }, version: { check: version } };

/** Each `op` has its own fields; an unknown op is refused like an unknown field. */
const CHANGE_SCHEMAS: Record<RegistryChange['op'], Schema> = {
  'set-workload': { op: { check: () => undefined }, workload: { check: object(REGISTRY_WORKLOAD) } },
  'remove-workload': { op: { check: () => undefined }, ip: { check: ipv4 } },
  'set-node': { op: { check: () => undefined }, node: { check: object(REGISTRY_NODE) } },
  'remove-node': { op: { check: () => undefined }, node: { check: nodeName } },
  'set-service': { op: { check: () => undefined }, service: { check: object(REGISTRY_SERVICE) } },
  'remove-service': { op: { check: () => undefined }, namespace: { check: dnsLabel }, name: { check: dnsLabel } },
};
const registryChange: Check = (v, at) => {
  if (!isRecord(v)) return `${at}: must be an object`;
  const op = v.op;
  if (!isString(op) || !Object.prototype.hasOwnProperty.call(CHANGE_SCHEMAS, op)) return `${at}.op: must be one of ${Object.keys(CHANGE_SCHEMAS).join(', ')}`;
  return checkObject(v, CHANGE_SCHEMAS[op as RegistryChange['op']], at);
};

const SCHEMAS: { [T in MessageType]: Schema } = {
  join: { node: { check: nodeName }, csr: { check: pem('CERTIFICATE REQUEST') } },
  joined: { cert: { check: pem('CERTIFICATE') }, ca: { check: pem('CERTIFICATE') } },
  hello: {
    node: { check: nodeName },
    nodeAddress: { check: ipv4 },
    agentVersion: { check: agentVersion },
    since: { check: object(POSITION), optional: true },
    accepts: { check: arrayOf(str((s) => ACCEPT_RE.test(s), "must be a name of lowercase letters, digits and '-', at most 32"), 16), optional: true },
  },
  register: {
    workloads: { check: arrayOf(object(WORKLOAD_REGISTRATION), MAX_NODE_WORKLOADS) },
    services: { check: arrayOf(object(SERVICE_REGISTRATION), MAX_SERVICES), optional: true },
  },
  csr: { id: { check: requestId }, identity: { check: spiffe }, csr: { check: pem('CERTIFICATE REQUEST') } },
  cert: { id: { check: requestId }, cert: { check: pem('CERTIFICATE') }, ca: { check: pem('CERTIFICATE') } },
  error: { id: { check: requestId, optional: true }, code: { check: wireCode }, message: { check: text } },
  registry: {
    version: { check: version },
    epoch: { check: requestId },
    workloads: { check: arrayOf(object(REGISTRY_WORKLOAD), MAX_REGISTRY_WORKLOADS) },
    nodes: { check: arrayOf(object(REGISTRY_NODE), MAX_NODES) },
    services: { check: arrayOf(object(REGISTRY_SERVICE), MAX_REGISTRY_SERVICES), optional: true },
  },
  'registry-delta': {
    fromVersion: { check: version },
    toVersion: { check: version },
    epoch: { check: requestId },
    changes: { check: arrayOf(registryChange, MAX_DELTA_CHANGES) },
  },
  'registry-sync': { since: { check: object(POSITION), optional: true } },
  policies: { version: { check: version }, files: { check: arrayOf(object(POLICY_FILE), MAX_POLICY_FILES) } },
  flows: {
    session: { check: requestId },
    seq: { check: version },
    lost: { check: version },
    flows: { check: (v, at) => (Array.isArray(v) ? (v.length > MAX_FLOWS_PER_BATCH ? `${at}: at most ${MAX_FLOWS_PER_BATCH} flows` : checkFlows(v, at)) : `${at}: must be an array`) },
  },
  'flows-ack': { session: { check: requestId }, seq: { check: version } },
  'policy-status': {
    version: { check: version },
    ok: { check: bool },
    problems: { check: arrayOf((v, at) => (isString(v) && v.length <= 2048 ? undefined : `${at}: must be a line of text`), MAX_POLICY_PROBLEMS) },
    wireRules: { check: (v, at) => (isString(v) && v.length <= 2048 ? undefined : `${at}: must be a line of text`), optional: true },
  },
};

/** Each record must be a FlowRecord (common/flow.ts validates the shape); the first problem is reported. */
function checkFlows(list: unknown[], at: string): string | undefined {
  for (let i = 0; i < list.length; i++) {
    const problem = flowProblem(list[i]);
    if (problem) return `${at}[${i}]: ${problem}`;
  }
  return undefined;
}

function checkObject(v: unknown, schema: Schema, at: string): string | undefined {
  if (!isRecord(v)) return `${at}: must be an object`;
  for (const key of Object.keys(v)) {
    if (!Object.prototype.hasOwnProperty.call(schema, key)) return `${at}: unknown field ${JSON.stringify(key.slice(0, 64))}`;
  }
  for (const [key, field] of Object.entries(schema)) {
    if (!Object.prototype.hasOwnProperty.call(v, key)) {
      if (field.optional) continue;
      return `${at}: missing field "${key}"`;
    }
    const problem = field.check(v[key], `${at}.${key}`);
    if (problem) return problem;
  }
  return undefined;
}

function refuse(reason: string): PalisadeError {
  return new PalisadeError('PALISADE_ERR_PROTOCOL', reason);
}

/**
 * One frame → one message of an allowed type; throws PALISADE_ERR_PROTOCOL (one line, never
 * echoing the frame) for anything else.
 */
export function parseMessage<T extends MessageType>(
  frame: string | Buffer,
  allowedTypes: readonly T[],
  maxBytes: number = MAX_FRAME_BYTES,
): MessageOf<T> {
  const size = typeof frame === 'string' ? Buffer.byteLength(frame) : frame.length;
  if (size > maxBytes) throw refuse(`frame of ${size} bytes is over the ${maxBytes}-byte limit`);
  let value: unknown;
  try {
    value = JSON.parse(typeof frame === 'string' ? frame : frame.toString('utf8'));
  } catch {
    throw refuse('frame is not JSON');
  }
  return checkMessage(value, allowedTypes);
}

/**
 * A frame's parsed JSON → the message of an allowed type it is, with every check parseMessage
 * makes after parsing (collector/flows/flows-frame.ts parses a flows frame in pieces, then checks
 * it here); throws PALISADE_ERR_PROTOCOL as parseMessage does.
 */
export function checkMessage<T extends MessageType>(value: unknown, allowedTypes: readonly T[]): MessageOf<T> {
  if (!isRecord(value)) throw refuse('frame is not a JSON object');
  const type = value.type;
  if (!isString(type)) throw refuse('message has no "type"');
  if (!(allowedTypes as readonly string[]).includes(type)) {
    const known = Object.prototype.hasOwnProperty.call(SCHEMAS, type);
    throw refuse(known ? `message type "${type}" is not allowed here` : `unknown message type ${JSON.stringify(type.slice(0, 64))}`);
  }
  const { type: _type, ...fields } = value;
  const problem = checkObject(fields, SCHEMAS[type as T], type);
  if (problem) throw refuse(problem);
  if (type === 'registry-delta' && (fields.toVersion as number) <= (fields.fromVersion as number)) throw refuse('registry-delta: toVersion must be after fromVersion');
  return value as unknown as MessageOf<T>;
}

/**
 * A binary message from the collector (hello `accepts` REGISTRY_DEFLATE) → the text frame it
 * deflates, which must then parse as a `registry` or `registry-delta`. Never inflates past
 * `maxBytes` (a small message that would inflate to gigabytes is refused, not inflated).
 */
export function inflateRegistryFrame(data: Buffer, maxBytes: number = MAX_COLLECTOR_FRAME_BYTES): Buffer {
  try {
    return zlib.inflateRawSync(data, { maxOutputLength: maxBytes });
  } catch (err) {
    const over = (err as NodeJS.ErrnoException).code === 'ERR_BUFFER_TOO_LARGE';
    throw refuse(over ? `binary frame inflates past the ${maxBytes}-byte limit` : 'binary frame is not deflated data');
  }
}

/** The one way messages are put on the wire. */
export function encodeMessage(message: MeshMessage): string {
  return JSON.stringify(message);
}
